"""Rendering for the Swift API: headers of accounts/containers/objects and listings."""

from __future__ import annotations

import time
import uuid
from typing import Any
from xml.sax.saxutils import escape

import orjson
from starlette.responses import Response

from pocketstack.services.object_store.names import http_date, listing_date, x_timestamp
from pocketstack.services.object_store.store import (AccountRecord, ContainerRecord,
                                                     ObjectRecord)

HTML = "text/html; charset=UTF-8"
STORAGE_POLICY = "Policy-0"


def trans_id() -> str:
    # Swift's format, which Tempest checks: tx<21 hex>-<10 hex of the time>
    return f"tx{uuid.uuid4().hex[:21]}-{int(time.time()):010x}"


def reply(status: int, headers: dict[str, str] | None = None, body: bytes = b"",
          content_type: str = HTML) -> Response:
    h = dict(headers or {})
    h.setdefault("Content-Type", content_type)
    if status not in (204, 304) and "Content-Length" not in h:
        h["Content-Length"] = str(len(body))
    return Response(body, status_code=status, headers=h)


def account_headers(acc: AccountRecord, owner: bool) -> dict[str, str]:
    h = {
        "X-Account-Container-Count": str(acc.container_count),
        "X-Account-Object-Count": str(acc.object_count),
        "X-Account-Bytes-Used": str(acc.bytes_used),
        "X-Timestamp": x_timestamp(acc.created),
        "X-Put-Timestamp": x_timestamp(acc.put_timestamp),
        "Accept-Ranges": "bytes",
    }
    if acc.container_count:
        p = STORAGE_POLICY.lower()
        h[f"X-Account-Storage-Policy-{p}-Container-Count"] = str(acc.container_count)
        h[f"X-Account-Storage-Policy-{p}-Object-Count"] = str(acc.object_count)
        h[f"X-Account-Storage-Policy-{p}-Bytes-Used"] = str(acc.bytes_used)
    if owner:
        h.update({k: str(v) for k, v in acc.meta.items()})
    return h


# Container metadata only the owner may read (ACLs, sync keys).
_OWNER_ONLY = {"X-Container-Read", "X-Container-Write", "X-Container-Sync-Key",
               "X-Container-Sync-To"}


def container_headers(c: ContainerRecord, owner: bool) -> dict[str, str]:
    h = {
        "X-Container-Object-Count": str(c.object_count),
        "X-Container-Bytes-Used": str(c.bytes_used),
        "X-Timestamp": x_timestamp(c.created),
        "X-Put-Timestamp": x_timestamp(c.put_timestamp),
        "Last-Modified": http_date(c.put_timestamp),
        "X-Storage-Policy": STORAGE_POLICY,
        "Accept-Ranges": "bytes",
    }
    for k, v in c.meta.items():
        if (owner or k not in _OWNER_ONLY) and not k.startswith("X-Container-Sysmeta-"):
            h[k] = str(v)
    return h


def object_headers(o: ObjectRecord, *, etag: str | None = None,
                   size: int | None = None) -> dict[str, str]:
    h = {
        "Content-Type": o.content_type,
        "Content-Length": str(o.size if size is None else size),
        "ETag": etag or o.etag,
        "Last-Modified": http_date(o.timestamp),
        "X-Timestamp": x_timestamp(o.timestamp),
        "Accept-Ranges": "bytes",
    }
    if o.delete_at is not None:
        h["X-Delete-At"] = str(o.delete_at)
    for k, v in o.meta.items():
        if k in ("X-Slo-Size", "X-Object-Manifest-Etag") or k.startswith("X-Object-Sysmeta-"):
            continue
        h[k] = str(v)
    return h


def _want(fmt: str | None, accept: str) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt in ("json", "xml"):
            return fmt
        return "plain"
    accept = accept or ""
    if "application/json" in accept:
        return "json"
    if "application/xml" in accept or "text/xml" in accept:
        return "xml"
    return "plain"


def container_listing(items: list[Any], account: str, fmt: str | None, accept: str,
                      headers: dict[str, str]) -> Response:
    kind = _want(fmt, accept)
    if kind == "json":
        body = orjson.dumps([
            {"subdir": i} if isinstance(i, str) else
            {"name": i.name, "count": i.object_count, "bytes": i.bytes_used,
             "last_modified": listing_date(i.put_timestamp)} for i in items])
        return reply(200, headers, body, "application/json; charset=utf-8")
    if kind == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<account name="{escape(account)}">']
        for i in items:
            if isinstance(i, str):
                parts.append(f'<subdir name="{escape(i)}"><name>{escape(i)}</name></subdir>')
            else:
                parts.append(f"<container><name>{escape(i.name)}</name>"
                             f"<count>{i.object_count}</count><bytes>{i.bytes_used}</bytes>"
                             f"<last_modified>{listing_date(i.put_timestamp)}</last_modified>"
                             "</container>")
        parts.append("</account>")
        return reply(200, headers, "\n".join(parts).encode(), "application/xml; charset=utf-8")
    return _plain(items, headers)


def object_listing(items: list[Any], container: str, fmt: str | None, accept: str,
                   headers: dict[str, str]) -> Response:
    kind = _want(fmt, accept)
    if kind == "json":
        body = orjson.dumps([
            {"subdir": i} if isinstance(i, str) else _object_entry(i) for i in items])
        return reply(200, headers, body, "application/json; charset=utf-8")
    if kind == "xml":
        parts = ['<?xml version="1.0" encoding="UTF-8"?>',
                 f'<container name="{escape(container)}">']
        for i in items:
            if isinstance(i, str):
                parts.append(f'<subdir name="{escape(i)}"><name>{escape(i)}</name></subdir>')
            else:
                e = _object_entry(i)
                parts.append(f"<object><name>{escape(i.name)}</name><hash>{e['hash']}</hash>"
                             f"<bytes>{i.size}</bytes><content_type>"
                             f"{escape(i.content_type)}</content_type><last_modified>"
                             f"{e['last_modified']}</last_modified></object>")
        parts.append("</container>")
        return reply(200, headers, "\n".join(parts).encode(), "application/xml; charset=utf-8")
    return _plain(items, headers)


def _object_entry(o: ObjectRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"hash": o.etag.strip('"'), "last_modified": listing_date(o.timestamp),
                             "bytes": o.size, "name": o.name, "content_type": o.content_type}
    if o.is_slo:
        entry["slo_etag"] = f'"{o.etag}"'
    target = o.meta.get("X-Symlink-Target")
    if target:
        entry["symlink_path"] = f"/v1/{o.meta.get('X-Symlink-Target-Account') or o.account}/{target}"
    return entry


def _plain(items: list[Any], headers: dict[str, str]) -> Response:
    if not items:
        return reply(204, headers, content_type="text/plain; charset=utf-8")
    body = "".join((i if isinstance(i, str) else i.name) + "\n" for i in items).encode()
    return reply(200, headers, body, "text/plain; charset=utf-8")
