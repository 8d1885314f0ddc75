"""VM remote consoles at the driver (root, real QEMU): the qemu compute driver boots the
busybox ami (Debian kernel + busybox initramfs) and its console_socket() paths speak VNC
(RFB 3.8 with security type None, a framebuffer update on request), SPICE (a link reply)
and the serial port (a command typed into the guest's shell answers; console.log keeps
logging). Garbage and clients that leave mid-frame leave the VM running; a new driver
object (a pocketstack restart) finds the same sockets; a stop makes them unavailable and
a start makes them again; QEMU's seccomp sandbox stays on.

No cloud: the driver is used directly, with its own data dir (/tmp/ps-qcons-*), the
machine-wide idmap registry (so its QEMU user never collides with another test's) and TCG.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import struct
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketstack.drivers.compute.base import RUNNING, ConsoleUnavailable, InstanceSpec
from pocketstack.drivers.compute.qemu import QemuDriver

pytestmark = pytest.mark.system

IMAGES = Path("/var/cache/pocketstack/test-images")
if os.geteuid() != 0:
    pytest.skip("VMs need root", allow_module_level=True)
if not shutil.which("qemu-system-x86_64") or not shutil.which("qemu-img"):
    pytest.skip("qemu-system-x86_64/qemu-img not installed", allow_module_level=True)
if not all((IMAGES / f).is_file() for f in ("vmlinuz", "initramfs.gz", "disk.raw")):
    pytest.skip(f"no test images in {IMAGES} (scripts/build-test-images --with-kernel)",
                allow_module_level=True)

BOOTED = b"pocketstack-busybox: booted"


def _driver(data: Path) -> QemuDriver:
    d = QemuDriver(SimpleNamespace(compute=SimpleNamespace(qemu_accel="tcg"), data_dir=data))
    d.init_host()
    return d


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        assert chunk, f"connection closed after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


def connect(path: str, timeout: float = 15) -> socket.socket:
    """A connected client; retried while QEMU's backlog of one is full (EAGAIN)."""
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect(path)
            return s
        except BlockingIOError:
            s.close()
            assert time.monotonic() < deadline, f"{path}: backlog full for 10 s"
            time.sleep(0.02)


def rfb_handshake(path: str) -> tuple[socket.socket, int, int]:
    """RFB 3.8 up to ServerInit with security type None; the open socket and the
    framebuffer's size."""
    s = connect(path)
    assert _recv_exact(s, 12) == b"RFB 003.008\n"
    s.sendall(b"RFB 003.008\n")
    (n,) = _recv_exact(s, 1)
    assert n > 0, _recv_exact(s, 4)
    types = _recv_exact(s, n)
    assert 1 in types, f"security types offered: {list(types)}"
    s.sendall(b"\x01")
    assert _recv_exact(s, 4) == b"\0\0\0\0"  # SecurityResult OK
    s.sendall(b"\x01")  # ClientInit, shared
    w, h = struct.unpack(">HH", _recv_exact(s, 4))
    _recv_exact(s, 16)  # pixel format
    (name_len,) = struct.unpack(">I", _recv_exact(s, 4))
    _recv_exact(s, name_len)
    return s, w, h


def rfb_first_update(s: socket.socket, w: int, h: int) -> tuple[int, int, int, int, int]:
    """Ask for the whole screen; the first rectangle of the FramebufferUpdate that comes."""
    s.sendall(struct.pack(">BxH", 2, 1) + struct.pack(">i", 0))  # SetEncodings: Raw
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    while True:
        (kind,) = _recv_exact(s, 1)
        if kind == 0:  # FramebufferUpdate
            _, nrect = struct.unpack(">BH", _recv_exact(s, 3))
            x, y, rw, rh, enc = struct.unpack(">HHHHi", _recv_exact(s, 12))
            return nrect, x, y, rw, rh
        if kind == 2:  # Bell
            continue
        if kind == 1:  # SetColourMapEntries
            _, _, n = struct.unpack(">BHH", _recv_exact(s, 5))
            _recv_exact(s, 6 * n)
            continue
        if kind == 3:  # ServerCutText
            _recv_exact(s, 3)
            (n,) = struct.unpack(">I", _recv_exact(s, 4))
            _recv_exact(s, n)
            continue
        raise AssertionError(f"unexpected RFB message type {kind}")


def spice_link(path: str) -> bytes:
    """A SpiceLinkMess for the main channel; the 16-byte header of the server's reply."""
    s = connect(path)
    try:
        caps = struct.pack("<I", 0b101)  # common caps: protocol auth selection, mini header
        body = struct.pack("<IBBIII", 0, 1, 0, 1, 0, 18) + caps
        s.sendall(b"REDQ" + struct.pack("<III", 2, 2, len(body)) + body)
        return _recv_exact(s, 16)
    finally:
        s.close()


def serial_run(path: str, command: str, want: str, timeout: float = 30) -> str:
    """Type ``command`` into the serial console; everything read until ``want`` shows."""
    s = connect(path, timeout=1)
    out = b""
    try:
        s.sendall(b"\n" + command.encode() + b"\n")
        deadline = time.monotonic() + timeout
        while want.encode() not in out:
            assert time.monotonic() < deadline, f"no {want!r} on the serial console: {out[-800:]!r}"
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                s.sendall(b"\n")
                continue
            assert chunk, f"serial console closed: {out[-800:]!r}"
            out += chunk
    finally:
        s.close()
    return out.decode(errors="replace")


@pytest.fixture(scope="module")
def vm():
    base = Path(tempfile.mkdtemp(prefix="ps-qcons-"))
    drv = _driver(base / "data")
    spec = InstanceSpec(id=str(uuid.uuid4()), name="c", hostname="c", host="h",
                        vcpus=1, memory_mb=256, root_gb=1, image_id="ps-qcons-disk",
                        image_path=IMAGES / "disk.raw", disk_format="ami",
                        container_format="ami", kernel_path=IMAGES / "vmlinuz",
                        ramdisk_path=IMAGES / "initramfs.gz",
                        image_properties={"kernel_id": "ps-qcons-k", "ramdisk_id": "ps-qcons-r"})
    t0 = time.monotonic()
    try:
        drv.spawn(spec)
        log = drv._dir(spec.id) / "console.log"
        deadline = time.monotonic() + 120
        while BOOTED not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, log.read_bytes()[-2000:]
            time.sleep(0.2)
        print(f"booted in {time.monotonic() - t0:.1f} s")
        yield SimpleNamespace(drv=drv, spec=spec, base=base, id=spec.id)
    finally:
        drv.destroy("h", spec.id)
        drv.purge()
        shutil.rmtree(base, ignore_errors=True)


def test_vnc_handshake_offers_none_and_sends_a_framebuffer_update(vm):
    path = vm.drv.console_socket("h", vm.id, "vnc")
    s, w, h = rfb_handshake(path)
    try:
        assert (w, h) >= (320, 200), (w, h)
        nrect, x, y, rw, rh = rfb_first_update(s, w, h)
        assert nrect >= 1 and rw > 0 and rh > 0 and x + rw <= w and y + rh <= h
    finally:
        s.close()


def test_spice_answers_the_link_message(vm):
    reply = spice_link(vm.drv.console_socket("h", vm.id, "spice"))
    magic, major, minor, size = struct.unpack("<4sIII", reply)
    assert (magic, major) == (b"REDQ", 2) and size > 0


def test_serial_console_runs_a_command_and_the_log_keeps_it(vm):
    path = vm.drv.console_socket("h", vm.id, "serial")
    token = os.urandom(4).hex()
    out = serial_run(path, f"echo ps-serial-{token}-$((6*7))", f"ps-serial-{token}-42")
    assert f"ps-serial-{token}-42" in out
    # console.log (the console output API) got the same bytes while the client was there
    deadline = time.monotonic() + 5
    while f"ps-serial-{token}-42" not in (log := vm.drv.console_output("h", vm.id)):
        assert time.monotonic() < deadline, log[-800:]
        time.sleep(0.1)
    # and once it left, the next client gets the shell too
    out = serial_run(path, f"echo again-{token}-$((2+3))", f"again-{token}-5")
    assert f"again-{token}-5" in out


def test_sockets_are_in_a_directory_only_the_qemu_user_and_root_reach(vm):
    state = json.loads((vm.drv._dir(vm.id) / "state.json").read_text())
    d = vm.drv.console_dir(vm.id)
    st = os.lstat(d)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == state["qemu_uid"] != 0
    for name in ("vnc.sock", "spice.sock", "serial.sock"):
        sst = os.lstat(d / name)
        assert stat.S_ISSOCK(sst.st_mode) and sst.st_uid == state["qemu_uid"]
    # no TCP listener of QEMU's: its sockets are unix ones only
    pid = state["qemu_pid"]
    inodes = set()
    for f in os.listdir(f"/proc/{pid}/fd"):
        try:  # a client's fd may close meanwhile (console_socket's probe, the last test's)
            link = os.readlink(f"/proc/{pid}/fd/{f}")
        except FileNotFoundError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        # QEMU runs in the server's network namespace: read that namespace's tables
        with open(f"/proc/{pid}/net/{Path(table).name}") as fh:
            listening = [ln.split()[9] for ln in fh.readlines()[1:] if ln.split()[3] == "0A"]
        assert not inodes & set(listening), f"QEMU listens on TCP: {table}"
    with open(f"/proc/{pid}/status") as fh:
        assert re.search(r"^Seccomp:\s+2$", fh.read(), re.M), "QEMU's sandbox is off"


def test_garbage_and_clients_leaving_mid_frame_leave_the_vm_running(vm):
    path = vm.drv.console_socket("h", vm.id, "vnc")
    for _ in range(3):  # garbage instead of a version string
        s = connect(path, timeout=5)
        s.sendall(os.urandom(8192))
        s.close()
    s, w, h = rfb_handshake(path)  # garbage after the handshake
    s.sendall(b"\xff" * 4096)
    s.close()
    s, w, h = rfb_handshake(path)  # asks for a frame and leaves before reading it
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, w, h))
    s.close()
    s = connect(vm.drv.console_socket("h", vm.id, "spice"))  # half a SPICE header
    s.sendall(b"REDQ\x02\0")
    s.close()
    time.sleep(0.5)
    assert vm.drv.get_power_state("h", vm.id) == RUNNING
    s, w, h = rfb_handshake(path)
    try:
        assert rfb_first_update(s, w, h)[0] >= 1
    finally:
        s.close()
    token = os.urandom(3).hex()
    serial_run(vm.drv.console_socket("h", vm.id, "serial"), f"echo alive-{token}",
               f"alive-{token}")


def test_unknown_protocol_is_unavailable_with_a_reason(vm):
    with pytest.raises(ConsoleUnavailable, match="no rdp console"):
        vm.drv.console_socket("h", vm.id, "rdp")
    with pytest.raises(ConsoleUnavailable, match="not on this host"):
        vm.drv.console_socket("h", "no-such-server", "vnc")
    vm.drv.console_resize("h", vm.id, 40, 120)  # a no-op for a serial port


def test_a_restarted_driver_finds_the_sockets(vm):
    again = _driver(vm.base / "data")
    path = again.console_socket("h", vm.id, "vnc")
    assert path == vm.drv.console_socket("h", vm.id, "vnc")
    s, w, h = rfb_handshake(path)
    s.close()
    assert spice_link(again.console_socket("h", vm.id, "spice"))[:4] == b"REDQ"


def test_stopped_server_has_no_console_and_a_start_makes_them_again(vm):
    vm.drv.power_off("h", vm.id, timeout=0)
    for proto in ("vnc", "spice", "serial"):
        with pytest.raises(ConsoleUnavailable, match="not running"):
            vm.drv.console_socket("h", vm.id, proto)
    log = vm.drv._dir(vm.id) / "console.log"
    before = log.read_bytes().count(BOOTED)
    vm.drv.power_on(vm.spec)
    deadline = time.monotonic() + 120
    while log.read_bytes().count(BOOTED) <= before:
        assert time.monotonic() < deadline, log.read_bytes()[-2000:]
        time.sleep(0.2)
    s, w, h = rfb_handshake(vm.drv.console_socket("h", vm.id, "vnc"))
    s.close()
    token = os.urandom(3).hex()
    serial_run(vm.drv.console_socket("h", vm.id, "serial"), f"echo back-{token}",
               f"back-{token}")
