"""The metadata service's transport: 169.254.169.254 in each DHCP namespace, answered by
the cloud process.

Like Neutron (haproxy in the namespace -> metadata agent on a Unix socket), a small proxy
process per DHCP namespace listens on 169.254.169.254:80 and forwards each request to a
Unix socket served by this process, adding ``X-Forwarded-For`` (the server's address) and
``X-Neutron-Network-Id``. The answer is produced by the network service's handler
(services/network/metadata.py); the driver only moves bytes.
"""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from pocketstack.drivers.network.linux.cmd import cmdline, pid_alive, read_pid

# (network id, client address, path, POST body or None for a GET) -> (status, type, body)
Handler = Callable[[str, str, str, "bytes | None"], tuple[int, str, bytes]]


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class MetadataServer:
    def __init__(self, socket_path: Path, handler: Handler) -> None:
        self.socket_path = socket_path
        self.handler = handler
        self._server: _UnixHTTPServer | None = None

    def start(self) -> None:
        handler = self.handler

        class Req(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._handle(None)

            def do_POST(self) -> None:  # noqa: N802
                try:
                    length = min(int(self.headers.get("Content-Length") or 0), 4096)
                except ValueError:
                    length = 0
                self._handle(self.rfile.read(length))

            def _handle(self, data: bytes | None) -> None:
                network_id = self.headers.get("X-Neutron-Network-Id", "")
                client = self.headers.get("X-Forwarded-For", "")
                try:
                    status, ctype, body = handler(network_id, client, self.path, data)
                except Exception as exc:  # noqa: BLE001 - answer, never hang the guest
                    status, ctype, body = 500, "text/plain", str(exc).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        try:
            self.socket_path.unlink()
        except OSError:
            pass
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        self._server = _UnixHTTPServer(str(self.socket_path), Req)
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="metadata-server").start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def ensure_proxy(state_dir: Path, namespace: str, network_id: str, socket_path: Path) -> None:
    pidfile = state_dir / "dhcp" / network_id / "metadata.pid"
    pid = read_pid(str(pidfile))
    if pid and pid_alive(pid) and str(pidfile) in cmdline(pid):
        return
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, "-m",
         "pocketstack.drivers.network.linux.metadata_proxy", "--socket", str(socket_path),
         "--network-id", network_id, "--pidfile", str(pidfile)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    del proc  # it writes its own pid file and outlives us; stop_proxy finds it by that


def stop_proxy(state_dir: Path, network_id: str) -> None:
    pidfile = state_dir / "dhcp" / network_id / "metadata.pid"
    pid = read_pid(str(pidfile))
    if pid and pid_alive(pid) and str(pidfile) in cmdline(pid):
        os.kill(pid, signal.SIGTERM)
    try:
        pidfile.unlink()
    except OSError:
        pass
