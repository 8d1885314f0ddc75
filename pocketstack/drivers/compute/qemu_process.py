"""The QEMU process seen from outside: its command line, its QMP monitor, the namespace
holder script, and the probes of the host's QEMU (version, which accelerator runs guests).

Separate from qemu.py (the driver: server directories, lifecycle, volumes) because none of
this knows about servers on disk; the pure parts (qemu_argv, power_state_of) are unit
tested on their own.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
from typing import Any

from pocketstack.drivers.compute.base import (CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN,
                                              SUSPENDED)

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
# Glance disk_format -> qemu block driver (ami is a raw disk; vhd is qemu's "vpc").
QEMU_FORMATS = {"raw": "raw", "ami": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi",
                "vhd": "vpc", "vhdx": "vhdx"}
DEFAULT_APPEND = "root=/dev/vda console=ttyS0"

# The namespace holder ($1: ready marker). Runs the host's sh and ip inside the new netns.
NETNS_SCRIPT = r"""
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ip link add psbr type bridge
ip link set psbr up
ip tuntap add dev tap0 mode tap
ip link set tap0 master psbr
ip link set tap0 up
wire() {
  line=$(ip -o link show dev eth0 2>/dev/null) || return 0
  case "$line" in *" master psbr "*) ;; *) ip link set eth0 master psbr ;; esac
  mac=$(echo "$line" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
  case "$mac" in fe:*|"") ;; *) ip link set eth0 address "fe${mac#??}" ;; esac
  case "$line" in *"<"*UP*">"*) ;; *) ip link set eth0 up ;; esac
}
wire
: > "$1"
ip monitor link | while read -r _; do wire; done
"""

# A boot sector that writes 1 to isa-debug-exit (QEMU exits with status 3): does this
# accelerator run a guest at all, and how fast (nested KVM can be slower than TCG).
_PROBE_SECTOR = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]).ljust(510, b"\0") + b"\x55\xaa"


def power_state_of(status: str) -> int:
    """QMP query-status ``status`` -> Nova power state."""
    if status in ("running", "debug", "finish-migrate", "postmigrate", "prelaunch",
                  "inmigrate", "restore-vm", "save-vm", "colo"):
        return RUNNING
    if status == "paused":
        return PAUSED
    if status == "suspended":
        return SUSPENDED
    if status in ("internal-error", "io-error", "guest-panicked", "watchdog"):
        return CRASHED
    if status == "shutdown":
        return SHUTDOWN
    return NOSTATE


def qemu_argv(cfg: dict[str, Any], *, disk: str, console: str, qmp: str, pidfile: str,
              accel: str, volumes: dict[str, str] | None = None) -> list[str]:
    """The QEMU command line for a server's config (pure: unit tested)."""
    argv = [QEMU, "-name", f"ps-{cfg['id']},process=ps-qemu-{cfg['id'][:8]}",
            "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none"]
    for a in accel.split(":"):
        argv += ["-accel", a]
    argv += ["-m", str(int(cfg["memory_mb"])), "-smp", str(max(1, int(cfg["vcpus"]))),
             "-uuid", cfg["id"],
             "-chardev", f"file,id=serial0,path={console},append=on", "-serial", "chardev:serial0",
             "-qmp", f"unix:{qmp},server=on,wait=off", "-pidfile", pidfile, "-daemonize",
             "-blockdev", json.dumps({"driver": "qcow2", "node-name": "root",
                                      "file": {"driver": "file", "filename": disk}}),
             # With -kernel the firmware boots QEMU's linuxboot ROM (it takes bootindex 0).
             "-device", "virtio-blk-pci,drive=root,id=root-disk"
             + ("" if cfg.get("kernel") else ",bootindex=0")]
    if cfg.get("kernel"):
        argv += ["-kernel", cfg["kernel"], "-append", cfg.get("append") or DEFAULT_APPEND]
        if cfg.get("ramdisk"):
            argv += ["-initrd", cfg["ramdisk"]]
    for i, mac in enumerate(cfg.get("macs") or []):
        if i > 0:
            break  # the network service plugs one eth0 per namespace
        argv += ["-netdev", f"tap,id=net{i},ifname=tap{i},script=no,downscript=no",
                 "-device", f"virtio-net-pci,netdev=net{i},mac={mac},romfile="]
    for guest, host_dev in sorted((volumes or {}).items()):
        name = guest.rsplit("/", 1)[-1]
        argv += ["-blockdev", json.dumps(volume_node(name, host_dev)),
                 "-device", f"virtio-blk-pci,drive=vol-{name},id=dev-{name}"]
    return argv


def volume_node(name: str, host_dev: str) -> dict[str, Any]:
    return {"driver": "raw", "node-name": f"vol-{name}",
            "file": {"driver": "host_device", "filename": host_dev}}


class QMPError(Exception):
    def __init__(self, cls: str, desc: str) -> None:
        super().__init__(desc)
        self.cls = cls


class QMP:
    """One QMP session on a unix socket (QEMU serves one client at a time)."""

    def __init__(self, path: str, timeout: float = 5) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
            self.fh = self.sock.makefile("rwb")
            self._read()  # greeting
            self.cmd("qmp_capabilities")
        except BaseException:
            self.sock.close()
            raise

    def _read(self) -> dict[str, Any]:
        while True:
            line = self.fh.readline()
            if not line:
                raise ConnectionError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def cmd(self, name: str, **args: Any) -> Any:
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        self.fh.write(json.dumps(msg).encode() + b"\n")
        self.fh.flush()
        reply = self._read()
        if "error" in reply:
            raise QMPError(reply["error"].get("class", ""), reply["error"].get("desc", ""))
        return reply.get("return")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "QMP":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_version() -> int:
    """QEMU's version as Nova reports it (7.2.22 -> 7002022); 1 if unknown."""
    try:
        out = subprocess.run([QEMU, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()
        nums = out[out.index("version") + 1].split("-")[0].split(".")
        major, minor, micro = (int(x) for x in (nums + ["0", "0"])[:3])
        return major * 1000000 + minor * 1000 + micro
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return 1


def probe(accel: str, timeout: float) -> float | None:
    """Seconds a tiny guest took to run and exit under ``accel``; None if it did not."""
    with tempfile.NamedTemporaryFile(prefix="ps-qemu-probe-", suffix=".img") as img:
        img.write(_PROBE_SECTOR)
        img.flush()
        t0 = time.monotonic()
        try:
            res = subprocess.run(
                [QEMU, "-accel", accel, "-nodefaults", "-no-user-config", "-display",
                 "none", "-m", "16", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                 "-drive", f"file={img.name},format=raw,if=ide,snapshot=on"],
                capture_output=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return time.monotonic() - t0 if res.returncode == 3 else None
