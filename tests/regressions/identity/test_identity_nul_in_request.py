"""On PostgreSQL a NUL character in a query value, path or body reached the driver, which
refuses it: a 500. Such requests now answer 400 before any query runs (on every backend)."""

from __future__ import annotations

import httpx


def test_nul_characters_answer_400(cloud):
    base = cloud.base_url + "/identity/v3"
    auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": cloud.password("admin")}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    with httpx.Client(timeout=30) as http:
        token = http.post(f"{base}/auth/tokens", json=auth).headers["x-subject-token"]
        headers = {"X-Auth-Token": token}
        assert http.get(f"{base}/projects?name=%00", headers=headers).status_code == 400
        assert http.get(f"{base}/projects/a%00b", headers=headers).status_code == 400
        r = http.post(f"{base}/projects", headers=headers,
                      json={"project": {"name": "ps-nul\u0000name"}})
        assert r.status_code == 400 and "NUL" in r.json()["error"]["message"]
        nul_user = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "ad\u0000min", "domain": {"id": "default"}, "password": "x"}}}}}
        assert http.post(f"{base}/auth/tokens", json=nul_user).status_code == 400
