"""The console WebSocket proxy against real unix sockets, served by uvicorn in this process.

The stub servers (an echo server, a minimal RFB 3.8 server) stand in for QEMU's sockets so
the splice itself is tested: bytes both ways, the RFB handshake as Tempest does it, resize
frames, clients that send garbage or vanish mid-frame, and no task or fd left behind.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from pocketstack.services.compute.console_proxy import ConsoleProxy, Refused
from pocketstack.services.compute.console_tokens import TokenInfo


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Harness:
    """uvicorn + ConsoleProxy + stub console sockets, all on one event loop."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.grants: dict[str, tuple[TokenInfo, str]] = {}
        self.resizes: list[tuple[int, int]] = []
        self.upstream_eofs = 0
        self.upstream_conns = 0

    async def opener(self, token: str) -> tuple[TokenInfo, str]:
        grant = self.grants.pop(token, None)  # one-time, as the token store
        if grant is None:
            raise Refused("The console token is invalid, expired or already used.")
        return grant

    async def resizer(self, info: TokenInfo, rows: int, cols: int) -> None:
        self.resizes.append((rows, cols))

    def grant(self, token: str, path: str, protocol: str = "vnc") -> None:
        self.grants[token] = (TokenInfo("srv", "proj", protocol, "novnc", "h", None), path)

    async def echo(self, reader, writer) -> None:
        self.upstream_conns += 1
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            self.upstream_eofs += 1
        except ConnectionError:
            self.upstream_eofs += 1
        finally:
            writer.close()

    async def rfb(self, reader, writer) -> None:
        """RFB 3.8 with security type None, a 4x2 framebuffer, one update on request."""
        self.upstream_conns += 1
        try:
            writer.write(b"RFB 003.008\n")
            assert await reader.readexactly(12) == b"RFB 003.008\n"
            writer.write(bytes([1, 1]))  # one security type: None
            assert await reader.readexactly(1) == b"\x01"
            writer.write(struct.pack("!I", 0))  # SecurityResult OK
            await reader.readexactly(1)  # ClientInit
            name = b"stub"
            pixfmt = struct.pack("!BBBBHHHBBB3x", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
            writer.write(struct.pack("!HH", 4, 2) + pixfmt + struct.pack("!I", len(name)) + name)
            req = await reader.readexactly(10)  # FramebufferUpdateRequest
            assert req[0] == 3
            pixels = b"\xff\x00\x00\x00" * 8
            writer.write(struct.pack("!BxHHHHHi", 0, 1, 0, 0, 4, 2, 0) + pixels)
            await writer.drain()
            await reader.read()  # until the proxy closes
            self.upstream_eofs += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            self.upstream_eofs += 1
        finally:
            writer.close()

    async def __aenter__(self) -> "Harness":
        self.proxy = ConsoleProxy(self.opener, self.resizer, ["dash.example"])
        app = Starlette(routes=[WebSocketRoute("/ws", self.proxy.handle)])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="error", lifespan="off", ws="websockets")
        self.server = uvicorn.Server(config)
        self.serve_task = asyncio.ensure_future(self.server.serve(sockets=[sock]))
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.echo_path = str(self.tmp / "echo.sock")
        self.rfb_path = str(self.tmp / "rfb.sock")
        self.stubs = [await asyncio.start_unix_server(self.echo, self.echo_path),
                      await asyncio.start_unix_server(self.rfb, self.rfb_path)]
        return self

    async def __aexit__(self, *exc) -> None:
        for stub in self.stubs:
            stub.close()
        self.server.should_exit = True
        await self.serve_task

    def url(self, token: str | None = "t") -> str:
        return f"ws://127.0.0.1:{self.port}/ws" + (f"?token={token}" if token else "")

    async def settle(self) -> None:
        """Wait until every session has ended on the server side."""
        for _ in range(200):
            if self.proxy.sessions == 0:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)


def run(coro):
    return asyncio.run(coro)


def test_echo_both_ways_and_large_volume(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            h.grant("t", h.echo_path)
            async with websockets.connect(h.url(), subprotocols=["binary"]) as ws:
                assert ws.subprotocol == "binary"
                await ws.send(b"hello")
                assert await ws.recv() == b"hello"
                blob = os.urandom(1 << 20)
                got = bytearray()

                async def reader():
                    while len(got) < len(blob):
                        got.extend(await ws.recv())
                r = asyncio.ensure_future(reader())
                for i in range(0, len(blob), 50000):
                    await ws.send(blob[i:i + 50000])
                await asyncio.wait_for(r, 20)
                assert bytes(got) == blob
            await h.settle()
            assert h.proxy.sessions == 0 and h.upstream_eofs == 1
    run(main())


def test_rfb_handshake_through_the_proxy(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            h.grant("t", h.rfb_path)
            async with websockets.connect(h.url(), subprotocols=["binary"]) as ws:
                buf = bytearray()

                async def need(n):
                    while len(buf) < n:
                        buf.extend(await asyncio.wait_for(ws.recv(), 5))
                    out = bytes(buf[:n])
                    del buf[:n]
                    return out

                assert await need(12) == b"RFB 003.008\n"
                await ws.send(b"RFB 003.008\n")
                count = (await need(1))[0]
                assert 1 in await need(count)  # security type None offered
                await ws.send(b"\x01")
                assert await need(4) == b"\x00\x00\x00\x00"
                await ws.send(b"\x01")  # shared
                w, h_, = struct.unpack("!HH", await need(4))
                await need(16)
                (nlen,) = struct.unpack("!I", await need(4))
                assert await need(nlen) == b"stub" and (w, h_) == (4, 2)
                await ws.send(struct.pack("!BBHHHH", 3, 0, 0, 0, 4, 2))
                head = await need(4)
                assert head[0] == 0 and struct.unpack("!H", head[2:])[0] == 1  # one rect
                await need(12)
                assert await need(32) == b"\xff\x00\x00\x00" * 8
    run(main())


def test_serial_resize_and_text_input(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            h.grant("t", h.echo_path, protocol="serial")
            async with websockets.connect(h.url(), subprotocols=["binary"]) as ws:
                await ws.send('{"resize": [132, 43]}')
                await ws.send("ls\n")
                assert await asyncio.wait_for(ws.recv(), 5) == b"ls\n"
                await ws.send('{"resize": "nope"}')  # not a resize: input bytes
                assert await asyncio.wait_for(ws.recv(), 5) == b'{"resize": "nope"}'
            assert h.resizes == [(43, 132)]
            # a VNC console has no resize: the same text is input
            h.grant("v", h.echo_path, protocol="vnc")
            async with websockets.connect(h.url("v")) as ws:
                await ws.send('{"resize": [1, 1]}')
                assert await asyncio.wait_for(ws.recv(), 5) == b'{"resize": [1, 1]}'
            assert h.resizes == [(43, 132)]
    run(main())


def test_base64_subprotocol(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            h.grant("t", h.echo_path)
            async with websockets.connect(h.url(), subprotocols=["base64"]) as ws:
                assert ws.subprotocol == "base64"
                await ws.send(base64.b64encode(b"\x00\xffabc").decode())
                assert base64.b64decode(await ws.recv()) == b"\x00\xffabc"
                await ws.send("!!not base64!!")
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 5)
                assert info.value.rcvd.code == 1007
    run(main())


def test_upstream_end_closes_the_client(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            path = str(tmp_path / "once.sock")

            async def once(reader, writer):
                writer.write(b"bye")
                await writer.drain()
                writer.close()
            stub = await asyncio.start_unix_server(once, path)
            h.grant("t", path)
            async with websockets.connect(h.url()) as ws:
                assert await ws.recv() == b"bye"
                with pytest.raises(websockets.ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 5)
                assert info.value.rcvd.code == 1000
            stub.close()
    run(main())


async def raw_upgrade(port: int, path: str, extra: str = "") -> tuple[socket.socket, bytes]:
    """Tempest's handshake (tempest/common/compute.py _WebSocket._upgrade), by hand."""
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setblocking(False)
    await loop.sock_connect(s, ("127.0.0.1", port))
    req = (f"GET /{path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
           f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n{extra}\r\n")
    await loop.sock_sendall(s, req.encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = await asyncio.wait_for(loop.sock_recv(s, 4096), 5)
        if not chunk:
            break
        resp += chunk
    return s, resp


def test_tempest_style_handshake_token_in_cookie_and_refusal_without_payload(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            loop = asyncio.get_running_loop()
            h.grant("goodtok", h.rfb_path)
            s, resp = await raw_upgrade(h.port, "ws", "Cookie: path=ws%3Ftoken%3Dgoodtok\r\n")
            head, _, rest = resp.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
            assert b"sec-websocket-protocol: binary" in head.lower()
            data = rest or await asyncio.wait_for(loop.sock_recv(s, 4096), 5)
            assert data[0] == 0x82 and data[2:14] == b"RFB 003.008\n"  # unmasked binary frame
            s.close()
            # a bad token: refused, and nothing but the HTTP refusal comes back
            s, resp = await raw_upgrade(h.port, "ws?token=badgoodtok",
                                        "Cookie: path=ws%3Ftoken%3Dbadgoodtok\r\n")
            head, _, rest = resp.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 403")
            assert b"x-console-refused: the console token is invalid" in head.lower()
            assert rest == b"" and await asyncio.wait_for(loop.sock_recv(s, 4096), 5) == b""
            s.close()
    run(main())


def test_refusals(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            async def refused(url, **kw):
                with pytest.raises(websockets.InvalidStatus) as info:
                    async with websockets.connect(url, **kw):
                        pass
                assert info.value.response.status_code == 403
                return info.value.response.headers["X-Console-Refused"]

            assert "token" in (await refused(h.url("nope")))
            assert "No console token" in await refused(h.url(None))
            h.grant("t", h.echo_path)
            assert "Origin" in await refused(h.url(), origin="http://evil.example")
            assert "t" in h.grants  # a refused Origin did not use the token up
            async with websockets.connect(h.url(), origin="http://dash.example"):
                pass
            assert "invalid" in await refused(h.url())  # reused
            h.grant("gone", str(tmp_path / "missing.sock"))
            assert "not reachable" in await refused(h.url("gone"))
            assert h.upstream_conns == 1
    run(main())


def test_garbage_and_mid_frame_disconnects_leak_nothing(tmp_path):
    async def main():
        async with Harness(tmp_path) as h:
            loop = asyncio.get_running_loop()
            # warm up once so lazily created objects are not counted as leaks
            h.grant("w", h.echo_path)
            async with websockets.connect(h.url("w")) as ws:
                await ws.send(b"x")
                await ws.recv()
            await h.settle()
            tasks0, fds0 = len(asyncio.all_tasks()), fds()
            for i in range(10):
                h.grant(f"g{i}", h.echo_path)
                s, resp = await raw_upgrade(h.port, f"ws?token=g{i}")
                assert resp.startswith(b"HTTP/1.1 101")
                if i % 3 == 0:  # garbage: not a WebSocket frame at all (unmasked, bad opcode)
                    await loop.sock_sendall(s, os.urandom(64) + b"\x0f\x05hello")
                elif i % 3 == 1:  # mid-frame: a header promising 1000 masked bytes, then 10
                    await loop.sock_sendall(s, b"\x82\xfe\x03\xe8" + b"\x01\x02\x03\x04"
                                            + b"a" * 10)
                else:  # mid-handshake data, then a reset
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            # a client that upgrades and vanishes before sending anything
            h.grant("v", h.echo_path)
            s, _ = await raw_upgrade(h.port, "ws?token=v")
            s.close()
            for _ in range(300):
                if h.proxy.sessions == 0 and h.upstream_eofs >= 12:
                    break
                await asyncio.sleep(0.02)
            await h.settle()
            assert h.proxy.sessions == 0
            assert h.upstream_eofs == h.upstream_conns == 12  # every upstream was closed
            assert len(asyncio.all_tasks()) <= tasks0
            assert fds() <= fds0
            # and the proxy still works
            h.grant("after", h.echo_path)
            async with websockets.connect(h.url("after")) as ws:
                await ws.send(b"still here")
                assert await ws.recv() == b"still here"
    run(main())


def test_spice_channels_share_one_token_while_the_session_lives(tmp_path):
    """spice-html5 opens a WebSocket per SPICE channel with the same URL."""
    async def main():
        async with Harness(tmp_path) as h:
            h.grant("s", h.echo_path, protocol="spice")
            h.grant("v", h.echo_path, protocol="vnc")
            async with websockets.connect(h.url("s")) as main_ch:
                async with websockets.connect(h.url("s")) as display:
                    await display.send(b"d")
                    assert await display.recv() == b"d"
                await main_ch.send(b"m")
                assert await main_ch.recv() == b"m"
                async with websockets.connect(h.url("v")):
                    with pytest.raises(websockets.InvalidStatus):  # VNC: one connection
                        async with websockets.connect(h.url("v")):
                            pass
            # a session's channels are bounded
            h.grant("cap", h.echo_path, protocol="spice")
            conns = [await websockets.connect(h.url("cap")) for _ in range(8)]
            with pytest.raises(websockets.InvalidStatus) as info:
                await websockets.connect(h.url("cap"))
            assert "Too many channels" in info.value.response.headers["X-Console-Refused"]
            for c in conns:
                await c.close()
            await h.settle()
            assert h.proxy.spice_sessions == {}
            with pytest.raises(websockets.InvalidStatus):  # the session ended with its channels
                async with websockets.connect(h.url("s")):
                    pass
    run(main())


def test_connect_waits_for_a_busy_console_instead_of_a_dead_socket(tmp_path):
    """QEMU's VNC/serial listeners have a backlog of one: a second client must wait for the
    first to be taken, not get a socket that was never connected."""
    from pocketstack.services.compute.console_proxy import _connect

    path = str(tmp_path / "busy.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(0)
    first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    first.connect(path)  # fills the backlog

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        # The listener takes the first client only after the second started trying.
        loop.call_later(0.3, lambda: srv.accept()[0].close())
        reader, writer = await asyncio.wait_for(_connect(path), 5)
        conn, _ = await loop.run_in_executor(None, srv.accept)
        writer.write(b"ping")
        await writer.drain()
        got = await loop.run_in_executor(None, conn.recv, 4)
        conn.close()
        writer.close()
        return got

    try:
        assert run(scenario()) == b"ping"
    finally:
        first.close()
        srv.close()

    gone = str(tmp_path / "gone.sock")
    with pytest.raises(FileNotFoundError):
        run(_connect(gone))
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(gone)  # bound, never listening: refused at once, not retried
    with pytest.raises(ConnectionRefusedError):
        run(asyncio.wait_for(_connect(gone), 2))
    dead.close()
