"""Small helpers the real volume drivers share: running host tools, loop devices."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pocketstack.drivers.volume.base import VolumeDriverError


def sh(*cmd: str, timeout: float = 600, check: bool = True) -> str:
    """Run a host tool; a failure becomes VolumeDriverError carrying its stderr."""
    try:
        res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise VolumeDriverError(f"{cmd[0]} is not installed on this host") from None
    except subprocess.TimeoutExpired:
        raise VolumeDriverError(f"{' '.join(cmd)} timed out after {timeout:.0f}s") from None
    if check and res.returncode != 0:
        raise VolumeDriverError(f"{' '.join(cmd)} failed: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- loop devices ---------------------------------------------------------------------------
# A loop device has no name of its own; we find ours by the exact path of its backing file.

def loop_devices() -> list[tuple[str, str]]:
    """(device, backing file) for every loop device in use on the host."""
    out = sh("losetup", "--list", "--json", "-O", "NAME,BACK-FILE", check=False)
    if not out.strip():
        return []
    try:
        rows = json.loads(out).get("loopdevices", [])
    except ValueError:
        return []
    result = []
    for row in rows:
        back = (row.get("back-file") or "").strip()
        if back.endswith(" (deleted)"):
            back = back[: -len(" (deleted)")]
        result.append((row.get("name", ""), back))
    return result


def loops_for(path: Path) -> list[str]:
    target = str(path)
    return [dev for dev, back in loop_devices() if back == target]


def loop_attach(path: Path, readonly: bool = False) -> str:
    existing = loops_for(path)
    if existing:
        return existing[0]
    args = ["losetup", "--find", "--show"]
    if readonly:
        args.append("--read-only")
    return sh(*args, str(path)).strip()


def loop_detach(path: Path) -> None:
    for dev in loops_for(path):
        sh("losetup", "-d", dev, check=False)


def loop_refresh(path: Path) -> None:
    """Make loop devices over ``path`` see its new size (after an extend)."""
    for dev in loops_for(path):
        sh("losetup", "-c", dev, check=False)
