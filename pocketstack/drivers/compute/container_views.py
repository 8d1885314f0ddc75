"""What a container server sees of its own machine: its CPUs, memory, uptime and disks.

A container shares the host's kernel, so its /proc and /sys describe the host: all the
host's CPUs in /proc/cpuinfo, the host's uptime (a hard reboot would not reset it), every
block device of the host in /sys/block (lsblk). Tools in the guest, and Tempest's checks of
a server (``grep -c ^processor /proc/cpuinfo`` against the flavor, /proc/uptime across a
reboot, lsblk's disk count across a volume attach), must see the server instead:

- /proc/cpuinfo, meminfo, stat, uptime, swaps and diskstats come from **lxcfs** (Debian's
  package; LXD and Incus use it for exactly this): a FUSE file system that answers each
  read for the reading process's cgroups and PID namespace — CPUs from the server's CFS
  quota (the flavor's vCPUs), memory from its memory limit, uptime from its init's start.
  One lxcfs per cloud, mounted under the cloud's data directory, its files bind-mounted
  read-only over the guest's /proc files (runc allows exactly these over /proc). It outlives
  a restart of pocketstack, as the servers do; ``down --purge`` stops it.
- /sys/block is a directory of the server's own (host-side, root-owned, bind-mounted
  read-only): ``vda`` for the block device holding its root file system and one entry per
  attached volume under its guest name (``vdb``...), each a symlink into the real sysfs
  device, so lsblk reads the real size and attributes of exactly the server's disks.

Without lxcfs (not installed, no FUSE) the guest sees the host's /proc files and the
driver says so in its degraded reasons; nothing else changes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("pocketstack.compute")

LXCFS = shutil.which("lxcfs") or "/usr/bin/lxcfs"
# The files lxcfs virtualises that runc lets a bind mount cover in /proc (its allow-list).
LXCFS_PROC_FILES = ("cpuinfo", "meminfo", "stat", "uptime", "swaps", "diskstats")


class Lxcfs:
    """The cloud's lxcfs: ``ensure()`` mounts it if it is not serving, ``mounts()`` gives
    the OCI mount entries that put its files over a server's /proc, ``stop()`` unmounts it."""

    def __init__(self, base: Path) -> None:
        self.mountpoint = base / "lxcfs"
        self.pidfile = base / "lxcfs.pid"
        self._lockfile = base / "lxcfs.lock"
        self.logfile = base / "lxcfs.log"  # its start-up lines only (truncated at each start)
        self.reason: str | None = None  # why the guests see the host's /proc, if they do

    def _serving(self) -> bool:
        try:
            with open(self.mountpoint / "proc" / "uptime", "rb") as fh:
                return bool(fh.read(64))
        except OSError:
            return False

    @staticmethod
    def unavailable() -> str | None:
        if not os.path.exists(LXCFS) or not os.path.exists("/dev/fuse"):
            return "lxcfs is not installed (or no /dev/fuse): container servers see the " \
                   "host's /proc"
        return None

    def ensure(self) -> bool:
        """Start lxcfs unless it already serves; True when its files can be mounted. The
        API process and the workers may race here: a file lock makes one of them start it."""
        if self._serving():
            self.reason = None
            return True
        self.reason = self.unavailable()
        if self.reason:
            return False
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        with open(self._lockfile, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self._serving():
                return True
            self._unmount()  # a dead instance's mount answers ENOTCONN: clear it first
            # lxcfs stays in the foreground: `setsid -f` runs it in a session of its own as
            # an orphan (not our child: no zombie; not in our process group: it outlives us
            # as the servers do). Its pid file says which process is ours; its output goes
            # to a file, never to a pipe of ours.
            with open(self.logfile, "wb") as out:
                subprocess.run(["setsid", "-f", LXCFS, "--enable-cfs", "-p", str(self.pidfile),
                                str(self.mountpoint)], stdin=subprocess.DEVNULL, stdout=out,
                               stderr=out, close_fds=True, timeout=30, check=False)
            deadline = time.monotonic() + 10
            while not self._serving() and time.monotonic() < deadline:
                time.sleep(0.02)
        if not self._serving():
            try:
                err = self.logfile.read_text(errors="replace").strip()[-300:]
            except OSError:
                err = ""
            err = err or "no output"
            self.reason = f"lxcfs did not start ({err}): " \
                          "container servers see the host's /proc"
            log.warning("%s", self.reason)
            return False
        self.reason = None
        return True

    def mounts(self) -> list[dict[str, Any]]:
        if not self.ensure():
            return []
        return [{"destination": f"/proc/{name}", "type": "bind",
                 "source": str(self.mountpoint / "proc" / name),
                 "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}
                for name in LXCFS_PROC_FILES]

    def _unmount(self) -> None:
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", str(self.mountpoint)], check=False,
                           capture_output=True, timeout=30)

    def stop(self) -> None:
        """Stop and unmount (``down --purge``). Only the process of our pid file, and only
        if it is lxcfs (a stale file's pid may be anyone's by now)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            with open(f"/proc/{pid}/comm") as fh:
                if fh.read().strip() == "lxcfs":
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
                time.sleep(0.02)
        except (OSError, ValueError):
            pass
        self._unmount()
        for p in (self.pidfile, self._lockfile, self.logfile):
            p.unlink(missing_ok=True)
        try:
            self.mountpoint.rmdir()
        except OSError:
            pass


# -- /sys/block ----------------------------------------------------------------------------

def _sysfs_disk(rdev: int) -> str | None:
    """The sysfs path (relative to /sys/block) of the whole disk of device ``rdev``: a
    partition's parent disk, since the guest's root is a disk to it."""
    try:
        target = os.readlink(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")
    except OSError:
        return None
    real = os.path.normpath(os.path.join("/sys/dev/block", target))
    if os.path.exists(os.path.join(real, "partition")):
        real = os.path.dirname(real)
    return os.path.relpath(real, "/sys/block")


def write_block_view(view: Path, rootfs: Path, volumes: dict[str, str]) -> None:
    """Make ``view`` (the server's /sys/block) hold ``vda`` for the disk of its root file
    system and one entry per attached volume (guest name -> host device). Entries are
    symlinks; each is replaced by rename, so a reading guest never sees a half-made one."""
    want: dict[str, str] = {}
    try:
        root = _sysfs_disk(os.stat(rootfs).st_dev)
    except OSError:
        root = None
    if root:  # none when the root is on tmpfs/overlay/btrfs (no block device of its own)
        want["vda"] = root
    for guest, host_dev in volumes.items():
        name = guest[len("/dev/"):]
        if not guest.startswith("/dev/") or not name.isalnum():
            continue  # attach_block_device checked it; a record is never trusted as a path
        try:
            target = _sysfs_disk(os.stat(host_dev).st_rdev)
        except OSError:
            continue
        if target:
            want[name] = target
    view.mkdir(mode=0o755, parents=True, exist_ok=True)
    for name in os.listdir(view):
        if name not in want:
            (view / name).unlink(missing_ok=True)
    for name, target in want.items():
        link = view / name
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        tmp = view / f".{name}.new"
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)


def block_view_mount(view: Path) -> dict[str, Any]:
    return {"destination": "/sys/block", "type": "bind", "source": str(view),
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}
