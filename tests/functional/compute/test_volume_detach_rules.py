"""OSSA-2023-003 (Cinder bug #2004555), as Cinder fixed it and Tempest's
test_server_volume_attachment checks: a volume a server uses can only be detached through
Nova. A user's Cinder detach, force detach, terminate_connection or attachment delete of
it answers 409 and changes nothing; an attachment no server uses (a legacy os-attach to an
instance id that is not a server) still detaches."""

from __future__ import annotations

import time
import uuid

import pytest


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


def _wait(conn, vid, status, timeout=60):
    deadline = time.monotonic() + timeout
    while (v := conn.block_storage.get_volume(vid)).status != status:
        assert time.monotonic() < deadline, v.status
        time.sleep(0.1)
    return v


def test_user_cannot_detach_what_a_server_uses(cloud, admin, own_image, own_net):
    conn = admin
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    srv = conn.compute.create_server(name=f"ps-ossa-{uuid.uuid4().hex[:6]}", image_id=own_image,
                                     flavor_id=flavor.id, networks=[{"uuid": own_net.id}])
    conn.compute.wait_for_server(srv, wait=60, interval=0.2)
    vol = conn.block_storage.create_volume(size=1, name="ps-ossa")
    _wait(conn, vol.id, "available")
    conn.compute.create_volume_attachment(srv, volume_id=vol.id)
    vol = _wait(conn, vol.id, "in-use")
    att_id = vol.attachments[0]["attachment_id"]
    bs = conn.block_storage
    for path, body, mv in ((f"/volumes/{vol.id}/action", {"os-detach": {}}, "3.0"),
                           (f"/volumes/{vol.id}/action", {"os-force_detach": {}}, "3.0"),
                           (f"/volumes/{vol.id}/action",
                            {"os-terminate_connection": {"connector": {}}}, "3.0")):
        r = bs.post(path, json=body, microversion=mv)
        assert r.status_code == 409, (body, r.text)
        assert f"Detach volume from instance {srv.id} using the Compute API" in r.text
    r = bs.delete(f"/attachments/{att_id}", microversion="3.27")
    assert r.status_code == 409, r.text
    # nothing changed: still attached, on both sides
    assert _wait(conn, vol.id, "in-use").attachments[0]["attachment_id"] == att_id
    assert [a.volume_id for a in conn.compute.volume_attachments(srv)] == [vol.id]
    # another volume's attachment id on this volume's detach: 400 (Cinder's InvalidVolume)
    other = conn.block_storage.create_volume(size=1, name="ps-ossa-other")
    _wait(conn, other.id, "available")
    r = bs.post(f"/volumes/{other.id}/action", json={"os-detach": {"attachment_id": att_id}},
                microversion="3.0")
    assert r.status_code == 400, r.text
    conn.block_storage.delete_volume(other.id)
    # through Nova it detaches
    conn.compute.delete_volume_attachment(srv, vol.id)
    _wait(conn, vol.id, "available")
    conn.compute.delete_server(srv)
    conn.compute.wait_for_delete(srv, wait=60)  # its port goes before the module's network
    conn.block_storage.delete_volume(vol.id)


@pytest.mark.parametrize("instance", ["none", "a server"])
def test_an_attachment_made_through_cinder_alone_still_detaches(admin, own_image, own_net,
                                                               instance):
    """Tempest's test_attach_detach_volume_to_instance: os-attach with a server's id, then
    os-detach — Nova never had it, so Cinder lets it go (as upstream after the fix)."""
    bs = admin.block_storage
    if instance == "none":
        iid = str(uuid.uuid4())
    else:
        flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
        srv = admin.compute.create_server(name="ps-ossa-legacy", image_id=own_image,
                                          flavor_id=flavor.id, networks=[{"uuid": own_net.id}])
        iid = admin.compute.wait_for_server(srv, wait=60, interval=0.2).id
    vol = bs.create_volume(size=1, name="ps-ossa-legacy")
    _wait(admin, vol.id, "available")
    r = bs.post(f"/volumes/{vol.id}/action", json={"os-attach": {
        "instance_uuid": iid, "mountpoint": "/dev/vdb", "mode": "rw"}},
        microversion="3.0")
    assert r.status_code == 202, r.text
    _wait(admin, vol.id, "in-use")
    r = bs.post(f"/volumes/{vol.id}/action", json={"os-detach": {}}, microversion="3.0")
    assert r.status_code == 202, r.text
    _wait(admin, vol.id, "available")
    bs.delete_volume(vol.id)
    if instance != "none":
        srv = admin.compute.get_server(iid)
        admin.compute.delete_server(srv)
        admin.compute.wait_for_delete(srv, wait=60)
