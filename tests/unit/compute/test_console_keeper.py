"""The container console keeper (console_keeper.py) on a real pseudo-terminal: output to
every client from its connect and to console.log, input to the terminal, the control
requests (resize, ping, garbage), rotation of console.log into console.log.1, slow clients
dropped while the others and the log keep going, and the script itself exiting when the
guest side of the terminal closes."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import tty
from pathlib import Path

import pytest

from pocketstack.drivers.compute import console_keeper
from pocketstack.drivers.compute.console_keeper import Keeper, parse_control
from pocketstack.drivers.compute.container_console import read_log


class Rig:
    """A keeper on a pty in a thread: ``slave`` is the guest's end."""

    def __init__(self, max_log: int = console_keeper.MAX_LOG) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ps-keep-"))  # short: socket paths
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # bytes as they are, no echo
        self.paths = {n: str(self.dir / n) for n in ("console.sock", "console.ctl")}
        listeners = []
        for n in ("console.sock", "console.ctl"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(self.paths[n])
            s.listen(16)
            listeners.append(s)
        self.log = self.dir / "console.log"
        self.log_fd = os.open(self.log, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.old_fd = os.open(self.dir / "console.log.1", os.O_RDWR | os.O_CREAT, 0o600)
        self.keeper = Keeper(self.master, *listeners, self.log_fd, self.old_fd, max_log)
        self.thread = threading.Thread(target=self.keeper.run, daemon=True)
        self.thread.start()

    def client(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.paths["console.sock"])
        time.sleep(0.05)  # accepted before the next guest output
        return s

    def control(self, line: bytes) -> bytes:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(self.paths["console.ctl"])
        s.sendall(line)
        out = b""
        while chunk := s.recv(100):
            out += chunk
        s.close()
        return out

    def guest_write(self, data: bytes) -> None:
        os.write(self.slave, data)

    def guest_read(self, n: int, timeout: float = 5) -> bytes:
        out = b""
        deadline = time.monotonic() + timeout
        os.set_blocking(self.slave, False)
        while len(out) < n and time.monotonic() < deadline:
            try:
                out += os.read(self.slave, n - len(out))
            except BlockingIOError:
                time.sleep(0.01)
        return out

    def close(self) -> None:
        os.close(self.slave)  # the guest's end goes: the keeper sees EIO and ends
        self.thread.join(5)
        assert not self.thread.is_alive()
        for fd in (self.master, self.log_fd, self.old_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def recv_until(s: socket.socket, want: bytes) -> bytes:
    out = b""
    while want not in out:
        chunk = s.recv(65536)
        assert chunk, f"closed before {want!r}: {out!r}"
        out += chunk
    return out


@pytest.fixture
def rig():
    r = Rig(max_log=10**8)
    yield r
    r.close()


def test_output_reaches_each_client_from_its_connect_and_the_log(rig):
    a = rig.client()
    rig.guest_write(b"first-line\n")
    assert recv_until(a, b"first-line\n") == b"first-line\n"
    b = rig.client()
    rig.guest_write(b"second-line\n")
    assert recv_until(a, b"second-line\n") == b"second-line\n"
    assert recv_until(b, b"second-line\n") == b"second-line\n"  # not what came before
    deadline = time.monotonic() + 5
    while rig.log.read_bytes() != b"first-line\nsecond-line\n":
        assert time.monotonic() < deadline, rig.log.read_bytes()
        time.sleep(0.01)


def test_input_from_clients_reaches_the_terminal(rig):
    a, b = rig.client(), rig.client()
    a.sendall(b"typed-by-a\n")
    assert rig.guest_read(11) == b"typed-by-a\n"
    b.sendall(b"typed-by-b\n")
    assert rig.guest_read(11) == b"typed-by-b\n"
    a.close()  # a client leaving changes nothing for the others
    b.sendall(b"more\n")
    assert rig.guest_read(5) == b"more\n"
    assert rig.log.read_bytes() == b""  # input is not output: the guest echoes if it likes


def test_resize_sets_the_terminal_size_and_bad_requests_are_answered(rig):
    assert rig.control(b"resize 33 101\n") == b"ok\n"
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(rig.slave, termios.TIOCGWINSZ,
                                                          b"\0" * 8))
    assert (rows, cols) == (33, 101)
    assert rig.control(b"ping\n") == b"ok\n"
    assert rig.control(b"resize 0 80\n").startswith(b"error")
    assert rig.control(b"resize -1 80\n").startswith(b"error")
    assert rig.control(b"resize 99999 80\n").startswith(b"error")
    assert rig.control(b"rm -rf /\n").startswith(b"error unknown request")
    try:  # no newline and too long: an error, or a reset (it left most of it unread)
        assert rig.control(b"x" * 5000).startswith(b"error")
    except ConnectionResetError:
        pass
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(rig.slave, termios.TIOCGWINSZ,
                                                          b"\0" * 8))
    assert (rows, cols) == (33, 101)
    a = rig.client()  # and the console still works
    rig.guest_write(b"still-here\n")
    assert recv_until(a, b"still-here\n")


@pytest.mark.parametrize("line,want", [
    (b"ping", ("ok", None)), (b"resize 24 80\n", ("ok", (24, 80))),
    (b"resize 1000 1000", ("ok", (1000, 1000))), (b"resize 24", None), (b"resize a b", None),
    (b"RESIZE 24 80", None), (b"", None), (b"resize 24 80 1", None)])
def test_parse_control(line, want):
    reply, size = parse_control(line)
    if want is None:
        assert reply.startswith("error") and size is None
    else:
        assert (reply, size) == want


def test_console_log_rotates_into_one_older_file():
    rig = Rig(max_log=1000)
    try:
        written = b"".join(b"line %04d\n" % i for i in range(305))  # 3050 bytes
        for i in range(0, len(written), 100):
            rig.guest_write(written[i:i + 100])
            time.sleep(0.002)
        deadline = time.monotonic() + 5
        while not read_log(rig.log, 10**6).endswith(b"line 0304\n"):
            assert time.monotonic() < deadline, read_log(rig.log, 100)
            time.sleep(0.01)
        time.sleep(0.05)  # a rotation may still be between its two steps
        cur, old = rig.log.read_bytes(), (rig.dir / "console.log.1").read_bytes()
        assert len(cur) < 1000 and 1000 <= len(old) < 1000 + 65536
        assert written.endswith(old + cur)  # nothing lost between the two, in order
        assert read_log(rig.log, 10**6) == old + cur
        assert read_log(rig.log, 50) == (old + cur)[-50:]
        assert read_log(rig.log, len(cur) + 10) == (old + cur)[-(len(cur) + 10):]
    finally:
        rig.close()


def test_a_client_that_does_not_read_skips_output_and_nobody_waits_for_it():
    rig = Rig(max_log=10**8)
    try:
        slow, fast = rig.client(), rig.client()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        total = 0
        got = b""
        chunk = b"x" * 4095 + b"\n"
        fast.settimeout(0.001)
        while total < 4 * console_keeper.CLIENT_BUFFER:  # far more than it may hold back
            rig.guest_write(chunk)
            total += len(chunk)
            try:
                got += fast.recv(1 << 20)
            except socket.timeout:
                pass
        rig.guest_write(b"the-end\n")
        total += 8
        fast.settimeout(5)
        while len(got) < total:
            got += fast.recv(1 << 20)
        assert len(got) == total and got.endswith(b"the-end\n")  # the reader got it all
        received = recv_until(slow, b"the-end\n")  # the slow one: the newest, and a note
        assert len(received) < total and rig.keeper.skipped > 0
        assert b"bytes of console output skipped" in received
        deadline = time.monotonic() + 5
        while rig.log.stat().st_size < total:  # and the log has it all
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        rig.close()


def test_input_the_guest_does_not_read_is_capped_and_clients_are_still_served(rig):
    a, b = rig.client(), rig.client()
    total = 0
    a.settimeout(0.05)
    while rig.keeper.discarded == 0:  # the guest reads nothing: its terminal fills up
        try:
            a.sendall(b"y" * 65536)
        except socket.timeout:
            pass
        total += 65536
        assert total < 64 * 1024 * 1024, "input was never capped"
    assert len(rig.keeper.pending_in) <= console_keeper.INPUT_BUFFER
    rig.guest_write(b"output-still-flows\n")  # output is not held up by input
    assert recv_until(b, b"output-still-flows\n")
    drained = rig.guest_read(10**7, timeout=2)  # the guest reads again: what was kept
    assert drained and set(drained) == {ord("y")}
    b.sendall(b"after\n")  # and new input gets through
    deadline = time.monotonic() + 5
    got = b""
    while not got.endswith(b"after\n"):
        assert time.monotonic() < deadline, got[-50:]
        got += rig.guest_read(10**6, timeout=0.2)

def test_the_script_serves_and_ends_when_the_guest_side_closes():
    d = Path(tempfile.mkdtemp(prefix="ps-keep-"))
    master, slave = os.openpty()
    tty.setraw(slave)
    socks = []
    for n in ("console.sock", "console.ctl"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(d / n))
        s.listen(4)
        socks.append(s)
    log = os.open(d / "console.log", os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    old = os.open(d / "console.log.1", os.O_RDWR | os.O_CREAT, 0o600)
    fds = [master, socks[0].fileno(), socks[1].fileno(), log, old]
    proc = subprocess.Popen([sys.executable, "-I", "-S", console_keeper.__file__,
                             f"--master-fd={master}", f"--console-fd={fds[1]}",
                             f"--control-fd={fds[2]}", f"--log-fd={log}", f"--old-fd={old}"],
                            pass_fds=fds, stderr=subprocess.PIPE, start_new_session=True)
    for fd in (master, log, old):
        os.close(fd)
    for s in socks:
        s.close()
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(str(d / "console.sock"))
        time.sleep(0.3)
        os.write(slave, b"hello from the guest\n")
        assert recv_until(c, b"hello from the guest\n")
        c.sendall(b"typed\n")
        os.set_blocking(slave, True)
        assert os.read(slave, 6) == b"typed\n"
        os.close(slave)
        assert proc.wait(10) == 0
        assert c.recv(10) == b""  # its clients are let go
        assert b"terminal closed" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)
