"""No request to the Keystone API answers 5xx: every route, with bodies and queries that
are wrong in the usual ways (malformed, wrong types, NUL bytes, unknown ids)."""

from __future__ import annotations

import json
import re

from identity_helpers import Keystone

from pocketstack.services.identity.routes_admin import ROUTES

BODIES = [b"", b"[]", b'"str"', b"123", b"{}", b'{"a":', b"nul\x00l", b'{"x": "\xff"}']
QUERY = ("?effective&include_names&name=%00&enabled=maybe&tags=a,,b&not-tags=&"
         "scope.system=all&include_subtree=1&parents_as_ids&subtree_as_list&domain_id=x")


def test_no_route_answers_5xx(cloud):
    ks = Keystone(cloud)
    admin = ks.admin_token()
    keys = ["project", "domain", "user", "group", "role", "region", "service", "endpoint",
            "policy", "credential", "application_credential", "consumer", "endpoint_group",
            "config", "tags"]
    bodies = BODIES + [json.dumps({k: v}).encode() for k in keys for v in ([], 1)]
    failures = []
    for method, path, _fn, _status in ROUTES:
        url = re.sub(r"\{[a-z_]+\}", "ps-no-such-id", path)[len("/v3"):]
        for body in bodies if method in ("POST", "PUT", "PATCH") else [None]:
            for query in ("", QUERY) if method == "GET" else ("",):
                r = ks.call(method, url + query, admin, raw=body if body is not None else b"")
                if r.status_code >= 500:
                    failures.append((r.status_code, method, url + query, body, r.text[:200]))
    for body in BODIES + [json.dumps({"auth": {"identity": {"methods": [{"a": 1}]}}}).encode()]:
        r = ks.call("POST", "/auth/tokens", None, raw=body)
        if r.status_code >= 500:
            failures.append((r.status_code, "POST", "/auth/tokens", body, r.text[:200]))
    assert failures == []
