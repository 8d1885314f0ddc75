"""Rescue for container servers (a mixin of ContainerDriver): the server boots a fresh
copy of the rescue image, with its own root file system read-write at /mnt/rescue-disk.

The server's directory during a rescue:
  rootfs/        the rescue image's copy (shifted into the server's uid range)
  rescue-disk/   the server's own disk, untouched, bind-mounted at /mnt/rescue-disk
Every step is a rename or a fresh copy, so a rescue or unrescue cut short (kill -9) is
finished or undone by running it again: ``rescue-disk/`` present means "in rescue".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute._host import atomic_write
from pocketstack.drivers.compute.base import DriverError, InstanceSpec

RESCUE_DIR = "rescue-disk"
GUEST_PATH = "/mnt/rescue-disk"  # where the rescued guest finds its own disk


def rescue_mounts(server_dir: Path) -> list[dict[str, Any]]:
    """The original disk's bind mount while the server is in rescue (none otherwise).
    nosuid/nodev: the rescued disk's setuid files and device nodes stay inert."""
    disk = server_dir / RESCUE_DIR
    if not disk.is_dir():
        return []
    return [{"destination": GUEST_PATH, "type": "bind", "source": str(disk),
             "options": ["rbind", "rw", "nosuid", "nodev"]}]


# The driver's rescue/unrescue call these with itself (``drv``): they use its _lock, _dir,
# _kill, _alive, _state, _unpacked_image, _copy_image, _idmap_record, _personalise, _start.
def rescue(drv: Any, spec: InstanceSpec, rescue: InstanceSpec) -> None:
    with drv._lock(spec.id):
        d = drv._dir(spec.id)
        if not (d / "rootfs").is_dir() and not (d / RESCUE_DIR).is_dir():
            raise DriverError(f"Server {spec.id} has no disk on this host.")
        was_running = drv._alive(drv._state(spec.id)) is not None
        drv._kill(spec.id, 10)
        try:
            if not (d / RESCUE_DIR).is_dir():
                os.replace(d / "rootfs", d / RESCUE_DIR)
            else:  # a rescue cut short before: its half-made rescue root goes
                shutil.rmtree(d / "rootfs", ignore_errors=True)
            src = drv._unpacked_image(rescue)
            tmp = d / "rootfs.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            drv._copy_image(src, tmp)
            rec = drv._idmap_record(spec.id)
            if rec:  # the new root is not in the server's range yet: _ids shifts it
                    atomic_write(d / "idmap.json", json.dumps({**rec, "shifted": False}))
            os.replace(tmp, d / "rootfs")
            drv._personalise(spec)
            drv._start(spec)
        except Exception as exc:
            _undo_rescue(drv, spec, was_running)
            if isinstance(exc, DriverError):
                raise
            raise DriverError(f"Could not boot the rescue image: {exc}") from exc


def unrescue(drv: Any, spec: InstanceSpec) -> None:
    with drv._lock(spec.id):
        _undo_rescue(drv, spec, True)


def _undo_rescue(drv: Any, spec: InstanceSpec, start: bool) -> None:
    """Back to the server's own disk (and running, if ``start``). Idempotent."""
    d = drv._dir(spec.id)
    if (d / RESCUE_DIR).is_dir():
        drv._kill(spec.id, 10)
        shutil.rmtree(d / "rootfs.tmp", ignore_errors=True)
        if (d / "rootfs").is_dir():
            os.replace(d / "rootfs", d / "rootfs.rescue-old")
        os.replace(d / RESCUE_DIR, d / "rootfs")
        shutil.rmtree(d / "rootfs.rescue-old", ignore_errors=True)
        rec = drv._idmap_record(spec.id)
        if rec and not rec.get("shifted"):
            # the original disk was shifted all along; a rescue root cut short was not
            atomic_write(d / "idmap.json", json.dumps({**rec, "shifted": True}))
    if start and drv._alive(drv._state(spec.id)) is None:
        drv._personalise(spec)
        drv._start(spec)
