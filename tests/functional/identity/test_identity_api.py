"""Keystone v3 over raw HTTP: tokens, bad input, and project isolation."""

from __future__ import annotations

import pytest
from identity_helpers import Keystone, unique


@pytest.fixture(scope="module")
def ks(cloud):
    return Keystone(cloud)


@pytest.fixture(scope="module")
def admin(ks):
    return ks.admin_token()


def _count(ks: Keystone, admin: str, path: str, key: str) -> int:
    r = ks.call("GET", path, admin)
    assert r.status_code == 200, r.text
    return len(r.json()[key])


def _fault(r, status: int) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    err = r.json()["error"]
    assert err["code"] == status and err["message"]
    return err["message"]


# -- tokens -----------------------------------------------------------------------------------
def test_token_validate_check_revoke_and_scopes(ks, admin):
    status, tok, body = ks.token("admin", ks.cloud.password("admin"), "admin")
    assert status == 201 and body["token"]["project"]["name"] == "admin"
    assert body["token"]["is_admin_project"] is True
    assert {r["name"] for r in body["token"]["roles"]} >= {"admin", "member", "reader"}
    r = ks.call("GET", "/auth/tokens?nocatalog", admin, headers={"X-Subject-Token": tok})
    assert r.status_code == 200 and "catalog" not in r.json()["token"]
    assert r.headers["x-subject-token"] == tok
    assert ks.call("HEAD", "/auth/tokens", admin, headers={"X-Subject-Token": tok}
                   ).status_code == 200
    assert ks.call("DELETE", "/auth/tokens", admin, headers={"X-Subject-Token": tok}
                   ).status_code == 204
    _fault(ks.call("GET", "/auth/tokens", admin, headers={"X-Subject-Token": tok}), 404)
    # unscoped, then rescoped by token to a domain and to the system
    status, unscoped, body = ks.token("admin", ks.cloud.password("admin"), scope="unscoped")
    assert "catalog" not in body["token"] and "roles" not in body["token"]
    auth = {"identity": {"methods": ["token"], "token": {"id": unscoped}}}
    r = ks.call("POST", "/auth/tokens", None, {"auth": {**auth, "scope": {"system": {"all": True}}}})
    assert r.status_code == 201 and r.json()["token"]["system"] == {"all": True}
    assert set(r.json()["token"]["methods"]) == {"password", "token"}
    r = ks.call("GET", "/auth/system", unscoped)
    assert r.json()["system"] == [{"all": True}]
    r = ks.call("GET", "/auth/projects", unscoped)
    assert "admin" in {p["name"] for p in r.json()["projects"]}


def test_wrong_password_and_unknown_user_answer_alike(ks):
    s1, _, b1 = ks.token("admin", "certainly-not-the-password", "admin")
    s2, _, b2 = ks.token(unique("nobody"), "certainly-not-the-password", "admin")
    assert s1 == s2 == 401
    assert b1 == b2


def test_unknown_auth_method(ks):
    r = ks.call("POST", "/auth/tokens", None,
                {"auth": {"identity": {"methods": ["kerberos"], "kerberos": {}}}})
    assert "unsupported method" in _fault(r, 401)


# -- bad input ----------------------------------------------------------------------------------
def test_malformed_json_wrong_types_and_oversize_write_nothing(ks, admin):
    before = _count(ks, admin, "/projects", "projects")
    msg = _fault(ks.call("POST", "/projects", admin, raw=b'{"project": {"name": "x",'), 400)
    assert "JSON" in msg
    msg = _fault(ks.call("POST", "/projects", admin, {"project": {"name": 123}}), 400)
    assert "project.name" in msg
    msg = _fault(ks.call("POST", "/projects", admin,
                         {"project": {"name": unique("p"), "enabled": "yes"}}), 400)
    assert "enabled" in msg
    _fault(ks.call("POST", "/projects", admin, {"project": {"name": "x" * 65}}), 400)
    _fault(ks.call("POST", "/projects", admin, {"project": {"name": unique("p"),
                                                            "tags": ["a/b"]}}), 400)
    _fault(ks.call("POST", "/projects", admin, ["not", "an", "object"]), 400)
    big = b'{"project": {"name": "big", "description": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    _fault(ks.call("POST", "/projects", admin, raw=big), 413)
    _fault(ks.call("POST", "/users", admin, {"user": {"name": unique("u"),
                                                      "password": 12345}}), 400)
    _fault(ks.call("PUT", "/regions/x", admin, {"region": {"parent_region_id": "nope"}}), 400)
    _fault(ks.call("POST", "/endpoints", admin, {"endpoint": {
        "interface": "sideways", "url": "http://x", "service_id": "nope"}}), 400)
    assert _count(ks, admin, "/projects", "projects") == before
    names = {u["name"] for u in ks.call("GET", "/users", admin).json()["users"]}
    assert not any(n.startswith("ps-u-") for n in names)


def test_sql_and_unicode_are_just_strings(ks, admin):
    sqlish = "x'; DROP TABLE project; --"
    r = ks.call("GET", f"/projects/{sqlish}", admin)
    assert "Could not find project" in _fault(r, 404)
    r = ks.call("GET", "/projects", admin, headers={})
    before = len(r.json()["projects"])
    name = "プロジェクト-ü-" + unique("uni")
    r = ks.call("POST", "/projects", admin, {"project": {"name": name, "description": sqlish}})
    assert r.status_code == 201, r.text
    pid = r.json()["project"]["id"]
    r = ks.call("GET", "/projects", admin)
    found = [p for p in r.json()["projects"] if p["id"] == pid]
    assert found[0]["name"] == name and found[0]["description"] == sqlish
    assert len(r.json()["projects"]) == before + 1
    _fault(ks.call("POST", "/projects", admin, {"project": {"name": "é" * 65}}), 400)
    assert ks.call("DELETE", f"/projects/{pid}", admin).status_code == 204


def test_conflicts_and_cleanup_rules(ks, admin):
    name = unique("dup")
    r = ks.call("POST", "/projects", admin, {"project": {"name": name}})
    pid = r.json()["project"]["id"]
    _fault(ks.call("POST", "/projects", admin, {"project": {"name": name}}), 409)
    child = ks.call("POST", "/projects", admin,
                    {"project": {"name": name + "-c", "parent_id": pid}}).json()["project"]
    assert child["parent_id"] == pid
    _fault(ks.call("DELETE", f"/projects/{pid}", admin), 403)  # not a leaf
    r = ks.call("GET", f"/projects/{child['id']}?parents_as_list", admin)
    assert [p["project"]["id"] for p in r.json()["project"]["parents"]] == [pid]
    r = ks.call("GET", f"/projects/{pid}?subtree_as_ids", admin)
    assert r.json()["project"]["subtree"] == {child["id"]: None}
    assert ks.call("DELETE", f"/projects/{child['id']}", admin).status_code == 204
    assert ks.call("DELETE", f"/projects/{pid}", admin).status_code == 204


# -- isolation -----------------------------------------------------------------------------------
def test_member_of_project_a_cannot_see_or_change_project_b(ks, admin):
    a_proj, b_proj = unique("proj-a"), unique("proj-b")
    a_user, b_user = unique("user-a"), unique("user-b")
    pa, ua = ks.make_member(admin, a_proj, a_user, "pw-a-123")
    pb, ub = ks.make_member(admin, b_proj, b_user, "pw-b-123")
    status, tok_a, body_a = ks.token(a_user, "pw-a-123", a_proj)
    assert status == 201 and body_a["token"]["is_admin_project"] is False
    # own project: visible
    assert ks.call("GET", f"/projects/{pa}", tok_a).status_code == 200
    # the other project: not visible, not changeable, not deletable
    _fault(ks.call("GET", f"/projects/{pb}", tok_a), 403)
    _fault(ks.call("PATCH", f"/projects/{pb}", tok_a, {"project": {"description": "x"}}), 403)
    _fault(ks.call("DELETE", f"/projects/{pb}", tok_a), 403)
    _fault(ks.call("GET", f"/users/{ub}", tok_a), 403)
    _fault(ks.call("GET", f"/role_assignments?scope.project.id={pb}", tok_a), 403)
    _fault(ks.call("GET", "/projects", tok_a), 403)
    member = ks.call("GET", "/roles?name=member", admin).json()["roles"][0]["id"]
    _fault(ks.call("PUT", f"/projects/{pb}/users/{ua}/roles/{member}", tok_a), 403)
    # a token for project B is refused to user A
    status, _, _ = ks.token(a_user, "pw-a-123", b_proj)
    assert status == 401
    # user A sees only their own projects and credentials
    r = ks.call("GET", f"/users/{ua}/projects", tok_a)
    assert [p["id"] for p in r.json()["projects"]] == [pa]
    _fault(ks.call("GET", f"/users/{ub}/projects", tok_a), 403)
    _fault(ks.call("POST", f"/users/{ub}/credentials/OS-EC2", tok_a, {"tenant_id": pb}), 403)
    _fault(ks.call("POST", f"/users/{ua}/credentials/OS-EC2", tok_a, {"tenant_id": pb}), 403)
    for uid in (ua, ub):
        assert ks.call("DELETE", f"/users/{uid}", admin).status_code == 204
    for pid in (pa, pb):
        assert ks.call("DELETE", f"/projects/{pid}", admin).status_code == 204
    # deleting the user removed its assignments
    r = ks.call("GET", f"/role_assignments?user.id={ua}", admin)
    assert r.json()["role_assignments"] == []


def test_application_credential_access_rules_are_enforced(ks, admin):
    proj, user = unique("ar-p"), unique("ar-u")
    pid, uid = ks.make_member(admin, proj, user, "pw-ar-123")
    _, tok, _ = ks.token(user, "pw-ar-123", proj)
    r = ks.call("POST", f"/users/{uid}/application_credentials", tok, {
        "application_credential": {"name": "limited", "access_rules": [
            {"service": "identity", "method": "GET", "path": "/v3/projects"},
            {"service": "image", "method": "GET", "path": "/v2/images"}]}})
    assert r.status_code == 201, r.text
    cred = r.json()["application_credential"]
    assert {(a["service"], a["path"]) for a in cred["access_rules"]} == {
        ("identity", "/v3/projects"), ("image", "/v2/images")}
    rules = ks.call("GET", f"/users/{uid}/access_rules", tok).json()["access_rules"]
    assert len(rules) == 2
    r = ks.call("POST", "/auth/tokens", None, {"auth": {"identity": {
        "methods": ["application_credential"], "application_credential": {
            "id": cred["id"], "secret": cred["secret"]}}}})
    assert r.status_code == 201
    app_tok = r.headers["x-subject-token"]
    base = ks.cloud.base_url
    ok = ks.http.get(f"{base}/image/v2/images", headers={"X-Auth-Token": app_tok})
    assert ok.status_code == 200
    denied = ks.http.get(f"{base}/image/v2/schemas/image", headers={"X-Auth-Token": app_tok})
    assert denied.status_code == 401
    # a rule still in use cannot be deleted; after the credential goes, it can
    _fault(ks.call("DELETE", f"/users/{uid}/access_rules/{rules[0]['id']}", tok), 403)
    assert ks.call("DELETE", f"/users/{uid}/application_credentials/{cred['id']}",
                   tok).status_code == 204
    assert ks.call("DELETE", f"/users/{uid}/access_rules/{rules[0]['id']}",
                   tok).status_code == 204
    ks.call("DELETE", f"/users/{uid}", admin)
    ks.call("DELETE", f"/projects/{pid}", admin)


def test_trust_scoped_tokens(ks, admin):
    proj, trustor, trustee = unique("tr-p"), unique("trustor"), unique("trustee")
    pid, tor = ks.make_member(admin, proj, trustor, "pw-tor-1")
    r = ks.call("POST", "/users", admin, {"user": {"name": trustee, "password": "pw-tee-1"}})
    tee = r.json()["user"]["id"]
    _, tor_token, _ = ks.token(trustor, "pw-tor-1", proj)
    r = ks.call("POST", "/OS-TRUST/trusts", tor_token, {"trust": {
        "trustor_user_id": tor, "trustee_user_id": tee, "project_id": pid,
        "impersonation": True, "roles": [{"name": "reader"}], "remaining_uses": 2}})
    assert r.status_code == 201, r.text
    trust = r.json()["trust"]
    # someone else cannot create a trust in the trustor's name
    _, tee_token, _ = ks.token(trustee, "pw-tee-1", scope="unscoped")
    _fault(ks.call("POST", "/OS-TRUST/trusts", tee_token, {"trust": {
        "trustor_user_id": tor, "trustee_user_id": tee, "project_id": pid,
        "impersonation": True, "roles": [{"name": "member"}]}}), 403)
    auth = {"auth": {"identity": {"methods": ["token"], "token": {"id": tee_token}},
                     "scope": {"OS-TRUST:trust": {"id": trust["id"]}}}}
    r = ks.call("POST", "/auth/tokens", None, auth)
    assert r.status_code == 201, r.text
    body = r.json()["token"]
    assert body["user"]["id"] == tor  # impersonation: acts as the trustor
    assert body["project"]["id"] == pid
    assert {x["name"] for x in body["roles"]} == {"reader"}  # only what was delegated
    assert body["OS-TRUST:trust"]["trustee_user"]["id"] == tee
    trust_token = r.headers["x-subject-token"]
    assert ks.call("POST", "/auth/tokens", None, auth).status_code == 201
    assert ks.call("POST", "/auth/tokens", None, auth).status_code == 401  # uses spent
    # deleting the trust kills its tokens
    assert ks.call("DELETE", f"/OS-TRUST/trusts/{trust['id']}", tor_token).status_code == 204
    r = ks.call("GET", "/auth/tokens", admin, headers={"X-Subject-Token": trust_token})
    assert r.status_code == 404
    for uid in (tor, tee):
        ks.call("DELETE", f"/users/{uid}", admin)
    ks.call("DELETE", f"/projects/{pid}", admin)


def test_system_reader_reads_everything_and_changes_nothing(ks, admin):
    name = unique("sysreader")
    r = ks.call("POST", "/users", admin, {"user": {"name": name, "password": "pw-sys-1"}})
    uid = r.json()["user"]["id"]
    reader = ks.call("GET", "/roles?name=reader", admin).json()["roles"][0]["id"]
    assert ks.call("PUT", f"/system/users/{uid}/roles/{reader}", admin).status_code == 204
    _, unscoped, _ = ks.token(name, "pw-sys-1", scope="unscoped")
    r = ks.call("POST", "/auth/tokens", None, {"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"system": {"all": True}}}})
    assert r.status_code == 201 and r.json()["token"]["system"] == {"all": True}
    tok = r.headers["x-subject-token"]
    for path in ("/projects", "/users", "/domains", "/groups", "/role_assignments"):
        assert ks.call("GET", path, tok).status_code == 200, path
    _fault(ks.call("POST", "/projects", tok, {"project": {"name": unique("nope")}}), 403)
    _fault(ks.call("DELETE", f"/users/{uid}", tok), 403)
    assert ks.call("DELETE", f"/users/{uid}", admin).status_code == 204
