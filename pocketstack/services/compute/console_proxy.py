"""The console WebSocket proxy and the console pages, served on the API port.

``/compute/console/websockify`` (VNC, SPICE) and ``/compute/console/serial`` accept a
WebSocket carrying a one-time token (query ``token=``, or the Cookie header: noVNC < 1.1
and spice-html5 send it there, Tempest sends the page URL's query string as the cookie),
check the Origin against the Host and ``[compute] console_allowed_origins``, consume the
token, and splice bytes between the client and the server's console unix socket with two
asyncio tasks; when either side ends, both are closed.

Refusals happen before the upgrade is accepted: HTTP 403 with the reason in the
``X-Console-Refused`` header and an empty body, and the connection closed. (A close frame
with a status code would carry a payload, and Tempest's test_novnc_bad_token requires the
refused socket to yield no data at all, as nova-novncproxy's dropped connection does.)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from pocketstack.api.http import run
from pocketstack.services.compute.console_tokens import TokenInfo, hash_token

log = logging.getLogger("pocketstack.compute.console")

STATIC_ROOT = Path(__file__).resolve().parent / "console_static"
CHUNK = 65536
CONNECT_TIMEOUT = 5.0
POLICY_VIOLATION = 1008
# spice-html5 opens main, display, inputs, cursor and playback channels; a token holder
# gets no more than this many connections to QEMU at once.
MAX_SPICE_CHANNELS = 8

_TOKEN_IN_TEXT = re.compile(r"(?:^|[?&;\s])token=([A-Za-z0-9_-]{1,128})")


# -- token and Origin ---------------------------------------------------------------------
def cookie_token(raw: str | None) -> str | None:
    """The token in a raw Cookie header: a ``token=`` cookie (spice-html5 sets one), or a
    ``token=`` inside a URL-encoded cookie value (Tempest sends ``path=%3Ftoken%3D...``).
    Parsed by hand: http.cookies gives up on the whole header at the first odd cookie."""
    if not raw:
        return None
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name.strip() == "token" and value.strip():
            return value.strip().strip('"')
    match = _TOKEN_IN_TEXT.search(unquote(raw))
    return match.group(1) if match else None


def request_token(query_string: bytes, cookie: str | None) -> str | None:
    """The query's ``token`` wins over the cookie's."""
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if query.get("token"):
        return query["token"][0]
    return cookie_token(cookie)


def _netloc(host: str, scheme: str) -> tuple[str, int] | None:
    default = 443 if scheme in ("https", "wss") else 80
    try:
        parts = urlsplit(f"//{host}")
        if not parts.hostname:
            return None
        return parts.hostname.lower(), parts.port or default
    except ValueError:
        return None


def origin_allowed(origin: str | None, host: str | None, allowed: list[str],
                   secure: bool = False) -> bool:
    """Nova's check: no Origin (a non-browser client) is fine; a browser's Origin must be
    the Host it connected to (same host and port) or on the allow-list (``host`` for any
    port, ``host:port`` for one)."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        o_host, o_port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not o_host:
        return False
    o_port = o_port or (443 if parts.scheme == "https" else 80)
    if host:
        mine = _netloc(host, "https" if secure else "http")
        if mine == (o_host, o_port):
            return True
    for entry in allowed:
        entry = entry.strip().lower()
        if not entry:
            continue
        want = _netloc(entry, parts.scheme)
        if want is None:
            continue
        if want[0] == o_host and (":" not in entry.rsplit("]", 1)[-1] or want[1] == o_port):
            return True
    return False


def parse_resize(text: str) -> tuple[int, int] | None:
    """``{"resize": [cols, rows]}`` -> (rows, cols); None if the text is not a resize."""
    if not text.startswith("{") or len(text) > 256:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or set(value) != {"resize"}:
        return None
    size = value["resize"]
    if (isinstance(size, list) and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4096
                    for n in size)):
        return size[1], size[0]
    return None


# -- the proxy ------------------------------------------------------------------------------
Opener = Callable[[str], Awaitable[tuple[TokenInfo, str]]]
Resizer = Callable[[TokenInfo, int, int], Awaitable[None]]


async def _connect(path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to a console socket, retrying while it is busy. QEMU listens for VNC and
    serial clients with a backlog of one; a non-blocking connect to a unix socket whose
    backlog is full fails with EAGAIN, and asyncio's own connect then hands back a socket
    that was never connected (the first write fails with EINVAL). So the connect is tried
    here, by hand, until the kernel takes it; the caller's timeout bounds the retries."""
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            await asyncio.sleep(0.05)
            continue
        except BaseException:
            sock.close()
            raise
        return await asyncio.open_unix_connection(sock=sock, limit=CHUNK)


class Refused(Exception):
    pass


@dataclass
class _SpiceSession:
    info: TokenInfo
    path: str
    open: int = 0


class ConsoleProxy:
    """One instance per app. ``opener(token)`` consumes the token and returns its grant and
    the console socket path (raising ``Refused``-like exceptions with a reason)."""

    def __init__(self, opener: Opener, resizer: Resizer, allowed_origins: list[str],
                 refusal_types: tuple[type[BaseException], ...] = ()) -> None:
        self.opener = opener
        self.resizer = resizer
        self.allowed_origins = allowed_origins
        self.refusal_types = (Refused, *refusal_types)
        self.sessions = 0  # live spliced sessions (for the leak checks)
        self.spice_sessions: dict[str, _SpiceSession] = {}  # token hash -> open channels

    async def refuse(self, ws: WebSocket, reason: str) -> None:
        log.info("console WebSocket refused from %s: %s",
                 ws.client.host if ws.client else "?", reason)
        headers = {"X-Console-Refused": reason.encode("ascii", "replace").decode()[:200],
                   "Cache-Control": "no-store"}
        if "websocket.http.response" in ws.scope.get("extensions", {}):
            await ws.send_denial_response(Response(status_code=403, headers=headers))
        else:
            await ws.close(POLICY_VIOLATION, reason[:120])

    async def handle(self, ws: WebSocket) -> None:
        headers = ws.headers
        secure = ws.url.scheme == "wss"
        if not origin_allowed(headers.get("origin"), headers.get("host"),
                              self.allowed_origins, secure):
            await self.refuse(ws, "Origin not allowed.")
            return
        token = request_token(ws.scope.get("query_string", b""), headers.get("cookie"))
        if not token:
            await self.refuse(ws, "No console token.")
            return
        digest = hash_token(token)
        channels = self.spice_sessions.get(digest)
        if channels is not None:  # another channel of a live SPICE session
            if channels.open >= MAX_SPICE_CHANNELS:
                await self.refuse(ws, "Too many channels for this console session.")
                return
            info, path = channels.info, channels.path
        else:
            try:
                info, path = await self.opener(token)
            except self.refusal_types as exc:
                await self.refuse(ws, str(exc) or "Console refused.")
                return
        try:
            reader, writer = await asyncio.wait_for(_connect(path), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("console socket %s of server %s: %s", path, info.server_id, exc)
            await self.refuse(ws, "The console is not reachable.")
            return
        offered = ws.scope.get("subprotocols") or []
        subprotocol = "binary" if "binary" in offered else (
            "base64" if "base64" in offered else None)
        if info.protocol == "spice":
            # A SPICE client opens one WebSocket per channel (main, display, inputs,
            # cursor...) with the same URL: the token, used up by the first, admits the
            # others while at least one of that session's channels is still open.
            channels = self.spice_sessions.setdefault(digest, _SpiceSession(info, path))
            channels.open += 1
        self.sessions += 1
        try:
            await ws.accept(subprotocol=subprotocol)
            await self._splice(ws, reader, writer, info, subprotocol == "base64")
        finally:
            self.sessions -= 1
            if info.protocol == "spice":
                channels.open -= 1
                if channels.open <= 0:
                    self.spice_sessions.pop(digest, None)
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (OSError, asyncio.TimeoutError):
                pass

    async def _splice(self, ws: WebSocket, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, info: TokenInfo, b64: bool) -> None:
        serial = info.protocol == "serial"

        async def upstream_to_client() -> str:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return "upstream"
                if b64:
                    await ws.send({"type": "websocket.send",
                                   "text": base64.b64encode(data).decode()})
                else:
                    await ws.send({"type": "websocket.send", "bytes": data})

        async def client_to_upstream() -> str:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return "client"
                data = msg.get("bytes")
                if data is None:
                    text = msg.get("text") or ""
                    if serial:
                        size = parse_resize(text)
                        if size is not None:
                            await self.resizer(info, *size)
                            continue
                    if b64:
                        try:
                            data = base64.b64decode(text, validate=True)
                        except (binascii.Error, ValueError):
                            return "garbage"
                    else:
                        data = text.encode("utf-8", "replace")
                if data:
                    writer.write(data)
                    await writer.drain()

        tasks = [asyncio.ensure_future(upstream_to_client()),
                 asyncio.ensure_future(client_to_upstream())]
        ended = "client"
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            if first.cancelled() or first.exception() is not None:
                exc = None if first.cancelled() else first.exception()
                ended = "client" if first is tasks[1] else "upstream"
                if exc is not None and not isinstance(exc, (OSError, ConnectionError)):
                    log.info("console session of %s ended: %r", info.server_id, exc)
            else:
                ended = first.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if ended in ("upstream", "garbage"):
            reason = "Console closed." if ended == "upstream" else "Bad base64 frame."
            try:
                await ws.close(1000 if ended == "upstream" else 1007, reason)
            except Exception:  # noqa: BLE001 - the client may be gone already
                pass


def allowed_origins(text: str) -> list[str]:
    return [o.strip() for o in text.split(",") if o.strip()]


# -- static pages ---------------------------------------------------------------------------
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
                  ".png": "image/png", ".ico": "image/x-icon"}
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S | re.I)
_INLINE_HANDLER = re.compile(rb"\son[a-z]+=\"([^\"]*)\"", re.I)


def _hashes(html: bytes) -> list[str]:
    """CSP sources for the page's own inline scripts and event handlers (vendored pages have
    them; hashes keep 'unsafe-inline' out of script-src)."""
    out = []
    for body in _INLINE_SCRIPT.findall(html) + _INLINE_HANDLER.findall(html):
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        out.append(f"'sha256-{digest}'")
    return sorted(set(out))


class StaticPages:
    """The vendored clients, read once; served with strict headers. The page URL carries a
    token: Referrer-Policy no-referrer keeps it out of other sites' logs."""

    def __init__(self, root: Path = STATIC_ROOT) -> None:
        self.root = root.resolve()
        self._files: dict[str, tuple[bytes, str, str]] | None = None

    @property
    def files(self) -> dict[str, tuple[bytes, str, str]]:
        # Read at the first page asked for, not at every `up` (1.7 MB, ~100 files).
        if self._files is None:
            self._files = self._load()
        return self._files

    def _load(self) -> dict[str, tuple[bytes, str, str]]:
        files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(self.root.rglob("*")):
            if not path.is_file() or path.suffix not in _CONTENT_TYPES:
                continue
            data = path.read_bytes()
            rel = path.relative_to(self.root).as_posix()
            csp = ""
            if path.suffix == ".html":
                scripts = " ".join(["'self'", *_hashes(data)])
                unsafe_hashes = " 'unsafe-hashes'" if _INLINE_HANDLER.search(data) else ""
                csp = (f"default-src 'none'; script-src {scripts}{unsafe_hashes}; "
                       "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
                       "font-src 'self'; connect-src 'self' {ws}; media-src 'self' blob:; "
                       "base-uri 'none'; form-action 'none'; frame-ancestors 'self'")
            files[rel] = (data, _CONTENT_TYPES[path.suffix], csp)
        return files

    async def handle(self, request: Request) -> Response:
        rel = request.path_params.get("path", "")
        entry = self.files.get(rel)
        if entry is None:
            from pocketstack.errors import NotFound

            raise NotFound("The resource could not be found.")
        data, ctype, csp = entry
        headers = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                   "Cross-Origin-Resource-Policy": "same-origin"}
        if csp:
            host = request.headers.get("host", "")
            ws = f"ws://{host} wss://{host}" if re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,260}", host) \
                else ""
            headers["Content-Security-Policy"] = csp.replace("{ws}", ws).replace("  ", " ")
            headers["Cache-Control"] = "no-store"
            headers["X-Frame-Options"] = "SAMEORIGIN"
        else:
            headers["Cache-Control"] = "public, max-age=3600"
        body = b"" if request.method == "HEAD" else data
        response = Response(body, media_type=None, headers=headers)
        response.headers["content-type"] = ctype
        if request.method == "HEAD":
            response.headers["content-length"] = str(len(data))
        return response


def routes(svc: Any) -> list[Any]:
    """Starlette routes under the compute mount: the pages and the two WebSockets."""
    from pocketstack.services.compute.consoles import ConsoleRefused

    consoles = svc.consoles

    async def opener(token: str) -> tuple[TokenInfo, str]:
        return await run(consoles.open, token)

    async def resizer(info: TokenInfo, rows: int, cols: int) -> None:
        await run(consoles.resize, info, rows, cols)

    proxy = ConsoleProxy(opener, resizer, allowed_origins(svc.conf.console_allowed_origins),
                         (ConsoleRefused,))
    svc.console_proxy = proxy
    pages = StaticPages()
    return [WebSocketRoute("/console/websockify", proxy.handle),
            WebSocketRoute("/console/serial", proxy.handle),
            Route("/console/{path:path}", pages.handle, methods=["GET", "HEAD"])]
