"""Rescue for QEMU servers: the VM boots a fresh overlay of the rescue image, with its own
disk (overlay and base, the backing chain pinned as always) as the second virtio disk.

The server's directory during a rescue:
  disk.qcow2, config.json            the rescue boot's overlay and config
  rescue-disk.qcow2, rescue-config.json   the server's own disk and config, untouched
config.json's ``rescue_disk`` names the own disk's base and format for the command line
(QEMU opens neither by name: the driver passes fds, fd sets 5 and 6). Each step is a
rename, so a rescue or unrescue cut short is finished or undone by the next call.
"""

from __future__ import annotations

import json
from typing import Any

from pocketstack.drivers.compute._host import alive
from pocketstack.drivers.compute.base import DriverError, InstanceSpec

DISK, CONFIG = "rescue-disk.qcow2", "rescue-config.json"


def rescue_disk_args(fds: Any) -> list[str]:
    """The QEMU arguments of a rescued server's own disk (none when not in rescue)."""
    if getattr(fds, "rescue_disk", None) is None:
        return []
    from pocketstack.drivers.compute.qemu_process import root_node

    node = root_node(fds.rescue_base_format, "/dev/fdset/5", "/dev/fdset/6")
    node["node-name"] = "rescue-disk"
    node["backing"]["node-name"] = "rescue-base"
    return ["-add-fd", f"fd={int(fds.rescue_disk)},set=5,opaque=rescue-disk",
            "-add-fd", f"fd={int(fds.rescue_base)},set=6,opaque=rescue-base",
            "-blockdev", json.dumps(node),
            "-device", "virtio-blk-pci,drive=rescue-disk,id=rescue-disk"]


# rescue/unrescue take the QemuDriver as ``drv``: its _lock, _dir, _stop_qemu, _ids,
# _read_json, _write_json, _boot_config, _create_disk, _start.
def rescue(drv: Any, spec: InstanceSpec, rescue_spec: InstanceSpec) -> None:
    with drv._lock(spec.id):
        d = drv._dir(spec.id)
        if not (d / "disk.qcow2").is_file() and not (d / DISK).is_file():
            raise DriverError(f"Server {spec.id} has no disk on this host.")
        drv._stop_qemu(spec.id, 10)
        if (d / DISK).is_file():  # a rescue cut short: back to the own disk first
            _undo(drv, spec.id)
        own = drv._read_json(spec.id, "config.json")
        try:
            with drv._lock("gc"):  # the bases stay named by a config (see _gc_bases)
                cfg = drv._boot_config(rescue_spec)
                for key in ("macs", "config_drive", "vcpus", "memory_mb"):
                    if own.get(key) is not None:
                        cfg[key] = own[key]
                cfg["rescue_disk"] = {"base": own["base"], "base_format": own["base_format"]}
                (d / "disk.qcow2").replace(d / DISK)
                (d / "config.json").replace(d / CONFIG)
                drv._write_json(spec.id, "config.json", cfg)
            drv._create_disk(spec.id, cfg, drv._ids(spec.id))
            drv._start(spec.id)
        except Exception as exc:
            drv._stop_qemu(spec.id, 0)
            _undo(drv, spec.id)
            try:
                drv._start(spec.id)  # its own disk again, as before the rescue
            except Exception:  # noqa: BLE001 - the rescue's error is the one to report
                pass
            if isinstance(exc, DriverError):
                raise
            raise DriverError(f"Could not boot the rescue image: {exc}") from exc


def unrescue(drv: Any, spec: InstanceSpec) -> None:
    with drv._lock(spec.id):
        d = drv._dir(spec.id)
        if (d / DISK).is_file():
            drv._stop_qemu(spec.id, 10)
            _undo(drv, spec.id)
        if not alive(drv._read_json(spec.id, "state.json"), "qemu"):
            drv._start(spec.id)


def _undo(drv: Any, server_id: str) -> None:
    d = drv._dir(server_id)
    if (d / DISK).is_file():
        (d / "disk.qcow2").unlink(missing_ok=True)  # the rescue overlay
        (d / DISK).replace(d / "disk.qcow2")
    if (d / CONFIG).is_file():
        (d / CONFIG).replace(d / "config.json")
