"""Concurrent writers through HTTP never see "database is locked" or a 500 (SQLite and
PostgreSQL): many threads create projects and users at once, and racing creates of the
same name give exactly one 201 and 409s."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from typing import Any


def call(method: str, url: str, token: str, body: Any = None) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"X-Auth-Token": token,
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def admin_token(cloud) -> str:  # noqa: ANN001
    return cloud.openstack("token", "issue")["id"]


def run_threads(count: int, target) -> None:  # noqa: ANN001
    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)


def test_many_concurrent_writers(cloud):
    token = admin_token(cloud)
    base = cloud.base_url + "/identity/v3"
    tag = uuid.uuid4().hex[:8]
    results: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        for j in range(3):
            for kind, body in (
                ("projects", {"project": {"name": f"ps-conc-{tag}-{i}-{j}",
                                          "domain_id": "default"}}),
                ("users", {"user": {"name": f"ps-conc-{tag}-{i}-{j}", "domain_id": "default",
                                    "password": "ps-Secret-123"}}),
            ):
                status, text = call("POST", f"{base}/{kind}", token, body)
                with lock:
                    results.append((kind, status, text))
            status, text = call("GET", f"{base}/projects", token)  # readers in the mix
            with lock:
                results.append(("list", status, text[:200]))

    run_threads(24, writer)
    bad = [r for r in results if r[1] not in (200, 201)]
    assert not bad, bad[:5]
    assert len(results) == 24 * 3 * 3
    assert "database is locked" not in cloud.log()
    names = {p["name"] for p in json.loads(call("GET", f"{base}/projects", token)[1])["projects"]}
    assert {f"ps-conc-{tag}-{i}-{j}" for i in range(24) for j in range(3)} <= names


def test_racing_creates_of_one_name(cloud):
    token = admin_token(cloud)
    base = cloud.base_url + "/identity/v3"
    name = f"ps-race-{uuid.uuid4().hex[:8]}"
    statuses: list[int] = []

    def create(i: int) -> None:
        status, _ = call("POST", f"{base}/projects", token,
                         {"project": {"name": name, "domain_id": "default"}})
        statuses.append(status)

    run_threads(20, create)
    assert sorted(statuses) == [201] + [409] * 19, statuses
