"""Swift v1 over HTTP: a small ASGI app mounted at /object-store (HTTP only; the logic is in
store.py, service.py and large.py).

Paths: /info, /healthcheck, /v1/<account>[/<container>[/<object>]]. Swift decides access per
request (owner, container ACL, TempURL, FormPost), so authentication is optional here and
authorization happens once the target is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import get_route_path

from pocketstack.api.http import run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Forbidden, MethodNotAllowed, NotFound, PocketError
from pocketstack.services.object_store import auth, bulk, objects, views
from pocketstack.services.object_store.names import (ACCOUNT_LISTING_LIMIT,
                                                     CONTAINER_LISTING_LIMIT, MAX_META_COUNT,
                                                     MAX_META_NAME, MAX_META_OVERALL,
                                                     MAX_META_VALUE, check_container,
                                                     check_object)
from pocketstack.services.object_store.views import reply

SWIFT_VERSION = "2.35.1"
# swift's crossdomain middleware default policy
CROSSDOMAIN = (b'<?xml version="1.0"?>\n<!DOCTYPE cross-domain-policy SYSTEM '
               b'"http://www.adobe.com/xml/dtds/cross-domain-policy.dtd" >\n'
               b'<cross-domain-policy>\n<allow-access-from domain="*" secure="false" />\n'
               b"</cross-domain-policy>")


@dataclass
class SwiftRequest:
    """One Swift request as handlers see it."""

    request: Request
    ctx: RequestContext
    service: Any
    account: str
    container: str | None
    obj: str | None
    full_path: str  # the URL path as the client sent it (mount prefix included)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def headers(self) -> Any:
        return self.request.headers

    @property
    def query(self) -> Any:
        return self.request.query_params

    @property
    def store(self) -> Any:
        return self.service.store

    @property
    def owner(self) -> bool:
        return auth.is_owner(self.ctx, self.account)

    def v1_path(self) -> str:
        """The path from /v1 on (what swift-style signatures cover)."""
        i = self.full_path.find("/v1/")
        return self.full_path[i:] if i >= 0 else self.full_path


def info_document() -> dict[str, Any]:
    """What /info advertises; Tempest's requires_ext checks read these keys."""
    return {
        "swift": {
            "version": SWIFT_VERSION,
            "max_file_size": 5368709122, "max_meta_name_length": MAX_META_NAME,
            "max_meta_value_length": MAX_META_VALUE, "max_meta_count": MAX_META_COUNT,
            "max_meta_overall_size": MAX_META_OVERALL, "max_header_size": 8192,
            "max_object_name_length": 1024, "max_container_name_length": 256,
            "container_listing_limit": CONTAINER_LISTING_LIMIT,
            "account_listing_limit": ACCOUNT_LISTING_LIMIT, "max_account_name_length": 256,
            "extra_header_count": 0, "strict_cors_mode": True, "valid_api_versions": ["v1"],
            "allow_account_management": False, "account_autocreate": True,
            "policies": [{"name": views.STORAGE_POLICY, "default": True}],
        },
        "tempurl": {"methods": ["GET", "HEAD", "PUT", "POST", "DELETE"],
                    "incoming_remove_headers": ["x-timestamp"],
                    "incoming_allow_headers": [],
                    "outgoing_remove_headers": ["x-object-meta-*"],
                    "outgoing_allow_headers": ["x-object-meta-public-*"],
                    "allowed_digests": ["sha1", "sha256", "sha512"]},
        "formpost": {"allowed_digests": ["sha1", "sha256", "sha512"]},
        "slo": {"max_manifest_segments": 1000, "max_manifest_size": 8388608,
                "min_segment_size": 1, "yield_frequency": 10, "allow_async_delete": False},
        "dlo": {"max_get_time": 86400},
        "bulk_delete": {"max_deletes_per_request": 10000, "max_failed_deletes": 1000},
        "bulk_upload": {"max_containers_per_extraction": 10000,
                        "max_failed_extractions": 1000},
        "account_quotas": {}, "container_quotas": {}, "tempauth": {"account_acls": True},
        "staticweb": {}, "versioned_writes": {"allowed_flags": ["x-versions-location",
                                                                "x-history-location"]},
        "keystoneauth": {}, "ratelimit": {}, "crossdomain": {},
        "symlink": {"symloop_max": 2, "static_links": False},
        "container_sync": {"realms": {}},
    }


class SwiftApp:
    """The ASGI app behind /object-store."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.cloud = service.cloud

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        request = Request(scope, receive)
        tx = views.trans_id()
        try:
            response = await self.dispatch(request, get_route_path(scope))
        except PocketError as err:
            err.headers = {**err.headers, "X-Trans-Id": tx, **close_if_body(request)}
            raise
        response.headers["X-Trans-Id"] = tx
        response.headers.setdefault("X-Openstack-Request-Id", tx)
        await response(scope, receive, send)

    async def dispatch(self, request: Request, path: str) -> Response:
        if path in ("/info", "/info/"):
            if request.method not in ("GET", "HEAD"):
                raise MethodNotAllowed("Only GET and HEAD are allowed on /info.")
            return reply(200, body=orjson.dumps(info_document()),
                         content_type="application/json; charset=UTF-8")
        if path in ("/healthcheck", "/healthcheck/"):
            return reply(200, body=b"OK", content_type="text/plain")
        if path == "/crossdomain.xml":
            return reply(200, body=CROSSDOMAIN, content_type="application/xml; charset=utf-8")
        parts = path.split("/", 4)
        if len(parts) < 3 or parts[1] != "v1" or not parts[2]:
            raise NotFound("The resource could not be found.")
        account = parts[2]
        if auth.project_of(account) is None:
            raise NotFound("The resource could not be found.")
        container = parts[3] if len(parts) > 3 and parts[3] else None
        obj = parts[4] if len(parts) > 4 and parts[4] else None
        if container is not None:
            check_container(container)
        if obj is not None:
            check_object(obj)
        ctx = await self.cloud.resolve_context(request, False)
        req = SwiftRequest(request, ctx, self.service, account, container, obj,
                           request.scope.get("root_path", "") + path)
        if obj is not None:
            return await objects.handle(req)
        if container is not None:
            return await container_handle(req)
        return await account_handle(req)


def close_if_body(request: Request) -> dict[str, str]:
    """An error may be answered before the body was read (or a 100-continue client may
    never send it): close the connection so unread bytes never become the next request."""
    h = request.headers
    if h.get("transfer-encoding") or h.get("content-length", "0") not in ("", "0"):
        return {"Connection": "close"}
    return {}


# -- metadata headers -------------------------------------------------------------------
def meta_changes(headers: Any, kind: str, extra: tuple[str, ...] = ()) -> dict[str, str | None]:
    """X-<Kind>-Meta-* (set; empty removes), X-Remove-<Kind>-Meta-* (remove), and the
    listed system headers (and their X-Remove- forms), canonically Title-Cased."""
    prefix = f"x-{kind}-meta-"
    remove = f"x-remove-{kind}-meta-"
    changes: dict[str, str | None] = {}
    size = 0
    for key, value in headers.items():
        k = key.lower()
        if k.startswith(prefix) and len(k) > len(prefix):
            name = k[len(prefix):]
            if len(name) > MAX_META_NAME:
                raise BadRequest(f"Metadata name too long: {name[:40]}...")
            if len(value) > MAX_META_VALUE:
                raise BadRequest(f"Metadata value longer than {MAX_META_VALUE}: "
                                 f"{name[:40]}")
            changes[_title(key)] = value
            size += len(name) + len(value)
        elif k.startswith(remove) and len(k) > len(remove):
            changes[_title(f"x-{kind}-meta-" + k[len(remove):])] = None
        elif k in extra:
            changes[_title(k)] = value
        elif k.startswith("x-remove-") and "x-" + k[len("x-remove-"):] in extra:
            changes[_title("x-" + k[len("x-remove-"):])] = None
    if len([v for v in changes.values() if v]) > MAX_META_COUNT or size > MAX_META_OVERALL:
        raise BadRequest("Too many metadata items; max "
                         f"{MAX_META_COUNT} items and {MAX_META_OVERALL} bytes.")
    return changes


def _title(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def listing_params(req: SwiftRequest, max_limit: int) -> dict[str, Any]:
    q = req.query
    limit_raw = q.get("limit")
    limit = max_limit
    if limit_raw is not None:
        if not limit_raw.isdigit():
            raise BadRequest("Value of limit must be a positive integer")
        limit = int(limit_raw)
        if limit > max_limit:
            raise PocketError(f"Maximum limit is {max_limit}", status=412,
                              kind="PreconditionFailed")
    params = {"prefix": q.get("prefix", ""), "delimiter": q.get("delimiter", ""),
              "marker": q.get("marker", ""), "end_marker": q.get("end_marker", ""),
              "limit": limit,
              "reverse": q.get("reverse", "").lower() in ("1", "true", "yes", "on", "t", "y")}
    for key in ("prefix", "delimiter", "marker", "end_marker"):
        if "\x00" in params[key]:
            raise BadRequest(f"Invalid {key}")
    if len(params["delimiter"]) > 1:
        raise PocketError("Bad delimiter", status=412, kind="PreconditionFailed")
    path = q.get("path")
    if path is not None:
        params["prefix"] = path.rstrip("/") + "/" if path else ""
        params["delimiter"] = "/"
    return params


# -- accounts ---------------------------------------------------------------------------
ACCOUNT_SYS = ("x-account-quota-count", "x-account-quota-bytes")
QUOTA_META = ("X-Account-Meta-Quota-Bytes", "X-Account-Quota-Count",
              "X-Account-Quota-Bytes")


async def account_handle(req: SwiftRequest) -> Response:
    method = req.method
    if method in ("POST", "DELETE") and "bulk-delete" in req.query:
        return await bulk.bulk_delete(req)
    if method == "PUT" and "extract-archive" in req.query:
        return await bulk.extract_archive(req)
    if not req.owner:
        raise auth.deny(req.ctx)
    store = req.store
    if method in ("GET", "HEAD"):
        acc = await run(store.account, req.account)
        headers = views.account_headers(acc, True)
        if method == "HEAD":
            return reply(204, headers, content_type="text/plain; charset=utf-8")
        params = listing_params(req, ACCOUNT_LISTING_LIMIT)
        items = await run(lambda: store.list_containers(req.account, **params))
        return views.container_listing(items, req.account, req.query.get("format"),
                                       req.headers.get("accept", ""), headers)
    if method in ("POST", "PUT"):
        changes = meta_changes(req.headers, "account", ACCOUNT_SYS)
        if any(k in QUOTA_META for k in changes) and not auth.is_reseller(req.ctx):
            raise Forbidden("Only a reseller admin may change account quotas.")
        for key in QUOTA_META:
            value = changes.get(key)
            if value and not value.isdigit():
                raise BadRequest(f"Invalid {key}: must be a non-negative integer")
        await run(store.update_account_meta, req.account, changes)
        return reply(204)
    if method == "DELETE":
        raise MethodNotAllowed("Account deletion is not allowed.")
    raise MethodNotAllowed(f"The method {method} is not allowed for this resource.")


# -- containers -------------------------------------------------------------------------
CONTAINER_SYS = ("x-container-read", "x-container-write", "x-versions-location",
                 "x-history-location", "x-container-sync-to", "x-container-sync-key")


def container_changes(req: SwiftRequest) -> dict[str, str | None]:
    changes = meta_changes(req.headers, "container", CONTAINER_SYS)
    for key in ("X-Container-Meta-Quota-Bytes", "X-Container-Meta-Quota-Count"):
        value = changes.get(key)
        if value and not value.isdigit():
            raise BadRequest(f"Invalid {key}: must be a non-negative integer")
    for key in ("X-Versions-Location", "X-History-Location"):
        value = changes.get(key)
        if value:
            check_container(value.strip("/"))
            changes[key] = value.strip("/")
    if changes.get("X-Versions-Location"):
        changes["X-History-Location"] = None
    elif changes.get("X-History-Location"):
        changes["X-Versions-Location"] = None
    policy = req.headers.get("x-storage-policy")
    if policy and policy.lower() != views.STORAGE_POLICY.lower():
        raise BadRequest(f"Invalid X-Storage-Policy {policy!r}")
    return changes


async def container_handle(req: SwiftRequest) -> Response:
    method, store = req.method, req.store
    assert req.container is not None
    if method == "POST" and req.headers.get("content-type", "").startswith(
            "multipart/form-data"):
        return await bulk.formpost(req)
    if method == "POST" and "bulk-delete" in req.query:
        return await bulk.bulk_delete(req)
    if method == "PUT" and "extract-archive" in req.query:
        return await bulk.extract_archive(req)
    owner = req.owner
    if method in ("GET", "HEAD"):
        record = await run(store.find_container, req.account, req.container)
        if not owner:
            referrer = req.headers.get("referer")
            if record is None or not auth.acl_allows(
                    req.ctx, record.meta.get("X-Container-Read"), referrer=referrer):
                raise auth.deny(req.ctx)
            if req.ctx.user_id is None and objects.is_static_web(record):
                return await objects.static_web(req, record, "")
            if not auth.acl_allows(req.ctx, record.meta.get("X-Container-Read"),
                                   listing=True, referrer=referrer):
                raise auth.deny(req.ctx)
        if record is None:
            raise NotFound("The resource could not be found.")
        headers = views.container_headers(record, owner)
        if method == "HEAD":
            return reply(204, headers, content_type="text/plain; charset=utf-8")
        params = listing_params(req, CONTAINER_LISTING_LIMIT)
        items = await run(lambda: store.list_objects(req.account, req.container, **params))
        return views.object_listing(items, req.container, req.query.get("format"),
                                    req.headers.get("accept", ""), headers)
    if not owner:
        raise auth.deny(req.ctx)
    if method == "PUT":
        created = await run(store.put_container, req.account, req.container,
                            container_changes(req))
        return reply(201 if created else 202)
    if method == "POST":
        await run(store.update_container_meta, req.account, req.container,
                  container_changes(req))
        return reply(204)
    if method == "DELETE":
        await run(store.delete_container, req.account, req.container)
        return reply(204)
    raise MethodNotAllowed(f"The method {method} is not allowed for this resource.")
