"""Small HTTP helpers for the identity functional tests (raw Keystone v3 over httpx)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


class Keystone:
    """Raw Keystone v3 calls against a live cloud."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.url = cloud.base_url + "/identity/v3"
        self.http = httpx.Client(timeout=30)

    def token(self, user: str, password: str, project: str | None = None,
              domain: str = "default", scope: Any = "project") -> tuple[int, str | None, Any]:
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": domain}, "password": password}}}}
        if project is not None:
            auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
        elif scope == "unscoped":
            auth["scope"] = "unscoped"  # else Keystone scopes to the default project
        r = self.http.post(f"{self.url}/auth/tokens", json={"auth": auth})
        body = r.json() if r.content else None
        return r.status_code, r.headers.get("x-subject-token"), body

    def admin_token(self) -> str:
        status, tok, _ = self.token("admin", self.cloud.password("admin"), "admin")
        assert status == 201, status
        return tok

    def call(self, method: str, path: str, token: str | None, body: Any = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["X-Auth-Token"] = token
        if raw is not None:
            return self.http.request(method, self.url + path, content=raw, headers=hdrs)
        return self.http.request(method, self.url + path, json=body, headers=hdrs)

    def make_member(self, admin: str, project_name: str, user_name: str, password: str,
                    role: str = "member") -> tuple[str, str]:
        """A project and a user holding ``role`` on it; returns (project id, user id)."""
        r = self.call("POST", "/projects", admin, {"project": {"name": project_name}})
        assert r.status_code == 201, r.text
        pid = r.json()["project"]["id"]
        r = self.call("POST", "/users", admin, {"user": {"name": user_name,
                                                         "password": password}})
        assert r.status_code == 201, r.text
        uid = r.json()["user"]["id"]
        r = self.call("GET", f"/roles?name={role}", admin)
        rid = r.json()["roles"][0]["id"]
        r = self.call("PUT", f"/projects/{pid}/users/{uid}/roles/{rid}", admin)
        assert r.status_code == 204, r.text
        return pid, uid
