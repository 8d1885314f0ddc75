"""Servers, keypairs and quotas on the shared session cloud (fake compute driver), through
openstacksdk and the `openstack` CLI. Names carry a unique suffix: the cloud is shared."""

from __future__ import annotations

import base64
import concurrent.futures
import time
import uuid

from tests.functional.compute.servers_common import uniq, wait

MV = "2.79"


def post(conn, path, body, mv=MV):
    return conn.compute.post(path, json=body, microversion=mv)


def test_keypairs_generate_once_import_and_isolation(cloud, admin):
    name = uniq("kp")
    kp = admin.compute.create_keypair(name=name)
    assert kp.private_key and "PRIVATE KEY" in kp.private_key
    again = admin.compute.get_keypair(name)
    assert again.private_key is None and again.fingerprint == kp.fingerprint
    pub = kp.public_key
    imported = uniq("kpi")
    out = cloud.openstack("keypair", "create", "--public-key", "/dev/stdin", imported,
                          check=False)  # CLI reads a file; use the SDK path for stdin-less runs
    if out.returncode != 0:
        admin.compute.create_keypair(name=imported, public_key=pub)
    assert admin.compute.get_keypair(imported).fingerprint == kp.fingerprint
    demo = cloud.sdk("demo")
    assert demo.compute.find_keypair(name) is None  # keypairs are per user
    r = post(admin, "/os-keypairs", {"keypair": {"name": name}})
    assert r.status_code == 409
    r = post(admin, "/os-keypairs", {"keypair": {"name": uniq("bad"), "public_key": "ssh-rsa nope"}})
    assert r.status_code == 400
    admin.compute.delete_keypair(name)
    admin.compute.delete_keypair(imported)


def test_server_lifecycle_actions(cloud, admin, image_id):
    name = uniq("srv")
    kp = admin.compute.create_keypair(name=uniq("kp"))
    body = {"server": {"name": name, "imageRef": image_id, "flavorRef": "1", "networks": "none",
                       "key_name": kp.name, "metadata": {"role": "web"}, "tags": ["blue"],
                       "user_data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode()}}
    r = post(admin, "/servers", body)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    srv = wait(admin, sid, {"ACTIVE"})
    assert srv.key_name == kp.name and srv.metadata == {"role": "web"} and srv.tags == ["blue"]
    assert srv.hypervisor_hostname.startswith("fake-")
    for action, status in (("os-stop", "SHUTOFF"), ("os-start", "ACTIVE"), ("pause", "PAUSED"),
                           ("unpause", "ACTIVE"), ("suspend", "SUSPENDED"), ("resume", "ACTIVE")):
        r = post(admin, f"/servers/{sid}/action", {action: None})
        assert r.status_code == 202, (action, r.text)
        wait(admin, sid, {status})
    r = post(admin, f"/servers/{sid}/action", {"os-start": None})
    assert r.status_code == 409  # already running
    r = post(admin, f"/servers/{sid}/action", {"reboot": {"type": "HARD"}})
    assert r.status_code == 202
    wait(admin, sid, {"ACTIVE"})
    # resize + confirm, then resize + revert
    r = post(admin, f"/servers/{sid}/action", {"resize": {"flavorRef": "2"}})
    assert r.status_code == 202, r.text
    assert wait(admin, sid, {"VERIFY_RESIZE"}).flavor["original_name"] == "m1.small"
    assert post(admin, f"/servers/{sid}/action", {"confirmResize": None}).status_code == 204
    wait(admin, sid, {"ACTIVE"})
    r = post(admin, f"/servers/{sid}/action", {"resize": {"flavorRef": "1"}})
    assert r.status_code == 400 and "resize disk down" in r.text  # 20 GB -> 1 GB
    assert post(admin, f"/servers/{sid}/action", {"resize": {"flavorRef": "3"}}).status_code == 202
    assert wait(admin, sid, {"VERIFY_RESIZE"}).flavor["vcpus"] == 2
    post(admin, f"/servers/{sid}/action", {"revertResize": None})
    assert wait(admin, sid, {"ACTIVE"}).flavor["original_name"] == "m1.small"
    # rebuild keeps the id, console output exists
    r = post(admin, f"/servers/{sid}/action", {"rebuild": {"imageRef": image_id, "name": name + "-r"}})
    assert r.status_code == 202 and r.json()["server"]["name"] == name + "-r"
    wait(admin, sid, {"ACTIVE"})
    out = post(admin, f"/servers/{sid}/action", {"os-getConsoleOutput": {"length": 5}}).json()
    assert "fake console" in out["output"]
    # snapshot to the image service
    r = post(admin, f"/servers/{sid}/action", {"createImage": {"name": uniq("snap")}})
    assert r.status_code == 202
    snap = r.json()["image_id"]
    img = admin.image.get_image(snap)  # queued, then saved by the worker (as in Nova)
    deadline = time.monotonic() + 30
    while img.status != "active" and time.monotonic() < deadline:
        time.sleep(0.05)
        img = admin.image.get_image(snap)
    assert img.status == "active" and img.instance_uuid == sid
    assert img.properties.get("image_type") == "snapshot"
    admin.image.delete_image(snap)
    # metadata and tags through the CLI
    cloud.openstack("server", "set", "--property", "tier=1", sid, parse=False)
    cloud.openstack("server", "unset", "--property", "role", sid, parse=False)
    assert admin.compute.get_server_metadata(sid).metadata == {"tier": "1"}
    events = [e["Action"] for e in cloud.openstack("server", "event", "list", sid)]
    assert events[-1] == "create" and "resize" in events and "rebuild" in events
    cloud.openstack("server", "delete", "--wait", sid, parse=False)
    assert admin.compute.find_server(sid) is None
    admin.compute.delete_keypair(kp.name)


def count_servers(conn) -> int:
    return len(list(conn.compute.servers(all_projects=True)))


def test_bad_input_is_4xx_and_creates_nothing(cloud, admin, image_id):
    before = count_servers(admin)
    base = {"name": uniq("bad"), "imageRef": image_id, "flavorRef": "1", "networks": "none"}
    cases = [
        ({**base, "flavorRef": "no-such-flavor"}, 400, "Flavor no-such-flavor could not be found"),
        ({**base, "imageRef": str(uuid.uuid4())}, 400, "could not be found"),
        ({**base, "min_count": -1}, 400, "_count"),
        ({**base, "min_count": 3, "max_count": 2}, 400, "min_count"),
        ({**base, "user_data": "A" * 70000}, 400, "User data too large"),
        ({**base, "user_data": "not base64!"}, 400, "base 64"),
        ({**base, "name": ""}, 400, "name"),
        ({**base, "networks": [{"uuid": "a-b-c"}]}, 400, "network uuid"),
        ({**base, "key_name": uniq("nokey")}, 400, "Invalid key_name provided."),
        ({**base, "availability_zone": "no-such-az"}, 400, "availability zone"),
        ({**base, "accessIPv6": "1.2.3.4"}, 400, "accessIPv6"),
        ({**base, "metadata": {"k" * 300: "v"}}, 400, "metadata"),
        ({**base, "bogus": 1}, 400, "Additional properties"),
    ]
    for server, status, words in cases:
        r = post(admin, "/servers", {"server": server})
        assert r.status_code == status, (server, r.text)
        assert words in r.text, (words, r.text)
    for hints, status in (({"group": "nope"}, 400), ({"group": str(uuid.uuid4())}, 400),
                          ({"same_host": ["x"]}, 400), ({"different_host": 3}, 400)):
        r = post(admin, "/servers", {"server": base, "os:scheduler_hints": hints})
        assert r.status_code == status, (hints, r.text)
    r = admin.compute.post("/servers", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert count_servers(admin) == before


def test_projects_are_isolated(cloud, admin, image_id):
    demo = cloud.sdk("demo")
    r = post(admin, "/servers", {"server": {"name": uniq("iso"), "imageRef": image_id,
                                            "flavorRef": "1", "networks": "none"}})
    sid = r.json()["server"]["id"]
    wait(admin, sid, {"ACTIVE"})
    assert demo.compute.get(f"/servers/{sid}").status_code == 404
    assert demo.compute.delete(f"/servers/{sid}").status_code == 404
    assert sid not in {s.id for s in demo.compute.servers()}
    assert demo.compute.get("/servers?all_tenants=1").status_code == 403
    assert demo.compute.get("/os-hypervisors").status_code == 403
    admin.compute.delete_server(sid)


def test_quota_is_atomic_under_concurrent_creates(cloud, admin, image_id):
    project = admin.identity.create_project(name=uniq("quota"), domain_id="default")
    user_pw = uuid.uuid4().hex
    user = admin.identity.create_user(name=uniq("qu"), password=user_pw, domain_id="default")
    admin.identity.assign_project_role_to_user(project, user, admin.identity.find_role("member"))
    admin.compute.put(f"/os-quota-sets/{project.id}",
                      json={"quota_set": {"instances": 5, "cores": 100, "ram": 100000}})
    conn = cloud.sdk(user.name, project=project.name, password=user_pw)
    body = {"server": {"imageRef": image_id, "flavorRef": "1", "networks": "none"}}

    def create(i):
        return post(conn, "/servers", {"server": {**body["server"], "name": f"q-{i}"}}).status_code

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(create, range(20)))
    assert codes.count(202) == 5 and codes.count(403) == 15
    servers = list(conn.compute.servers())
    assert len(servers) == 5
    detail = conn.compute.get(f"/os-quota-sets/{project.id}/detail").json()["quota_set"]
    assert detail["instances"]["in_use"] == 5 and detail["instances"]["limit"] == 5
    for s in servers:
        wait(conn, s.id, {"ACTIVE"})
        conn.compute.delete_server(s.id)
    for s in servers:
        conn.compute.wait_for_delete(s, wait=30)
    detail = conn.compute.get(f"/os-quota-sets/{project.id}/detail").json()["quota_set"]
    assert detail["instances"]["in_use"] == 0 and detail["cores"]["in_use"] == 0
