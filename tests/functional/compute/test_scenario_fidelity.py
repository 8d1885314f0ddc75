"""What Tempest's scenarios found at the API (fake drivers, one cloud): booting from a
volume snapshot without an imageRef (the image is the snapshot's volume's), and the create
response echoing the request's security groups (an explicit empty list answers empty)."""

from __future__ import annotations

import time

import pytest


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


def _wait_volume(conn, vid, status="available", timeout=60):
    deadline = time.monotonic() + timeout
    while (v := conn.block_storage.get_volume(vid)).status != status:
        assert v.status != "error" and time.monotonic() < deadline, v.status
        time.sleep(0.1)
    return v


def _snapshot(conn, volume_id, name, timeout=60):
    snap = conn.block_storage.create_snapshot(volume_id=volume_id, name=name)
    deadline = time.monotonic() + timeout
    while conn.block_storage.get_snapshot(snap.id).status != "available":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return snap


def test_boot_from_a_volume_snapshot_without_image_ref(admin, own_image, own_net):
    src = admin.block_storage.create_volume(size=1, image_id=own_image, name="ps-bfs-src")
    _wait_volume(admin, src.id)
    snap = _snapshot(admin, src.id, "ps-bfs-snap")
    flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
    r = admin.compute.post("/servers", json={"server": {
        "name": "ps-bfs", "flavorRef": flavor.id, "networks": [{"uuid": own_net.id}],
        "block_device_mapping_v2": [{"source_type": "snapshot", "uuid": snap.id,
                                     "destination_type": "volume", "boot_index": 0,
                                     "volume_size": 1, "delete_on_termination": True}]}},
        microversion="2.79")
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    srv = admin.compute.wait_for_server(admin.compute.get_server(sid), wait=60, interval=0.2)
    assert srv.status == "ACTIVE", srv.fault
    atts = list(admin.compute.volume_attachments(sid))
    assert len(atts) == 1
    made = admin.block_storage.get_volume(atts[0].volume_id)
    assert made.snapshot_id == snap.id
    admin.compute.delete_server(sid)
    admin.compute.wait_for_delete(srv, wait=60)
    admin.block_storage.delete_snapshot(snap.id)
    deadline = time.monotonic() + 60
    while list(admin.block_storage.snapshots(name="ps-bfs-snap")):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    admin.block_storage.delete_volume(src.id)


def test_a_snapshot_with_nothing_bootable_is_a_clear_400(admin, own_net):
    blank = admin.block_storage.create_volume(size=1, name="ps-bfs-blank")
    _wait_volume(admin, blank.id)
    snap = _snapshot(admin, blank.id, "ps-bfs-blank")
    flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
    r = admin.compute.post("/servers", json={"server": {
        "name": "ps-bfs-bad", "flavorRef": flavor.id, "networks": "none",
        "block_device_mapping_v2": [{"source_type": "snapshot", "uuid": snap.id,
                                     "destination_type": "volume", "boot_index": 0}]}},
        microversion="2.79")
    assert r.status_code == 400 and "holds no image" in r.text, r.text
    admin.block_storage.delete_snapshot(snap.id)
    deadline = time.monotonic() + 60
    while admin.block_storage.find_snapshot(snap.id):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    admin.block_storage.delete_volume(blank.id)


@pytest.mark.parametrize("asked, shown", [(None, ["default"]), ([], [])])
def test_create_response_echoes_the_requested_security_groups(admin, own_image, own_net,
                                                               asked, shown):
    flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
    body = {"name": "ps-sg-echo", "imageRef": own_image, "flavorRef": flavor.id,
            "networks": [{"uuid": own_net.id}]}
    if asked is not None:
        body["security_groups"] = asked
    r = admin.compute.post("/servers", json={"server": body}, microversion="2.79")
    assert r.status_code == 202, r.text
    assert [g["name"] for g in r.json()["server"]["security_groups"]] == shown
    # gone before the module's network is torn down (its port goes with the server)
    srv = admin.compute.get_server(r.json()["server"]["id"])
    admin.compute.delete_server(srv)
    admin.compute.wait_for_delete(srv, wait=60)
