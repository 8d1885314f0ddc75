"""Ports on a QEMU server: each port is a virtio NIC with the port's MAC, bridged to the
port's link in the server's namespace (qemu_process.NIC_FUNCS says how and why by MAC).

The NICs of a boot are on QEMU's command line (config.json ``macs``, qemu_argv); their taps
are made here, from the driver through nsenter, before QEMU starts (the holder only wires
ports onto bridges that exist). QEMU runs as an unprivileged user and never opens
/dev/net/tun: the driver opens each tap (as root, from a thread that entered the server's
namespace, open_taps) and QEMU inherits the fd at boot or receives it over QMP (getfd) for
a hot-plug. A port attached to a running server (os-interface) is hot-plugged through QMP
(getfd + netdev_add + device_add) and added to ``macs`` so every later boot has it; a
detach undoes both.

A mixin of QemuDriver, as qemu_volumes is: it uses the driver's server directory, state
files, per-server locks and QMP session (``_dir``, ``_read_json``, ``_write_json``,
``_lock``, ``_qmp``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import threading
import time
from typing import Any

from pocketstack.drivers.compute._host import alive
from pocketstack.drivers.compute.base import DriverError
from pocketstack.drivers.compute.qemu_process import NIC_SCRIPT, QMPError, nic_hex

# How long the guest gets to acknowledge a NIC's ACPI eject (as for a disk).
UNPLUG_TIMEOUT = 20

CLONE_NEWNET = 0x40000000
TUNSETIFF, TUNGETIFF = 0x400454CA, 0x800454D2
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_PERSIST = 0x0002, 0x1000, 0x4000, 0x0800


def open_taps(holder: int, hexes: list[str]) -> dict[str, int]:
    """Open fds of the taps ``t<hex>`` in the network namespace of ``holder`` (which must
    exist: _nic_links makes them). A thread of its own enters the namespace (a network
    namespace is per thread) and ends there; the fds are not inheritable."""
    fds: dict[str, int] = {}
    errors: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ns = os.open(f"/proc/{holder}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(ns, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, os.strerror(err))
            finally:
                os.close(ns)
            for h in hexes:
                fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
                fds[h] = fd
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", f"t{h}".encode(),
                                                       IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
                # not one _nic_links made (TUNSETIFF made a new, unbridged one): refuse
                flags = struct.unpack("16sH", fcntl.ioctl(fd, TUNGETIFF, bytes(18)))[1]
                if not flags & IFF_PERSIST:
                    raise OSError(errno.ENODEV, f"no tap t{h} in the server's namespace")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=run, name="qemu-open-taps", daemon=True)
    t.start()
    t.join()
    if errors:
        for fd in fds.values():
            os.close(fd)
        if isinstance(errors[0], OSError) and errors[0].errno == errno.EBUSY:
            raise TapBusy(f"A tap of the server is in use already: {errors[0]}")
        raise DriverError(f"Could not open the server's taps: {errors[0]}")
    return fds


class TapBusy(DriverError):
    """The tap is attached already (to a netdev of the server's QEMU)."""


class QemuNics:
    _dir: Any
    _read_json: Any
    _write_json: Any
    _lock: Any
    _qmp: Any
    _monitor: Any

    def _nic_links(self, holder: int, op: str, macs: list[str]) -> None:
        """``op`` add: each MAC's bridge and tap in the namespace of ``holder``, up, with the
        port's ethN on the bridge if it is plugged already; sync: add these, remove all
        other ports' (QEMU must not be running); del: both gone."""
        hexes = [nic_hex(m) for m in macs]
        if not hexes and op != "sync":
            return
        try:
            res = subprocess.run(["nsenter", f"--net=/proc/{holder}/ns/net", "--", "sh", "-c",
                                  NIC_SCRIPT, "ps-qemu-nic", op, *hexes],
                                 stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                 timeout=30)
        except subprocess.TimeoutExpired:
            raise DriverError("Setting up the server's NIC links took over 30 s.") from None
        if res.returncode != 0:
            what = "create" if op == "add" else "remove"
            raise DriverError(f"Could not {what} the NIC links (bridge, tap) in the server's "
                              f"network namespace: {res.stderr.strip()[-300:]}")

    def _nic_present(self, server_id: str, h: str) -> bool:
        try:
            self._qmp(server_id, ("qom-get", {"path": f"/machine/peripheral/nic-{h}",
                                              "property": "type"}))
            return True
        except QMPError:
            return False

    def attach_interface(self, host: str, server_id: str, mac: str) -> None:
        h, mac = nic_hex(mac), mac.lower()
        with self._lock(server_id):
            cfg = self._read_json(server_id, "config.json")
            if not cfg:
                raise DriverError(f"Server {server_id} is not on this host.")
            state = self._read_json(server_id, "state.json")
            if alive(state, "qemu") is not None:
                holder = alive(state, "netns")
                if holder is None:
                    raise DriverError(f"Server {server_id} has no network namespace.")
                self._nic_links(holder, "add", [mac])
                self._hotplug_nic(server_id, holder, h, mac)
            # A stopped server gets the NIC on its command line at the next start.
            macs = [str(m).lower() for m in cfg.get("macs") or []]
            if mac not in macs:
                cfg["macs"] = macs + [mac]
                self._write_json(server_id, "config.json", cfg)

    def _netdev_add(self, server_id: str, holder: int, h: str) -> None:
        """netdev_add of the tap t<h>, opened here and handed to QEMU (getfd), in one
        session."""
        try:
            fd = open_taps(holder, [h])[h]
        except TapBusy:  # QEMU has it: its netdev is there (as netdev_add would say)
            raise QMPError("GenericError", f"Duplicate ID 'net-{h}' for netdev") from None
        try:
            with self._monitor(server_id) as q:
                q.cmd_fds("getfd", [fd], fdname=f"net-{h}")
                try:
                    q.cmd("netdev_add", **self._netdev(h))
                except QMPError:
                    try:
                        q.cmd("closefd", fdname=f"net-{h}")
                    except QMPError:
                        pass  # netdev_add took it
                    raise
        finally:
            os.close(fd)

    def _hotplug_nic(self, server_id: str, holder: int, h: str, mac: str) -> None:
        present = self._nic_present(server_id, h)
        try:
            self._netdev_add(server_id, holder, h)
            fresh = True
        except QMPError as exc:
            if "Duplicate ID" not in str(exc):
                raise DriverError(f"QEMU cannot open the NIC's tap t{h}: {exc}") from None
            fresh = False
        if present:
            if fresh:  # the NIC lost its netdev to a detach whose eject is still pending
                self._netdev_del(server_id, h)
                raise DriverError(f"The guest has not yet released its NIC with MAC {mac} "
                                  "from an earlier detach; try again.")
            return
        if not fresh:  # left by an attach that failed half way: its tap may be stale
            self._netdev_del(server_id, h)
            try:
                self._netdev_add(server_id, holder, h)
            except QMPError as exc:
                raise DriverError(f"QEMU cannot open the NIC's tap t{h}: {exc}") from None
        try:
            self._qmp(server_id, ("device_add", {"driver": "virtio-net-pci",
                                                 "netdev": f"net-{h}", "mac": mac,
                                                 "id": f"nic-{h}", "romfile": ""}))
        except QMPError as exc:
            self._netdev_del(server_id, h)
            raise DriverError(f"Could not add the NIC to the guest: {exc}") from None

    @staticmethod
    def _netdev(h: str) -> dict[str, Any]:
        return {"type": "tap", "id": f"net-{h}", "fd": f"net-{h}"}

    def _netdev_del(self, server_id: str, h: str) -> None:
        try:
            self._qmp(server_id, ("netdev_del", {"id": f"net-{h}"}))
        except QMPError:
            pass  # already gone

    def detach_interface(self, host: str, server_id: str, mac: str) -> None:
        h, mac = nic_hex(mac), mac.lower()
        with self._lock(server_id):
            state = self._read_json(server_id, "state.json")
            pending: DriverError | None = None
            if alive(state, "qemu") is not None:
                try:
                    self._unplug_nic(server_id, h)
                except DriverError as exc:
                    # The port goes anyway (compute releases it): the NIC is cut off from
                    # it now and leaves the guest when the guest acknowledges the eject.
                    pending = exc
            holder = alive(state, "netns")
            if holder is not None:
                self._nic_links(holder, "del", [mac])
            cfg = self._read_json(server_id, "config.json")
            macs = [str(m).lower() for m in cfg.get("macs") or []]
            if mac in macs:
                cfg["macs"] = [m for m in macs if m != mac]
                self._write_json(server_id, "config.json", cfg)
            if pending is not None:
                raise pending

    def _unplug_nic(self, server_id: str, h: str) -> None:
        try:
            if self._nic_present(server_id, h):
                try:
                    self._qmp(server_id, ("device_del", {"id": f"nic-{h}"}))
                except QMPError:
                    pass
                # The guest acknowledges the ACPI eject; a paused or busy guest may not.
                deadline = time.monotonic() + UNPLUG_TIMEOUT
                while self._nic_present(server_id, h):
                    if time.monotonic() > deadline:
                        mac = ":".join(h[i:i + 2] for i in range(0, 12, 2))
                        raise DriverError(f"The guest did not release its NIC with MAC {mac} "
                                          f"within {UNPLUG_TIMEOUT} s.")
                    time.sleep(0.1)
        finally:
            # Closes the tap and takes the NIC's link down even if the eject is pending.
            self._netdev_del(server_id, h)
