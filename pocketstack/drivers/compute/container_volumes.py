"""Volumes in a container server: a block device node in the server's own /dev.

The server's /dev is a directory of its root file system (runc bind-mounts the standard
nodes into it); host root makes the volume's node there, owned by the guest's root, and the
devices cgroup lets the guest use that one device. The guest itself cannot make device
nodes: mknod needs CAP_MKNOD in the host's namespace. Attached devices are recorded in
block-devices.json for the next starts.

A mixin of ContainerDriver, apart from the lifecycle in container.py: it uses the driver's
server directory, state, uid range, per-server locks and cgroups (``_dir``, ``_state``,
``_alive``, ``_ids``, ``_lock``, ``cgroups``).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute._host import atomic_write
from pocketstack.drivers.compute.base import DriverError
from pocketstack.drivers.compute.container_rootfs import put
from pocketstack.drivers.compute.container_views import write_block_view

log = logging.getLogger("pocketstack.compute")


class ContainerVolumes:
    _dir: Any
    _state: Any
    _alive: Any
    _ids: Any
    _lock: Any
    cgroups: Any

    def _block_devices(self, server_id: str) -> dict[str, str]:
        try:
            return json.loads((self._dir(server_id) / "block-devices.json").read_text())
        except (OSError, ValueError):
            return {}

    def _block_view(self, server_id: str) -> Path:
        """Refresh the server's own /sys/block (container_views.py) from its disks; the
        directory is bind-mounted into the server, so a change shows at once."""
        view = self._dir(server_id) / "sys-block"
        write_block_view(view, self._dir(server_id) / "rootfs", self._block_devices(server_id))
        return view

    def _mknod(self, server_id: str, host_device: str, guest_device: str) -> None:
        st = os.stat(host_device)
        if not stat.S_ISBLK(st.st_mode):
            raise DriverError(f"{host_device} is not a block device")
        ids = self._ids(server_id)
        dev = os.open(self._dir(server_id) / "rootfs", os.O_RDONLY | os.O_DIRECTORY)
        try:  # /dev itself may be a symlink the guest made: never follow it
            put(self._dir(server_id) / "rootfs", "dev", None, 0o755, ids)
            dfd = os.open("dev", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dev)
        finally:
            os.close(dev)
        name = guest_device[len("/dev/"):]
        try:
            try:
                os.unlink(name, dir_fd=dfd)
            except FileNotFoundError:
                pass
            os.mknod(name, stat.S_IFBLK | 0o660, st.st_rdev, dir_fd=dfd)
            os.chown(name, ids.base, ids.base, dir_fd=dfd, follow_symlinks=False)
        finally:
            os.close(dfd)
        if self._alive(self._state(server_id)) is not None:
            try:
                self.cgroups.allow_block_device(server_id, os.major(st.st_rdev),
                                                os.minor(st.st_rdev), True)
            except DriverError as exc:
                log.warning("server %s: %s", server_id, exc)

    def _restore_block_devices(self, server_id: str) -> None:
        for guest, host_dev in self._block_devices(server_id).items():
            try:
                self._mknod(server_id, host_dev, guest)
            except (OSError, DriverError) as exc:
                log.warning("could not restore %s in server %s: %s", guest, server_id, exc)

    def attach_block_device(self, host: str, server_id: str, host_device: str,
                            guest_device: str) -> None:
        name = guest_device[len("/dev/"):]
        if not guest_device.startswith("/dev/") or not name.isalnum():
            raise DriverError(f"invalid guest device name {guest_device}")
        with self._lock(server_id):
            if not (self._dir(server_id) / "rootfs").is_dir():
                raise DriverError(f"Server {server_id} is not on this host.")
            try:
                self._mknod(server_id, host_device, guest_device)
            except OSError as exc:
                raise DriverError(f"cannot create {guest_device} in the server: {exc}") from None
            devices = self._block_devices(server_id)
            devices[guest_device] = host_device
            atomic_write(self._dir(server_id) / "block-devices.json", json.dumps(devices))
            self._block_view(server_id)

    def detach_block_device(self, host: str, server_id: str, guest_device: str) -> None:
        with self._lock(server_id):
            devices = self._block_devices(server_id)
            host_dev = devices.pop(guest_device, None)
            if self._dir(server_id).is_dir():
                atomic_write(self._dir(server_id) / "block-devices.json", json.dumps(devices))
                self._block_view(server_id)
            name = guest_device[len("/dev/"):]
            if not guest_device.startswith("/dev/") or not name.isalnum():
                return
            try:
                fd = os.open(self._dir(server_id) / "rootfs" / "dev",
                             os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            except OSError:
                fd = None
            if fd is not None:
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    if stat.S_ISBLK(st.st_mode):
                        os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                finally:
                    os.close(fd)
            if host_dev and self._alive(self._state(server_id)) is not None:
                try:
                    rdev = os.stat(host_dev).st_rdev
                    self.cgroups.allow_block_device(server_id, os.major(rdev), os.minor(rdev),
                                                    False)
                except (OSError, DriverError):
                    pass
