"""Real volume backends on this host (root): sparse files on loop devices, and thin LVs in a
volume group built on a loop device. Everything made here carries "ps-volume-" and is
removed by exact name in the teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pocketstack.drivers.volume import _host
from pocketstack.drivers.volume.base import GiB
from pocketstack.drivers.volume.file import FileVolumeDriver
from pocketstack.drivers.volume.lvm import LVMVolumeDriver

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup")
                                or not shutil.which("qemu-img"),
                                reason="needs root, losetup and qemu-img")


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def root():
    path = Path(f"/tmp/ps-volume-sys-{uuid.uuid4().hex[:8]}")
    path.mkdir()
    yield path
    for f in path.glob("volume-*.raw"):
        _host.loop_detach(f)
    shutil.rmtree(path, ignore_errors=True)


def write_through_filesystem(device: str, mnt: Path, data: bytes) -> None:
    sh("mkfs.ext4", "-q", "-F", device)
    mnt.mkdir(exist_ok=True)
    sh("mount", device, str(mnt))
    try:
        (mnt / "payload.bin").write_bytes(data)
    finally:
        sh("umount", str(mnt))


def read_through_filesystem(device: str, mnt: Path) -> bytes:
    mnt.mkdir(exist_ok=True)
    sh("mount", "-o", "ro", device, str(mnt))
    try:
        return (mnt / "payload.bin").read_bytes()
    finally:
        sh("umount", str(mnt))


def test_file_volume_is_sparse_exported_on_a_loop_device_and_keeps_data(root):
    drv = FileVolumeDriver(root)
    drv.setup()
    vid = str(uuid.uuid4())
    drv.create_volume(vid, 1)
    path = drv.volume_path(vid)
    assert path.stat().st_size == GiB and path.stat().st_blocks * 512 < 16 * 1024 * 1024
    dev = drv.export(vid)
    assert Path(dev).is_block_device() and drv.export(vid) == dev  # idempotent, no 2nd loop
    data = os.urandom(64 * 1024)
    write_through_filesystem(dev, root / "mnt", data)
    drv.unexport(vid)
    assert _host.loops_for(path) == []
    # "attach to another server": a fresh export of the same file reads the same bytes
    dev2 = drv.export(vid)
    assert read_through_filesystem(dev2, root / "mnt") == data
    # snapshot -> new volume holds the snapshot's bytes, even after the origin changes
    sid = str(uuid.uuid4())
    drv.create_snapshot(sid, vid)
    sh("dd", "if=/dev/zero", f"of={dev2}", "bs=1M", "count=4", "conv=fsync", "status=none")
    drv.unexport(vid)
    nid = str(uuid.uuid4())
    drv.create_volume_from_snapshot(nid, 2, sid, vid)
    assert drv.volume_path(nid).stat().st_size == 2 * GiB
    dev3 = drv.export(nid)
    assert read_through_filesystem(dev3, root / "mnt") == data
    # online extend: the loop device sees the new size
    drv.extend_volume(nid, 3)
    assert int(sh("blockdev", "--getsize64", dev3)) == 3 * GiB
    drv.unexport(nid)
    for v in (vid, nid):
        drv.delete_volume(v)
        assert not drv.volume_path(v).exists()
    drv.delete_snapshot(sid, vid)
    assert list(root.glob("*-*")) == [] or all(p.is_dir() for p in root.glob("*-*"))


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_volume_from_image_holds_the_images_bytes(root, fmt):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    raw = root / "image.raw"
    raw.write_bytes(payload)
    image = raw
    if fmt == "qcow2":
        image = root / "image.qcow2"
        sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image))
    drv = FileVolumeDriver(root)
    drv.setup()
    vid = str(uuid.uuid4())
    drv.create_volume_from_image(vid, 1, image, fmt)
    assert drv.read_bytes(vid, 0, len(payload)) == payload
    assert drv.volume_path(vid).stat().st_size == GiB
    drv.delete_volume(vid)


def test_failed_create_leaves_nothing(root):
    drv = FileVolumeDriver(root)
    drv.setup()
    big = root / "big.raw"
    with open(big, "wb") as fh:
        fh.truncate(2 * GiB)
    vid = str(uuid.uuid4())
    with pytest.raises(Exception, match="doesn't fit"):
        drv.create_volume_from_image(vid, 1, big, "raw")
    assert not drv.volume_exists(vid)
    assert list(root.glob(f"volume-{vid}*")) == []


@pytest.fixture
def volume_group():
    if not shutil.which("lvcreate"):
        pytest.skip("lvm2 is not installed")
    from pocketstack.drivers.volume.lvm import device_mapper_available

    if not device_mapper_available():
        pytest.skip("this kernel has no device-mapper: LVM cannot work on this machine")
    tag = uuid.uuid4().hex[:8]
    backing = Path(f"/tmp/ps-volume-lvm-{tag}.img")
    vg = f"ps-volume-vg-{tag}"
    with open(backing, "wb") as fh:
        fh.truncate(2 * GiB)
    loop = sh("losetup", "--find", "--show", str(backing)).strip()
    try:
        sh("pvcreate", "-q", "-y", loop)
        sh("vgcreate", "-q", vg, loop)
    except subprocess.CalledProcessError as exc:
        sh("losetup", "-d", loop)
        backing.unlink()
        pytest.skip(f"cannot build a VG here: {exc.stderr}")
    yield vg
    subprocess.run(["vgremove", "-q", "-f", vg], capture_output=True)
    subprocess.run(["pvremove", "-q", "-y", loop], capture_output=True)
    subprocess.run(["losetup", "-d", loop], capture_output=True)
    backing.unlink(missing_ok=True)


def test_lvm_thin_volumes_snapshots_and_clones(volume_group):
    drv = LVMVolumeDriver(volume_group)
    drv.setup()
    stats = drv.stats()
    assert 1.5 < stats.total_capacity_gb <= 2.0
    vid = str(uuid.uuid4())
    drv.create_volume(vid, 1)
    drv.create_volume(vid, 1)  # idempotent
    dev = drv.export(vid)
    data = os.urandom(4096)
    with open(dev, "r+b") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    sid = str(uuid.uuid4())
    drv.create_snapshot(sid, vid)
    with open(dev, "r+b") as fh:
        fh.write(b"\0" * 4096)
        os.fsync(fh.fileno())
    nid = str(uuid.uuid4())
    drv.create_volume_from_snapshot(nid, 2, sid, vid)
    assert drv.read_bytes(nid, 0, 4096) == data
    assert drv.read_bytes(vid, 0, 4096) == b"\0" * 4096
    drv.extend_volume(vid, 2)
    assert int(sh("blockdev", "--getsize64", drv.export(vid))) == 2 * GiB
    assert drv.list_volumes() == {vid, nid}
    drv.delete_snapshot(sid, vid)
    drv.delete_volume(nid)
    drv.delete_volume(vid)
    drv.delete_volume(vid)  # absent is success
    assert drv.list_volumes() == set()
