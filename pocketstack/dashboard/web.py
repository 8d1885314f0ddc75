"""The dashboard's plumbing: sessions to RequestContexts, CSRF, templates, headers, errors.

Every page handler is ``async def handler(v: View) -> Response`` wrapped by ``page()``. The
wrapper resolves the session's token through the identity service exactly as the REST
APIs resolve X-Auth-Token (so the same policy and scoping apply), refuses a POST whose CSRF
token does not match the session's, renders domain errors (PocketError) as an HTML page
with their status (404 for another project's resource, 403 for a member on an admin page),
and adds the security headers to every answer.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from pocketstack.api.http import run
from pocketstack.context import RequestContext
from pocketstack.dashboard.session import COOKIE, Sessions, csrf_ok
from pocketstack.errors import PocketError, http_title

HERE = Path(__file__).resolve().parent
MAX_FORM = 1 << 20  # user data is at most 64 KiB base64; nothing else is near this

# No inline script or style anywhere: scripts and the stylesheet are static files. htmx is
# told not to inject its indicator <style> (meta htmx-config in base.html).
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}

TRANSITIONAL = {"BUILD", "REBUILD", "RESIZE", "MIGRATING", "REBOOT", "HARD_REBOOT",
                "PASSWORD", "SHELVED", "UNKNOWN"}


def age(when: dt.datetime | None) -> str:
    if when is None:
        return ""
    secs = int((dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - when).total_seconds())
    if secs < 90:
        return f"{max(secs, 0)} s"
    if secs < 5400:
        return f"{secs // 60} min"
    if secs < 172800:
        return f"{secs // 3600} h"
    return f"{secs // 86400} d"


def make_env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             auto_reload=False)
    env.filters["age"] = age
    return env


class View:
    """What a handler sees: the request, the caller's context, the session, the form."""

    def __init__(self, dash: "Dashboard", request: Request, ctx: RequestContext | None,
                 session: dict[str, Any], form: dict[str, list[str]]) -> None:
        self.dash = dash
        self.request = request
        self.ctx = ctx
        self.session = session
        self.form = form
        self.new_session: dict[str, Any] | None | bool = False  # False: unchanged
        self.projects: list[dict[str, Any]] = []
        self.tasks: list[dict[str, Any]] = []

    @property
    def cloud(self) -> Any:
        return self.dash.cloud

    def service(self, kind: str) -> Any:
        return self.dash.cloud.services[kind]

    def field(self, name: str, default: str = "") -> str:
        values = self.form.get(name)
        return values[0] if values else default

    def fields(self, name: str) -> list[str]:
        return [v for v in self.form.get(name, []) if v]

    @property
    def params(self) -> dict[str, Any]:
        return self.request.path_params

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run synchronous service code in the worker pool (as the REST routes do)."""
        return await run(fn, *args, **kwargs)

    def render(self, template: str, status: int = 200, /, **values: Any) -> Response:
        ctx = self.ctx
        values.setdefault("nav", "")
        html = self.dash.env.get_template(template).render(
            ctx=ctx, csrf=self.session.get("csrf", ""), projects=self.projects, tasks=self.tasks,
            is_admin=bool(ctx and ctx.is_admin), path=self.request.url.path, **values)
        return HTMLResponse(html, status_code=status)

    def redirect(self, to: str) -> Response:
        return RedirectResponse(to, status_code=303)

    def is_htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"


Handler = Callable[[View], Awaitable[Response]]


class Dashboard:
    def __init__(self, cloud: Any, secret: bytes) -> None:
        self.cloud = cloud
        self._secret = secret
        self._sessions: Sessions | None = None
        self._env: Any = None
        self._projects_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    @property
    def sessions(self) -> Sessions:
        if self._sessions is None:
            self._sessions = Sessions(self._secret)
        return self._sessions

    @property
    def env(self) -> Any:
        if self._env is None:  # at the first page, not at start-up
            self._env = make_env()
        return self._env

    async def context(self, request: Request, token: str) -> RequestContext | None:
        identity = self.cloud.identity
        info = identity.cache.get(token)
        if info is None:
            try:
                info = await run(identity.validate, token)
            except PocketError:
                return None
        if info.payload.scope_kind != "project":
            return None
        return identity.context_for(info, request.scope.get("pocket.request_id"))

    async def user_projects(self, ctx: RequestContext) -> list[dict[str, Any]]:
        """The projects the switcher offers; a few seconds' cache keyed by the token (one
        query per page otherwise; a new role shows up at the next rescope anyway)."""
        key = ctx.auth_token or ""
        hit = self._projects_cache.get(key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < 10:
            return hit[1]
        projects = await run(self.cloud.identity.auth_projects, ctx)
        projects = sorted(({"id": p["id"], "name": p["name"]} for p in projects),
                          key=lambda p: p["name"])
        if len(self._projects_cache) > 1000:
            self._projects_cache.clear()
        self._projects_cache[key] = (now, projects)
        return projects

    def page(self, fn: Handler, *, auth: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            secure = request.url.scheme == "https"
            session = self.sessions.read(request.cookies.get(COOKIE))
            fresh = session is None
            if session is None:
                session = Sessions.new()
            ctx = None
            if auth:
                token = session.get("token")
                ctx = await self.context(request, token) if token else None
                if ctx is None:
                    target = request.url.path + (f"?{request.url.query}" if request.url.query
                                                 else "")
                    if request.headers.get("hx-request") == "true":
                        # htmx follows redirects inside the swap; make it load the page
                        resp: Response = Response(status_code=204, headers={
                            "HX-Redirect": "/dashboard/login"})
                    else:
                        resp = RedirectResponse(f"/dashboard/login?next={quote(target)}", 303)
                    return self._finish(resp, Sessions.new(), secure)
            form: dict[str, list[str]] = {}
            if request.method == "PUT":  # a streamed body (image upload): header token only
                if fresh or not csrf_ok(session, request.headers.get("x-csrf-token")):
                    return self._finish(HTMLResponse("CSRF token missing or wrong", 403),
                                        None, secure, keep=True)
            elif request.method == "POST":
                raw = await _read_body(request)
                if raw is None:
                    return self._finish(HTMLResponse("Request too large", 413), None, secure,
                                        keep=True)
                for k, val in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
                    form.setdefault(k, []).append(val)
                sent = request.headers.get("x-csrf-token") or (form.get("csrf_token") or [""])[0]
                if fresh or not csrf_ok(session, sent):
                    view = View(self, request, None, session, form)
                    resp = view.render("error.html", 403, title="Forbidden",
                                       message="The form's CSRF token is missing or does not "
                                               "match this session; reload the page and try "
                                               "again.")
                    return self._finish(resp, session if fresh else None, secure, keep=not fresh)
            view = View(self, request, ctx, session, form)
            if ctx is not None:
                view.projects = await self.user_projects(ctx)
                if request.method == "GET" and request.headers.get("hx-request") != "true":
                    from pocketstack.dashboard import tasks

                    view.tasks = await run(tasks.recent, self.cloud, ctx)
            try:
                resp = await fn(view)
            except PocketError as err:
                resp = view.render("error.html", err.status, title=http_title(err.status),
                                   message=err.message)
            if view.new_session is not False:
                return self._finish(resp, view.new_session, secure)  # type: ignore[arg-type]
            return self._finish(resp, session if fresh else None, secure, keep=not fresh)

        async def timed(request: Request) -> Response:
            # Server-Timing: the page's own time (session, service calls, template), which
            # bench/dashboard.py reports; the browser's devtools show it too.
            started = time.perf_counter()
            resp = await endpoint(request)
            resp.headers["server-timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
            return resp

        timed.__name__ = fn.__name__
        return timed

    def _finish(self, resp: Response, session: dict[str, Any] | None, secure: bool,
                keep: bool = False) -> Response:
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        if not keep:
            resp.headers.append("set-cookie", self.sessions.cookie_header(session, secure))
        return resp


async def _read_body(request: Request) -> bytes | None:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > MAX_FORM:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
