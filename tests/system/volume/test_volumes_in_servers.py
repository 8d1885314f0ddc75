"""Volumes inside real container servers, through the real CLI: data written in one server
through an attached volume is read back in a second server after detach/re-attach; a
volume made from a snapshot holds the snapshot's bytes; a volume made from an image holds
the image's bytes. File volume driver + container compute driver (root)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pocketstack.drivers.volume import _host
from tests.conftest import LiveCloud

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("losetup", "qemu-img", "nsenter",
                                                          "unshare", "busybox")),
    reason="needs root, losetup, qemu-img, nsenter, unshare and busybox")


@pytest.fixture(scope="module")
def live():
    root = Path(f"/tmp/ps-volume-servers-{uuid.uuid4().hex[:8]}")
    cloud = LiveCloud(root / "data", extra_env={"POCKETSTACK_VOLUME__DRIVER": "file",
                                                "POCKETSTACK_COMPUTE__DRIVER": "container"})
    try:
        cloud.start()
        if "container driver unavailable" in cloud.log() or "compute: fake" in cloud.log():
            pytest.skip("the container compute driver cannot run here: " + cloud.log()[-300:])
        yield cloud
    finally:
        # what the cloud made on the host (cgroups, namespaces, bridges), by its names
        cloud.destroy()
        voldir = root / "data" / "volumes"
        if voldir.exists():
            for f in voldir.glob("volume-*.raw"):
                _host.loop_detach(f)
        shutil.rmtree(root, ignore_errors=True)


def sh_in(cloud: LiveCloud, server_id: str, script: str) -> str:
    """Run a shell script inside the server (its namespaces and root)."""
    state = cloud.data_dir / "compute" / "instances" / server_id / "state.json"
    pid = json.loads(state.read_text())["init_pid"]
    res = subprocess.run(["nsenter", "-t", str(pid), "-m", "-p", "-r", "-w", "/bin/sh", "-c",
                          "PATH=/bin:/sbin:/usr/bin:/usr/sbin; " + script],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
    return res.stdout


def wait_volume(cloud: LiveCloud, vid: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        vol = cloud.openstack("volume", "show", vid)
        if vol["status"] == status:
            return vol
        assert not vol["status"].startswith("error") and time.monotonic() < deadline, vol
        time.sleep(0.2)


def server(cloud: LiveCloud, name: str) -> str:
    return cloud.openstack("server", "create", "--flavor", "m1.tiny", "--image", "busybox",
                           "--nic", "none", "--wait", name)["id"]


def test_data_survives_detach_and_attach_to_another_server(live):
    a = server(live, "ps-vol-a")
    b = server(live, "ps-vol-b")
    vid = live.openstack("volume", "create", "--size", "1", "ps-vol-data")["id"]
    wait_volume(live, vid, "available")
    live.openstack("server", "add", "volume", a, vid, "--device", "/dev/vdb")
    wait_volume(live, vid, "in-use")
    token = secrets.token_hex(16)
    sh_in(live, a, f"mke2fs -q /dev/vdb && mkdir -p /mnt && mount -t ext2 /dev/vdb /mnt && "
                   f"echo {token} > /mnt/token && umount /mnt")
    live.openstack("server", "remove", "volume", a, vid)
    wait_volume(live, vid, "available")
    assert "vdb" not in sh_in(live, a, "ls /dev")
    live.openstack("server", "add", "volume", b, vid, "--device", "/dev/vdc")
    wait_volume(live, vid, "in-use")
    got = sh_in(live, b, "mkdir -p /mnt && mount -t ext2 /dev/vdc /mnt && cat /mnt/token && "
                         "umount /mnt")
    assert got.strip() == token
    live.openstack("server", "remove", "volume", b, vid)
    wait_volume(live, vid, "available")

    # snapshot -> new volume holds the snapshot's bytes
    snap = live.openstack("volume", "snapshot", "create", "--volume", vid, "ps-vol-snap")["id"]
    deadline = time.monotonic() + 60
    while live.openstack("volume", "snapshot", "show", snap)["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    clone = live.openstack("volume", "create", "--snapshot", snap, "ps-vol-clone")["id"]
    wait_volume(live, clone, "available")
    live.openstack("server", "add", "volume", b, clone)
    wait_volume(live, clone, "in-use")
    dev = live.openstack("server", "volume", "list", b)[0]["Device"]
    got = sh_in(live, b, f"mount -t ext2 {dev} /mnt && cat /mnt/token && umount /mnt")
    assert got.strip() == token
    live.openstack("server", "remove", "volume", b, clone)
    wait_volume(live, clone, "available")

    for sid in (a, b):
        live.openstack("server", "delete", "--wait", sid)
    live.openstack("volume", "delete", clone)
    live.openstack("volume", "snapshot", "delete", snap)
    deadline = time.monotonic() + 60
    while live.openstack("volume", "snapshot", "show", snap, check=False).returncode == 0:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    live.openstack("volume", "delete", vid)


def test_volume_from_image_holds_the_images_bytes(live, tmp_path):
    image_file = tmp_path / "busybox.img"
    live.openstack("image", "save", "--file", str(image_file), "busybox", parse=False)
    data = image_file.read_bytes()
    vid = live.openstack("volume", "create", "--image", "busybox", "--size", "1",
                         "ps-vol-img")["id"]
    vol = wait_volume(live, vid, "available")
    assert vol["bootable"] in (True, "true")
    s = server(live, "ps-vol-imgsrv")
    live.openstack("server", "add", "volume", s, vid, "--device", "/dev/vdb")
    wait_volume(live, vid, "in-use")
    out = sh_in(live, s, f"dd if=/dev/vdb bs=4096 count={-(-len(data) // 4096)} 2>/dev/null "
                         f"| head -c {len(data)} | sha256sum")
    assert out.split()[0] == hashlib.sha256(data).hexdigest()
    live.openstack("server", "delete", "--wait", s)
    wait_volume(live, vid, "available")  # deleting the server detached it
    live.openstack("volume", "delete", vid)


def _console_until(live: LiveCloud, sid: str, text: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = live.openstack("console", "log", "show", sid, parse=False)
        if text in out:
            return out
        assert time.monotonic() < deadline, out[-2000:]
        time.sleep(0.5)


def test_guest_root_uses_its_volume_raw_and_cannot_mount_it(live, tmp_path):
    """The guest's own (unprivileged) root, not a host helper: a hot-attached volume is a
    block device it may read and write (the devices cgroup allows that one device), but
    mounting a file system needs CAP_SYS_ADMIN on the host and is refused. After a hard
    reboot the node and the cgroup rule come back."""
    token = secrets.token_hex(16)
    script = tmp_path / "ud.sh"
    # user data runs once per instance: it installs a per-boot script (cloud-init's
    # scripts/per-boot, run at every boot) and runs it, so a reboot checks the volume again
    script.write_text(f"""#!/bin/sh
mkdir -p /var/lib/cloud/scripts/per-boot
cat > /var/lib/cloud/scripts/per-boot/ps-vol.sh <<'EOS'
#!/bin/sh
i=0; while [ ! -b /dev/vdb ] && [ $i -lt 600 ]; do i=$((i+1)); usleep 100000; done
have=$(dd if=/dev/vdb bs=32 count=1 2>/dev/null)
if [ "$have" = "{token}" ]; then echo "ps-vol-persisted"; else
  printf '%s' "{token}" | dd of=/dev/vdb bs=512 count=1 conv=sync 2>/dev/null; sync
  echo "ps-vol-write-rc=$?"
fi
mkdir -p /mnt; mount -t ext2 /dev/vdb /mnt 2>/dev/null; echo "ps-vol-mount-rc=$?"
echo ps-vol-done
EOS
chmod 0755 /var/lib/cloud/scripts/per-boot/ps-vol.sh
exec /var/lib/cloud/scripts/per-boot/ps-vol.sh
""")
    sid = live.openstack("server", "create", "--flavor", "m1.tiny", "--image", "busybox",
                         "--nic", "none", "--user-data", str(script), "--wait",
                         "ps-vol-guest")["id"]
    vid = live.openstack("volume", "create", "--size", "1", "ps-vol-guest")["id"]
    wait_volume(live, vid, "available")
    live.openstack("server", "add", "volume", sid, vid, "--device", "/dev/vdb")
    wait_volume(live, vid, "in-use")
    out = _console_until(live, sid, "ps-vol-done")
    assert "ps-vol-write-rc=0" in out
    assert "ps-vol-mount-rc=0" not in out
    raw = live.data_dir / "volumes" / f"volume-{vid}.raw"
    with open(raw, "rb") as fh:
        assert fh.read(32) == token.encode()
    node = live.data_dir / "compute/instances" / sid / "rootfs/dev/vdb"
    assert node.stat().st_uid >= 1_000_000_000  # owned by the guest's root, not host root
    live.openstack("server", "reboot", "--hard", "--wait", sid)
    out = _console_until(live, sid, "ps-vol-persisted")
    live.openstack("server", "remove", "volume", sid, vid)
    wait_volume(live, vid, "available")
    assert not node.exists()
    live.openstack("server", "delete", "--wait", sid)
    live.openstack("volume", "delete", vid)
