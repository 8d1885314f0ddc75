"""Container consoles at the driver (root, real runc): the container compute driver boots
the busybox test image on a pseudo-terminal whose master its console keeper holds;
console_socket('serial') is a session with the image's console shell (a command typed in
answers), console_resize changes what ``stty size`` says, ^C interrupts the shell's
command and not the server, two clients share the console, console.log keeps logging
(and rotates: a guest flooding its console leaves at most two 1 MiB files), a restarted
driver finds the keeper, a dead keeper is said so, stop and delete end it, and the keeper
runs unprivileged.

No cloud: the driver is used directly, with its own data dir (/tmp/ps-ccons-*) and the
machine-wide idmap registry (its uid ranges never collide with another test's).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketstack.config import ComputeSettings
from pocketstack.drivers.compute._host import alive
from pocketstack.drivers.compute.base import RUNNING, SHUTDOWN, ConsoleUnavailable, InstanceSpec
from pocketstack.drivers.compute.container import ContainerDriver
from pocketstack.drivers.compute.container_console import read_log

pytestmark = pytest.mark.system

ROOTFS = Path("/var/cache/pocketstack/test-images/rootfs.tar")
if os.geteuid() != 0 or not shutil.which("runc"):
    pytest.skip("container servers need root and runc", allow_module_level=True)
if not ROOTFS.is_file():
    pytest.skip(f"no {ROOTFS} (scripts/build-test-images)", allow_module_level=True)
with tarfile.open(ROOTFS) as _t:
    _init = _t.extractfile("sbin/init").read()  # type: ignore[union-attr]
if b"setsid -c" not in _init:
    pytest.skip("the test image's init serves no shell on its console (rebuild it: "
                "scripts/build-test-images)", allow_module_level=True)


def _driver(data: Path) -> ContainerDriver:
    d = ContainerDriver(SimpleNamespace(compute=ComputeSettings(), data_dir=data))
    d.init_host()
    return d


class Console:
    """One client session on the console socket."""

    def __init__(self, path: str) -> None:
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(0.5)
        self.s.connect(path)
        self.out = b""

    def send(self, data: bytes) -> None:
        self.s.sendall(data)

    def expect(self, pattern: bytes, timeout: float = 20, poke: bytes | None = None) -> bytes:
        """Read until ``pattern`` (a regex) matches what came since the last match."""
        deadline = time.monotonic() + timeout
        while not (m := re.search(pattern, self.out)):
            assert time.monotonic() < deadline, f"no {pattern!r} on the console: {self.out[-1500:]!r}"
            try:
                chunk = self.s.recv(65536)
            except socket.timeout:
                if poke:
                    self.send(poke)
                continue
            assert chunk, f"console closed: {self.out[-1500:]!r}"
            self.out += chunk
        seen, self.out = self.out[:m.end()], self.out[m.end():]
        return seen

    def run(self, command: str, want: bytes, timeout: float = 20) -> bytes:
        self.send(command.encode() + b"\n")
        return self.expect(want, timeout)

    def close(self) -> None:
        self.s.close()


@pytest.fixture(scope="module")
def ctr():
    base = Path(tempfile.mkdtemp(prefix="ps-ccons-"))
    drv = _driver(base / "data")
    spec = InstanceSpec(id=str(uuid.uuid4()), name="c", hostname="ccons", host="h", vcpus=1,
                        memory_mb=128, root_gb=1, image_id="ps-ccons-img", image_path=ROOTFS)
    try:
        t0 = time.monotonic()
        drv.spawn(spec)
        print(f"spawned in {time.monotonic() - t0:.2f} s")
        c = Console(drv.console_socket("h", spec.id, "serial"))
        c.expect(rb"# ", poke=b"\n")  # the console shell's prompt
        c.close()
        yield SimpleNamespace(drv=drv, spec=spec, base=base, id=spec.id)
    finally:
        drv.destroy("h", spec.id)
        drv.lxcfs.stop()  # the driver's lxcfs (started with the server) goes with the test
        shutil.rmtree(base, ignore_errors=True)


def _token() -> str:
    return os.urandom(4).hex()


def test_a_command_typed_into_the_console_answers(ctr):
    c = Console(ctr.drv.console_socket("h", ctr.id, "serial"))
    try:
        t = _token()
        c.run(f"echo hello-{t}-$((6*7)) $RANDOM", rf"hello-{t}-42 \d+".encode())
        c.run("id -u; hostname", rb"\r\n0\r\nccons\r\n")
    finally:
        c.close()
    # the console log (os-getConsoleOutput) has the boot and the session, lines with \n
    out = ctr.drv.console_output("h", ctr.id)
    assert "pocketstack-busybox: up" in out and f"hello-{t}-42" in out and "\r\n" not in out


def test_resize_changes_the_terminal_size_the_guest_sees(ctr):
    c = Console(ctr.drv.console_socket("h", ctr.id, "serial"))
    try:
        ctr.drv.console_resize("h", ctr.id, 33, 101)
        c.run("stty size", rb"\r\n33 101\r\n")
        ctr.drv.console_resize("h", ctr.id, 50, 200)
        c.run("stty size", rb"\r\n50 200\r\n")
    finally:
        c.close()


def test_ctrl_c_interrupts_the_command_not_the_server(ctr):
    """The console is the controlling terminal of the session on it, not of the server's
    init: ^C signals the shell's foreground job only (the test image's init runs login on
    the console, which sets SIGINT back to its default for the shell)."""
    c = Console(ctr.drv.console_socket("h", ctr.id, "serial"))
    try:
        c.expect(rb"root@ccons:~# ", poke=b"\n")
        c.run("sleep 300", rb"sleep 300\r\n")
        time.sleep(0.5)
        c.send(b"\x03")
        t = _token()
        c.send(f"echo after-{t}\n".encode())
        c.expect(f"\r\nafter-{t}\r\n".encode(), timeout=10)
        assert ctr.drv.get_power_state("h", ctr.id) == RUNNING
    finally:
        c.close()


def test_two_clients_share_the_console(ctr):
    path = ctr.drv.console_socket("h", ctr.id, "serial")
    a, b = Console(path), Console(path)
    try:
        t = _token()
        a.run(f"echo shared-{t}-$((1+1))", f"shared-{t}-2".encode())
        b.expect(f"shared-{t}-2".encode())  # b sees what a's command printed
        b.run(f"echo from-b-{t}-$((2+2))", f"from-b-{t}-4".encode())
        a.expect(f"from-b-{t}-4".encode())
    finally:
        a.close()
        b.close()


def test_keeper_is_unprivileged_and_sockets_are_roots(ctr):
    state = ctr.drv._state(ctr.id)
    pid = alive(state, "keeper")
    assert pid
    with open(f"/proc/{pid}/status") as fh:
        status = fh.read()
    uids = re.search(r"^Uid:\s+(.*)$", status, re.M).group(1).split()
    base = ctr.drv._idmap_record(ctr.id)["base"]
    assert set(uids) == {str(base)}, status
    assert re.search(r"^Gid:\s+(\d+)\s+\1\s+\1\s+\1$", status, re.M).group(1) == str(base)
    assert re.search(r"^Groups:\s*$", status, re.M), status
    assert re.search(r"^CapEff:\s+0+$", status, re.M) and re.search(r"^NoNewPrivs:\s+1$",
                                                                      status, re.M)
    for p in ctr.drv.console_paths(ctr.id).values():
        st = os.lstat(p)
        assert (st.st_uid, st.st_mode & 0o777) == (0, 0o600)
    with pytest.raises(ConsoleUnavailable, match="no vnc console"):
        ctr.drv.console_socket("h", ctr.id, "vnc")


def test_garbage_on_the_console_and_control_sockets_leaves_the_server_running(ctr):
    path = ctr.drv.console_socket("h", ctr.id, "serial")
    c = Console(path)
    # no line end, no EOF, no ^S (stopped output with a full input buffer waits for the
    # guest to read, as on a real terminal)
    junk = bytes(b for b in os.urandom(20000) if b not in b"\r\n\x04\x13")
    c.send(junk)
    c.close()  # gone mid-line
    ctl = ctr.drv.console_paths(ctr.id)["console.ctl"]
    for req in (b"resize 1 2 3\n", b"\xff" * 300, b"resize 70000 5\n"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(ctl))
        s.sendall(req)
        s.close()
    time.sleep(0.5)
    assert ctr.drv.get_power_state("h", ctr.id) == RUNNING
    c = Console(path)
    try:
        # ^Q: output on again (the junk had ^S in it), ^C: the half-typed junk line goes
        c.send(b"\x11\x03")
        time.sleep(0.3)
        c.send(b"\x11\x03")
        t = _token()
        c.run(f"echo clean-{t}-$((3*3))", f"clean-{t}-9".encode())
    finally:
        c.close()


def test_a_flood_is_rotated_and_a_client_that_does_not_read_skips_output(ctr):
    path = ctr.drv.console_socket("h", ctr.id, "serial")
    idle = Console(path)  # reads nothing during the flood: skips output, never waited for
    c = Console(path)
    try:
        t = _token()
        c.send(f"head -c 3000000 /dev/zero | tr '\\0' x; echo; echo flood-{t}-done\n".encode())
        c.expect(f"\r\nflood-{t}-done\r\n".encode(), timeout=60)
    finally:
        c.close()
    d = ctr.drv._dir(ctr.id)
    assert (d / "console.log").stat().st_size < 1024 * 1024 + 65536
    assert 1024 * 1024 <= (d / "console.log.1").stat().st_size < 1024 * 1024 + 65536
    assert f"flood-{t}-done" in ctr.drv.console_output("h", ctr.id)
    assert len(read_log(d / "console.log", 10**8)) < 2 * (1024 * 1024 + 65536)
    got = idle.expect(f"\r\nflood-{t}-done\r\n".encode(), timeout=30)
    assert len(got) < 3_000_000 and b"bytes of console output skipped" in got
    idle.close()


def test_a_restarted_driver_finds_the_keeper(ctr):
    again = _driver(ctr.base / "data")
    path = again.console_socket("h", ctr.id, "serial")
    assert path == ctr.drv.console_socket("h", ctr.id, "serial")
    c = Console(path)
    try:
        t = _token()
        c.run(f"echo restarted-{t}-$((5*5))", f"restarted-{t}-25".encode())
        again.console_resize("h", ctr.id, 40, 120)
        c.run("stty size", rb"\r\n40 120\r\n")
    finally:
        c.close()


def test_a_dead_keeper_is_said_so_and_a_stop_start_brings_it_back(ctr):
    state = ctr.drv._state(ctr.id)
    keeper = alive(state, "keeper")
    os.kill(keeper, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(state, "keeper"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert ctr.drv.get_power_state("h", ctr.id) == RUNNING  # the server is not harmed
    with pytest.raises(ConsoleUnavailable, match="keeper exited"):
        ctr.drv.console_socket("h", ctr.id, "serial")
    with pytest.raises(ConsoleUnavailable, match="keeper exited"):
        ctr.drv.console_resize("h", ctr.id, 24, 80)
    ctr.drv.power_off("h", ctr.id, timeout=2)
    assert ctr.drv.get_power_state("h", ctr.id) == SHUTDOWN
    with pytest.raises(ConsoleUnavailable, match="not running"):
        ctr.drv.console_socket("h", ctr.id, "serial")
    assert not any(p.exists() for p in ctr.drv.console_paths(ctr.id).values())
    ctr.drv.power_on(ctr.spec)
    new = alive(ctr.drv._state(ctr.id), "keeper")
    assert new and new != keeper
    c = Console(ctr.drv.console_socket("h", ctr.id, "serial"))
    try:
        t = _token()
        c.expect(rb"# ", timeout=30, poke=b"\n")  # login drops what was typed before it ran
        c.run(f"echo back-{t}-$((4*4))", f"back-{t}-16".encode(), timeout=30)
    finally:
        c.close()


def test_stop_and_delete_end_the_keeper(ctr):
    state = ctr.drv._state(ctr.id)
    assert alive(state, "keeper")
    ctr.drv.power_off("h", ctr.id, timeout=0)
    assert alive(state, "keeper") is None
    assert "pocketstack: powered off" in ctr.drv.console_output("h", ctr.id)
    ctr.drv.power_on(ctr.spec)
    state = ctr.drv._state(ctr.id)
    assert alive(state, "keeper")
    ctr.drv.destroy("h", ctr.id)
    assert alive(state, "keeper") is None and alive(state, "init") is None
    with pytest.raises(ConsoleUnavailable, match="not on this host"):
        ctr.drv.console_socket("h", ctr.id, "serial")


def test_a_data_dir_too_long_for_socket_paths_puts_them_under_run():
    deep = Path(tempfile.mkdtemp(prefix="ps-ccons-")) / ("d" * 90) / "data"
    drv = _driver(deep)
    spec = InstanceSpec(id=str(uuid.uuid4()), name="c", hostname="ccons", host="h", vcpus=1,
                        memory_mb=128, root_gb=1, image_id="ps-ccons-img", image_path=ROOTFS)
    try:
        drv.spawn(spec)
        path = drv.console_socket("h", spec.id, "serial")
        assert path.startswith("/run/pocketstack/container-") and len(path) < 108
        for d in (Path(path).parent, Path(path).parent.parent):
            st = os.stat(d)
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0o700)
        c = Console(path)
        try:
            t = _token()
            c.expect(rb"# ", poke=b"\n")  # login drops what was typed before it ran
            c.run(f"echo long-{t}-$((7*7))", f"long-{t}-49".encode())
        finally:
            c.close()
        drv.console_resize("h", spec.id, 30, 90)
    finally:
        drv.destroy("h", spec.id)
        drv.lxcfs.stop()
        shutil.rmtree(deep.parent.parent, ignore_errors=True)
    assert not Path(path).parent.exists() and not Path(path).parent.parent.exists()
