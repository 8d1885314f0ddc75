"""Config drive, shelve/unshelve and rescue with real QEMU VMs (root; TCG here): the
seeded busybox ami, its console lines, and the disk seen from the host. The cloud (linux
network driver, own data dir and port) comes from test_qemu_servers.py's fixture."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

from tests.system.compute import test_qemu_servers as qemu_servers
from tests.system.compute.test_qemu_servers import BOOTED, FLAVOR, alive

vm = qemu_servers.vm  # that module's cloud fixture (own data dir, port, linux network)

MARKER = b"PS-SHELVE-MARKER-7f3a"
SCRIPT = f"""#!/bin/sh
if [ -b /dev/vdb ]; then
  echo RESCUE-OWN-DISK $(dd if=/dev/vdb bs=1 skip=8192 count={len(MARKER)} 2>/dev/null)
fi
for dev in /dev/sr0 /dev/sr1; do
  [ -b $dev ] || continue
  echo CD-LABEL $(blkid -o value -s LABEL $dev)
  mkdir -p /mnt/cd && mount -o ro -t iso9660 $dev /mnt/cd &&
    echo CD-UUID $(jq -r .uuid /mnt/cd/openstack/latest/meta_data.json) && umount /mnt/cd
done
printf '{MARKER.decode()}' | dd of=/dev/vda bs=1 seek=8192 conv=notrunc,fsync 2>&1
sync
echo MARKER-WRITTEN $(dd if=/dev/vda bs=1 skip=8192 count={len(MARKER)} 2>/dev/null)
"""


def settle(conn, sid, timeout=240):
    deadline = time.monotonic() + timeout
    while True:
        body = conn.compute.get(f"/servers/{sid}", microversion="2.79").json()["server"]
        if body["OS-EXT-STS:task_state"] is None and body["status"] != "BUILD":
            return body
        assert time.monotonic() < deadline, f"{sid} stuck in {body['status']}"
        time.sleep(0.3)


def disk_bytes(vm, offset: int, size: int) -> bytes:
    raw = vm.dir / "check.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-O", "raw", str(vm.dir / "disk.qcow2"),
                    str(raw)], check=True, capture_output=True)
    try:
        with open(raw, "rb") as fh:
            fh.seek(offset)
            return fh.read(size)
    finally:
        raw.unlink()


def test_config_drive_shelve_unshelve_rescue(vm):
    c = vm.live
    conn = c.sdk()
    image = conn.image.find_image("busybox-vm", ignore_missing=False)
    flavor = conn.compute.find_flavor(FLAVOR, ignore_missing=False)
    net = conn.network.find_network("ps-qemu-net", ignore_missing=False)
    r = conn.compute.post("/servers", json={"server": {
        "name": "ps-qemu-ga", "imageRef": image.id, "flavorRef": flavor.id,
        "networks": [{"uuid": net.id}], "config_drive": True,
        "user_data": base64.b64encode(SCRIPT.encode()).decode()}}, microversion="2.79")
    assert r.status_code == 202, r.text
    vm.id = sid = r.json()["server"]["id"]
    assert settle(conn, sid)["status"] == "ACTIVE"
    # config drive: a CD-ROM labelled config-2 with this server's meta_data.json
    out = vm.wait_console("MARKER-WRITTEN", timeout=120)
    assert "CD-LABEL config-2" in out and f"CD-UUID {sid}" in out, out[-3000:]
    cmd = Path(f"/proc/{vm.state()['qemu_pid']}/cmdline").read_bytes().split(b"\0")
    assert b"ide-cd,drive=config-drive,id=config-drive" in cmd
    assert not any(b"config-drives" in a for a in cmd)  # by fd, not by path
    assert f"MARKER-WRITTEN {MARKER.decode()}" in out, out[-3000:]
    time.sleep(1)
    assert disk_bytes(vm, 8192, len(MARKER)) == MARKER
    ports = sorted((p.id, p.mac_address, p.fixed_ips[0]["ip_address"])
                   for p in conn.network.ports(device_id=sid))
    # shelve: snapshot, offload (no QEMU, no directory left), unshelve from the snapshot
    qemu_pid = vm.state()["qemu_pid"]
    assert conn.compute.post(f"/servers/{sid}/action", json={"shelve": None}).status_code == 202
    body = settle(conn, sid)
    assert body["status"] == "SHELVED_OFFLOADED", body
    assert not alive(qemu_pid) and not vm.dir.exists()
    assert conn.compute.post(f"/servers/{sid}/action",
                             json={"unshelve": None}).status_code == 202
    body = settle(conn, sid)
    assert body["status"] == "ACTIVE", body
    assert disk_bytes(vm, 8192, len(MARKER)) == MARKER  # the guest's bytes came back
    assert sorted((p.id, p.mac_address, p.fixed_ips[0]["ip_address"])
                  for p in conn.network.ports(device_id=sid)) == ports
    assert conn.image.find_image("ps-qemu-ga-shelved") is None
    vm.wait_console(BOOTED, timeout=120)  # a new directory, a new console log
    # rescue: the image boots again with the own disk as the second virtio disk
    r = conn.compute.post(f"/servers/{sid}/action", json={"rescue": None})
    assert r.status_code == 200, r.text
    body = settle(conn, sid)
    assert body["status"] == "RESCUE", body
    out = vm.wait_console("RESCUE-OWN-DISK " + MARKER.decode(), timeout=120)
    assert "pocketstack-busybox: disks vda vdb" in out
    cmd = Path(f"/proc/{vm.state()['qemu_pid']}/cmdline").read_bytes().split(b"\0")
    assert b"virtio-blk-pci,drive=rescue-disk,id=rescue-disk" in cmd
    assert conn.compute.post(f"/servers/{sid}/action",
                             json={"unrescue": None}).status_code == 202
    body = settle(conn, sid)
    assert body["status"] == "ACTIVE", body
    cmd = Path(f"/proc/{vm.state()['qemu_pid']}/cmdline").read_bytes().split(b"\0")
    assert not any(b"rescue-disk" in a for a in cmd)
    assert not (vm.dir / "rescue-disk.qcow2").exists()
    assert json.loads((vm.dir / "config.json").read_text()).get("rescue_disk") is None
