"""The composition root: build the Cloud (settings, database, services) and its ASGI app.

``SERVICES`` is the explicit registry of slices. Each slice's ``SPEC`` says where it is
mounted, how its faults look, what it puts in the catalog, how to build its service
object and how to register its routes. Services reach each other through
``cloud.services[type]`` (in-process calls, never HTTP).
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Router

from pocketstack.api import faults
from pocketstack.api.http import Routes, json
from pocketstack.config import Settings
from pocketstack.context import RequestContext, new_request_id
from pocketstack.db import Database
from pocketstack.errors import NotFound, PocketError, Unauthorized

log = logging.getLogger("pocketstack")

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str  # OpenStack project name: keystone, nova, ...
    type: str  # service type: identity, compute, ...
    path: str  # mount point: /identity
    fault_style: str
    create: Callable[["Cloud"], Any]
    routes: Callable[[Any, Routes], None]
    catalog: list[Any] = field(default_factory=list)  # bootstrap.CatalogEntry items
    start: Callable[[Any], Awaitable[None]] | None = None  # background workers
    stop: Callable[[Any], Awaitable[None]] | None = None
    raw_app: Callable[[Any], ASGIApp] | None = None  # a slice that speaks ASGI itself


def service_specs() -> list[ServiceSpec]:
    """The registry. Imported lazily so `pocketstack --help` stays fast."""
    from pocketstack.services import identity
    from pocketstack.services import image
    from pocketstack.services import object_store, s3
    from pocketstack.services import volume
    from pocketstack.services import network
    from pocketstack.services import orchestration
    from pocketstack.services import compute

    return [identity.SPEC, image.SPEC, object_store.SPEC, s3.SPEC, volume.SPEC, network.SPEC,
            orchestration.SPEC, compute.SPEC]


class Cloud:
    """Everything one running pocketstack holds; passed down, never global."""

    def __init__(self, settings: Settings, db: Database | None = None,
                 specs: list[ServiceSpec] | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url, echo=settings.database.echo,
                                 pool_size=settings.database.pool_size)
        self.specs = specs if specs is not None else service_specs()
        self.services: dict[str, Any] = {}
        self.degraded: list[str] = []  # human-readable notes for the ready line and status
        for spec in self.specs:
            self.services[spec.type] = spec.create(self)

    @property
    def identity(self) -> Any:
        return self.services["identity"]

    async def resolve_context(self, request: Request, required: bool) -> RequestContext:
        """Authenticate the request from X-Auth-Token (Keystone middleware's job)."""
        request_id = request.scope.get("pocket.request_id") or new_request_id()
        token = request.headers.get("x-auth-token")
        if not token:
            if required:
                raise Unauthorized("The request you have made requires authentication.",
                                   headers=self.www_authenticate)
            return RequestContext(request_id=request_id)
        identity = self.identity
        info = identity.cache.get(token)
        if info is None:
            from pocketstack.api.http import run

            try:
                info = await run(identity.validate, token)
            except PocketError:
                if required:
                    raise Unauthorized("The request you have made requires authentication.",
                                       headers=self.www_authenticate) from None
                return RequestContext(request_id=request_id)
        if info.payload.app_cred_id is not None:  # application credential access rules
            from pocketstack.services.identity import access_rules

            access_rules.check(identity, info, request.scope, self.specs)
        return identity.context_for(info, request_id)

    @property
    def www_authenticate(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Keystone uri="{self.settings.base_url}/identity"'}

    async def startup(self) -> None:
        for spec in self.specs:
            if spec.start is not None:
                await spec.start(self.services[spec.type])

    async def shutdown(self) -> None:
        for spec in reversed(self.specs):
            if spec.stop is not None:
                await spec.stop(self.services[spec.type])


async def _not_found(scope: dict, receive: Callable, send: Callable) -> None:
    raise NotFound("The resource could not be found.")


class PocketApp:
    """Root ASGI app: request ids, one fault handler for every slice, lifespan."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.styles: list[tuple[str, str]] = []
        routes: list[Any] = []
        self.s3_app: ASGIApp | None = None
        # Raw ASGI slices (S3) are entered straight from __call__ by prefix, the way their
        # Mount would (same root_path): the Router's regex walk over every mount was a
        # visible share of a small-object request.
        self.raw_mounts: list[tuple[str, ASGIApp]] = []
        for spec in cloud.specs:
            service = cloud.services[spec.type]
            if spec.raw_app is not None:
                raw = spec.raw_app(service)
                routes.append(Mount(spec.path, app=raw))
                self.raw_mounts.append((spec.path + "/", raw))
                if spec.type == "s3":
                    self.s3_app = raw
            else:
                table = Routes(cloud.resolve_context, cloud.settings.max_body_bytes)
                spec.routes(service, table)
                routes.append(Mount(spec.path, app=Router(table.routes, default=_not_found)))
            self.styles.append((spec.path, spec.fault_style))
        self.styles.sort(key=lambda item: -len(item[0]))
        self.mount_points = {spec.path for spec in cloud.specs}
        # The web dashboard (pocketstack/dashboard): HTML pages over the same services.
        from pocketstack.dashboard import build as build_dashboard

        routes.append(Mount("/dashboard", app=build_dashboard(cloud)))
        self.mount_points.add("/dashboard")
        routes.append(Mount("/", app=Router(self._root_routes(), default=_not_found)))
        self.router = Router(routes, default=_not_found)

    def _root_routes(self) -> list[Any]:
        from starlette.routing import Route

        specs = self.cloud.specs

        async def root(request: Request) -> Response:
            # A browser asking for the root gets the dashboard; API clients (JSON or
            # anything else) keep the version document.
            accept = request.headers.get("accept", "")
            if "text/html" in accept and "json" not in accept:
                from starlette.responses import RedirectResponse

                return RedirectResponse("/dashboard/", status_code=302)
            return json({"pocketstack": {"services": [
                {"type": s.type, "name": s.name, "path": s.path} for s in specs]}})

        async def health(request: Request) -> Response:
            return Response("OK", media_type="text/plain")

        return [Route("/", root), Route("/healthcheck", health)]

    def _is_s3_at_root(self, scope: dict) -> bool:
        """An AWS-signed request outside every service path is S3 at the host root.

        Clients such as s3cmd cannot put a path prefix (/s3) in front of bucket names; they
        sign ``/bucket/key`` against the bare endpoint. Such requests carry an AWS signature
        (header or presigned query), which no OpenStack API uses, so they are unambiguous.
        A bucket named like a service mount (``identity``...) is only reachable under /s3.
        """
        if self.s3_app is None:
            return False
        first = "/" + scope["path"].lstrip("/").split("/", 1)[0]
        if first in self.mount_points or first == "/healthcheck":
            return False
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return value.startswith((b"AWS4-HMAC-SHA256 ", b"AWS "))
        query = scope.get("query_string", b"")
        return b"X-Amz-Credential=" in query or b"AWSAccessKeyId=" in query

    def style_for(self, path: str) -> str:
        for prefix, style in self.styles:
            if path == prefix or path.startswith(prefix + "/"):
                return style
        return "keystone"

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":  # console proxy (a slice's WebSocketRoute)
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"] in self.mount_points:  # "/identity" means "/identity/"
            scope["path"] += "/"
        request_id = new_request_id()
        scope["pocket.request_id"] = request_id
        scope["app"] = self  # makes Starlette raise HTTPException(405) instead of answering
        started = False
        rid = request_id.encode()

        async def send_with_id(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if b"x-openstack-request-id" not in names:
                    headers.append((b"x-openstack-request-id", rid))
                message["headers"] = headers
            await send(message)

        s3_root = self._is_s3_at_root(scope)
        try:
            if s3_root:
                await self.s3_app(scope, receive, send_with_id)
            else:
                await self._route(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - the one place errors become faults
            if started:
                log.exception("error after the response started (%s)", request_id)
                return
            err = self._to_error(exc, scope, request_id)
            style = "s3" if s3_root else self.style_for(scope.get("path", ""))
            response = faults.render(err, style)
            await response(scope, receive, send_with_id)

    async def _route(self, scope: dict, receive: Callable, send: Callable) -> None:
        path = scope["path"]
        for prefix, raw in self.raw_mounts:
            if path.startswith(prefix) and not scope.get("root_path"):
                root = prefix[:-1]
                scope.update(path_params={"path": path[len(prefix):]}, app_root_path="",
                             root_path=root, endpoint=raw)
                await raw(scope, receive, send)
                return
        await self.router(scope, receive, send)

    async def _websocket(self, scope: dict, receive: Callable, send: Callable) -> None:
        """WebSocket upgrades go through the same router to the slices' WebSocketRoutes; a
        path with none, or a handler that fails before accepting, gets the upgrade refused
        (403), never a traceback on the wire."""
        state = {"accepted": False, "closed": False}

        async def tracked_send(message: dict) -> None:
            if message["type"] == "websocket.accept":
                state["accepted"] = True
            elif message["type"] in ("websocket.close", "websocket.http.response.start"):
                state["closed"] = True
            await send(message)

        path = scope.get("path", "")
        if any(path.startswith(prefix) or path == prefix[:-1] for prefix, _ in self.raw_mounts):
            await send({"type": "websocket.close", "code": 1008})  # raw slices speak HTTP only
            return
        try:
            await self.router(scope, receive, tracked_send)
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, PocketError):
                log.exception("WebSocket %s failed", scope.get("path"))
            if not state["closed"]:
                try:
                    await send({"type": "websocket.close", "code": 1008 if not
                                state["accepted"] else 1011})
                except Exception:  # noqa: BLE001 - the client is gone
                    pass

    @staticmethod
    def _to_error(exc: Exception, scope: dict, request_id: str) -> PocketError:
        if isinstance(exc, PocketError):
            return exc
        if isinstance(exc, HTTPException):
            if exc.status_code == 405:
                return PocketError(f"The method {scope.get('method')} is not allowed for this "
                                   "resource.", status=405, kind="HTTPMethodNotAllowed",
                                   headers=dict(exc.headers or {}))
            return PocketError(exc.detail, status=exc.status_code)
        log.error("unexpected error handling %s %s (%s):\n%s", scope.get("method"),
                  scope.get("path"), request_id, traceback.format_exc())
        return PocketError("An unexpected error prevented the server from fulfilling your "
                           f"request ({type(exc).__name__}); see the server log for "
                           f"{request_id}.", status=500)

    async def _lifespan(self, receive: Callable, send: Callable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.cloud.startup()
                except Exception as exc:  # noqa: BLE001
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.cloud.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


def prepare(settings: Settings) -> Cloud:
    """Create the data dir, migrate the database, build the cloud and bootstrap it."""
    from pocketstack.db import migrate
    from pocketstack.services.identity.bootstrap import bootstrap

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.database_url, echo=settings.database.echo,
                  pool_size=settings.database.pool_size)
    migrated = migrate.pending(db)
    if migrated:
        migrate.upgrade(db)
    cloud = Cloud(settings, db)
    catalog = [entry for spec in cloud.specs for entry in spec.catalog]
    # Identity bootstrap is idempotent but not free (dozens of queries, two password
    # checks); on a restart with the same inputs and an intact admin it is skipped.
    stamp = _bootstrap_stamp(settings, catalog)
    if migrated or not _bootstrapped(cloud, stamp, len({e.type for e in catalog})):
        bootstrap(cloud.identity, catalog)
        _write_stamp(settings, stamp)
    for spec in cloud.specs:
        hook = getattr(cloud.services[spec.type], "bootstrap", None)
        if hook is not None:
            hook()
    return cloud


def _bootstrap_stamp(settings: Settings, catalog: list[Any]) -> str:
    """Everything identity bootstrap depends on, hashed."""
    import hashlib
    import json as jsonlib
    from pathlib import Path

    from pocketstack.db import migrate
    from pocketstack.services.identity import bootstrap as boot

    inputs = {
        "database": settings.database_url, "heads": sorted(migrate.script_heads()),
        "base_url": settings.base_url, "region": settings.identity.region,
        "demo": settings.bootstrap_demo, "passwords": boot.passwords(settings),
        "catalog": sorted((e.type, e.name, e.path, e.description) for e in catalog),
        "code": hashlib.sha256(Path(boot.__file__).read_bytes()).hexdigest(),
    }
    return hashlib.sha256(jsonlib.dumps(inputs, sort_keys=True).encode()).hexdigest()


def _bootstrapped(cloud: Cloud, stamp: str, services: int) -> bool:
    """Same inputs as the last bootstrap, and the database still has its result."""
    from sqlalchemy import func, select

    from pocketstack.services.identity.models import Endpoint, Project, User

    try:
        if (cloud.settings.data_dir / "bootstrap.stamp").read_text().strip() != stamp:
            return False
    except OSError:
        return False
    with cloud.db.read() as s:
        admin = s.scalars(select(User.id).where(User.name == "admin",
                                                User.domain_id == "default")).first()
        domain = s.get(Project, "default")
        endpoints = s.scalar(select(func.count()).select_from(Endpoint))
    return admin is not None and domain is not None and (endpoints or 0) >= 3 * services


def _write_stamp(settings: Settings, stamp: str) -> None:
    import os

    path = settings.data_dir / "bootstrap.stamp"
    tmp = path.with_name(".bootstrap.stamp.tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(stamp)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def create_app(settings: Settings) -> PocketApp:
    return PocketApp(prepare(settings))
