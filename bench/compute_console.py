"""bench/compute.py --only console: the remote console of a QEMU VM (busybox ami, TCG unless
KVM is usable and faster), through the API and the WebSocket proxy on the API port.

1. url_to_update: POST /servers/{id}/remote-consoles (vnc/novnc) -> WebSocket upgrade with
   the URL's token -> RFB 3.8 handshake (security None) -> the first FramebufferUpdate,
   what a noVNC user waits for after clicking "console"; p50/p90 over --console-urls runs.
2. throughput: the VNC stream (full-screen raw-encoded framebuffer updates, --fb-updates
   of them) read through the proxy and straight from QEMU's unix socket, same VM, same run,
   alternating; bytes/s of each and the ratio (proxy / direct).
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import struct
import time
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from bench.common import http, password_body, purge, stop

PORT = 8849
DATA = Path("/tmp/ps-compute-bench-console/data")


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class _Ws:
    def __init__(self, ws) -> None:  # noqa: ANN001 - a websockets client connection
        self.ws, self.buf = ws, bytearray()

    async def need(self, n: int) -> bytes:
        while len(self.buf) < n:
            self.buf.extend(await asyncio.wait_for(self.ws.recv(), 30))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)


class _Sock:
    def __init__(self, s: socket.socket) -> None:
        self.s = s

    async def need(self, n: int) -> bytes:
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise ConnectionError("closed")
            b += c
        return b

    async def send(self, data: bytes) -> None:
        self.s.sendall(data)


async def _handshake(c) -> tuple[int, int]:  # noqa: ANN001
    assert await c.need(12) == b"RFB 003.008\n"
    await c.send(b"RFB 003.008\n")
    assert 1 in await c.need((await c.need(1))[0])
    await c.send(b"\x01")
    assert await c.need(4) == b"\0\0\0\0"
    await c.send(b"\x01")
    w, h = struct.unpack("!HH", await c.need(4))
    await c.need(16)
    await c.need(struct.unpack("!I", await c.need(4))[0])
    return w, h


async def _updates(c, w: int, h: int, n: int) -> float:  # noqa: ANN001
    """Bytes/s of n full-screen raw framebuffer updates."""
    await c.send(struct.pack("!BxHi", 2, 1, 0))  # SetEncodings: raw
    total, t0 = 0, time.perf_counter()
    for _ in range(n):
        await c.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
        head = await c.need(4)
        for _ in range(struct.unpack("!H", head[2:])[0]):
            _, _, rw, rh, enc = struct.unpack("!HHHHi", await c.need(12))
            assert enc == 0, enc
            total += len(await c.need(rw * rh * 4)) + 16
    return total / (time.perf_counter() - t0)


def bench_console(start: Callable, n_urls: int, n_updates: int) -> dict:
    import websockets

    proc = start(DATA, PORT, POCKETSTACK_COMPUTE__DRIVER="qemu",
                 POCKETSTACK_NETWORK__DRIVER="fake")
    base = f"http://127.0.0.1:{PORT}"
    try:
        pw = __import__("json").loads((DATA / "passwords.json").read_text())["admin"]
        status, headers, _ = http("POST", f"{base}/identity/v3/auth/tokens?nocatalog",
                                  password_body(pw))
        hdr = {"X-Auth-Token": headers["x-subject-token"],
               "OpenStack-API-Version": "compute 2.37"}
        _, _, body = http("GET", f"{base}/image/v2/images?name=busybox-vm", headers=hdr)
        if not body.get("images"):
            return {"skipped": "no busybox-vm image (scripts/build-test-images --with-kernel)"}
        status, _, body = http("POST", f"{base}/compute/v2.1/servers", {"server": {
            "name": "ps-bench-console", "imageRef": body["images"][0]["id"], "flavorRef": "1",
            "networks": "none"}}, hdr)
        assert status == 202, body
        sid = body["server"]["id"]
        deadline = time.monotonic() + 180
        while True:
            _, _, b = http("POST", f"{base}/compute/v2.1/servers/{sid}/action",
                           {"os-getConsoleOutput": {"length": 50}}, hdr)
            if "pocketstack-busybox: booted" in (b or {}).get("output", ""):
                break
            assert time.monotonic() < deadline, "the VM did not boot in 180 s"
            time.sleep(0.2)

        def new_url() -> str:
            status, _, b = http("POST", f"{base}/compute/v2.1/servers/{sid}/remote-consoles",
                                {"remote_console": {"protocol": "vnc", "type": "novnc"}},
                                {**hdr, "OpenStack-API-Version": "compute 2.79"})
            assert status == 200, b
            url = b["remote_console"]["url"]
            return f"ws://127.0.0.1:{PORT}/" + parse_qs(urlsplit(url).query)["path"][0]

        async def url_to_update() -> float:
            t0 = time.perf_counter()
            ws_url = new_url()
            async with websockets.connect(ws_url, subprotocols=["binary"],
                                          max_size=None) as ws:
                c = _Ws(ws)
                w, h = await _handshake(c)
                await c.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
                assert (await c.need(1))[0] == 0
                return time.perf_counter() - t0

        async def proxied() -> float:
            async with websockets.connect(new_url(), subprotocols=["binary"],
                                          max_size=None) as ws:
                c = _Ws(ws)
                return await _updates(c, *await _handshake(c), n_updates)

        sock_path = next((DATA / "compute/qemu" / sid).rglob("vnc.sock"))

        async def direct() -> float:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(sock_path))
            try:
                c = _Sock(s)
                return await _updates(c, *await _handshake(c), n_updates)
            finally:
                s.close()

        times = [asyncio.run(url_to_update()) for _ in range(n_urls)]
        rates_p, rates_d = [], []
        for _ in range(3):
            rates_d.append(asyncio.run(direct()))
            rates_p.append(asyncio.run(proxied()))
        http("DELETE", f"{base}/compute/v2.1/servers/{sid}", headers=hdr)
        d, p = statistics.median(rates_d), statistics.median(rates_p)
        return {"driver": "qemu", "urls": n_urls,
                "url_to_first_update_p50_ms": round(statistics.median(times) * 1000, 1),
                "url_to_first_update_p90_ms": round(_pct(times, 0.9) * 1000, 1),
                "fb_updates_per_run": n_updates,
                "direct_mb_s": round(d / 1e6, 1), "proxy_mb_s": round(p / 1e6, 1),
                "proxy_vs_direct": round(p / d, 2)}
    finally:
        stop(proc)
        purge(DATA, POCKETSTACK_COMPUTE__DRIVER="qemu", POCKETSTACK_NETWORK__DRIVER="fake")
