"""Host-side helpers shared by the real compute drivers (container, qemu): process identity
that survives pid reuse, atomic small-file writes, per-server locks, host capacity."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (field 22 of /proc/pid/stat); None if it is
    gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    rest = data.rsplit(")", 1)[1].split()
    if rest[0] == "Z":
        return None
    return int(rest[19])


def process_times(pid: int) -> tuple[int, int] | None:
    """(seconds the process has run, CPU time it and its threads used in ns) from
    /proc/pid/stat (utime, stime and starttime in clock ticks); None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as fh:
            boot_uptime = float(fh.read().split()[0])
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    uptime = max(0, int(boot_uptime - int(rest[19]) / tick))
    return uptime, (int(rest[11]) + int(rest[12])) * 1_000_000_000 // tick


def alive(state: dict[str, Any], key: str) -> int | None:
    """``state[key_pid]`` if that process still runs and is the one recorded (same start
    time as ``state[key_start]``: a reused pid is never taken for a server's process)."""
    pid = state.get(f"{key}_pid")
    if pid and start_time(pid) == state.get(f"{key}_start"):
        return pid
    return None


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class KeyedLocks:
    """``locks(server_id)``: one lock per server, made on first use."""

    def __init__(self) -> None:
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def __call__(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


def memory_and_disk(path: Path) -> tuple[int, int]:
    """This host's memory (MiB) and the size (GiB, at least 1) of the file system that
    holds ``path`` (created if missing)."""
    with open("/proc/meminfo") as fh:
        mem = next(int(line.split()[1]) // 1024 for line in fh if line.startswith("MemTotal:"))
    path.mkdir(parents=True, exist_ok=True)
    return mem, max(shutil.disk_usage(path).total // 2**30, 1)
