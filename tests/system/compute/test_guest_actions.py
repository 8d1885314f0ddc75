"""Config drive, shelve/unshelve and rescue with the real container driver (root): what the
guest sees, and what is left on the host. One cloud for the module (fake network driver:
the ports' records are what shelve must keep; tests/system/network covers the data plane)."""

from __future__ import annotations

import base64
import json
import os
import time

import pytest

from tests.conftest import LiveCloud

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="container servers need root")]


@pytest.fixture(scope="module")
def real_cloud(tmp_path_factory):
    live = LiveCloud(tmp_path_factory.mktemp("ga") / "data",
                     extra_env={"POCKETSTACK_COMPUTE__DRIVER": "container"}).start()
    yield live
    live.destroy()


def settle(conn, sid, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        body = conn.compute.get(f"/servers/{sid}", microversion="2.79").json()["server"]
        if body["OS-EXT-STS:task_state"] is None and body["status"] != "BUILD":
            return body
        assert time.monotonic() < deadline, f"{sid} stuck in {body['status']}"
        time.sleep(0.1)


def console_until(conn, sid, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in (out := conn.compute.get_server_console_output(sid)["output"]):
        assert time.monotonic() < deadline, out[-2000:]
        time.sleep(0.1)
    return out


def boot(conn, name, user_data, net_id=None, **extra):
    image = conn.image.find_image("busybox", ignore_missing=False)
    body = {"name": name, "imageRef": image.id, "flavorRef": "1",
            "networks": [{"uuid": net_id}] if net_id else "none",
            "user_data": base64.b64encode(user_data.encode()).decode(), **extra}
    r = conn.compute.post("/servers", json={"server": body}, microversion="2.79")
    assert r.status_code == 202, r.text
    return r.json()["server"]["id"]


def test_config_drive_is_read_only_at_config_drive(real_cloud):
    conn = real_cloud.sdk()
    script = ("#!/bin/sh\necho CD-BEGIN; cat /config-drive/openstack/latest/meta_data.json;"
              " echo; echo CD-END\n"
              "if touch /config-drive/x 2>/dev/null; then echo CD-WRITABLE; "
              "else echo CD-READONLY; fi\n")
    sid = boot(conn, "ps-ga-cd", script, config_drive=True)
    body = settle(conn, sid)
    assert body["status"] == "ACTIVE", body.get("fault")
    assert body["config_drive"] == "True"
    out = console_until(conn, sid, "CD-END")
    doc = out.split("CD-BEGIN", 1)[1].split("CD-END", 1)[0].strip()
    meta = json.loads(doc)
    assert meta["uuid"] == sid and meta["name"] == "ps-ga-cd"
    out = console_until(conn, sid, "CD-READ")
    assert "CD-READONLY" in out and "CD-WRITABLE" not in out
    # host side: root's read-only tree; the ISO itself is root's 0600
    tree = real_cloud.data_dir / "compute/instances" / sid / "config-drive"
    st = os.stat(tree)
    assert st.st_uid == 0 and st.st_mode & 0o777 == 0o555
    iso = real_cloud.data_dir / "compute/config-drives" / f"{sid}.iso"
    assert os.stat(iso).st_mode & 0o777 == 0o600
    conn.compute.delete_server(sid)
    conn.compute.wait_for_delete(conn.compute.get_server(sid), wait=60)
    assert not iso.exists()


def test_shelve_unshelve_keeps_the_guests_files_and_ports(real_cloud):
    conn = real_cloud.sdk()
    net = conn.network.create_network(name="ps-ga-net")
    conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.74.0.0/24")
    script = ("#!/bin/sh\nif [ -f /root/marker ]; then echo MARKER-FOUND $(cat /root/marker);"
              " else echo kept-by-shelve > /root/marker; sync; echo MARKER-WRITTEN; fi\n")
    sid = boot(conn, "ps-ga-shelve", script, net_id=net.id)
    assert settle(conn, sid)["status"] == "ACTIVE"
    console_until(conn, sid, "MARKER-WRITTEN")
    ports = sorted((p.id, p.mac_address, p.fixed_ips[0]["ip_address"])
                   for p in conn.network.ports(device_id=sid))
    r = conn.compute.post(f"/servers/{sid}/action", json={"shelve": None})
    assert r.status_code == 202, r.text
    body = settle(conn, sid)
    assert body["status"] == "SHELVED_OFFLOADED", body
    inst = real_cloud.data_dir / "compute/instances" / sid
    assert not inst.exists()  # offloaded: nothing of it left on the host
    snap = conn.image.find_image("ps-ga-shelve-shelved", ignore_missing=False)
    r = conn.compute.post(f"/servers/{sid}/action", json={"unshelve": None})
    assert r.status_code == 202, r.text
    body = settle(conn, sid)
    assert body["status"] == "ACTIVE", body
    assert (inst / "rootfs/root/marker").read_text() == "kept-by-shelve\n"
    st = json.loads((inst / "state.json").read_text())
    os.kill(st["init_pid"], 0)  # a real process again
    assert sorted((p.id, p.mac_address, p.fixed_ips[0]["ip_address"])
                  for p in conn.network.ports(device_id=sid)) == ports
    assert conn.image.find_image(snap.id) is None
    conn.compute.delete_server(sid)
    conn.compute.wait_for_delete(conn.compute.get_server(sid), wait=60)
    for p in conn.network.ports(network_id=net.id):
        conn.network.delete_port(p.id)
    conn.network.delete_network(net.id)


def test_rescue_boots_the_rescue_image_with_the_own_disk_at_mnt_rescue_disk(real_cloud):
    conn = real_cloud.sdk()
    script = ("#!/bin/sh\n"
              "if [ -d /mnt/rescue-disk/root ]; then\n"
              "  echo RESCUE-SEES $(cat /mnt/rescue-disk/root/own-marker)\n"
              "  echo fixed-in-rescue > /mnt/rescue-disk/root/repair; sync\n"
              "elif [ ! -f /root/own-marker ]; then\n"
              "  echo own-disk > /root/own-marker; sync; echo OWN-WRITTEN\n"
              "fi\n")
    sid = boot(conn, "ps-ga-rescue", script)
    assert settle(conn, sid)["status"] == "ACTIVE"
    console_until(conn, sid, "OWN-WRITTEN")
    inst = real_cloud.data_dir / "compute/instances" / sid
    init_before = json.loads((inst / "state.json").read_text())["init_pid"]
    r = conn.compute.post(f"/servers/{sid}/action", json={"rescue": None})
    assert r.status_code == 200 and r.json()["adminPass"], r.text
    body = settle(conn, sid)
    assert body["status"] == "RESCUE", body
    console_until(conn, sid, "RESCUE-SEES own-disk")
    assert (inst / "rescue-disk/root/own-marker").exists()
    init_rescue = json.loads((inst / "state.json").read_text())["init_pid"]
    assert init_rescue != init_before
    # a rescued server refuses another rescue, shelve, snapshot
    assert conn.compute.post(f"/servers/{sid}/action", json={"rescue": None}).status_code == 409
    r = conn.compute.post(f"/servers/{sid}/action", json={"unrescue": None})
    assert r.status_code == 202, r.text
    body = settle(conn, sid)
    assert body["status"] == "ACTIVE", body
    assert not (inst / "rescue-disk").exists()
    assert (inst / "rootfs/root/repair").read_text() == "fixed-in-rescue\n"
    assert (inst / "rootfs/root/own-marker").read_text() == "own-disk\n"
    # a rescue image that cannot boot: the server stays ACTIVE on its own disk
    kernel = conn.image.create_image(name="ps-ga-aki", disk_format="aki",
                                     container_format="aki", data=b"\0" * 512)
    try:
        r = conn.compute.post(f"/servers/{sid}/action",
                              json={"rescue": {"rescue_image_ref": kernel.id}})
        assert r.status_code == 200, r.text
        body = settle(conn, sid)
        assert body["status"] == "ACTIVE" and not (inst / "rescue-disk").exists()
        os.kill(json.loads((inst / "state.json").read_text())["init_pid"], 0)
    finally:
        conn.image.delete_image(kernel.id)
    conn.compute.delete_server(sid)
    conn.compute.wait_for_delete(conn.compute.get_server(sid), wait=60)
