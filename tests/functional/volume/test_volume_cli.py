"""Cinder through the real clients: seed 003's volume commands, snapshots, types, quotas,
pools, bad input and isolation. Resource names are unique: the cloud is shared."""

from __future__ import annotations

import json
import time
import uuid

import pytest


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def wait_status(cloud, kind: str, name: str, want: str, user: str = "admin",
                timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = cloud.openstack(*kind.split(), "show", name, user=user)
        if shown["status"] == want:
            return shown
        assert not shown["status"].startswith("error"), shown
        assert time.monotonic() < deadline, f"{name} stuck in {shown['status']}"
        time.sleep(0.2)


def wait_gone(cloud, kind: str, name: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while cloud.openstack(*kind.split(), "show", name, check=False).returncode == 0:
        assert time.monotonic() < deadline, f"{name} not deleted"
        time.sleep(0.2)


def test_seed003_volume_create_list_delete(cloud):
    name = uniq("vol")
    created = cloud.openstack("volume", "create", "--size", "1", name)
    assert created["size"] == 1 and created["name"] == name
    wait_status(cloud, "volume", name, "available")
    listed = cloud.openstack("volume", "list")
    assert any(v["Name"] == name and v["Status"] == "available" for v in listed)
    cloud.openstack("volume", "delete", name)
    wait_gone(cloud, "volume", name)
    assert not any(v["Name"] == name for v in cloud.openstack("volume", "list"))


def test_snapshot_to_new_volume_extend_and_properties(cloud):
    vol, snap, clone = uniq("vol"), uniq("snap"), uniq("vol")
    cloud.openstack("volume", "create", "--size", "1", vol)
    wait_status(cloud, "volume", vol, "available")
    cloud.openstack("volume", "snapshot", "create", "--volume", vol, snap)
    wait_status(cloud, "volume snapshot", snap, "available")
    cloud.openstack("volume", "create", "--snapshot", snap, "--size", "2", clone)
    shown = wait_status(cloud, "volume", clone, "available")
    assert shown["size"] == 2
    cloud.openstack("volume", "set", "--size", "3", "--bootable", "--read-only",
                    "--property", "tier=gold", clone, parse=False)
    shown = wait_status(cloud, "volume", clone, "available")
    assert shown["size"] == 3 and shown["bootable"] in (True, "true")
    assert shown["properties"]["tier"] == "gold" and shown["properties"]["readonly"] == "True"
    # a volume with snapshots cannot be deleted without cascade
    res = cloud.openstack("volume", "delete", vol, check=False)
    assert res.returncode != 0 and "snapshot" in res.stderr.lower()
    cloud.openstack("volume", "delete", clone)
    cloud.openstack("volume", "snapshot", "delete", snap)
    wait_gone(cloud, "volume snapshot", snap)
    cloud.openstack("volume", "delete", vol)
    wait_gone(cloud, "volume", vol)


def test_quota_set_gigabytes_and_over_quota_for_a_member(cloud):
    cloud.openstack("quota", "set", "--gigabytes", "4096", "--volumes", "30", "demo", parse=False)
    quota = cloud.openstack("quota", "show", "--volume", "demo")
    rows = {r["Resource"]: r["Limit"] for r in quota} if isinstance(quota, list) else quota
    assert rows["gigabytes"] == 4096 and rows["volumes"] == 30
    res = cloud.openstack("volume", "create", "--size", "5000", uniq("huge"), user="demo",
                          check=False)
    assert res.returncode != 0 and "quota" in res.stderr.lower()
    assert "413" in res.stderr or "exceeds" in res.stderr.lower()


def test_members_see_only_their_project(cloud):
    name = uniq("private")
    cloud.openstack("volume", "create", "--size", "1", name)
    vid = wait_status(cloud, "volume", name, "available")["id"]
    res = cloud.openstack("volume", "show", vid, user="demo", check=False)
    assert res.returncode != 0
    assert not any(v["ID"] == vid for v in cloud.openstack("volume", "list", user="demo"))
    res = cloud.openstack("volume", "delete", vid, user="demo", check=False)
    assert res.returncode != 0
    assert wait_status(cloud, "volume", vid, "available")
    cloud.openstack("volume", "delete", vid)


def test_private_type_with_extra_specs_and_access(cloud):
    tname = uniq("type")
    created = cloud.openstack("volume", "type", "create", "--private", "--property",
                              "volume_backend_name=file", tname)
    assert created["is_public"] is False
    demo_project = cloud.openstack("project", "show", "demo")["id"]
    cloud.openstack("volume", "type", "set", "--project", demo_project, tname, parse=False)
    shown = cloud.openstack("volume", "type", "show", tname)
    assert demo_project in str(shown.get("access_project_ids"))
    assert shown["properties"]["volume_backend_name"] == "file"
    vol = uniq("typed")
    cloud.openstack("volume", "create", "--size", "1", "--type", tname, vol, user="demo")
    assert wait_status(cloud, "volume", vol, "available", user="demo")["type"] == tname
    res = cloud.openstack("volume", "type", "delete", tname, check=False)
    assert res.returncode != 0  # still in use
    cloud.openstack("volume", "delete", vol, user="demo")
    wait_gone(cloud, "volume", vol)
    cloud.openstack("volume", "type", "delete", tname)


def test_pools_services_and_zones(cloud):
    pools = json.loads(cloud.openstack("volume", "backend", "pool", "list", "--long", "-f",
                                       "json"))
    assert pools and "@" in pools[0]["Name"] and "#" in pools[0]["Name"]
    caps = str(pools[0]["Capabilities"])
    assert "total_capacity_gb" in caps and "free_capacity_gb" in caps
    services = cloud.openstack("volume", "service", "list")
    assert {s["Binary"] for s in services} >= {"cinder-scheduler", "cinder-volume"}
    zones = cloud.openstack("availability", "zone", "list", "--volume")
    assert any(z["Zone Name"] == "nova" for z in zones)


@pytest.mark.parametrize("size", ["0", "-1"])
def test_bad_size_is_rejected(cloud, size):
    res = cloud.openstack("volume", "create", "--size", size, uniq("bad"), check=False)
    assert res.returncode != 0


def test_sdk_attach_then_delete_is_400_then_detach(cloud):
    conn = cloud.sdk()
    vol = conn.block_storage.create_volume(size=1, name=uniq("att"))
    conn.block_storage.wait_for_status(vol, "available", wait=60)
    server_id = str(uuid.uuid4())
    conn.block_storage.attach_volume(vol, mountpoint="/dev/vdb", instance=server_id)
    vol = conn.block_storage.get_volume(vol.id)
    assert vol.status == "in-use" and vol.attachments[0]["server_id"] == server_id
    from openstack import exceptions

    with pytest.raises(exceptions.BadRequestException):
        conn.block_storage.delete_volume(vol)
    conn.block_storage.detach_volume(vol, attachment=vol.attachments[0]["attachment_id"])
    conn.block_storage.wait_for_status(vol, "available", wait=60)
    conn.block_storage.delete_volume(vol)
    conn.block_storage.wait_for_delete(vol, wait=60)


def test_server_add_remove_volume_and_boot_from_volume(cloud):
    image = cloud.openstack("image", "show", "busybox")["id"]
    srv = cloud.openstack("server", "create", "--flavor", "m1.tiny", "--image", image,
                          "--nic", "none", "--wait", uniq("srv"))["id"]
    vol = uniq("att")
    cloud.openstack("volume", "create", "--size", "1", vol)
    wait_status(cloud, "volume", vol, "available")
    cloud.openstack("server", "add", "volume", srv, vol, parse=False)
    shown = wait_status(cloud, "volume", vol, "in-use")
    assert shown["attachments"][0]["server_id"] == srv
    listed = cloud.openstack("server", "volume", "list", srv)
    assert listed[0]["Device"] == "/dev/vdb"
    res = cloud.openstack("volume", "delete", vol, check=False)
    assert res.returncode != 0  # attached: 400
    cloud.openstack("server", "remove", "volume", srv, vol, parse=False)
    wait_status(cloud, "volume", vol, "available")
    # boot from a new volume made from the image, deleted with the server
    bfv = cloud.openstack("server", "create", "--flavor", "m1.tiny", "--nic", "none", "--wait",
                          "--block-device", f"source_type=image,uuid={image},"
                          "destination_type=volume,volume_size=1,delete_on_termination=true,"
                          "boot_index=0", uniq("bfv"))["id"]
    root = cloud.openstack("server", "volume", "list", bfv)
    assert root[0]["Device"] == "/dev/vda"
    root_id = root[0]["Volume ID"]
    shown = cloud.openstack("volume", "show", root_id)
    assert shown["status"] == "in-use" and shown["bootable"] in (True, "true")
    cloud.openstack("server", "delete", "--wait", bfv, srv, parse=False)
    wait_gone(cloud, "volume", root_id)
    cloud.openstack("volume", "delete", vol)


def test_seed003_cinder_get_pools_detail_shows_real_capacity(cloud):
    import subprocess

    res = subprocess.run(["cinder", "get-pools", "--detail"], env=cloud.env("admin"),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = {}
    for line in res.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert "@" in rows["name"] and "#" in rows["name"]
    assert float(rows["total_capacity_gb"]) > 0
    assert 0 <= float(rows["free_capacity_gb"]) <= float(rows["total_capacity_gb"])


def test_quota_holds_under_20_concurrent_creates(cloud):
    import threading

    project = uniq("quota")
    pid = cloud.openstack("project", "create", "--domain", "default", project)["id"]
    cloud.openstack("role", "add", "--project", project, "--user", "admin", "member",
                    parse=False)
    cloud.openstack("quota", "set", "--gigabytes", "5", "--volumes", "100", pid, parse=False)
    conn = cloud.sdk(project=project)
    codes: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        resp = conn.block_storage.post("/volumes", json={"volume": {"size": 1}},
                                       raise_exc=False)
        with lock:
            codes.append(resp.status_code)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [202] * 5 + [413] * 15, codes
    vols = list(conn.block_storage.volumes())
    assert len(vols) == 5
    for v in vols:
        conn.block_storage.wait_for_status(v, "available", wait=60)
        conn.block_storage.delete_volume(v)
    for v in vols:
        conn.block_storage.wait_for_delete(v, wait=60)
