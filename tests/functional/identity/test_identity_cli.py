"""Seed 000's identity commands, and the rest of Keystone an operator uses, through the real
`openstack` CLI and openstacksdk."""

from __future__ import annotations

import subprocess

from identity_helpers import unique


def test_seed000_fabric_project_user_role(cloud):
    name = unique("fabric")
    project = cloud.openstack("project", "create", name)
    assert project["name"] == name and project["enabled"] is True
    user = cloud.openstack("user", "create", "--password", "Fabric_123", name)
    assert user["name"] == name and user["domain_id"] == "default"
    role = cloud.openstack("role", "create", name)
    assert role["name"] == name
    cloud.openstack("role", "add", "--project", name, "--user", name, name)
    cloud.openstack("role", "add", "--project", name, "--user", "admin", name)
    rows = cloud.openstack("role", "assignment", "list", "--names", "--project", name)
    pairs = {(r["Role"], r["User"]) for r in rows}
    assert (name, f"{name}@Default") in pairs and (name, "admin@Default") in pairs
    # the new user can log in to the project with the custom role
    token = cloud.openstack("token", "issue", user=name, project=name, password="Fabric_123")
    assert token["project_id"] == project["id"] and token["user_id"] == user["id"]
    # deleting the user and the role cleans their assignments (checked over the SDK: fast)
    conn = cloud.sdk()
    conn.identity.delete_user(user["id"])
    conn.identity.delete_role(role["id"])
    assert list(conn.identity.role_assignments(scope_project_id=project["id"])) == []
    conn.identity.delete_project(project["id"])


def test_domains_groups_and_implied_roles(cloud):
    dom, grp, usr = unique("dom"), unique("grp"), unique("usr")
    prior, implied = unique("prior"), unique("implied")
    conn = cloud.sdk()
    domain = cloud.openstack("domain", "create", "--description", "test domain", dom)
    assert domain["enabled"] is True
    cloud.openstack("group", "create", "--domain", dom, grp)
    user = conn.identity.create_user(name=usr, domain_id=domain["id"], password="pw-1234")
    cloud.openstack("group", "add", "user", "--group-domain", dom, "--user-domain", dom, grp, usr)
    prior_id = conn.identity.create_role(name=prior).id
    implied_id = conn.identity.create_role(name=implied).id
    rule = cloud.openstack("implied", "role", "create", prior, "--implied-role", implied)
    assert rule == {"prior_role": prior_id, "implies": implied_id}
    cloud.openstack("role", "add", "--domain", dom, "--group", grp, "--group-domain", dom,
                    prior)
    rows = cloud.openstack("role", "assignment", "list", "--effective", "--names",
                           "--user", usr, "--user-domain", dom)
    roles = {r["Role"] for r in rows}
    assert {prior, implied} <= roles  # through the group, and through the implication
    res = cloud.openstack("domain", "delete", dom, check=False)
    assert res.returncode != 0 and "disable" in (res.stderr + res.stdout).lower()
    cloud.openstack("domain", "set", "--disable", dom, parse=False)
    cloud.openstack("domain", "delete", dom)
    assert conn.identity.find_user(user.id) is None  # the domain took its users along
    conn.identity.delete_role(prior_id)
    conn.identity.delete_role(implied_id)


def test_application_credential_authenticates(cloud):
    name = unique("appcred")
    cred = cloud.openstack("application", "credential", "create", "--role", "member", name)
    assert cred["Secret"] and cred["Project ID"]
    env = {k: v for k, v in cloud.env().items() if not k.startswith("OS_")}
    env.update(OS_AUTH_URL=cloud.base_url + "/identity", OS_AUTH_TYPE="v3applicationcredential",
               OS_APPLICATION_CREDENTIAL_ID=cred["ID"],
               OS_APPLICATION_CREDENTIAL_SECRET=cred["Secret"], OS_IDENTITY_API_VERSION="3")
    res = subprocess.run(["openstack", "token", "issue", "-f", "json"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert '"project_id"' in res.stdout
    env["OS_APPLICATION_CREDENTIAL_SECRET"] = "wrong"
    res = subprocess.run(["openstack", "token", "issue"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode != 0
    cloud.openstack("application", "credential", "delete", name)


def test_ec2_credentials(cloud):
    created = cloud.openstack("ec2", "credentials", "create")
    access, secret = created["access"], created["secret"]
    assert access and secret and created["project_id"]
    listed = cloud.openstack("ec2", "credentials", "list")
    assert access in {row["Access"] for row in listed}
    shown = cloud.openstack("ec2", "credentials", "show", access)
    assert shown["secret"] == secret
    cloud.openstack("ec2", "credentials", "delete", access)
    listed = cloud.openstack("ec2", "credentials", "list")
    assert access not in {row["Access"] for row in listed}


def test_openstacksdk_identity(cloud):
    conn = cloud.sdk()
    name = unique("sdk")
    parent = conn.identity.create_project(name=name + "-parent", domain_id="default")
    child = conn.identity.create_project(name=name + "-child", domain_id="default",
                                         parent_id=parent.id)
    assert child.parent_id == parent.id
    user = conn.identity.create_user(name=name, password="sdk-pass-1", domain_id="default")
    role = conn.identity.find_role("reader")
    conn.identity.assign_project_role_to_user(child, user, role)
    assert conn.identity.validate_user_has_project_role(child, user, role)
    projects = {p.id for p in conn.identity.user_projects(user)}
    assert child.id in projects and parent.id not in projects
    regions = {r.id for r in conn.identity.regions()}
    assert "RegionOne" in regions
    assert any(s.type == "identity" for s in conn.identity.services())
    conn.identity.delete_user(user)
    conn.identity.delete_project(child)
    conn.identity.delete_project(parent)
    assert conn.identity.find_project(parent.id) is None


def test_unified_limits(cloud):
    res = unique("res")
    proj = cloud.openstack("project", "create", unique("lim"))
    service = cloud.openstack("service", "show", "identity")
    reg = cloud.openstack("registered", "limit", "create", "--service", service["id"],
                          "--default-limit", "10", "--region", "RegionOne", res)
    assert reg["default_limit"] == 10
    lim = cloud.openstack("limit", "create", "--project", proj["id"], "--service",
                          service["id"], "--resource-limit", "3", "--region", "RegionOne", res)
    assert lim["resource_limit"] == 3 and lim["project_id"] == proj["id"]
    listed = cloud.openstack("limit", "list", "--resource-name", res)
    assert [row["ID"] for row in listed] == [lim["id"]]
    res2 = cloud.openstack("registered", "limit", "delete", reg["id"], check=False)
    assert res2.returncode != 0  # still referenced by the project limit
    cloud.openstack("limit", "delete", lim["id"])
    cloud.openstack("registered", "limit", "delete", reg["id"])
    cloud.openstack("project", "delete", proj["id"])
