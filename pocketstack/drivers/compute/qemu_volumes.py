"""Volumes on a QEMU server: each attached volume (a host block device the volume service
exported) is a virtio disk, hot-plugged through QMP while the VM runs and listed in
volumes.json so every later boot adds it on the command line (qemu_process.qemu_argv).

QEMU runs as an unprivileged user that cannot open the block device (root's): the driver
opens the device and hands QEMU the fd, on the command line at boot (-add-fd) or over QMP
(add-fd) for a hot-plug, in an fd set named ``vol-<name>`` that the block node opens as
/dev/fdset/N. A detach removes the node and that fd set, so QEMU holds nothing of the
device afterwards and no device node's owner or mode ever changes.

A mixin of QemuDriver, apart from the lifecycle in qemu.py: it uses the driver's server
directory, state files, per-server locks and QMP session (``_dir``, ``_read_json``,
``_write_json``, ``_lock``, ``_qmp``, ``_monitor``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from pocketstack.drivers.compute._host import alive
from pocketstack.drivers.compute.base import DriverError
from pocketstack.drivers.compute.qemu_process import QMPError, guest_device_name, volume_node


class QemuVolumes:
    _dir: Any
    _read_json: Any
    _write_json: Any
    _lock: Any
    _qmp: Any
    _monitor: Any

    def attach_block_device(self, host: str, server_id: str, host_device: str,
                            guest_device: str) -> None:
        name = guest_device_name(guest_device)
        if not host_device.startswith("/dev/"):
            raise DriverError(f"{host_device} is not a device")
        with self._lock(server_id):
            if not (self._dir(server_id) / "config.json").is_file():
                raise DriverError(f"Server {server_id} is not on this host.")
            if not os.path.exists(host_device):
                raise DriverError(f"{host_device} does not exist on this host.")
            volumes = self._read_json(server_id, "volumes.json")
            if alive(self._read_json(server_id, "state.json"), "qemu"):
                self._hotplug(server_id, name, host_device)
            volumes[guest_device] = host_device
            self._write_json(server_id, "volumes.json", volumes)

    def _hotplug(self, server_id: str, name: str, host_device: str) -> None:
        nodes = {n.get("node-name") for n in self._qmp(
            server_id, ("query-named-block-nodes", {}))[0]}
        if f"vol-{name}" not in nodes:
            self._remove_fdsets(server_id, name)  # of an attach that failed half way
            try:
                fd = os.open(host_device, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise DriverError(f"Cannot open {host_device}: {exc.strerror}") from None
            try:  # one session: the fd set lasts past it only once the node uses it
                with self._monitor(server_id) as q:
                    added = q.cmd_fds("add-fd", [fd], opaque=f"vol-{name}")
                    try:
                        q.cmd("blockdev-add", **volume_node(
                            name, f"/dev/fdset/{int(added['fdset-id'])}"))
                    except QMPError as exc:
                        q.cmd("remove-fd", **{"fdset-id": added["fdset-id"]})
                        raise DriverError(f"QEMU cannot open {host_device}: {exc}") from None
            finally:
                os.close(fd)
        try:
            self._qmp(server_id, ("device_add", {"driver": "virtio-blk-pci",
                                                 "drive": f"vol-{name}", "id": f"dev-{name}"}))
        except QMPError as exc:
            if "Duplicate" not in str(exc):
                try:
                    self._qmp(server_id, ("blockdev-del", {"node-name": f"vol-{name}"}))
                except (QMPError, DriverError):
                    pass
                self._remove_fdsets(server_id, name)
                raise DriverError(f"Could not add the disk to the guest: {exc}") from None

    def _remove_fdsets(self, server_id: str, name: str) -> None:
        """Close QEMU's fds of volume ``name`` (its fd sets, by their opaque name)."""
        try:
            (sets,) = self._qmp(server_id, ("query-fdsets", {}))
        except QMPError:
            return
        for fdset in sets:
            if any(f.get("opaque") == f"vol-{name}" for f in fdset.get("fds", [])):
                try:
                    self._qmp(server_id, ("remove-fd", {"fdset-id": fdset["fdset-id"]}))
                except QMPError:
                    pass

    def detach_block_device(self, host: str, server_id: str, guest_device: str) -> None:
        name = guest_device_name(guest_device)
        with self._lock(server_id):
            if alive(self._read_json(server_id, "state.json"), "qemu"):
                self._unplug(server_id, name)
            volumes = self._read_json(server_id, "volumes.json")
            if volumes.pop(guest_device, None) is not None:
                self._write_json(server_id, "volumes.json", volumes)

    def _unplug(self, server_id: str, name: str) -> None:
        def present() -> bool:
            try:
                self._qmp(server_id, ("qom-get", {"path": f"/machine/peripheral/dev-{name}",
                                                  "property": "type"}))
                return True
            except QMPError:
                return False

        if present():
            try:
                self._qmp(server_id, ("device_del", {"id": f"dev-{name}"}))
            except QMPError:
                pass
            # The guest acknowledges the ACPI eject; a paused or busy guest may not.
            deadline = time.monotonic() + 20
            while present():
                if time.monotonic() > deadline:
                    raise DriverError(f"The guest did not release {name} within 20 s.")
                time.sleep(0.1)
        try:
            self._qmp(server_id, ("blockdev-del", {"node-name": f"vol-{name}"}))
        except QMPError:
            pass  # already gone
        self._remove_fdsets(server_id, name)
