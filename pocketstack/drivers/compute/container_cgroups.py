"""Per-server cgroups of the container driver: runc creates them from the spec's
``cgroupsPath``; this reads them (diagnostics, power state, process lists) and changes
them while the server runs (resize, pause, a hot-attached volume's device rule).

Layout: ``<hierarchy>/pocketstack-<cloud>/<server id>`` in every v1 hierarchy (this
machine's hybrid layout), or ``pocketstack-<cloud>/<server id>`` on the unified v2 one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from pocketstack.drivers.compute.base import DriverError

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Cgroups:
    """Per-server cgroups on v1 (this machine's hybrid layout) or v2."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.v2 = (CGROUP_ROOT / "cgroup.controllers").exists()

    def dirs(self, server_id: str) -> list[Path]:
        """The server's group in every hierarchy (runc makes one in each mounted v1
        hierarchy: cpuset, devices, blkio, name=systemd... besides the ones we read)."""
        if self.v2:
            return [CGROUP_ROOT / self.group / server_id]
        try:
            hierarchies = sorted(os.listdir(CGROUP_ROOT))
        except OSError:
            return []
        return [CGROUP_ROOT / c / self.group / server_id for c in hierarchies
                if (CGROUP_ROOT / c).is_dir() and not (CGROUP_ROOT / c).is_symlink()]

    def _dir(self, controller: str, server_id: str) -> Path:
        return CGROUP_ROOT / (self.group if self.v2 else f"{controller}/{self.group}") / server_id

    def path(self, server_id: str) -> str:
        """The group's path as runc's ``cgroupsPath`` names it (runc creates the groups)."""
        return f"/{self.group}/{server_id}"

    def allow_block_device(self, server_id: str, major: int, minor: int, allow: bool) -> None:
        """Add or remove a block device in a running server's devices allow-list. On v2
        runc's eBPF device filter takes its list only at start: the device is usable from
        the server's next start (DriverError says so)."""
        if self.v2:
            if allow:
                raise DriverError("this host's cgroup v2 device filter is fixed at start: "
                                  "the volume is usable after the server's next stop/start")
            return
        name = "devices.allow" if allow else "devices.deny"
        (self._dir("devices", server_id) / name).write_text(f"b {major}:{minor} rw")

    def set_limits(self, server_id: str, vcpus: int, memory_mb: int, period_us: int) -> None:
        mem = memory_mb * 1024 * 1024
        if self.v2:
            d = self._dir("", server_id)
            (d / "memory.max").write_text(str(mem))
            (d / "cpu.max").write_text(f"{vcpus * period_us} {period_us}")
            (d / "cpu.weight").write_text(str(min(10000, 100 * vcpus)))
            return
        (self._dir("memory", server_id) / "memory.limit_in_bytes").write_text(str(mem))
        cpu = self._dir("cpu", server_id)
        (cpu / "cpu.shares").write_text(str(1024 * vcpus))
        (cpu / "cpu.cfs_period_us").write_text(str(period_us))
        (cpu / "cpu.cfs_quota_us").write_text(str(vcpus * period_us))

    def pids(self, server_id: str) -> list[int]:
        d = self._dir("pids" if not self.v2 else "", server_id)
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def freeze(self, server_id: str, frozen: bool) -> None:
        if self.v2:
            (self._dir("", server_id) / "cgroup.freeze").write_text("1" if frozen else "0")
        else:
            (self._dir("freezer", server_id) / "freezer.state").write_text(
                "FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 5
        while frozen and not self.frozen(server_id) and time.monotonic() < deadline:
            time.sleep(0.01)

    def frozen(self, server_id: str) -> bool:
        try:
            if self.v2:
                events = (self._dir("", server_id) / "cgroup.events").read_text()
                return "frozen 1" in events
            return (self._dir("freezer", server_id) / "freezer.state").read_text().strip() == "FROZEN"
        except OSError:
            return False

    def usage(self, server_id: str) -> tuple[int | None, int | None, int | None]:
        """(memory limit bytes, memory in use bytes, CPU time ns) from the server's cgroup;
        None where a file is missing (e.g. a server started before it had a cpuacct group)."""
        def read(path: Path) -> str | None:
            try:
                return path.read_text()
            except OSError:
                return None

        def num(v: str | None) -> int | None:
            return int(v) if v is not None and v.strip().isdigit() else None
        if self.v2:
            d = self._dir("", server_id)
            limit, used, stat = read(d / "memory.max"), read(d / "memory.current"), read(d / "cpu.stat")
            cpu = None
            for line in (stat or "").splitlines():
                if line.startswith("usage_usec "):
                    cpu = int(line.split()[1]) * 1000
        else:
            m = self._dir("memory", server_id)
            limit, used = read(m / "memory.limit_in_bytes"), read(m / "memory.usage_in_bytes")
            cpu = num(read(self._dir("cpuacct", server_id) / "cpuacct.usage"))  # ns
        return num(limit), num(used), cpu

    def remove(self, server_id: str) -> None:
        for d in self.dirs(server_id):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            try:  # the cloud's parent group goes with its last server (create remakes it)
                d.parent.rmdir()
            except OSError:
                pass
