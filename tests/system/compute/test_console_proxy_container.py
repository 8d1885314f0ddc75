"""A container server's interactive console end to end (root, real runc): the serial URL
from `openstack console url show --serial`, the WebSocket proxy, the console keeper's pty.
A command typed in answers; a {"resize": [cols, rows]} frame changes what ``stty size``
says in the guest; the token is spent; VNC is not a container's (501 with the reason)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
import websockets

from tests.conftest import LiveCloud

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="container servers need root")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    live = LiveCloud(tmp_path_factory.mktemp("ctrcon") / "data",
                     extra_env={"POCKETSTACK_COMPUTE__DRIVER": "container"}).start()
    try:
        conn = live.sdk()
        if "serial" not in live.openstack("console", "url", "show", "--help", parse=False):
            pytest.skip("this openstackclient has no --serial")
        image = conn.image.find_image("busybox", ignore_missing=False)
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        srv = conn.compute.create_server(name="ps-ctrcon", image_id=image.id,
                                         flavor_id=flavor.id, networks="none")
        srv = conn.compute.wait_for_server(srv, status="ACTIVE", wait=120)
        yield live, srv.id
    finally:
        live.destroy()


async def session(url: str, steps: list[tuple[str | bytes, str]], timeout: float = 30) -> str:
    """Send each step's frame, then read until its expected text shows."""
    out = b""
    async with websockets.connect(url, subprotocols=["binary"]) as ws:
        for frame, want in steps:
            await ws.send(frame)
            deadline = time.monotonic() + timeout
            while want and want.encode() not in out:
                assert time.monotonic() < deadline, out[-1500:]
                try:
                    out += await asyncio.wait_for(ws.recv(), 1)
                except asyncio.TimeoutError:
                    pass
    return out.decode(errors="replace")


def test_container_serial_console_and_resize(server):
    live, sid = server
    url = live.openstack("console", "url", "show", "--serial", sid)["url"]
    assert url.startswith("ws://") and "/compute/console/serial?token=" in url
    tag = os.urandom(3).hex()
    out = asyncio.run(session(url, [
        (b"\n", ""),
        (f"echo ps-ctr-{tag}-$((6*7))\n".encode(), f"ps-ctr-{tag}-42"),
        ('{"resize": [123, 37]}', ""),
        (f"echo size-{tag} $(stty size)\n".encode(), f"size-{tag} 37 123"),
    ]))
    assert f"size-{tag} 37 123" in out
    with pytest.raises(websockets.InvalidStatus) as info:  # spent
        asyncio.run(session(url, [(b"\n", "")]))
    assert info.value.response.status_code == 403


def test_container_has_no_vnc(server):
    live, sid = server
    res = live.openstack("console", "url", "show", "--novnc", sid, check=False)
    assert res.returncode != 0 and "501" in res.stderr and "no vnc console" in res.stderr
