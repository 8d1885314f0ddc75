"""Shelve on a cloud of its own: [compute] shelved_offload_time -1 (never: SHELVED keeps the
host, unshelve only powers on, shelveOffload by the admin), then N > 0 (the periodic task
offloads), and kill -9 of pocketstack in the middle of shelves, offloads and unshelves:
after the restart every server ends in a stable state (no task left) with the hypervisors'
usage matching the servers that hold a host. openstacksdk's own shelve/unshelve calls."""

from __future__ import annotations

import time

from tests.conftest import LiveCloud
from tests.functional.compute.servers_common import uniq

MV = "2.79"


def settle(conn, sid, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        body = conn.compute.get(f"/servers/{sid}", microversion=MV).json()["server"]
        if body["OS-EXT-STS:task_state"] is None and body["status"] != "BUILD":
            return body
        assert time.monotonic() < deadline, f"{sid} stuck in {body['OS-EXT-STS:task_state']}"
        time.sleep(0.05)


def boot(conn, image_id, name):
    r = conn.compute.post("/servers", json={"server": {
        "name": name, "imageRef": image_id, "flavorRef": "1", "networks": "none"}},
        microversion=MV)
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def usage_matches(conn, ids):
    hosted = [settle(conn, sid) for sid in ids]
    hosted = [b for b in hosted if b["OS-EXT-SRV-ATTR:host"]]
    stats = conn.compute.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]
    assert stats["running_vms"] == len(hosted), (stats, [b["status"] for b in hosted])
    assert stats["vcpus_used"] == len(hosted)  # flavor 1: one vCPU each


def test_offload_time_never_then_periodic_and_kill_9(tmp_path_factory, fresh_database_url):
    data_dir = tmp_path_factory.mktemp("shelve-restart") / "data"
    live = LiveCloud(data_dir, db_url=fresh_database_url,
                     extra_env={"POCKETSTACK_COMPUTE__SHELVED_OFFLOAD_TIME": "-1"}).start()
    try:
        conn = live.sdk()
        image_id = conn.image.create_image(
            name=uniq("srimg"), disk_format="raw", container_format="bare",
            data=b"\0" * 1024).id
        sid = boot(conn, image_id, uniq("never"))
        settle(conn, sid)
        # -1: shelved, not offloaded; the host and its resources stay the server's
        conn.compute.shelve_server(sid)
        body = settle(conn, sid)
        assert body["status"] == "SHELVED" and body["OS-EXT-SRV-ATTR:host"]
        host = body["OS-EXT-SRV-ATTR:host"]
        usage_matches(conn, [sid])
        conn.compute.unshelve_server(sid)
        body = settle(conn, sid)
        assert body["status"] == "ACTIVE" and body["OS-EXT-SRV-ATTR:host"] == host
        acts = conn.compute.get(f"/servers/{sid}/os-instance-actions").json()
        rid = [a["request_id"] for a in acts["instanceActions"] if a["action"] == "unshelve"][0]
        ev = conn.compute.get(f"/servers/{sid}/os-instance-actions/{rid}", microversion="2.51"
                              ).json()["instanceAction"]["events"]
        assert [e["event"] for e in ev] == ["compute_start_instance"]  # only started again
        assert conn.image.find_image(f"{body['name']}-shelved") is None
        # 2.77: a zone only for an offloaded server (409 on a SHELVED one)
        conn.compute.shelve_server(sid)
        settle(conn, sid)
        r = conn.compute.post(f"/servers/{sid}/action",
                              json={"unshelve": {"availability_zone": "nova"}},
                              microversion="2.77")
        assert r.status_code == 409, r.text
        conn.compute.shelve_offload_server(sid)
        body = settle(conn, sid)
        assert body["status"] == "SHELVED_OFFLOADED" and body["OS-EXT-SRV-ATTR:host"] is None
        usage_matches(conn, [sid])

        # kill -9 in the middle of shelves of several servers, then of their unshelves
        ids = [boot(conn, image_id, uniq("k9")) for _ in range(6)]
        for s in ids:
            settle(conn, s)
        for s in ids:
            conn.compute.shelve_server(s)
        live.stop(kill=True)
        live.start()
        conn = live.sdk()
        states = {settle(conn, s)["status"] for s in ids}
        assert states <= {"SHELVED", "ACTIVE"}, states  # done, or rolled back
        usage_matches(conn, ids + [sid])
        for s in ids:
            if settle(conn, s)["status"] == "SHELVED":
                conn.compute.shelve_offload_server(s)
        conn.compute.unshelve_server(sid)
        live.stop(kill=True)
        live.start()
        conn = live.sdk()
        for s in ids + [sid]:
            body = settle(conn, s)
            if body["status"] == "SHELVED":  # its offload request died with the process
                conn.compute.shelve_offload_server(s)
                body = settle(conn, s)
            if body["status"] == "SHELVED_OFFLOADED":
                conn.compute.unshelve_server(s)
        live.stop(kill=True)
        live.start()
        conn = live.sdk()
        for s in ids + [sid]:
            body = settle(conn, s)
            if body["status"] == "SHELVED_OFFLOADED":  # its unshelve never got queued
                conn.compute.unshelve_server(s)
                body = settle(conn, s)
            assert body["status"] == "ACTIVE", body
        usage_matches(conn, ids + [sid])
        leftovers = [i.name for i in conn.image.images() if i.name.endswith("-shelved")]
        assert leftovers == [], leftovers

        # shelved_offload_time 2: the periodic task (every 10 s) offloads it
        live.stop()
        live.extra_env["POCKETSTACK_COMPUTE__SHELVED_OFFLOAD_TIME"] = "2"
        live.start()
        conn = live.sdk()
        conn.compute.shelve_server(sid)
        assert settle(conn, sid)["status"] == "SHELVED"
        deadline = time.monotonic() + 30
        while settle(conn, sid)["status"] != "SHELVED_OFFLOADED":
            assert time.monotonic() < deadline, "not offloaded by the periodic task"
            time.sleep(0.5)
        acts = conn.compute.get(f"/servers/{sid}/os-instance-actions").json()
        assert [a["action"] for a in acts["instanceActions"]][0] == "shelve"
    finally:
        live.stop()
