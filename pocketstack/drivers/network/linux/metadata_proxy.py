"""The per-namespace metadata proxy: 169.254.169.254:80 -> the cloud's Unix socket.

Run as ``ip netns exec NS python -m pocketstack.drivers.network.linux.metadata_proxy``.
Stdlib only, so it starts fast and needs nothing from the cloud process but the socket.
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import socketserver
from http.server import BaseHTTPRequestHandler


MAX_POST = 4096  # bytes of a guest's POST passed on; the service applies Nova's own limit


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--network-id", required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--listen", default="169.254.169.254")
    parser.add_argument("--port", type=int, default=80)
    args = parser.parse_args()

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self._forward("GET", None)

        def do_POST(self) -> None:  # noqa: N802
            # the guest posts its encrypted password (Nova takes 256 bytes at most)
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_POST:
                self._answer(400, "text/plain", b"Request is too large.")
                return
            self._forward("POST", self.rfile.read(length))

        def _forward(self, method: str, data: bytes | None) -> None:
            conn = UnixConnection(args.socket)
            try:
                conn.request(method, self.path, body=data, headers={
                    "X-Forwarded-For": self.client_address[0],
                    "X-Neutron-Network-Id": args.network_id})
                resp = conn.getresponse()
                body = resp.read()
                status, ctype = resp.status, resp.getheader("Content-Type", "text/plain")
            except OSError:
                status, ctype, body = 503, "text/plain", b"metadata service unavailable"
            finally:
                conn.close()
            self._answer(status, ctype, body)

        def _answer(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
        allow_reuse_address = True
        daemon_threads = True

    server = Server((args.listen, args.port), Proxy)
    with open(args.pidfile + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(args.pidfile + ".tmp", args.pidfile)
    server.serve_forever()


if __name__ == "__main__":
    main()
