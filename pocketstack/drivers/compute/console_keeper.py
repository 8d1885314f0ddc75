"""The console keeper of a container server: one small long-lived process per running
container that holds the master of its console's pseudo-terminal, as ``lxc console``/Incus
do. (The driver makes the pty and gives runc the other end as the server's stdio:
container_console.py says why not runc's own terminal mode.) The keeper

- always drains the master into console.log (what os-getConsoleOutput reads), bounded:
  when console.log reaches ``--max-log`` bytes its content moves to console.log.1 (the
  one older file kept) and console.log starts again empty, so a guest cannot fill the
  host's disk through its console;
- serves ``console.sock``: each client connection is one session that gets the guest's
  output from the moment it connected, and whose bytes are typed into the terminal (raw
  bytes both ways, what the console proxy splices to the browser). A client that does
  not keep up (more than ``CLIENT_BUFFER`` bytes pending) skips the oldest output it has
  not received, with a line saying so, rather than slowing the guest or the other
  clients (the guest never waits for a console client);
- answers on ``console.ctl``, one request line per connection, one reply line:
  ``resize <rows> <cols>`` sets the terminal size (TIOCSWINSZ: the guest's foreground
  program gets SIGWINCH) -> ``ok``; ``ping`` -> ``ok``; anything else -> ``error <why>``.

It exits when the guest side of the terminal is gone (every process of the container
closed it: EIO on the master) or on SIGTERM. It runs in a session of its own, so it
outlives a pocketstack restart like the container does (the driver re-adopts it from the
server's state.json). The driver opens and binds everything as root and starts the keeper
with only these fds (no path to open, nothing to bind); the keeper drops to the
unprivileged ``--uid`` first thing (root only so that the interpreter, which may live under
a root-only path, could be started), with no groups, no capabilities and no_new_privs. The
sockets are root's 0600.

This file runs as a script with only the standard library (``python3 -I -S``), so a
keeper starts in a few tens of milliseconds; the driver side is container_console.py.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import fcntl
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time

MAX_LOG = 1024 * 1024  # console.log size that triggers a rotation into console.log.1
CLIENT_BUFFER = 256 * 1024  # output pending for one console client before it skips some
SKIPPED = b"\r\n[pocketstack: %d bytes of console output skipped: the client fell behind]\r\n"
# Typed input waiting for the terminal (the guest is not reading it); more is discarded,
# as a terminal whose buffer is full drops keystrokes, rather than pausing the clients (a
# paused client could not even send the ^C or ^Q that would unstick the guest).
INPUT_BUFFER = 64 * 1024
MAX_CLIENTS = 32  # console and control connections together
CONTROL_LINE = 64  # longest control request


def log(msg: str) -> None:
    sys.stderr.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} keeper "
                     f"{os.getpid()}: {msg}\n")
    sys.stderr.flush()


def parse_control(line: bytes) -> tuple[str, tuple[int, int] | None]:
    """A control request -> (reply, (rows, cols) to set or None)."""
    words = line.strip().split()
    if words == [b"ping"]:
        return "ok", None
    if len(words) == 3 and words[0] == b"resize" and all(w.isdigit() for w in words[1:]):
        rows, cols = int(words[1]), int(words[2])
        if 1 <= rows <= 1000 and 1 <= cols <= 1000:
            return "ok", (rows, cols)
        return "error rows and cols must be 1 to 1000", None
    return "error unknown request (resize <rows> <cols> | ping)", None


class _Client:
    __slots__ = ("sock", "out", "request", "ctl")

    def __init__(self, sock: socket.socket, ctl: bool) -> None:
        self.sock = sock
        self.out = bytearray()  # output not yet sent to it
        self.request = bytearray()  # a control client's request so far
        self.ctl = ctl


class Keeper:
    """The event loop. ``master`` is the terminal (any fd that reads what the guest writes
    and takes what it reads); ``log_fd`` console.log (O_RDWR|O_APPEND), ``old_fd``
    console.log.1 (O_RDWR)."""

    def __init__(self, master: int, console: socket.socket, control: socket.socket,
                 log_fd: int, old_fd: int, max_log: int = MAX_LOG) -> None:
        self.master = master
        self.console = console
        self.control = control
        self.log_fd = log_fd
        self.old_fd = old_fd
        self.max_log = max_log
        self.log_size = os.fstat(log_fd).st_size
        self.pending_in = bytearray()
        self.clients: dict[int, _Client] = {}
        self.sel = selectors.DefaultSelector()
        self.skipped = 0  # output bytes clients missed for not keeping up
        self.discarded = 0  # input bytes the terminal had no room for
        self.log_failed = False
        self.running = True
        os.set_blocking(master, False)
        for s in (console, control):
            s.setblocking(False)
            self.sel.register(s, selectors.EVENT_READ, "listen")
        self.sel.register(master, selectors.EVENT_READ, "master")

    # -- console.log ---------------------------------------------------------------------
    def write_log(self, data: bytes) -> None:
        """Append to console.log; a full disk loses log lines, never the console."""
        try:
            view = memoryview(data)
            while view:
                n = os.write(self.log_fd, view)
                view = view[n:]
                self.log_size += n
            if self.log_size >= self.max_log:
                self.rotate()
        except OSError as exc:
            if not self.log_failed:
                log(f"console.log: {exc}")
            self.log_failed = True
        else:
            self.log_failed = False

    def rotate(self) -> None:
        """console.log's content becomes console.log.1; console.log starts empty. Done
        through the two fds (the keeper may not rename in the server's directory)."""
        size = os.fstat(self.log_fd).st_size
        data = os.pread(self.log_fd, size, 0)
        os.ftruncate(self.old_fd, 0)
        view, off = memoryview(data), 0
        while off < len(view):
            off += os.pwrite(self.old_fd, view[off:], off)
        os.ftruncate(self.log_fd, 0)
        self.log_size = 0

    # -- events --------------------------------------------------------------------------
    def _interest(self, c: _Client) -> None:
        ev = selectors.EVENT_READ
        if c.out:
            ev |= selectors.EVENT_WRITE
        key = self.sel.get_map().get(c.sock.fileno())
        if key is None:
            self.sel.register(c.sock, ev, c)
        elif key.events != ev:
            self.sel.modify(c.sock, ev, c)

    def _master_interest(self) -> None:
        ev = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.pending_in else 0)
        self.sel.modify(self.master, ev, "master")

    def drop(self, c: _Client) -> None:
        if self.clients.pop(c.sock.fileno(), None) is None:
            return
        if c.sock.fileno() in self.sel.get_map():
            self.sel.unregister(c.sock)
        c.sock.close()

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if len(self.clients) >= MAX_CLIENTS:
            sock.close()
            return
        sock.setblocking(False)
        c = _Client(sock, ctl=listener is self.control)
        self.clients[sock.fileno()] = c
        self._interest(c)

    def from_master(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            data = b""
        if not data:  # the guest side is closed: the container is gone
            log("the container's terminal closed")
            self.running = False
            return
        self.write_log(data)
        for c in list(self.clients.values()):
            if c.ctl:
                continue
            c.out += data
            if len(c.out) > CLIENT_BUFFER:  # too slow: it gets the newest half
                skip = len(c.out) - CLIENT_BUFFER // 2
                del c.out[:skip]
                c.out[:0] = SKIPPED % skip
                self.skipped += skip
            self._interest(c)

    def to_master(self) -> None:
        try:
            n = os.write(self.master, self.pending_in)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            self.running = False
            return
        del self.pending_in[:n]
        self._master_interest()

    def client_read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(CONTROL_LINE + 1 if c.ctl else 65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.drop(c)
            return
        if not c.ctl:
            room = INPUT_BUFFER - len(self.pending_in)
            if room < len(data):
                self.discarded += len(data) - max(room, 0)
            self.pending_in += data[:max(room, 0)]
            self._master_interest()
            return
        c.request += data  # a control client gets one reply, then goes
        if b"\n" not in c.request and len(c.request) <= CONTROL_LINE:
            return
        reply, size = parse_control(bytes(c.request.split(b"\n", 1)[0][:CONTROL_LINE + 1]))
        if size is not None:
            try:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
            except OSError as exc:
                reply = f"error {exc.strerror}"
        try:
            c.sock.send(reply.encode() + b"\n")
        except OSError:
            pass
        self.drop(c)

    def client_write(self, c: _Client) -> None:
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.drop(c)
            return
        del c.out[:n]
        self._interest(c)

    def step(self, timeout: float | None = None) -> None:
        for key, ev in self.sel.select(timeout):
            if not self.running:
                return
            what = key.data
            if what == "listen":
                self.accept(key.fileobj)  # type: ignore[arg-type]
            elif what == "master":
                if ev & selectors.EVENT_READ:
                    self.from_master()
                if self.running and ev & selectors.EVENT_WRITE:
                    self.to_master()
            else:
                if key.fd not in self.clients:
                    continue
                if ev & selectors.EVENT_READ:
                    self.client_read(what)
                if ev & selectors.EVENT_WRITE and key.fd in self.clients:
                    self.client_write(what)

    def run(self) -> None:
        while self.running:
            self.step()
        for c in list(self.clients.values()):
            self.drop(c)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="pocketstack container console keeper")
    p.add_argument("--master-fd", type=int, required=True, help="the pty's master")
    p.add_argument("--console-fd", type=int, required=True)
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--log-fd", type=int, required=True)
    p.add_argument("--old-fd", type=int, required=True)
    p.add_argument("--max-log", type=int, default=MAX_LOG)
    p.add_argument("--uid", type=int, help="drop to this user (and group) at once")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:  # no way back to privileges through anything it could exec (it execs nothing)
        ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    except (OSError, AttributeError):
        pass
    # Everything it needs is imported by now: after the drop, the interpreter's own
    # library directory may be out of reach.
    if args.uid is not None:  # before anything else: root was only needed to exec python
        os.setgroups([])
        os.setresgid(args.uid, args.uid, args.uid)
        os.setresuid(args.uid, args.uid, args.uid)
    keeper = Keeper(args.master_fd, socket.socket(fileno=args.console_fd),
                    socket.socket(fileno=args.control_fd), args.log_fd, args.old_fd,
                    args.max_log)
    log(f"serving the console (uid {os.getuid()})")
    keeper.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
