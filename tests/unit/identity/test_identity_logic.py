"""Identity logic without HTTP: effective roles, policy, lockout, tokens, keys."""

from __future__ import annotations

import time

import pytest
from identity_fixtures import admin_ctx, make_identity

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import Forbidden, NotFound, Unauthorized
from pocketstack.services.identity import assignments, projects, roles, users
from pocketstack.services.identity.keys import KeyRepository
from pocketstack.services.identity.models import Project
from pocketstack.services.identity.tokens import TokenCodec, TokenPayload


@pytest.fixture
def svc(tmp_path):
    return make_identity(tmp_path)


def _mk(svc, ctx, fn, key, body, params=None):
    return fn(svc, ctx, params or {}, {}, {key: body})[key]


def test_effective_roles_through_groups_inheritance_and_implication(svc):
    ctx = admin_ctx(svc)
    parent = _mk(svc, ctx, projects.create_project, "project", {"name": "parent"})
    child = _mk(svc, ctx, projects.create_project, "project",
                {"name": "child", "parent_id": parent["id"]})
    user = _mk(svc, ctx, users.create_user, "user", {"name": "u1", "password": "p"})
    group = _mk(svc, ctx, users.create_group, "group", {"name": "g1"})
    users.add_user_to_group(svc, ctx, {"group_id": group["id"], "user_id": user["id"]}, {}, None)
    prior = _mk(svc, ctx, roles.create_role, "role", {"name": "prior"})
    implied = _mk(svc, ctx, roles.create_role, "role", {"name": "implied"})
    dom_role = _mk(svc, ctx, roles.create_role, "role", {"name": "dr", "domain_id": "default"})
    roles.create_implied(svc, ctx, {"prior_role_id": prior["id"],
                                    "implied_role_id": implied["id"]}, {}, None)
    # an inherited group grant on the parent reaches the child, not the parent itself
    roles.grant(svc, ctx, {"project_id": parent["id"], "group_id": group["id"],
                           "role_id": prior["id"]}, {}, None, target_kind="project",
                inherited=True)
    roles.grant(svc, ctx, {"project_id": child["id"], "user_id": user["id"],
                           "role_id": dom_role["id"]}, {}, None, target_kind="project")
    with svc.db.read() as s:
        p, c = s.get(Project, parent["id"]), s.get(Project, child["id"])
        on_child = {r.name for r in assignments.effective_roles(s, user["id"], "project",
                                                                 c.id, c)}
        on_parent = assignments.effective_roles(s, user["id"], "project", p.id, p)
        visible = [x.id for x in assignments.user_projects(s, user["id"])]
    assert on_child == {"prior", "implied"}  # the domain-specific role never shows
    assert on_parent == []
    assert visible == [child["id"]]
    listed = roles.list_assignments(svc, ctx, {}, {"user.id": user["id"], "effective": ""},
                                    None)["role_assignments"]
    assert {(a["role"]["id"], a["scope"]["project"]["id"]) for a in listed} == {
        (prior["id"], child["id"]), (implied["id"], child["id"])}


def test_deleting_user_and_role_cleans_assignments(svc):
    ctx = admin_ctx(svc)
    proj = _mk(svc, ctx, projects.create_project, "project", {"name": "p"})
    user = _mk(svc, ctx, users.create_user, "user", {"name": "u", "password": "p"})
    role = _mk(svc, ctx, roles.create_role, "role", {"name": "r"})
    params = {"project_id": proj["id"], "user_id": user["id"], "role_id": role["id"]}
    roles.grant(svc, ctx, params, {}, None, target_kind="project")
    roles.delete_role(svc, ctx, {"role_id": role["id"]}, {}, None)
    with pytest.raises(NotFound):
        roles.check_grant(svc, ctx, params, {}, None, target_kind="project")
    assert roles.list_assignments(svc, ctx, {}, {"scope.project.id": proj["id"]},
                                  None)["role_assignments"] == []


def test_policy_keeps_projects_apart():
    a = RequestContext(user_id="ua", project_id="pa", roles=frozenset({"member", "reader"}))
    admin = RequestContext(user_id="adm", project_id="x", roles=frozenset({"admin"}))
    target_b = {"project_id": "pb", "domain_id": "default"}
    assert policy.check(a, "identity:get_project", {"project_id": "pa"})
    assert not policy.check(a, "identity:get_project", target_b)
    assert not policy.check(a, "identity:update_project", {"project_id": "pa"})
    assert policy.check(admin, "identity:update_project", target_b)
    assert policy.check(a, "identity:get_user", {"user_id": "ua"})
    assert not policy.check(a, "identity:get_user", {"user_id": "ub", "domain_id": "default"})
    with pytest.raises(Forbidden):
        policy.enforce(a, "identity:create_grant", target_b)


def test_lockout_counts_failures_and_expires(tmp_path):
    svc = make_identity(tmp_path, lockout_failure_attempts=2, lockout_duration=1)
    ctx = admin_ctx(svc)
    _mk(svc, ctx, users.create_user, "user", {"name": "locky", "password": "good"})

    def login(pw):
        return svc.authenticate({"identity": {"methods": ["password"], "password": {
            "user": {"name": "locky", "domain": {"id": "default"}, "password": pw}}},
            "scope": "unscoped"})

    for _ in range(2):
        with pytest.raises(Unauthorized):
            login("bad")
    with pytest.raises(Unauthorized):
        login("good")  # locked
    time.sleep(1.1)
    assert login("good").payload.scope_kind == "unscoped"


def test_key_rotation_keeps_tokens_until_their_key_is_pruned(tmp_path):
    repo = KeyRepository(tmp_path / "keys", max_active_keys=3)
    repo.setup()
    codec = TokenCodec(repo)
    now = time.time()
    token = codec.encode(TokenPayload("u", ("password",), "unscoped", None, now, now + 60,
                                      ("a",)))
    repo.rotate()
    codec.reload()
    assert codec.decode(token).user_id == "u"  # the old primary is still a secondary
    repo.rotate()
    repo.rotate()
    codec.reload()
    with pytest.raises(NotFound):
        codec.decode(token)


def test_ec2_credential_lookup_for_s3_follows_user_and_role(svc):
    from pocketstack.services.identity import credentials

    ctx = admin_ctx(svc)
    proj = _mk(svc, ctx, projects.create_project, "project", {"name": "s3p"})
    user = _mk(svc, ctx, users.create_user, "user", {"name": "s3u", "password": "p"})
    member = roles.list_roles(svc, ctx, {}, {"name": "member"}, None)["roles"][0]
    grant = {"project_id": proj["id"], "user_id": user["id"], "role_id": member["id"]}
    roles.grant(svc, ctx, grant, {}, None, target_kind="project")
    cred = credentials.create_ec2(svc, ctx, {"user_id": user["id"]}, {},
                                  {"tenant_id": proj["id"]})["credential"]
    found = svc.ec2_credential(cred["access"])
    assert found["secret"] == cred["secret"] and found["project_id"] == proj["id"]
    assert "member" in found["roles"]
    assert svc.ec2_credential("no-such-access") is None
    users.update_user(svc, ctx, {"user_id": user["id"]}, {}, {"user": {"enabled": False}})
    assert svc.ec2_credential(cred["access"]) is None
    users.update_user(svc, ctx, {"user_id": user["id"]}, {}, {"user": {"enabled": True}})
    roles.revoke(svc, ctx, grant, {}, None, target_kind="project")
    assert svc.ec2_credential(cred["access"]) is None


def test_limit_for_prefers_the_project_limit_then_the_registered_default(svc):
    from pocketstack.services.identity import catalog_admin, limits

    ctx = admin_ctx(svc)
    proj = _mk(svc, ctx, projects.create_project, "project", {"name": "limited"})
    image = catalog_admin.create_service(svc, ctx, {}, {}, {"service": {
        "type": "image", "name": "glance"}})["service"]
    assert svc.limit_for(proj["id"], "image", "image_count_total") is None
    limits.create_registered(svc, ctx, {}, {}, {"registered_limits": [{
        "service_id": image["id"], "resource_name": "image_count_total",
        "default_limit": 5}]})
    assert svc.limit_for(proj["id"], "image", "image_count_total") == 5
    limits.create_limits(svc, ctx, {}, {}, {"limits": [{
        "service_id": image["id"], "project_id": proj["id"],
        "resource_name": "image_count_total", "resource_limit": 2}]})
    assert svc.limit_for(proj["id"], "image", "image_count_total") == 2
    with pytest.raises(Forbidden):  # no registered limit to override
        limits.create_limits(svc, ctx, {}, {}, {"limits": [{
            "service_id": image["id"], "project_id": proj["id"],
            "resource_name": "other", "resource_limit": 1}]})
    assert svc.project_exists(proj["id"]) and not svc.project_exists("default")
