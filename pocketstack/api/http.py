"""Shared HTTP plumbing for every service slice: JSON in and out, validation, threads.

Handlers are ``async def handler(req: Req) -> Response``. ``Req`` wraps Starlette's request
with the caller's RequestContext (``req.ctx``) and helpers to read and validate a body.
Domain logic is synchronous and runs in a worker thread through ``run`` so a slow query
never stalls the event loop (and never holds a transaction across an await).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
import pydantic
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, RequestEntityTooLarge, UnsupportedMediaType

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

Handler = Callable[["Req"], Awaitable[Response]]


# Synchronous service code runs here. A plain executor hop costs ~15 us of CPU where
# anyio.to_thread costs ~35-60 us (32 concurrent calls, measured), and every request makes
# at least one. Few threads: each DB call drops and retakes the GIL, and 40 threads
# retaking it behind the event loop made a convoy (S3 4 KiB GET at c32: 713 req/s with
# 40 threads, 881 with 8, 960 with 4; PUT 732/797/835). set_worker_threads() sizes it.
_WORKERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ps-worker")


def default_worker_threads() -> int:
    return min(32, 4 * (os.cpu_count() or 1))


def set_worker_threads(n: int) -> None:
    """Size the pool (``worker_threads`` in the settings; 0 = 4 per CPU, at most 32)."""
    global _WORKERS  # noqa: PLW0603 - one pool per process, sized once at start-up
    old = _WORKERS
    _WORKERS = ThreadPoolExecutor(max_workers=n or default_worker_threads(),
                                  thread_name_prefix="ps-worker")
    old.shutdown(wait=False)


# Small durable writes (an object's fsyncs, then its group-committed row) spend their time
# asleep in the kernel or waiting for a shared commit, barely touching the GIL: their own,
# larger pool keeps many in flight without adding to the convoy above (S3 4 KiB PUT c32:
# 930 req/s in the general pool, 1081 here).
_DURABLE = ThreadPoolExecutor(max_workers=32, thread_name_prefix="ps-durable")


async def run_durable(fn: Callable[..., T], *args: Any) -> T:
    """``run`` for a small durable write: mostly fsync and commit waits, little Python."""
    return await asyncio.get_running_loop().run_in_executor(_DURABLE, fn, *args)


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run synchronous service code (DB, drivers) in the worker thread pool.

    If the awaiting task is cancelled, the call still runs to its end in its thread
    (its transaction commits or rolls back on its own); only the result is dropped."""
    if kwargs:
        fn, args = functools.partial(fn, *args, **kwargs), ()
    return await asyncio.get_running_loop().run_in_executor(_WORKERS, fn, *args)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers)


def empty(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status_code=status, headers=headers)


def _loc(loc: Iterable[Any]) -> str:
    return ".".join(str(p) for p in loc)


def validation_message(exc: pydantic.ValidationError, prefix: str = "") -> str:
    """A message a person can act on: which field, what was wrong."""
    parts = []
    for err in exc.errors()[:3]:
        field = _loc(err.get("loc", ()))
        if prefix and field:
            field = f"{prefix}.{field}"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "Additional properties are not allowed"
        elif err.get("type") == "missing":
            msg = "is a required property"
        parts.append(f"Invalid input for field '{field or prefix or 'body'}': {msg}")
    return "; ".join(parts)


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise BadRequest(validation_message(exc, prefix), kind="ValidationError") from None


class Req:
    """A request as handlers see it."""

    __slots__ = ("request", "ctx", "max_body", "_body")

    def __init__(self, request: Request, ctx: RequestContext, max_body: int) -> None:
        self.request = request
        self.ctx = ctx
        self.max_body = max_body
        self._body: bytes | None = None

    @property
    def params(self) -> dict[str, Any]:
        return self.request.path_params

    @property
    def query(self):  # noqa: ANN201 - starlette QueryParams (multi-dict)
        return self.request.query_params

    @property
    def headers(self):  # noqa: ANN201
        return self.request.headers

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.request.headers.get(name, default)

    async def body(self) -> bytes:
        if self._body is None:
            length = self.request.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_body:
                raise RequestEntityTooLarge(
                    f"Request body is {length} bytes; the limit is {self.max_body}.")
            chunks, size = [], 0
            async for chunk in self.request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise RequestEntityTooLarge(f"Request body exceeds {self.max_body} bytes.")
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self, *, required: bool = True) -> Any:
        raw = await self.body()
        if not raw.strip():
            if required:
                raise BadRequest("The request body is empty; a JSON object is required.")
            return None
        ctype = self.request.headers.get("content-type", "application/json")
        if "json" not in ctype and ctype not in ("", "text/plain", "application/octet-stream"):
            raise UnsupportedMediaType(f"Content-Type {ctype!r} is not supported; use application/json.")
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"Malformed JSON in request body: {exc}") from None

    async def parse(self, model: type[M], *, key: str | None = None) -> M:
        """Read the JSON body and validate it (optionally the object under ``key``)."""
        data = await self.json()
        if not isinstance(data, dict):
            raise BadRequest("The request body must be a JSON object.")
        if key is not None:
            if key not in data:
                raise BadRequest(f"Invalid input for field '{key}': is a required property")
            return validate(model, data[key], key)
        return validate(model, data)


# A resolver turns a Starlette request into a RequestContext (authenticating it) or raises.
ContextResolver = Callable[[Request, bool], Awaitable[RequestContext]]


class Routes:
    """Collects a slice's routes as data: ``r.get("/v3/projects", handler)``."""

    def __init__(self, resolve: ContextResolver, max_body: int) -> None:
        self.resolve = resolve
        self.max_body = max_body
        self.routes: list[BaseRoute] = []

    def add(self, path: str, methods: list[str], handler: Handler, *, auth: bool = True,
            name: str | None = None) -> None:
        resolve, max_body = self.resolve, self.max_body

        async def endpoint(request: Request) -> Response:
            ctx = await resolve(request, auth)
            return await handler(Req(request, ctx, max_body))

        self.routes.append(Route(path, endpoint, methods=methods, name=name or handler.__name__))

    def get(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["GET", "HEAD"], handler, **kw)

    def post(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["POST"], handler, **kw)

    def put(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["PUT"], handler, **kw)

    def patch(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["PATCH"], handler, **kw)

    def delete(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["DELETE"], handler, **kw)

    def head(self, path: str, handler: Handler, **kw: Any) -> None:
        self.add(path, ["HEAD"], handler, **kw)
