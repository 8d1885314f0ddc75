"""Remote consoles through the real clients (`openstack console url show`, openstacksdk) on
the shared session cloud (fake compute driver: URLs are issued, the proxy refuses to splice
because the fake has no console socket; tests/unit/compute/test_console_proxy.py splices
real sockets and tests/system the QEMU and container consoles).

Also: the pages the URLs lead to load, and the WebSocket refusals (bad, reused, expired
token, bad Origin, stopped server) leave the server process without leaked fds."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.request
from urllib.parse import parse_qs, unquote, urlsplit

import openstack
import pytest
import websockets
from tests.conftest import LiveCloud
from tests.functional.compute.servers_common import uniq, wait

MV = "2.79"


def boot(conn, name):
    image = conn.image.find_image("busybox", ignore_missing=False).id
    r = conn.compute.post("/servers", json={"server": {
        "name": name, "imageRef": image, "flavorRef": "1", "networks": "none"}},
        microversion=MV)
    assert r.status_code == 202, r.text
    return wait(conn, r.json()["server"]["id"], {"ACTIVE"})


@pytest.fixture(scope="module")
def server(admin):
    srv = boot(admin, uniq("con"))
    yield srv
    admin.compute.delete_server(srv.id)


def remote_console(conn, sid, protocol, ctype, mv=MV):
    return conn.compute.post(f"/servers/{sid}/remote-consoles", json={
        "remote_console": {"protocol": protocol, "type": ctype}}, microversion=mv)


def action(conn, sid, body, mv="2.1"):
    return conn.compute.post(f"/servers/{sid}/action", json=body, microversion=mv)


def token_of(url: str) -> str:
    q = parse_qs(urlsplit(url).query)
    if "token" in q:
        return q["token"][0]
    return parse_qs(urlsplit(unquote(q["path"][0])).query)["token"][0]


def ws_url(url: str) -> str:
    """The WebSocket a console URL leads to (what noVNC / spice-html5 open)."""
    parts = urlsplit(url)
    if parts.scheme in ("ws", "wss"):
        return url
    path = parse_qs(parts.query)["path"][0]
    return f"ws://{parts.netloc}/{path}"


async def refusal(url: str, **kw) -> str:
    """Connect; the upgrade must be refused (403): the reason header."""
    try:
        async with websockets.connect(url, open_timeout=10, **kw):
            pass
    except websockets.InvalidStatus as exc:
        assert exc.response.status_code == 403
        return exc.response.headers.get("X-Console-Refused", "")
    raise AssertionError(f"{url} was not refused")


def refused(url: str, **kw) -> str:
    return asyncio.run(refusal(url, **kw))


# -- the CLI and the SDK ---------------------------------------------------------------------
@pytest.mark.parametrize("flag,protocol,ctype", [
    ("--novnc", "vnc", "novnc"), ("--spice", "spice", "spice-html5"),
    ("--serial", "serial", "serial")])
def test_cli_console_url_show(cloud, server, flag, protocol, ctype):
    out = cloud.openstack("console", "url", "show", flag, server.id)
    assert (out["protocol"], out["type"]) == (protocol, ctype)
    url = out["url"]
    assert len(token_of(url)) >= 43
    if ctype == "serial":
        assert url.startswith(f"ws://127.0.0.1:{cloud.port}/compute/console/serial?token=")
    else:
        assert url.startswith(cloud.base_url + "/compute/console/")
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            page = resp.read().decode()
            csp = resp.headers["Content-Security-Policy"]
            assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert "<html" in page and "</html>" in page and "<script" in page
        assert ("noVNC" if ctype == "novnc" else "Spice") in page
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp.split(";")[1]


def test_cli_legacy_microversion_uses_the_actions(cloud, server):
    out = json.loads(cloud.openstack("--os-compute-api-version", "2.5", "console", "url",
                                     "show", "--novnc", server.id, "-f", "json"))
    assert out["type"] == "novnc" and "/compute/console/novnc/vnc_lite.html?path=" in out["url"]


def test_sdk_console_urls(admin, server):
    for protocol, ctype in (("vnc", "novnc"), ("spice", "spice-html5"), ("serial", "serial")):
        rc = admin.compute.create_server_remote_console(server, protocol=protocol, type=ctype)
        assert rc.protocol == protocol and rc.type == ctype and token_of(rc.url)
    # the SDK's get_server_console_url sends the 2.1-2.5 action at its highest microversion:
    # Nova answers 404 (no such method at that version), and so do we
    with pytest.raises(openstack.exceptions.NotFoundException):
        admin.compute.get_server_console_url(server, "novnc")


def test_each_url_has_its_own_token(admin, server):
    urls = {remote_console(admin, server.id, "vnc", "novnc").json()["remote_console"]["url"]
            for _ in range(3)}
    assert len({token_of(u) for u in urls}) == 3


def test_legacy_actions(admin, server):
    for name, ctype in (("os-getVNCConsole", "novnc"), ("os-getSPICEConsole", "spice-html5"),
                        ("os-getSerialConsole", "serial")):
        r = action(admin, server.id, {name: {"type": ctype}})
        assert r.status_code == 200, r.text
        assert set(r.json()["console"]) == {"type", "url"}
        assert r.json()["console"]["type"] == ctype
    r = action(admin, server.id, {"os-getVNCConsole": {"type": "xvpvnc"}})
    assert r.status_code == 400 and "Invalid console type xvpvnc" in r.text
    r = action(admin, server.id, {"os-getVNCConsole": {"type": "spice-html5"}})
    assert r.status_code == 400
    r = action(admin, server.id, {"os-getVNCConsole": {}})
    assert r.status_code == 400
    r = action(admin, server.id, {"os-getRDPConsole": {"type": "rdp-html5"}})
    assert r.status_code == 400
    # gone at 2.6 (remote-consoles replaced them): Nova's 404 for a method not in a version
    r = action(admin, server.id, {"os-getVNCConsole": {"type": "novnc"}}, mv="2.6")
    assert r.status_code == 404, r.text


def test_microversions_and_errors(admin, demo, server):
    sid = server.id
    assert remote_console(admin, sid, "vnc", "novnc", mv="2.5").status_code == 404
    r = remote_console(admin, sid, "vnc", "novnc", mv="2.6")
    assert r.status_code == 200 and set(r.json()["remote_console"]) == {"protocol", "type", "url"}
    # mks: not in the 2.6 schema; 2.8 accepts it and no driver here has it (Nova: 501)
    assert remote_console(admin, sid, "mks", "webmks", mv="2.6").status_code == 400
    r = remote_console(admin, sid, "mks", "webmks", mv="2.8")
    assert r.status_code == 501, r.text
    r = remote_console(admin, sid, "rdp", "rdp-html5")
    assert r.status_code == 400 and "Unavailable console type rdp." in r.text
    r = remote_console(admin, sid, "vnc", "spice-html5")
    assert r.status_code == 400 and "Invalid console type spice-html5" in r.text
    r = remote_console(admin, sid, "vnc", "bogus")
    assert r.status_code == 400 and "bogus" in r.text
    r = remote_console(admin, sid, "telnet", "novnc")
    assert r.status_code == 400
    r = admin.compute.post(f"/servers/{sid}/remote-consoles", json={
        "remote_console": {"protocol": "vnc", "type": "novnc", "extra": 1}}, microversion=MV)
    assert r.status_code == 400
    r = admin.compute.post(f"/servers/{sid}/remote-consoles", json={"x": 1}, microversion=MV)
    assert r.status_code == 400
    # another project's server is not found; so is no server at all
    r = remote_console(demo, sid, "vnc", "novnc")
    assert r.status_code == 404, r.text
    r = remote_console(admin, "00000000-0000-0000-0000-000000000000", "vnc", "novnc")
    assert r.status_code == 404
    r = action(demo, sid, {"os-getVNCConsole": {"type": "novnc"}})
    assert r.status_code == 404


def test_demo_gets_its_own_console(demo):
    srv = boot(demo, uniq("con-demo"))
    try:
        r = remote_console(demo, srv.id, "serial", "serial")
        assert r.status_code == 200, r.text
    finally:
        demo.compute.delete_server(srv.id)


def test_stopped_server_409_and_its_tokens_refused(admin):
    srv = boot(admin, uniq("con-stop"))
    try:
        url = remote_console(admin, srv.id, "vnc", "novnc").json()["remote_console"]["url"]
        admin.compute.stop_server(srv.id)
        wait(admin, srv.id, {"SHUTOFF"})
        r = remote_console(admin, srv.id, "vnc", "novnc")
        assert r.status_code == 409 and "is not ready" in r.text
        r = action(admin, srv.id, {"os-getVNCConsole": {"type": "novnc"}})
        assert r.status_code == 409
        assert "stopped" in refused(ws_url(url))
    finally:
        admin.compute.delete_server(srv.id)


def test_console_auth_tokens(admin, demo, server):
    url = remote_console(admin, server.id, "vnc", "novnc").json()["remote_console"]["url"]
    token = token_of(url)
    r = admin.compute.get(f"/os-console-auth-tokens/{token}", microversion="2.31")
    assert r.status_code == 200, r.text
    console = r.json()["console"]
    assert set(console) == {"instance_uuid", "host", "port", "internal_access_path"}
    assert console["instance_uuid"] == server.id and console["host"]
    # before 2.31 only rdp-html5 tokens could be shown (Nova now answers 400)
    assert admin.compute.get(f"/os-console-auth-tokens/{token}",
                             microversion="2.30").status_code == 400
    assert demo.compute.get(f"/os-console-auth-tokens/{token}",
                            microversion="2.31").status_code == 403
    assert admin.compute.get("/os-console-auth-tokens/" + "A" * 43,
                             microversion="2.31").status_code == 404
    # showing does not use the token up (the proxy does)
    assert admin.compute.get(f"/os-console-auth-tokens/{token}",
                             microversion="2.31").status_code == 200


# -- the pages and the WebSocket ---------------------------------------------------------------
def test_pages_and_their_headers(cloud):
    for path, ctype in (("novnc/vnc_lite.html", "text/html"), ("novnc/core/rfb.js", "text/javascript"),
                        ("spice-html5/main.js", "text/javascript"), ("serial.html", "text/html"),
                        ("xterm/xterm.js", "text/javascript"), ("xterm/xterm.css", "text/css")):
        with urllib.request.urlopen(f"{cloud.base_url}/compute/console/{path}", timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith(ctype)
            assert r.headers["X-Content-Type-Options"] == "nosniff"
    for bad in ("../consoles.py", "%2e%2e/consoles.py", "VENDORED.md", "novnc/LICENSE.MPL-2.0",
                "nope.html", "novnc/"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"{cloud.base_url}/compute/console/{bad}", timeout=10)
        assert info.value.code == 404


def test_websocket_refusals(admin, server):
    def fresh(protocol="vnc", ctype="novnc"):
        return remote_console(admin, server.id, protocol, ctype).json()["remote_console"]["url"]

    url = fresh()
    base = ws_url(url)
    # a wrong token, as Tempest's test_novnc_bad_token makes it
    assert "invalid" in refused(base.replace("token=", "token=bad"))
    # a bad Origin does not use the token up...
    assert "Origin" in refused(base, origin="http://evil.example")
    # ...the first use does (the fake driver has no console socket: refused with why)...
    assert "fake driver has no vnc console" in refused(base, origin=f"http://{urlsplit(url).netloc}")
    # ...and then it is spent
    assert "invalid" in refused(base)
    # the token in the Cookie header instead of the query (Tempest sends both; noVNC < 1.1)
    url = fresh()
    cookie_only = base.split("?")[0]
    assert "fake driver" in refused(cookie_only, additional_headers={
        "Cookie": urlsplit(url).query})
    assert "No console token" in refused(cookie_only)
    # the serial WebSocket
    assert "serial console" in refused(fresh("serial", "serial"))
    # WebSockets anywhere else are refused (no route, or a slice that speaks HTTP only)
    root = base.split("/compute/")[0]
    for path in ("/compute/v2.1/servers", "/nope", "/identity/v3", "/s3/bucket", "/"):
        refused(root + path)


def test_no_tracebacks_in_the_log(cloud):
    assert "WebSocket" not in "".join(
        line for line in cloud.log().splitlines(True) if "Traceback" in line or "ERROR" in line)


def server_fds(cloud) -> int:
    return len(os.listdir(f"/proc/{cloud.proc.pid}/fd"))


def server_threads(cloud) -> int:
    return len(os.listdir(f"/proc/{cloud.proc.pid}/task"))


def abuse(cloud, admin, server, rounds: int) -> None:
    """Bad tokens, bad Origins, spent tokens, garbage and half-sent handshakes."""
    host = f"127.0.0.1:{cloud.port}"
    for i in range(rounds):
        url = ws_url(remote_console(admin, server.id, "vnc", "novnc").json()["remote_console"]["url"])
        refused(url, origin="http://evil.example")
        refused(url)
        refused(url)
        refused(url.replace("token=", "token=x"))
        with socket.create_connection(("127.0.0.1", cloud.port)) as s:  # garbage
            s.sendall(os.urandom(200) + b"\r\n\r\n")
            s.settimeout(5)
            try:
                s.recv(4096)
            except OSError:
                pass
        with socket.create_connection(("127.0.0.1", cloud.port)) as s:  # cut mid-handshake
            s.sendall(f"GET /compute/console/websockify?token=abc HTTP/1.1\r\nHost: {host}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Ke".encode())


def test_abuse_leaks_no_fds_or_threads(cloud, admin, server):
    abuse(cloud, admin, server, 5)  # warm up pools and lazily made objects
    time.sleep(1)
    fds0, threads0 = server_fds(cloud), server_threads(cloud)
    abuse(cloud, admin, server, 15)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and server_fds(cloud) > fds0:
        time.sleep(0.2)
    assert server_fds(cloud) <= fds0, (fds0, server_fds(cloud))
    assert server_threads(cloud) <= threads0
    r = remote_console(admin, server.id, "vnc", "novnc")  # still serving
    assert r.status_code == 200


def test_expired_token_is_refused(tmp_path_factory, fresh_database_url):
    """A cloud of its own with a 1 s token TTL."""
    data_dir = tmp_path_factory.mktemp("console-ttl") / "data"
    live = LiveCloud(data_dir, db_url=fresh_database_url,
                     extra_env={"POCKETSTACK_COMPUTE__CONSOLE_TOKEN_TTL": "1"}).start()
    try:
        conn = live.sdk()
        srv = boot(conn, uniq("con-ttl"))
        url = remote_console(conn, srv.id, "vnc", "novnc").json()["remote_console"]["url"]
        token = token_of(url)
        time.sleep(2.5)
        assert conn.compute.get(f"/os-console-auth-tokens/{token}",
                                microversion="2.31").status_code == 404
        assert "invalid, expired" in refused(ws_url(url))
    finally:
        live.stop()
