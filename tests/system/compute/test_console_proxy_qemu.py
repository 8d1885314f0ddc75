"""VM remote consoles end to end (root, real QEMU): `openstack console url show` gives the
URL, the WebSocket proxy on the API port checks the one-time token and splices to QEMU's
unix sockets. noVNC's handshake (RFB 3.8, security None) reaches a framebuffer update,
SPICE answers its link message, a command typed into the serial console answers; the
token is spent after use; Tempest's raw handshake (token in the path and a cookie)
works; a stopped VM's console is refused; clients that send garbage or vanish leave the
server process with no more fds than before. Prints the URL -> first framebuffer update
time and the proxy's throughput against a direct read of the same socket.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import websockets

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

IMAGES = Path("/var/cache/pocketstack/test-images")
if os.geteuid() != 0:
    pytest.skip("VMs need root", allow_module_level=True)
if not shutil.which("qemu-system-x86_64"):
    pytest.skip("qemu-system-x86_64 not installed", allow_module_level=True)
if not all((IMAGES / f).is_file() for f in ("vmlinuz", "initramfs.gz")):
    pytest.skip(f"no VM test images in {IMAGES} (scripts/build-test-images --with-kernel)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def vm():
    base = Path(tempfile.mkdtemp(prefix="ps-conproxy-"))
    live = LiveCloud(base / "data", extra_env={"POCKETSTACK_COMPUTE__DRIVER": "qemu"})
    try:
        live.start()
        live.openstack("flavor", "create", "--ram", "256", "--disk", "0", "--vcpus", "1",
                       "ps-conproxy-256")
        out = live.openstack("--os-compute-api-version", "2.37", "server", "create", "--image",
                             "busybox-vm", "--flavor", "ps-conproxy-256", "--nic", "none",
                             "--wait", "ps-conproxy-vm", "-f", "json", parse=False)
        sid = json.loads(out)["id"]
        deadline = time.monotonic() + 120
        while "pocketstack-busybox: booted" not in live.openstack(
                "console", "log", "show", sid, parse=False):
            assert time.monotonic() < deadline, "the VM did not boot"
            time.sleep(1)
        yield live, sid
    finally:
        live.destroy(base)


def url_of(live, sid, flag):
    return live.openstack("console", "url", "show", flag, sid)["url"]


def ws_of(url):
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url
    return f"ws://{parts.netloc}/{parse_qs(parts.query)['path'][0]}"


class Stream:
    def __init__(self, ws):
        self.ws, self.buf = ws, bytearray()

    async def need(self, n, timeout=10):
        while len(self.buf) < n:
            self.buf.extend(await asyncio.wait_for(self.ws.recv(), timeout))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


async def rfb_first_update(url: str) -> tuple[int, int, float]:
    """RFB 3.8 through the proxy up to the first framebuffer update: (w, h, seconds)."""
    t0 = time.monotonic()
    async with websockets.connect(ws_of(url), subprotocols=["binary"]) as ws:
        assert ws.subprotocol == "binary"
        s = Stream(ws)
        assert await s.need(12) == b"RFB 003.008\n"
        await ws.send(b"RFB 003.008\n")
        count = (await s.need(1))[0]
        assert 1 in await s.need(count), "security type None not offered"
        await ws.send(b"\x01")
        assert await s.need(4) == b"\0\0\0\0"
        await ws.send(b"\x01")
        w, h = struct.unpack("!HH", await s.need(4))
        await s.need(16)
        (nlen,) = struct.unpack("!I", await s.need(4))
        await s.need(nlen)
        await ws.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
        head = await s.need(4)
        assert head[0] == 0 and struct.unpack("!H", head[2:])[0] >= 1
        return w, h, time.monotonic() - t0


def test_novnc_url_to_framebuffer_update(vm):
    live, sid = vm
    t0 = time.monotonic()
    url = url_of(live, sid, "--novnc")
    w, h, rfb_s = asyncio.run(rfb_first_update(url))
    assert w > 0 and h > 0
    print(f"\nconsole URL (CLI) -> first framebuffer update: {time.monotonic() - t0:.2f}s "
          f"(WebSocket connect -> update {rfb_s * 1000:.0f} ms), {w}x{h}")
    # the token is spent
    with pytest.raises(websockets.InvalidStatus) as info:
        asyncio.run(rfb_first_update(url))
    assert info.value.response.status_code == 403


def test_tempest_handshake(vm):
    """tempest.common.compute._WebSocket: GET /<path> with the query as a Cookie too."""
    live, sid = vm
    url = url_of(live, sid, "--novnc")
    parts = urlsplit(url)
    path = parse_qs(parts.query)["path"][0]
    for bad in (True, False):
        p = path.replace("token=", "token=bad") if bad else path
        cookie = parts.query.replace("token%3D", "token%3Dbad") if bad else parts.query
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as s:
            s.sendall((f"GET /{p} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nCookie: {cookie}\r\n"
                       "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
                       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: binary\r\n\r\n")
                      .encode())
            resp = b""
            while b"\r\n\r\n" not in resp:
                chunk = s.recv(4096)
                assert chunk
                resp += chunk
            head, _, rest = resp.partition(b"\r\n\r\n")
            if bad:
                assert head.startswith(b"HTTP/1.1 403")
                assert rest == b"" and s.recv(4096) == b""  # nothing: Tempest's bad-token check
            else:
                assert head.startswith(b"HTTP/1.1 101 Switching Protocols")
                assert b"upgrade: websocket" in head.lower()
                frame = rest or s.recv(4096)
                assert frame[0] == 0x82 and frame[2:14] == b"RFB 003.008\n"


def test_spice_link_through_the_proxy(vm):
    live, sid = vm
    url = url_of(live, sid, "--spice")
    assert "/compute/console/spice-html5/spice_auto.html?path=" in url

    async def link():
        async with websockets.connect(ws_of(url), subprotocols=["binary"]) as ws:
            caps = struct.pack("<I", 0b101)
            body = struct.pack("<IBBIII", 0, 1, 0, 1, 0, 18) + caps
            await ws.send(b"REDQ" + struct.pack("<III", 2, 2, len(body)) + body)
            return await Stream(ws).need(16)

    magic, major, _, size = struct.unpack("<4sIII", asyncio.run(link()))
    assert (magic, major) == (b"REDQ", 2) and size > 0


async def serial_command(url: str, command: str, want: str, timeout: float = 30) -> str:
    async with websockets.connect(url, subprotocols=["binary"]) as ws:
        await ws.send(b"\n")
        await ws.send('{"resize": [100, 30]}')  # a VM's serial port ignores it
        await ws.send((command + "\n").encode())
        out = b""
        deadline = time.monotonic() + timeout
        while want.encode() not in out:
            assert time.monotonic() < deadline, out[-1000:]
            try:
                out += await asyncio.wait_for(ws.recv(), 1)
            except asyncio.TimeoutError:
                await ws.send(b"\n")
        return out.decode(errors="replace")


def test_serial_console_runs_a_command(vm):
    live, sid = vm
    url = url_of(live, sid, "--serial")
    assert url.startswith("ws://") and "/compute/console/serial?token=" in url
    tag = os.urandom(3).hex()
    out = asyncio.run(serial_command(url, f"echo ps-wsserial-{tag}-$((6*7))",
                                     f"ps-wsserial-{tag}-42"))
    assert f"ps-wsserial-{tag}-42" in out


def test_proxy_throughput_against_the_direct_socket(vm):
    """Bytes/s of the VNC stream (full framebuffer updates, raw encoding) read through the
    proxy and straight from QEMU's socket, same VM, same run."""
    live, sid = vm
    sock_path = next((live.data_dir / "compute/qemu" / sid).rglob("vnc.sock"))
    n_updates = 40

    def handshake_direct(s):
        def need(n):
            b = b""
            while len(b) < n:
                c = s.recv(n - len(b))
                assert c
                b += c
            return b
        need(12)
        s.sendall(b"RFB 003.008\n")
        need(need(1)[0])
        s.sendall(b"\x01")
        need(4)
        s.sendall(b"\x01")
        w, h = struct.unpack("!HH", need(4))
        need(16)
        need(struct.unpack("!I", need(4))[0])
        return w, h, need

    def direct() -> float:
        s = socket.socket(socket.AF_UNIX)
        s.connect(str(sock_path))
        try:
            w, h, need = handshake_direct(s)
            s.sendall(struct.pack("!BxHI", 2, 1, 0))  # SetEncodings: raw only
            total, t0 = 0, time.monotonic()
            for _ in range(n_updates):
                s.sendall(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
                head = need(4)
                for _ in range(struct.unpack("!H", head[2:])[0]):
                    rx, ry, rw, rh, enc = struct.unpack("!HHHHi", need(12))
                    total += len(need(rw * rh * 4)) + 16
            return total / (time.monotonic() - t0)
        finally:
            s.close()

    async def proxied() -> float:
        async with websockets.connect(ws_of(url_of(live, sid, "--novnc")),
                                      subprotocols=["binary"], max_size=None) as ws:
            s = Stream(ws)
            await s.need(12)
            await ws.send(b"RFB 003.008\n")
            await s.need((await s.need(1))[0])
            await ws.send(b"\x01")
            await s.need(4)
            await ws.send(b"\x01")
            w, h = struct.unpack("!HH", await s.need(4))
            await s.need(16)
            await s.need(struct.unpack("!I", await s.need(4))[0])
            await ws.send(struct.pack("!BxHI", 2, 1, 0))
            total, t0 = 0, time.monotonic()
            for _ in range(n_updates):
                await ws.send(struct.pack("!BBHHHH", 3, 0, 0, 0, w, h))
                head = await s.need(4)
                for _ in range(struct.unpack("!H", head[2:])[0]):
                    rx, ry, rw, rh, enc = struct.unpack("!HHHHi", await s.need(12))
                    total += len(await s.need(rw * rh * 4)) + 16
            return total / (time.monotonic() - t0)

    d = direct()
    p = asyncio.run(proxied())
    print(f"\nVNC raw framebuffer stream: direct {d / 1e6:.1f} MB/s, through the proxy "
          f"{p / 1e6:.1f} MB/s, ratio {p / d:.2f}")
    assert p > 0 and d > 0


def test_abuse_leaves_no_fds_and_the_vm_running(vm):
    live, sid = vm
    pid = live.proc.pid

    def fds():
        return len(os.listdir(f"/proc/{pid}/fd"))

    async def abuse(rounds):
        for _ in range(rounds):
            url = ws_of(url_of(live, sid, "--novnc"))
            ws = await websockets.connect(url, subprotocols=["binary"])
            ws.transport.write(b"\x82\xfe\x10\x00\x01\x02\x03\x04" + b"x" * 7)  # cut mid-frame
            ws.transport.abort()
            url = ws_of(url_of(live, sid, "--novnc"))
            ws = await websockets.connect(url, subprotocols=["binary"])
            ws.transport.write(os.urandom(300))  # garbage, not frames
            await asyncio.sleep(0.1)
            ws.transport.abort()

    asyncio.run(abuse(2))
    time.sleep(1)
    before = fds()
    asyncio.run(abuse(5))
    deadline = time.monotonic() + 15
    while fds() > before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert fds() <= before
    # the VM still answers on its console
    w, h, _ = asyncio.run(rfb_first_update(url_of(live, sid, "--novnc")))
    assert w and h


def test_stopped_vm_console_refused(vm):
    live, sid = vm
    url = url_of(live, sid, "--novnc")
    live.openstack("server", "stop", sid, parse=False)
    deadline = time.monotonic() + 60
    while live.openstack("server", "show", sid)["status"] != "SHUTOFF":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    res = live.openstack("console", "url", "show", "--novnc", sid, check=False)
    assert res.returncode != 0 and "409" in res.stderr
    with pytest.raises(websockets.InvalidStatus) as info:
        asyncio.run(rfb_first_update(url))
    assert info.value.response.status_code == 403
