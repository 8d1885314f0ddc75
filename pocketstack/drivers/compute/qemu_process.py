"""The QEMU process seen from outside: its command line (its sandbox, the fds it inherits
instead of host paths, and the checks on every tenant value in it), its QMP monitor, the
namespace holder script, and the probes of the host's QEMU (version, which accelerator
runs guests).

Separate from qemu.py (the driver: server directories, lifecycle, volumes) because none of
this knows about servers on disk; the pure parts (qemu_argv, power_state_of) are unit
tested on their own.
"""

from __future__ import annotations

import array
import json
import re
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from pocketstack.drivers.compute.base import (CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN,
                                              SUSPENDED, DriverError)

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"
# Glance disk_format -> qemu block driver (ami is a raw disk; vhd is qemu's "vpc").
QEMU_FORMATS = {"raw": "raw", "ami": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi",
                "vhd": "vpc", "vhdx": "vhdx"}
# tty0 too, so the VNC/SPICE screen shows the boot; the last console= (ttyS0) is the
# guest's /dev/console, the serial console shell and console.log.
DEFAULT_APPEND = "root=/dev/vda console=tty0 console=ttyS0"

# Each port of a server is a link ethN in its namespace (the network service plugs it, with
# the port's MAC) and a guest NIC with that same MAC (dnsmasq hands out the fixed IP by MAC).
# They meet on a bridge b<hex12> with a tap t<hex12> that QEMU opens by name, both named
# from the port's MAC rather than from N: after detaches and replugs the ethN order need not
# match the guest's NIC order, the MAC is what ties a NIC to its port. ethN itself carries a
# different MAC (fe + the port's MAC[2:], fc if the port's begins with fe) because a bridge
# would keep frames for its own port's MAC to itself; the port's MAC is kept as the link's
# alias so the rewrite can be undone in thought (which bridge this ethN belongs on).
#
# ps_wire puts every eth* on its port's bridge, but only if that bridge exists: the driver
# creates bridges and taps (ps_sync before QEMU starts, for the boot NICs and dropping
# those of ports the server no longer has; ps_add in attach_interface for hot-plugged ones)
# and removes them (ps_del, in detach_interface). Were the holder to
# create them, it would re-create what a detach just removed while the port is still plugged
# (the port is unplugged right after), leaking a bridge and a tap per detach.
NIC_FUNCS = r"""
set -f
ps_wire() {
  links=$(ip -o link show) || return 0
  echo "$links" | while IFS= read -r line; do
    set -- $line
    name=${2%:}; name=${name%@*}
    case "$name" in eth*) ;; *) continue ;; esac
    mac=${line#*link/ether }; mac=${mac%% *}
    case "$line" in *" alias "*) orig=${line##* alias }; orig=${orig%% *} ;; *) orig=$mac ;; esac
    hex=$(echo "$orig" | tr -d :)
    case "$links" in *": b$hex: "*) ;; *) continue ;; esac
    [ "$orig" = "$mac" ] && ip link set "$name" alias "$orig"
    case "$orig" in fe:*) want="fc${orig#??}" ;; *) want="fe${orig#??}" ;; esac
    [ "$mac" = "$want" ] || ip link set "$name" address "$want"
    case "$line" in *" master b$hex "*) ;; *) ip link set "$name" master "b$hex" ;; esac
    case "$line" in *"<UP,"*|*",UP,"*|*",UP>"*) ;; *) ip link set "$name" up ;; esac
  done
}
ps_add() {
  for hex in "$@"; do
    ip link show dev "b$hex" >/dev/null 2>&1 || ip link add "b$hex" type bridge || \
      ip link show dev "b$hex" >/dev/null || return 1
    ip link show dev "t$hex" >/dev/null 2>&1 || ip tuntap add dev "t$hex" mode tap || \
      ip link show dev "t$hex" >/dev/null || return 1
    ip link set "t$hex" master "b$hex" && ip link set "t$hex" up && \
      ip link set "b$hex" up || return 1
  done
  ps_wire
}
ps_sync() {  # before QEMU starts: the bridges and taps of these ports and no others
  keep=" $* "
  ip -o link show | while IFS= read -r line; do
    set -- $line
    name=${2%:}; name=${name%@*}
    case "$name" in
      [bt][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]\
[0-9a-f][0-9a-f]) ;;
      *) continue ;;
    esac
    case "$keep" in *" ${name#?} "*) ;; *) ip link del "$name" 2>/dev/null ;; esac
  done
  ps_add "$@"
}
ps_del() {
  for hex in "$@"; do
    ip link del "t$hex" 2>/dev/null
    ip link del "b$hex" 2>/dev/null
  done
  for hex in "$@"; do
    ! ip link show dev "t$hex" >/dev/null 2>&1 && ! ip link show dev "b$hex" >/dev/null 2>&1 \
      || return 1
  done
}
"""

# The namespace holder ($1: ready marker). Runs the host's sh and ip inside the new netns and
# wires each port plugged into it (also the replugs after a stop/start, with no driver call).
NETNS_SCRIPT = NIC_FUNCS + r"""
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6
echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6
ip link set lo up
ps_wire
: > "$1"
ip monitor link | while read -r _; do ps_wire; done
"""
# Bumped when NETNS_SCRIPT changes incompatibly: a stopped server's older holder is replaced
# at its next start (its namespace goes with it; the worker plugs the ports again after a
# start). 1 was the single psbr/tap0/eth0 holder.
NETNS_VERSION = 2

# Run by the driver in a server's namespace: "$1" add|del|sync, then the MACs' hex12.
NIC_SCRIPT = NIC_FUNCS + r"""
op=$1; shift
case "$op" in add) ps_add "$@" ;; del) ps_del "$@" ;; sync) ps_sync "$@" ;; *) exit 2 ;; esac
"""


def nic_hex(mac: str) -> str:
    """A MAC's 12 hex digits, lower case: the suffix of its bridge, tap, netdev and device
    names (t<hex12> fits IFNAMSIZ). DriverError if ``mac`` is not one."""
    parts = str(mac).lower().split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p)
                                  for p in parts):
        raise DriverError(f"invalid MAC address {mac!r}")
    return "".join(parts)


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


# QEMU's own seccomp filter: no obsolete syscalls, no set*id/setsid, no fork/exec, no
# scheduler/affinity/priority changes. spawn=deny rules out -daemonize (it forks, and its
# setsid is an elevateprivileges syscall): the driver starts QEMU in a session of its own.
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
# Guest disk formats that may have a backing file of their own (-blockdev "backing": null).
COW_FORMATS = ("qcow2", "vmdk")
MAX_CMDLINE = 2048  # x86 Linux's COMMAND_LINE_SIZE
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,254}")
_DEVICE = re.compile(r"/dev/([a-z][a-z0-9]{0,15})")


def safe_id(value: Any, what: str) -> str:
    """An id that becomes a host file name or part of a QEMU option (image ids of bases,
    server ids): letters, digits, ``_.-``, not starting with a dot."""
    if not isinstance(value, str) or not _SAFE_ID.fullmatch(value) or ".." in value:
        raise DriverError(f"invalid {what} {value!r}")
    return value


def guest_device_name(guest_device: Any) -> str:
    """``/dev/vdb`` -> ``vdb``: the name in a volume's node, device and fd set ids (plain
    ASCII, so it can never close or add a QEMU option)."""
    m = _DEVICE.fullmatch(guest_device) if isinstance(guest_device, str) else None
    if m is None:
        raise DriverError(f"invalid guest device name {guest_device!r}")
    return m.group(1)


def kernel_cmdline(value: Any) -> str:
    """An image's ``os_command_line`` as -append passes it to the guest kernel: one argv
    item, never parsed by QEMU, so commas and dashes are inert; control characters
    (a newline would end the line in the boot protocol) and over-long lines are refused."""
    if not isinstance(value, str):
        raise DriverError("The image's os_command_line must be a string.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise DriverError("The image's os_command_line contains control characters "
                          "(a newline, tab or NUL); it must be one line of text.")
    if len(value.encode()) >= MAX_CMDLINE:
        raise DriverError(f"The image's os_command_line is {len(value.encode())} bytes; "
                          f"the kernel takes fewer than {MAX_CMDLINE}.")
    return value


@dataclass
class BootFds:
    """File descriptors the driver opened (as root) for QEMU to inherit: QEMU, running as
    the server's unprivileged user, opens no host path by name. Block devices and the
    console log go through fd sets (-add-fd, /dev/fdset/N), the kernel and ramdisk through
    /proc/self/fd/N, the QMP socket is a listening socket, taps are open tap fds."""
    disk: int
    base: int
    console: int
    qmp: int
    kernel: int | None = None
    ramdisk: int | None = None
    taps: dict[str, int] = field(default_factory=dict)  # MAC hex12 -> tap fd
    volumes: dict[str, int] = field(default_factory=dict)  # guest device -> block device fd
    # The server's console directory (an O_PATH fd, qemu_console.py): QEMU binds its VNC,
    # SPICE and serial sockets in it. None: no remote consoles, the serial port a file.
    console_dir: int | None = None
    config_drive: int | None = None  # the config drive's ISO, read-only (fd set 4)
    # In rescue (qemu_rescue.py): the server's own disk and its base (fd sets 5, 6).
    rescue_disk: int | None = None
    rescue_base: int | None = None
    rescue_base_format: str = "raw"

    def all(self) -> list[int]:
        return [f for f in (self.disk, self.base, self.console, self.qmp, self.kernel,
                            self.ramdisk, self.console_dir, self.config_drive,
                            self.rescue_disk, self.rescue_base,
                            *self.taps.values(),
                            *self.volumes.values())
                if f is not None]


def root_node(base_format: str, disk: str, base: str) -> dict[str, Any]:
    """The server's disk: its qcow2 overlay over the image's base, the backing chain
    given here rather than read from the overlay's header (which QEMU can write), and the
    base's own header never naming another file."""
    if base_format not in QEMU_FORMATS.values():
        raise DriverError(f"unknown disk format {base_format!r}")
    backing: dict[str, Any] = {"driver": base_format, "node-name": "base", "read-only": True,
                               "file": {"driver": "file", "filename": base}}
    if base_format in COW_FORMATS:
        backing["backing"] = None
    return {"driver": "qcow2", "node-name": "root",
            "file": {"driver": "file", "filename": disk}, "backing": backing}


def qemu_argv(cfg: dict[str, Any], fds: BootFds, *, accel: str) -> list[str]:
    """The QEMU command line for a server's config and the fds it inherits (pure: unit
    tested). Every value from a tenant (kernel command line, MACs, device names) is its own
    argv item or checked to be plain; no shell is involved."""
    sid = safe_id(cfg["id"], "server id")
    argv = [QEMU, "-name", f"ps-{sid},process=ps-qemu-{sid[:8]}",
            "-sandbox", SANDBOX, "-nodefaults", "-no-user-config", "-display", "none"]
    argv += console_args(fds)
    for a in accel.split(":"):
        if a not in ("kvm", "tcg"):
            raise DriverError(f"unknown accelerator {a!r}")
        argv += ["-accel", a]
    argv += ["-m", str(int(cfg["memory_mb"])), "-smp", str(max(1, int(cfg["vcpus"]))),
             "-uuid", sid,
             "-add-fd", f"fd={int(fds.disk)},set=1,opaque=root",
             "-add-fd", f"fd={int(fds.base)},set=2,opaque=base",
             "-add-fd", f"fd={int(fds.console)},set=3,opaque=console",
             "-serial", "chardev:serial0",
             "-chardev", f"socket,id=qmp,fd={int(fds.qmp)},server=on,wait=off",
             "-mon", "chardev=qmp,mode=control",
             "-blockdev", json.dumps(root_node(str(cfg["base_format"]), "/dev/fdset/1",
                                               "/dev/fdset/2")),
             # With -kernel the firmware boots QEMU's linuxboot ROM (it takes bootindex 0).
             "-device", "virtio-blk-pci,drive=root,id=root-disk"
             + ("" if cfg.get("kernel") else ",bootindex=0")]
    if cfg.get("kernel"):
        if fds.kernel is None:
            raise DriverError("no kernel fd")
        argv += ["-kernel", f"/proc/self/fd/{int(fds.kernel)}",
                 "-append", kernel_cmdline(cfg.get("append") or DEFAULT_APPEND)]
        if cfg.get("ramdisk"):
            if fds.ramdisk is None:
                raise DriverError("no ramdisk fd")
            argv += ["-initrd", f"/proc/self/fd/{int(fds.ramdisk)}"]
    # Every port, in order (the guest's eth0, eth1, ... at boot), named by MAC (NIC_FUNCS).
    for mac in dict.fromkeys(str(m).lower() for m in cfg.get("macs") or []):
        h = nic_hex(mac)
        argv += ["-netdev", f"tap,id=net-{h},fd={int(fds.taps[h])}", "-device", nic_device(mac)]
    if fds.config_drive is not None:
        # A CD-ROM on the IDE bus (/dev/sr0, label config-2), as Nova's libvirt driver
        # attaches it: the guest's virtio disk names (vda, vdb for volumes) stay as they are.
        argv += ["-add-fd", f"fd={int(fds.config_drive)},set=4,opaque=config-drive",
                 "-blockdev", json.dumps({"driver": "raw", "node-name": "config-drive",
                                          "read-only": True,
                                          "file": {"driver": "file", "read-only": True,
                                                   "filename": "/dev/fdset/4"}}),
                 "-device", "ide-cd,drive=config-drive,id=config-drive"]
    from pocketstack.drivers.compute.qemu_rescue import rescue_disk_args

    argv += rescue_disk_args(fds)  # the own disk, second, while in rescue
    for n, (guest, fd) in enumerate(sorted(fds.volumes.items())):
        name = guest_device_name(guest)
        argv += ["-add-fd", f"fd={int(fd)},set={10 + n},opaque=vol-{name}",
                 "-blockdev", json.dumps(volume_node(name, f"/dev/fdset/{10 + n}")),
                 "-device", f"virtio-blk-pci,drive=vol-{name},id=dev-{name}"]
    return argv


def console_args(fds: BootFds) -> list[str]:
    """The display and serial port. With a console directory: a standard VGA (what both
    VNC and SPICE show; no measurable cost to boot time or idle CPU here), VNC and SPICE
    on unix sockets in it with no password (only root reaches them), and the serial port
    a socket server there whose output QEMU also appends to console.log (fd set 3),
    connected client or not. Without: no display, the serial port the console log."""
    if fds.console_dir is None:
        return ["-vga", "none",
                "-chardev", "file,id=serial0,path=/dev/fdset/3,append=on"]
    d = f"/proc/self/fd/{int(fds.console_dir)}"
    return ["-vga", "std",
            "-vnc", f"unix:{d}/vnc.sock",
            "-spice", f"unix=on,addr={d}/spice.sock,disable-ticketing=on",
            "-chardev", f"socket,id=serial0,path={d}/serial.sock,server=on,wait=off,"
                        "logfile=/dev/fdset/3,logappend=on"]


def nic_device(mac: str) -> str:
    """The -device value of a port's NIC (device_add takes the same properties)."""
    h = nic_hex(mac)
    return f"virtio-net-pci,netdev=net-{h},mac={mac.lower()},id=nic-{h},romfile="


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
        return self.cmd_fds(name, [], **args)

    def cmd_fds(self, name: str, fds: list[int], **args: Any) -> Any:
        """``name`` with ``fds`` passed along (SCM_RIGHTS: getfd, add-fd)."""
        msg: dict[str, Any] = {"execute": name}
        if args:
            msg["arguments"] = args
        data = json.dumps(msg).encode() + b"\n"
        if fds:
            sent = self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", fds))])
            if sent < len(data):
                self.sock.sendall(data[sent:])
        else:
            self.fh.write(data)
            self.fh.flush()
        reply = self._read()
        if "error" in reply:
            raise QMPError(reply["error"].get("class", ""), reply["error"].get("desc", ""))
        return reply.get("return")

    def close(self) -> None:
        """Really closes the connection (the file object holds the socket open too): QEMU
        serves one client at a time, and a session kept alive by a traceback's reference
        would make the next one wait for it."""
        for f in (getattr(self, "fh", None), self.sock):
            try:
                if f is not None:
                    f.close()
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
