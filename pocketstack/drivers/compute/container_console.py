"""A container server's interactive console, the driver's side: starting, finding and
stopping its console keeper (console_keeper.py), and the console API on top of it.

At each start the driver makes a pseudo-terminal, binds, as root, two unix sockets (0600,
root's) and opens console.log (append) and console.log.1, then starts the keeper in a
session of its own with the pty's master and those fds only; it drops at once to the
server's unprivileged host user (the guest's root's host uid: the guest cannot see the
keeper, which is in another pid namespace, nor reach anything of it by path). runc runs
the container detached with the pty's other end as its stdio: the server's init reads
and writes its console there; the image's init decides what runs on it (a shell, a
getty) and makes it the controlling terminal of that session (``setsid -c``).

Why not runc's own ``"terminal": true`` (``--console-socket``): runc then makes the pty
the controlling terminal of the container's init, whose process group is the terminal's
foreground one, so a ^C typed on the console signals init (the busybox test image's init
exits on SIGINT: the server stopped) and no shell on the console can take the terminal
over for job control (stealing it needs CAP_SYS_ADMIN on the host). With a pty that is
nobody's controlling terminal, the image's console shell or getty takes it as a terminal
on a real machine's console would. The cost: no /dev/console node in the container
(runc's non-terminal mode makes none, as before consoles existed).

Sockets are in the server's directory (``console.sock``, ``console.ctl``), or under
/run/pocketstack/container-<cloud>/<id>/ when that path is too long for a socket
address. The keeper's pid and start time go to state.json, so a
restarted pocketstack finds it again; stop and delete end it.

A mixin of ContainerDriver (uses ``_dir``, ``_state``, ``_alive``, ``instances_dir``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute import console_keeper
from pocketstack.drivers.compute._host import alive, start_time
from pocketstack.drivers.compute.base import ConsoleUnavailable, DriverError

SUN_PATH_MAX = 107
SOCKETS = ("console.sock", "console.ctl")
CONSOLE_SIZE = (24, 80)  # rows, cols until the console client says otherwise
KEEPER = Path(console_keeper.__file__)


def read_log(path: Path, limit: int) -> bytes:
    """The last ``limit`` bytes of a console log the keeper rotates (``<path>.1`` holds
    what came before the current file)."""
    data = b""
    for p in (path, path.with_name(path.name + ".1")):
        try:
            with open(p, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                fh.seek(max(0, size - (limit - len(data))))
                data = fh.read(limit - len(data)) + data
        except FileNotFoundError:
            continue
        if len(data) >= limit:
            break
    return data


class ContainerConsole:
    _dir: Any
    _state: Any
    _alive: Any
    instances_dir: Path

    def console_paths(self, server_id: str) -> dict[str, Path]:
        d = self._dir(server_id)
        if len(str(d).encode()) + 1 + max(map(len, SOCKETS)) > SUN_PATH_MAX:
            tag = hashlib.sha1(str(self.instances_dir.resolve()).encode()).hexdigest()[:8]
            d = Path(f"/run/pocketstack/container-{tag}") / server_id
        return {name: d / name for name in SOCKETS}

    def _start_keeper(self, server_id: str, ids: Any) -> tuple[subprocess.Popen, int]:
        """Make the console's pty, bind its sockets and start the server's keeper; returns
        it and the pty's other end (the caller gives it to runc as stdio and closes it)."""
        d = self._dir(server_id)
        paths = self.console_paths(server_id)
        sock_dir = paths["console.sock"].parent
        if sock_dir != d:  # /run/pocketstack/container-<cloud>/<id>: both root's 0700
            sock_dir.parent.parent.mkdir(parents=True, exist_ok=True)
            for p in (sock_dir.parent, sock_dir):
                p.mkdir(exist_ok=True, mode=0o700)
                os.chmod(p, 0o700)
        opened: list[int] = []
        socks: list[socket.socket] = []
        slave = -1
        try:
            master, slave = os.openpty()  # the host's /dev/ptmx; both ends close-on-exec
            opened.append(master)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *CONSOLE_SIZE, 0, 0))
            for name in SOCKETS:
                paths[name].unlink(missing_ok=True)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                socks.append(s)
                old = os.umask(0o177)
                try:
                    s.bind(str(paths[name]))
                finally:
                    os.umask(old)
                os.chmod(paths[name], 0o600)
                s.listen(16)
            for name in ("console.log", "console.log.1"):
                fd = os.open(d / name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
                             | (os.O_APPEND if name == "console.log" else 0), 0o600)
                opened.append(fd)
            logfd = os.open(d / "keeper.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                            | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
            opened.append(logfd)
            console, control = (s.fileno() for s in socks)  # SOCKETS' order
            log, old = opened[1:3]
            argv = [sys.executable, "-I", "-S", str(KEEPER), f"--master-fd={master}",
                    f"--console-fd={console}", f"--control-fd={control}",
                    f"--log-fd={log}", f"--old-fd={old}"]
            if os.geteuid() == 0 and ids is not None:
                argv.append(f"--uid={ids.base}")  # the keeper drops to it first thing
            proc = subprocess.Popen(argv, pass_fds=[master, console, control, log, old],
                                    stdin=subprocess.DEVNULL, stdout=logfd, stderr=logfd,
                                    start_new_session=True, cwd="/")
        except OSError as exc:
            if slave >= 0:
                os.close(slave)
            raise DriverError(f"Could not set up the server's console: {exc}") from None
        finally:
            for fd in opened:
                os.close(fd)
            for s in socks:
                s.close()
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it exits
        return proc, slave

    def _stop_keeper(self, server_id: str, state: dict[str, Any]) -> None:
        """End the keeper (it leaves by itself once the container is gone; this is for
        a keeper left waiting) and remove its sockets."""
        pid = alive(state, "keeper")
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 2
            while alive(state, "keeper") and time.monotonic() < deadline:
                time.sleep(0.01)
            if alive(state, "keeper"):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            paths = self.console_paths(server_id)
        except DriverError:
            return
        for p in paths.values():
            p.unlink(missing_ok=True)
        if paths["console.sock"].parent != self._dir(server_id):
            for d in (paths["console.sock"].parent, paths["console.sock"].parent.parent):
                try:
                    d.rmdir()  # the server's, then the cloud's when it was the last
                except OSError:
                    break

    @staticmethod
    def _keeper_state(proc: subprocess.Popen) -> dict[str, Any]:
        return {"keeper_pid": proc.pid, "keeper_start": start_time(proc.pid)}

    def console_output(self, host: str, server_id: str, length: int | None = None) -> str:
        path = self._dir(server_id) / "console.log"
        if not path.exists():
            raise DriverError(f"Server {server_id} has no console log.")
        # the tail only (the keeper rotates it at 1 MiB); a terminal ends lines with \r\n
        data = read_log(path, 1024 * 1024).decode(errors="replace").replace("\r\n", "\n")
        if length is None:
            return data
        lines = data.splitlines(keepends=True)
        return "".join(lines[-length:]) if length > 0 else ""

    def console_socket(self, host: str, server_id: str, protocol: str) -> str:
        if protocol != "serial":
            raise ConsoleUnavailable(f"Container servers have no {protocol} console; they "
                                     "have a serial console (their terminal).")
        try:
            d = self._dir(server_id)
        except DriverError as exc:
            raise ConsoleUnavailable(str(exc)) from None
        if not (d / "rootfs").is_dir():
            raise ConsoleUnavailable(f"Server {server_id} is not on this host.")
        state = self._state(server_id)
        if self._alive(state) is None:
            raise ConsoleUnavailable(f"Server {server_id} is not running.")
        if "keeper_pid" not in state:
            raise ConsoleUnavailable(f"Server {server_id} was started without an "
                                     "interactive console; it gets one at its next stop and "
                                     "start (or hard reboot).")
        if alive(state, "keeper") is None:
            raise ConsoleUnavailable(f"The console of server {server_id} is gone: its console "
                                     "keeper exited while the server runs (see keeper.log); "
                                     "it comes back at the server's next stop and start "
                                     "(or hard reboot).")
        return str(self.console_paths(server_id)["console.sock"])

    def console_resize(self, host: str, server_id: str, rows: int, cols: int) -> None:
        self.console_socket(host, server_id, "serial")  # running, with a live keeper
        reply = self._control(server_id, f"resize {int(rows)} {int(cols)}")
        if reply != "ok":
            raise ConsoleUnavailable(f"Could not resize the console of server {server_id}: "
                                     f"{reply}")

    def _control(self, server_id: str, request: str) -> str:
        path = self.console_paths(server_id)["console.ctl"]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(str(path))
            s.sendall(request.encode() + b"\n")
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = s.recv(256)
                if not chunk:
                    break
                reply += chunk
        except OSError as exc:
            raise ConsoleUnavailable(f"The console keeper of server {server_id} did not "
                                     f"answer: {exc}") from None
        finally:
            s.close()
        return reply.decode(errors="replace").strip()
