"""Nova's admin APIs and admin server actions on the shared session cloud (fake compute
driver), through openstacksdk and the `openstack` CLI: os-migrations (recorded by resize),
server diagnostics, os-instance_usage_audit_log, os-server-external-events, migrate,
injectNetworkInfo, createBackup with rotation, and the 2.75 rebuild view."""

from __future__ import annotations

import time
import uuid

import pytest
from tests.functional.compute.servers_common import uniq, wait

MV = "2.79"


def wait_task(conn, sid, timeout=30):
    deadline = time.monotonic() + timeout
    while conn.compute.get_server(sid).task_state is not None:
        assert time.monotonic() < deadline, f"{sid} stuck in a task"
        time.sleep(0.05)


def boot(conn, image_id, flavor="1"):
    r = conn.compute.post("/servers", json={"server": {
        "name": uniq("adm"), "imageRef": image_id, "flavorRef": flavor, "networks": "none"}},
        microversion=MV)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    wait(conn, sid, {"ACTIVE"})
    return sid


def action(conn, sid, body, mv=MV):
    return conn.compute.post(f"/servers/{sid}/action", json=body, microversion=mv)


def get(conn, path, mv=MV):
    return conn.compute.get(path, microversion=mv)


@pytest.fixture(scope="module")
def server(admin, image_id):
    sid = boot(admin, image_id)
    yield sid
    admin.compute.delete_server(sid)


def test_resize_is_listed_in_os_migrations(cloud, admin, demo, image_id):
    sid = boot(admin, image_id)
    try:
        assert action(admin, sid, {"resize": {"flavorRef": "2"}}).status_code == 202
        wait(admin, sid, {"VERIFY_RESIZE"})
        migs = [m for m in get(admin, "/os-migrations").json()["migrations"]
                if m["instance_uuid"] == sid]
        assert len(migs) == 1
        m = migs[0]
        assert m["migration_type"] == "resize" and m["status"] == "finished"
        assert m["old_instance_type_id"] != m["new_instance_type_id"]
        assert m["source_compute"] == m["dest_compute"] and m["uuid"]
        old = get(admin, "/os-migrations", mv="2.1").json()["migrations"]
        assert not any("uuid" in x or "migration_type" in x for x in old)
        # the CLI reads the same list
        listed = cloud.openstack("server", "migration", "list", "--server", sid)
        assert [row["Status"] for row in listed] == ["finished"]
        assert action(admin, sid, {"confirmResize": None}).status_code == 204
        wait(admin, sid, {"ACTIVE"})
        r = get(admin, f"/os-migrations?instance_uuid={sid}&status=confirmed")
        assert [x["id"] for x in r.json()["migrations"]] == [m["id"]]
        assert get(admin, "/os-migrations?bogus=1").status_code == 400
        assert get(admin, "/os-migrations?limit=x").status_code == 400
        assert get(demo, "/os-migrations").status_code == 403
    finally:
        admin.compute.delete_server(sid)


def test_server_diagnostics(admin, demo, image_id, server):
    r = get(admin, f"/servers/{server}/diagnostics")
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d) == {"state", "driver", "hypervisor", "hypervisor_os", "uptime",
                      "config_drive", "num_cpus", "num_nics", "num_disks", "memory_details",
                      "cpu_details", "nic_details", "disk_details"}
    flavor = admin.compute.get_flavor("1")
    assert d["state"] == "running" and d["num_cpus"] == flavor.vcpus
    assert d["memory_details"]["maximum"] == flavor.ram  # the fake driver measures nothing
    assert d["memory_details"]["used"] is None and d["cpu_details"] == []
    assert get(admin, f"/servers/{uuid.uuid4()}/diagnostics").status_code == 404
    own = boot(demo, image_id)
    try:
        assert get(demo, f"/servers/{own}/diagnostics").status_code == 403
        assert get(demo, f"/servers/{server}/diagnostics").status_code == 404
    finally:
        demo.compute.delete_server(own)


def test_instance_usage_audit_log(admin, demo):
    body = get(admin, "/os-instance_usage_audit_log").json()["instance_usage_audit_logs"]
    assert body["num_hosts"] >= 1 and body["num_hosts_not_run"] == body["num_hosts"]
    assert body["log"] == {} and body["period_ending"].endswith("-01 00:00:00")
    r = get(admin, "/os-instance_usage_audit_log/2026-03-15%2010:00:00")
    log = r.json()["instance_usage_audit_log"]
    assert (log["period_beginning"], log["period_ending"]) == ("2026-02-01 00:00:00",
                                                               "2026-03-01 00:00:00")
    assert get(admin, "/os-instance_usage_audit_log/invalid_time").status_code == 400
    assert get(demo, "/os-instance_usage_audit_log").status_code == 403


def test_server_external_events(admin, demo, server):
    missing = str(uuid.uuid4())
    r = admin.compute.post("/os-server-external-events", json={"events": [
        {"name": "network-changed", "server_uuid": server},
        {"name": "network-changed", "server_uuid": missing}]}, microversion=MV)
    assert r.status_code == 207, r.text
    assert [(e["server_uuid"], e["code"]) for e in r.json()["events"]] == [(server, 200),
                                                                        (missing, 404)]
    r = admin.compute.post("/os-server-external-events", json={"events": [
        {"name": "network-changed", "server_uuid": missing}]}, microversion=MV)
    assert r.status_code == 404
    r = admin.compute.post("/os-server-external-events", json={"events": [
        {"name": "no-such-event", "server_uuid": server}]}, microversion=MV)
    assert r.status_code == 400
    r = demo.compute.post("/os-server-external-events", json={"events": [
        {"name": "network-changed", "server_uuid": server}]}, microversion=MV)
    assert r.status_code == 403


def test_migrate_and_inject_network_info(cloud, admin, demo, server):
    assert action(admin, str(uuid.uuid4()), {"migrate": None}).status_code == 404
    r = action(admin, server, {"migrate": None})
    assert r.status_code == 400 and "No valid host" in r.text
    assert action(admin, server, {"migrate": {"host": "nope"}}).status_code == 400
    assert action(admin, server, {"migrate": {"host": "x"}}, mv="2.55").status_code == 400
    assert action(admin, server, {"injectNetworkInfo": None}).status_code == 202
    assert wait(admin, server, {"ACTIVE"}).status == "ACTIVE"
    acts = [a["action"] for a in get(admin, f"/servers/{server}/os-instance-actions").json()[
        "instanceActions"]]
    assert "injectNetworkInfo" in acts and "migrate" in acts


def test_create_backup_rotates(admin, server):
    ids = []
    for i in range(3):
        r = action(admin, server, {"createBackup": {"name": uniq(f"bk{i}"),
                                                    "backup_type": "daily", "rotation": 2}})
        assert r.status_code == 202, r.text
        ids.append(r.json()["image_id"])
        wait_task(admin, server)
    try:
        left = {im.id for im in admin.image.images(instance_uuid=server, image_type="backup",
                                                   backup_type="daily")}
        assert left == set(ids[1:])
        im = admin.image.get_image(ids[2])
        assert im.status == "active" and im.properties.get("backup_type") == "daily"
        bad = action(admin, server, {"createBackup": {"name": "x", "backup_type": "daily",
                                                      "rotation": -1}})
        assert bad.status_code == 400
        old = action(admin, server, {"createBackup": {"name": uniq("bk"),
                                                      "backup_type": "weekly", "rotation": 0}},
                     mv="2.1")
        assert old.status_code == 202 and "Location" not in old.headers
        wait_task(admin, server)
    finally:
        for iid in ids[1:]:
            admin.image.delete_image(iid, ignore_missing=True)


def test_rebuild_and_update_at_275_carry_the_full_view(admin, image_id, server):
    r = action(admin, server, {"rebuild": {"imageRef": image_id}}, mv="2.75")
    assert r.status_code == 202, r.text
    view = r.json()["server"]
    assert view["trusted_image_certificates"] is None and "user_data" in view
    assert "OS-EXT-SRV-ATTR:user_data" not in view and "OS-EXT-STS:vm_state" in view
    wait(admin, server, {"ACTIVE"})
    r = admin.compute.put(f"/servers/{server}", json={"server": {"name": uniq("ren")}},
                          microversion="2.75")
    assert "trusted_image_certificates" in r.json()["server"]
    r = admin.compute.put(f"/servers/{server}", json={"server": {"name": uniq("ren")}},
                          microversion="2.74")
    assert "trusted_image_certificates" not in r.json()["server"]


def test_bad_input_is_4xx(admin, server):
    for body in ({"createBackup": None}, {"createBackup": {"name": "x"}},
                 {"createBackup": {"name": "x", "backup_type": "d", "rotation": "two"}},
                 {"createBackup": {"name": "x", "backup_type": "d", "rotation": 1, "z": 1}},
                 {"migrate": "elsewhere"}, {"migrate": {"host": 5}}):
        r = action(admin, server, body)
        assert r.status_code == 400, (body, r.text)
    for body in ({}, {"events": "x"}, {"events": []}, {"events": [{"name": "network-changed"}]},
                 {"events": [{"name": "network-changed", "server_uuid": server, "x": 1}]},
                 {"events": [{"name": "network-changed", "server_uuid": server,
                              "status": "done"}]}):
        r = admin.compute.post("/os-server-external-events", json=body, microversion=MV)
        assert r.status_code == 400, (body, r.text)
    for query, mv in (("changes-since=yesterday", MV), ("changes-before=2020-01-01", "2.59"),
                      ("marker=nope", MV)):
        assert get(admin, f"/os-migrations?{query}", mv=mv).status_code == 400, query
    assert get(admin, "/os-migrations?changes-since=2020-01-01T00:00:00Z").status_code == 200
    assert get(admin, f"/servers/{'x' * 300}/diagnostics").status_code == 404
