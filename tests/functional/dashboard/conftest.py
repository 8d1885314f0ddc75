"""Fixtures for the dashboard's functional tests: httpx sessions logged in through the
login form of the session's live cloud (the browser's path, without a browser)."""

from __future__ import annotations

import re

import httpx
import pytest

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def login(cloud, user: str, password: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=cloud.base_url, follow_redirects=False, timeout=30)
    r = c.get("/dashboard/login")
    assert r.status_code == 200
    r = c.post("/dashboard/login", data={
        "csrf_token": csrf_of(r.text), "domain": "Default", "username": user,
        "password": password or cloud.password(user), "next": "/dashboard/"})
    assert r.status_code == 303, r.text[:2000]
    return c


@pytest.fixture(scope="module")
def demo_web(cloud):
    c = login(cloud, "demo")
    yield c
    c.close()


@pytest.fixture(scope="module")
def admin_web(cloud):
    c = login(cloud, "admin")
    yield c
    c.close()
