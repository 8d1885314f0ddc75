"""The container server's own view of its machine (container_views.py): /sys/block entries
for its root disk and attached volumes only, and lxcfs's files over /proc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pocketstack.drivers.compute import container_views as cv


def _some_block_device() -> str | None:
    for name in sorted(os.listdir("/dev")):
        path = f"/dev/{name}"
        try:
            st = os.stat(path)
        except OSError:
            continue
        if os.path.isfile(f"/sys/dev/block/{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}/size") \
                and name.startswith("loop"):
            return path
    return None


def test_block_view_lists_root_disk_and_volumes_by_guest_name(tmp_path):
    dev = _some_block_device()
    if dev is None:
        pytest.skip("no loop block device on this machine")
    view = tmp_path / "sys-block"
    cv.write_block_view(view, tmp_path, {"/dev/vdb": dev})
    names = sorted(os.listdir(view))
    assert "vdb" in names and set(names) <= {"vda", "vdb"}
    # a relative link into the real sysfs: the guest's /sys/block/vdb resolves in its own /sys
    target = os.readlink(view / "vdb")
    assert target.startswith("../devices/") and target.endswith(os.path.basename(dev))
    assert (Path("/sys/block") / target).resolve().is_dir()
    # detach: only what is still attached stays; a vanished device is left out
    cv.write_block_view(view, tmp_path, {"/dev/vdc": str(tmp_path / "gone")})
    assert "vdb" not in os.listdir(view) and "vdc" not in os.listdir(view)


def test_block_view_refuses_names_that_are_not_plain(tmp_path):
    dev = _some_block_device()
    if dev is None:
        pytest.skip("no loop block device on this machine")
    view = tmp_path / "v"
    cv.write_block_view(view, tmp_path, {"/dev/../etc": dev, "/dev/a/b": dev, "vdc": dev})
    assert set(os.listdir(view)) <= {"vda"}
    assert not (tmp_path / "etc").exists()


def test_root_disk_is_the_partitions_parent(tmp_path):
    st = os.stat(tmp_path)
    target = cv._sysfs_disk(st.st_dev)
    if target is None:
        pytest.skip("the temporary directory is not on a block device here")
    real = (Path("/sys/block") / target).resolve()
    assert not (real / "partition").exists()  # a whole disk, never a partition


def test_no_lxcfs_means_no_proc_mounts_and_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(cv, "LXCFS", str(tmp_path / "no-lxcfs"))
    fs = cv.Lxcfs(tmp_path)
    assert fs.mounts() == []
    assert "lxcfs is not installed" in fs.reason


def test_lxcfs_mounts_cover_only_files_runc_allows_over_proc(tmp_path, monkeypatch):
    fs = cv.Lxcfs(tmp_path)
    monkeypatch.setattr(fs, "ensure", lambda: True)
    mounts = fs.mounts()
    allowed = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat",
               "/proc/swaps", "/proc/uptime", "/proc/loadavg", "/proc/slabinfo"}
    assert {m["destination"] for m in mounts} <= allowed
    assert {"/proc/cpuinfo", "/proc/uptime"} <= {m["destination"] for m in mounts}
    assert all("ro" in m["options"] and m["source"].startswith(str(tmp_path)) for m in mounts)


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists(cv.LXCFS),
                    reason="needs root and lxcfs")
def test_lxcfs_starts_serves_and_stops(tmp_path):
    fs = cv.Lxcfs(tmp_path)
    try:
        assert fs.ensure(), fs.reason
        assert fs.ensure()  # idempotent: the one instance keeps serving
        pid = int(fs.pidfile.read_text())
        assert float((fs.mountpoint / "proc/uptime").read_text().split()[0]) > 0
    finally:
        fs.stop()
    assert not os.path.ismount(fs.mountpoint)
    assert not os.path.exists(f"/proc/{pid}")  # stop() waited for it
