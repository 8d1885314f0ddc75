"""A VM's remote consoles: VNC, SPICE and its serial port as unix sockets QEMU serves.

Each start re-creates ``console/`` (its server directory's, or under /run when that path
would not fit a socket address) owned by the server's QEMU user, 0700, holding
``vnc.sock`` (RFB 3.8, security type None), ``spice.sock`` (SPICE link protocol, no
ticket) and ``serial.sock`` (the serial port, raw bytes both ways; QEMU also appends
everything the guest writes to console.log through the chardev's log file, whether a
client is connected or not). No TCP port on the host: only root (the console proxy)
reaches the sockets, through a directory only root and the QEMU user may enter.

QEMU opens no host path by name: the driver passes it the directory as an open fd and
QEMU binds its sockets at ``/proc/self/fd/N/<name>`` (the magic link reaches the
directory without walking its root-only parents). Paths are deterministic, so a restarted
pocketstack finds them again (the directory is emptied at each start: a socket there was
made by the running QEMU).

QEMU's own behaviour per client: VNC shares the display among clients, SPICE takes the
newest, the serial port serves one client at a time (the next waits for the first to
leave). A client that disconnects, mid-frame or not, or sends garbage only ends its own
session. QEMU's VNC and serial sockets listen with a backlog of one (SPICE's 4096): a
non-blocking connect while another waits to be accepted fails with EAGAIN (asyncio's
open_unix_connection: EINVAL, measured); callers retry, or connect blocking.

A mixin of QemuDriver (uses ``_dir``, ``_read_json``, ``tag``).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute._host import alive
from pocketstack.drivers.compute.base import ConsoleUnavailable, DriverError

PROTOCOL_SOCKETS = {"vnc": "vnc.sock", "spice": "spice.sock", "serial": "serial.sock"}
_LONGEST = max(len(n) for n in PROTOCOL_SOCKETS.values()) + 1
SUN_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) less the terminating NUL


class QemuConsole:
    _dir: Any
    _read_json: Any
    tag: str

    def console_dir(self, server_id: str) -> Path:
        """Where the server's console sockets are: its ``console/`` unless that path is too
        long for a socket address, then /run/pocketstack/qemu-<cloud>/<id>.console."""
        d = self._dir(server_id) / "console"
        if len(str(d).encode()) + _LONGEST <= SUN_PATH_MAX:
            return d
        return Path(f"/run/pocketstack/qemu-{self.tag}") / f"{server_id}.console"

    def _open_console_dir(self, server_id: str, ids: tuple[int, int] | None) -> int:
        """A fresh, empty console directory for a start (stale sockets of the last run
        go), owned by the QEMU user, 0700; returns an O_PATH fd of it for QEMU."""
        d = self.console_dir(server_id)
        if d.parent != self._dir(server_id):
            d.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d.parent, 0o700)
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            st = None
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(d)  # fd-based, never follows what QEMU left in it
            else:
                d.unlink()
        os.mkdir(d, 0o700)
        if ids is not None:
            os.chown(d, *ids, follow_symlinks=False)
        os.chmod(d, 0o700, follow_symlinks=False)
        return os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def _remove_console_dir(self, server_id: str) -> None:
        d = self.console_dir(server_id)
        if d.parent != self._dir(server_id):
            shutil.rmtree(d, ignore_errors=True)

    def console_socket(self, host: str, server_id: str, protocol: str) -> str:
        name = PROTOCOL_SOCKETS.get(protocol)
        if name is None:
            raise ConsoleUnavailable(f"QEMU servers have no {protocol} console "
                                     f"(they have {', '.join(sorted(PROTOCOL_SOCKETS))}).")
        try:
            d = self._dir(server_id)
        except DriverError as exc:
            raise ConsoleUnavailable(str(exc)) from None
        if not (d / "config.json").is_file():
            raise ConsoleUnavailable(f"Server {server_id} is not on this host.")
        state = self._read_json(server_id, "state.json")
        if alive(state, "qemu") is None:
            raise ConsoleUnavailable(f"Server {server_id} is not running.")
        path = self.console_dir(server_id) / name
        if not state.get("consoles"):  # started by a release without consoles
            raise ConsoleUnavailable(f"Server {server_id} was started without remote "
                                     "consoles; they come with its next stop and start "
                                     "(or hard reboot).")
        # Not probed with a connect: QEMU listens with a backlog of one, and a probe still
        # waiting to be accepted would make the proxy's own connect fail (EAGAIN). The
        # directory is emptied at each start, so a socket here is the running QEMU's.
        try:
            st = os.lstat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISSOCK(st.st_mode):
            raise ConsoleUnavailable(f"The {protocol} console of server {server_id} is not "
                                     f"available: QEMU has no {path.name}.")
        return str(path)

    def console_resize(self, host: str, server_id: str, rows: int, cols: int) -> None:
        """A serial port has no size to set: the guest's getty decides (stty)."""

