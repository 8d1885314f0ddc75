"""Remote consoles (Nova's os-remote-consoles, os-get*Console, os-console-auth-tokens).

Creating a console URL issues a one-time token (console_tokens.py) and touches no driver
socket, as Nova: the driver is only asked which protocols it has. The browser pages and
the WebSocket that the URL leads to are served by this same process on the same port:

  novnc        {base}/compute/console/novnc/vnc_lite.html?path=compute%2Fconsole%2Fwebsockify%3Ftoken%3D<t>
  spice-html5  {base}/compute/console/spice-html5/spice_auto.html?path=...websockify%3Ftoken%3D<t>
  serial       ws://HOST:PORT/compute/console/serial?token=<t>   (Nova gives a ws:// URL)
               and a browser page for it: {base}/compute/console/serial.html?path=compute%2Fconsole%2Fserial%3Ftoken%3D<t>

noVNC and spice-html5 open ``ws[s]://<page host>/<path>``, so ``path`` carries our WebSocket
path and the token; Tempest's test_novnc sends the same ``path`` as the request line.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, urlsplit

from pocketstack.context import RequestContext
from pocketstack.drivers.compute.base import ConsoleUnavailable
from pocketstack.errors import BadRequest, Conflict, NotFound, NotImplementedYet
from pocketstack.services.compute.console_tokens import TokenInfo, TokenStore
from pocketstack.services.compute.microversions import APIVersion

CONSOLE_PREFIX = "/compute/console"  # under the compute mount: pages and WebSockets
WS_PATH = "compute/console/websockify"  # vnc and spice (binary RFB / SPICE streams)
SERIAL_WS_PATH = "compute/console/serial"

# console type -> the protocol it belongs to (what we can serve)
TYPE_PROTOCOL = {"novnc": "vnc", "spice-html5": "spice", "serial": "serial"}
# Nova's schema enums (schemas/remote_consoles.py): accepted, then refused lower down
PROTOCOLS_26 = ["vnc", "spice", "serial", "rdp"]
TYPES_26 = ["novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5"]
LEGACY_ACTIONS = {  # action -> (protocol, allowed types in its schema)
    "os-getVNCConsole": ("vnc", ["novnc", "xvpvnc"]),
    "os-getSPICEConsole": ("spice", ["spice-html5"]),
    "os-getSerialConsole": ("serial", ["serial"]),
}
# vm_states in which a guest's console exists (QEMU keeps its VNC while paused)
RUNNING_STATES = ("active", "paused", "rescued")
_HOST_HEADER = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\])"
                          r"(?::\d{1,5})?$")


def _enum_error(field: str, value: Any, allowed: list[str]) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                      f"{value!r} is not one of {allowed!r}", kind="ValidationError")


def _object(body: Any, key: str, allowed: set[str], required: list[str]) -> dict[str, Any]:
    """JSON-schema-like checks of ``{key: {...}}`` with Nova's messages."""
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: None. "
                         f"'{key}' is a required property", kind="ValidationError")
    extra = set(body) - {key}
    if extra:
        raise BadRequest("Additional properties are not allowed "
                         f"({', '.join(repr(e) for e in sorted(extra))} were unexpected)",
                         kind="ValidationError")
    inner = body[key]
    if not isinstance(inner, dict):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {inner}. "
                         f"{inner!r} is not of type 'object'", kind="ValidationError")
    for name in required:
        if name not in inner:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {inner}. "
                             f"'{name}' is a required property", kind="ValidationError")
    extra = set(inner) - allowed
    if extra:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {inner}. "
                         "Additional properties are not allowed "
                         f"({', '.join(repr(e) for e in sorted(extra))} were unexpected)",
                         kind="ValidationError")
    return inner


def parse_remote_console(body: Any, ver: APIVersion) -> tuple[str, str]:
    """(protocol, type) of a POST /servers/{id}/remote-consoles body, per microversion."""
    inner = _object(body, "remote_console", {"protocol", "type"}, ["protocol", "type"])
    protocols, types = list(PROTOCOLS_26), list(TYPES_26)
    if ver.at_least(2, 8):
        protocols.append("mks")
        types.append("webmks")
    if ver.has("spice_direct"):
        types.append("spice-direct")
    protocol, ctype = inner["protocol"], inner["type"]
    if not isinstance(protocol, str) or protocol not in protocols:
        raise _enum_error("protocol", protocol, protocols)
    if not isinstance(ctype, str) or ctype not in types:
        raise _enum_error("type", ctype, types)
    return protocol, ctype


def parse_legacy(action: str, arg: Any) -> tuple[str, str]:
    """(protocol, type) of an os-get*Console action body."""
    protocol, types = LEGACY_ACTIONS[action]
    inner = _object({action: arg}, action, {"type"}, ["type"])
    ctype = inner["type"]
    if not isinstance(ctype, str) or ctype not in types:
        raise _enum_error("type", ctype, types)
    return protocol, ctype


def request_base(scheme: str, host_header: str | None, fallback: str) -> str:
    """``scheme://host[:port]`` the client reached us at; a Host header that is not a plain
    host[:port] (a tenant can send anything) gives way to the configured base URL."""
    if host_header and _HOST_HEADER.match(host_header) and scheme in ("http", "https"):
        return f"{scheme}://{host_header}"
    parts = urlsplit(fallback)
    return f"{parts.scheme}://{parts.netloc}"


def console_url(base: str, console_type: str, token: str) -> str:
    """The URL a client is given. ``base`` is scheme://host[:port][/prefix]."""
    base = base.rstrip("/")
    parts = urlsplit(base)
    prefix = parts.path.strip("/")
    ws_path = f"{prefix}/{WS_PATH}" if prefix else WS_PATH
    page = f"{base}{CONSOLE_PREFIX}"
    if console_type == "novnc":
        return f"{page}/novnc/vnc_lite.html?path=" + quote(f"{ws_path}?token={token}", safe="")
    if console_type == "spice-html5":
        return f"{page}/spice-html5/spice_auto.html?path=" + quote(f"{ws_path}?token={token}",
                                                                  safe="")
    if console_type == "serial":
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}/{SERIAL_WS_PATH}?token={token}"
    raise ValueError(console_type)


class Consoles:
    """Console URLs and the grant behind a token; the WebSocket proxy calls ``open``."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.tokens = TokenStore(svc.db, svc.conf.console_token_ttl)

    @property
    def protocols(self) -> frozenset[str]:
        return getattr(self.svc.driver.capabilities, "console_protocols", frozenset())

    def create(self, ctx: RequestContext, server_id: str, protocol: str, console_type: str,
               base: str) -> str:
        """A console URL for the server (Nova's compute API get_*_console + manager)."""
        with self.svc.db.read() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_remote_console")
        if protocol == "rdp":  # Nova removed RDP (Hyper-V) in 29.0.0
            raise BadRequest(f"Unavailable console type {protocol}.")
        if protocol == "mks":  # VMware's; no driver here has it (Nova: NotImplementedError)
            raise NotImplementedYet("The requested functionality is not supported.")
        if not srv.host:
            raise Conflict(f"Instance {srv.id} is not ready")
        if srv.task_state in ("deleting", "migrating"):
            raise Conflict(f"Cannot 'get_{protocol}_console' instance {srv.id} while it is in "
                           f"task_state {srv.task_state}")
        if srv.vm_state not in RUNNING_STATES:
            raise Conflict(f"Instance {srv.id} is not ready")
        if console_type == "spice-direct":
            # 2.99: the SPICE connection details for a direct-connect proxy; no driver here
            # offers one, which Nova answers as ConsoleTypeUnavailable
            raise BadRequest(f"Unavailable console type {console_type}.")
        if TYPE_PROTOCOL.get(console_type) != protocol:
            raise BadRequest(f"Invalid console type {console_type}")
        if protocol not in self.protocols:
            raise NotImplementedYet(
                f"The requested functionality is not supported: the {self.svc.driver.name} "
                f"compute driver has no {protocol} console.")
        token = self.tokens.issue(server_id=srv.id, project_id=srv.project_id,
                                  protocol=protocol, console_type=console_type, host=srv.host)
        return console_url(base, console_type, token)

    def show_token(self, ctx: RequestContext, token: str, ver: APIVersion) -> dict[str, Any]:
        """GET /os-console-auth-tokens/{token}: what the token connects to (admin)."""
        from pocketstack import policy

        if not ver.at_least(2, 31):  # only rdp-html5 tokens could be shown before 2.31
            raise BadRequest("The request is invalid.")
        policy.enforce(ctx, "compute:console_auth_tokens")
        if not token:
            raise BadRequest("token not provided")
        info = self.tokens.peek(token)
        if info is None:
            raise NotFound("Token not found")
        # A console here is a unix socket on the host, not a TCP port: port and path are null.
        return {"console": {"instance_uuid": info.server_id, "host": info.host, "port": None,
                            "internal_access_path": None}}

    # -- the WebSocket side (no RequestContext: the token is the authorization) --------------
    def open(self, token: str) -> tuple[TokenInfo, str]:
        """Consume ``token`` and find the console socket it grants. Raises ConsoleRefused."""
        info = self.tokens.consume(token)
        if info is None:
            raise ConsoleRefused("The console token is invalid, expired or already used.")
        from pocketstack.services.compute.models import Server

        with self.svc.db.read() as s:
            srv = s.get(Server, info.server_id)
            if srv is None or srv.deleted or srv.project_id != info.project_id:
                raise ConsoleRefused("The server of this console no longer exists.")
            state, host = srv.vm_state, srv.host
        if host != info.host:
            raise ConsoleRefused("The server moved to another host; ask for a new console URL.")
        if state not in RUNNING_STATES:
            raise ConsoleRefused(f"The server is {state}; its console is not available.")
        try:
            path = self.svc.driver.console_socket(host, info.server_id, info.protocol)
        except ConsoleUnavailable as exc:
            raise ConsoleRefused(str(exc)) from None
        return info, path

    def resize(self, info: TokenInfo, rows: int, cols: int) -> None:
        self.svc.driver.console_resize(info.host, info.server_id, rows, cols)


class ConsoleRefused(Exception):
    """A WebSocket console connection is refused; str() is the reason given to the client."""


# -- routes ---------------------------------------------------------------------------------
def _base_for(svc: Any, req: Any) -> str:
    configured = svc.conf.console_base_url.strip()
    if configured:
        return configured.rstrip("/")
    return request_base(req.request.url.scheme, req.header("host"), svc.settings.base_url)


async def legacy_action(svc: Any, req: Any, ver: APIVersion, name: str, arg: Any) -> dict:
    """os-getVNCConsole / os-getSPICEConsole / os-getSerialConsole (2.1 - 2.5)."""
    from pocketstack.api.http import run

    if ver.at_least(2, 6):  # Nova: VersionNotFoundForAPIMethod, a 404
        raise NotFound(f"API version {ver} is not supported on this method.")
    if name == "os-getRDPConsole":  # removed with Hyper-V in Nova 29.0.0: a bare 400
        await run(svc.servers.get, req.ctx, req.params["server_id"])
        raise BadRequest("The server could not comply with the request since it is either "
                         "malformed or otherwise incorrect.")
    protocol, ctype = parse_legacy(name, arg)
    url = await run(svc.consoles.create, req.ctx, req.params["server_id"], protocol, ctype,
                    _base_for(svc, req))
    return {"console": {"type": ctype, "url": url}}


LEGACY_ACTION_NAMES = (*LEGACY_ACTIONS, "os-getRDPConsole")


def register(svc: Any, add: Any, table: Any) -> None:
    """The API routes (through the compute ``add``) and, on the same Router, the console
    pages and WebSockets (console_proxy)."""
    from pocketstack.api.http import json, run
    from pocketstack.services.compute import console_proxy

    svc.consoles = Consoles(svc)

    async def remote_console_create(req: Any, ver: APIVersion) -> Any:
        if not ver.at_least(2, 6):
            raise NotFound("The resource could not be found.")
        protocol, ctype = parse_remote_console(await req.json(), ver)
        url = await run(svc.consoles.create, req.ctx, req.params["server_id"], protocol, ctype,
                        _base_for(svc, req))
        return json({"remote_console": {"protocol": protocol, "type": ctype, "url": url}})

    async def console_auth_token_show(req: Any, ver: APIVersion) -> Any:
        return json(await run(svc.consoles.show_token, req.ctx, req.params["token"], ver))

    add("post", "/v2.1/servers/{server_id}/remote-consoles", remote_console_create)
    add("get", "/v2.1/os-console-auth-tokens/{token}", console_auth_token_show)
    table.routes.extend(console_proxy.routes(svc))
