"""Swift object requests: GET/HEAD (ranges, conditionals, large objects), PUT (streamed,
chunked, SLO manifests, X-Copy-From), POST, DELETE, COPY, and static web pages."""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import AsyncIterator
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import orjson
from starlette.responses import Response, StreamingResponse

from pocketstack.api.http import run, run_durable
from pocketstack.errors import BadRequest, MethodNotAllowed, NotFound, PocketError
from pocketstack.services.object_store import auth, bulk, large, views
from pocketstack.services.object_store.names import (LengthRequired, PreconditionFailed,
                                                     check_container, check_object,
                                                     http_date, parse_http_date)
from pocketstack.services.object_store.store import ContainerRecord, ObjectRecord
from pocketstack.services.object_store.views import reply

if TYPE_CHECKING:
    from pocketstack.services.object_store.routes import SwiftRequest

# Headers stored with an object besides X-Object-Meta-* (swift's allowed_headers).
ALLOWED_HEADERS = ("content-disposition", "content-encoding", "content-language",
                   "cache-control", "expires", "x-robots-tag", "x-object-manifest",
                   "x-symlink-target", "x-symlink-target-account")
SYMLOOP_MAX = 2


class Unprocessable(PocketError):
    status = 422
    kind = "UnprocessableEntity"


def _title(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def object_meta(headers: Any) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, value in headers.items():
        k = key.lower()
        if k.startswith("x-object-meta-") and len(k) > 14:
            if len(k) - 14 > 128 or len(value) > 256:
                raise BadRequest("Metadata name or value too long")
            meta[_title(k)] = value
        elif k in ALLOWED_HEADERS:
            meta[_title(k)] = value
    if len(meta) > 90:
        raise BadRequest("Too many metadata items")
    return meta


def delete_at_of(headers: Any) -> int | None | bool:
    """X-Delete-At / X-Delete-After -> epoch seconds; False when neither is given."""
    at, after = headers.get("x-delete-at"), headers.get("x-delete-after")
    now = time.time()
    if after is not None:
        try:
            seconds = int(after)
        except ValueError:
            raise BadRequest("Non-integer X-Delete-After") from None
        if seconds < 0:
            raise BadRequest("X-Delete-After in past")
        return int(now + seconds)
    if at is not None:
        try:
            value = int(float(at))
        except ValueError:
            raise BadRequest("Non-integer X-Delete-At") from None
        if value < now:
            raise BadRequest("X-Delete-At in past")
        return value
    return False


def content_type_for(req: "SwiftRequest", name: str) -> str:
    ctype = req.headers.get("content-type")
    detect = req.headers.get("x-detect-content-type", "").lower() in ("true", "1", "yes")
    if not ctype or detect:
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return ctype


# -- access -----------------------------------------------------------------------------
async def authorize(req: "SwiftRequest", write: bool, account: str | None = None,
                    container: str | None = None) -> None:
    """Owner, TempURL (for the request's own object) or container ACL; else 401/403."""
    own_target = account is None and container is None
    account = account or req.account
    container = container or req.container
    tempurl = own_target and "temp_url_sig" in req.query
    # A TempURL decides alone, even when a token comes along (swift's tempurl middleware).
    if not tempurl and auth.is_owner(req.ctx, account):
        return
    store = req.store
    crec = await run(store.find_container, account, container)
    if tempurl:
        acc = await run(store.account, account)
        keys = [acc.meta.get(k) for k in ("X-Account-Meta-Temp-Url-Key",
                                          "X-Account-Meta-Temp-Url-Key-2")]
        if crec is not None:
            keys += [crec.meta.get(k) for k in ("X-Container-Meta-Temp-Url-Key",
                                                "X-Container-Meta-Temp-Url-Key-2")]
        paths = [req.full_path, req.v1_path()]
        if auth.tempurl_valid(req.query, req.method, paths, [k for k in keys if k]):
            return
        raise PocketError("Temp URL invalid", status=401, kind="Unauthorized")
    if crec is not None:
        acl = crec.meta.get("X-Container-Write" if write else "X-Container-Read")
        if auth.acl_allows(req.ctx, acl, referrer=req.headers.get("referer")):
            return
    raise auth.deny(req.ctx)


async def handle(req: "SwiftRequest") -> Response:
    method = req.method
    obj = req.obj
    assert obj is not None and req.container is not None
    if method in ("GET", "HEAD"):
        await authorize(req, False)
        if req.ctx.user_id is None and "temp_url_sig" not in req.query:
            crec = await run(req.store.find_container, req.account, req.container)
            if crec is not None and is_static_web(crec):
                return await static_object(req, crec)
        return await get(req)
    if method == "PUT" and "extract-archive" in req.query:
        return await bulk.extract_archive(req)  # into <container>/<obj>/...
    if method == "PUT":
        await authorize(req, True)
        if req.headers.get("x-copy-from"):
            src_container, src_obj = _split_ref(req.headers["x-copy-from"])
            src_account = req.headers.get("x-copy-from-account") or req.account
            return await copy(req, src_account, src_container, src_obj, req.account,
                              req.container, obj)
        return await put(req)
    if method == "POST":
        if req.headers.get("content-type", "").startswith("multipart/form-data"):
            return await bulk.formpost(req)
        await authorize(req, True)
        return await post(req)
    if method == "DELETE":
        await authorize(req, True)
        return await delete(req)
    if method == "COPY":
        dest = req.headers.get("destination")
        if not dest:
            raise PocketError("Destination header required", status=412,
                              kind="PreconditionFailed")
        dst_container, dst_obj = _split_ref(dest)
        dst_account = req.headers.get("destination-account") or req.account
        await authorize(req, False)
        await authorize(req, True, account=dst_account, container=dst_container)
        return await copy(req, req.account, req.container, obj, dst_account, dst_container,
                          dst_obj)
    raise MethodNotAllowed(f"The method {method} is not allowed for this resource.")


def _split_ref(value: str) -> tuple[str, str]:
    value = unquote(value).lstrip("/")
    container, _, name = value.partition("/")
    if not container or not name:
        raise PocketError("Bad header value: must be in the form /container/object",
                          status=412, kind="PreconditionFailed")
    return check_container(container), check_object(name)


# -- GET / HEAD -------------------------------------------------------------------------
async def _follow(req: "SwiftRequest", record: ObjectRecord) -> tuple[ObjectRecord, str]:
    """Resolve a symlink (X-Symlink-Target) to its target, checking read access there."""
    location = ""
    for _ in range(SYMLOOP_MAX + 1):
        target = record.meta.get("X-Symlink-Target")
        if not target:
            return record, location
        container, name = _split_ref(target)
        account = record.meta.get("X-Symlink-Target-Account") or record.account
        await authorize(req, False, account=account, container=container)
        location = f"/v1/{account}/{container}/{name}"
        record = await run(req.store.get, account, container, name)
    raise PocketError("Too many levels of symbolic links, maximum allowed is "
                      f"{SYMLOOP_MAX}", status=409, kind="Conflict")


INLINE_GET = 64 * 1024  # plain objects up to this size are read with their record


async def get(req: "SwiftRequest") -> Response:
    store = req.store
    record, data = await run(store.get_with_data, req.account, req.container, req.obj,
                             INLINE_GET if req.method == "GET" else 0)
    q = req.query
    location = ""
    if record.meta.get("X-Symlink-Target") and q.get("symlink") != "get":
        record, location = await _follow(req, record)
    if record.is_slo and q.get("multipart-manifest") == "get":
        return await _manifest_response(req, record)
    etag, size = record.etag, record.size
    if record.is_slo:
        etag = f'"{record.etag}"'
    elif record.dlo_manifest:
        dlo_etag, size = await run(large.dlo_etag_and_size, req.service, record)
        etag = f'"{dlo_etag}"'
    headers = views.object_headers(record, etag=etag, size=size)
    if location:
        headers["Content-Location"] = location
    if q.get("temp_url_sig"):
        if "inline" in q:
            headers["Content-Disposition"] = "inline"
        elif "filename" in q or req.method == "GET":
            fname = q.get("filename") or req.obj.rsplit("/", 1)[-1]
            headers["Content-Disposition"] = (
                f'attachment; filename="{fname}"; filename*=UTF-8\'\'{quote(fname)}')
    not_modified = _conditional(req, etag.strip('"'), record.timestamp)
    if not_modified is not None:
        return reply(not_modified, {k: v for k, v in headers.items()
                                    if k in ("ETag", "Last-Modified", "X-Timestamp")})
    ranges = _parse_range(req.headers.get("range"), size)
    if ranges is None:
        if req.method == "HEAD":
            return Response(b"", 200, headers=headers)
        if data is not None and not location:
            return Response(data, 200, headers=headers)
        return StreamingResponse(req.service.body_iter(record, 0, size), 200, headers=headers)
    if not ranges:
        return reply(416, {"Content-Range": f"bytes */{size}"},
                     b"<html><h1>Requested Range Not Satisfiable</h1>"
                     b"<p>The Range requested is not available.</p></html>")
    if len(ranges) == 1:
        start, end = ranges[0]
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
        if req.method == "HEAD":
            return Response(b"", 206, headers=headers)
        return StreamingResponse(req.service.body_iter(record, start, end), 206,
                                 headers=headers)
    boundary = uuid.uuid4().hex
    ctype = record.content_type
    parts = [(f"--{boundary}\r\nContent-Type: {ctype}\r\nContent-Range: bytes "
              f"{s}-{e - 1}/{size}\r\n\r\n").encode() for s, e in ranges]
    tail = f"\r\n--{boundary}--".encode()
    total = sum(len(p) + (e - s) for p, (s, e) in zip(parts, ranges)) + \
        2 * (len(ranges) - 1) + len(tail)
    headers["Content-Type"] = f"multipart/byteranges;boundary={boundary}"
    headers["Content-Length"] = str(total)

    async def multi() -> AsyncIterator[bytes]:
        for i, (head, (s, e)) in enumerate(zip(parts, ranges)):
            yield (b"\r\n" if i else b"") + head
            async for chunk in req.service.body_iter(record, s, e):
                yield chunk
        yield tail

    if req.method == "HEAD":
        return Response(b"", 206, headers=headers)
    return StreamingResponse(multi(), 206, headers=headers)


def _conditional(req: "SwiftRequest", etag: str, ts: float) -> int | None:
    h = req.headers
    if_match = h.get("if-match")
    if if_match is not None:
        tags = {t.strip().strip('"') for t in if_match.split(",")}
        if "*" not in tags and etag not in tags:
            raise PreconditionFailed("A precondition for this request was not met.")
    if_none = h.get("if-none-match")
    if if_none is not None:
        tags = {t.strip().strip('"') for t in if_none.split(",")}
        if "*" in tags or etag in tags:
            return 304
    modified = float(int(ts) + (1 if ts % 1 else 0))
    since = h.get("if-modified-since")
    if since is not None and if_none is None:
        when = parse_http_date(since)
        if when is not None and modified <= when:
            return 304
    unmodified = h.get("if-unmodified-since")
    if unmodified is not None and if_match is None:
        when = parse_http_date(unmodified)
        if when is not None and modified > when:
            raise PreconditionFailed("A precondition for this request was not met.")
    return None


def _parse_range(value: str | None, size: int) -> list[tuple[int, int]] | None:
    """None: no (or an ignorable) Range header; []: unsatisfiable; else [start, end)."""
    if not value or not value.strip().lower().startswith("bytes="):
        return None
    out: list[tuple[int, int]] = []
    for spec in value.strip()[6:].split(","):
        spec = spec.strip()
        first, sep, last = spec.partition("-")
        if not sep or (not first and not last):
            return None
        try:
            if not first:
                n = int(last)
                if n == 0:
                    continue
                out.append((max(0, size - n), size))
                continue
            start = int(first)
            end = int(last) + 1 if last else size
        except ValueError:
            return None
        if start > end - 1 and last:
            return None
        if start >= size:
            continue
        out.append((start, min(end, size)))
    if len(out) > 100:
        return None
    return out


async def _manifest_response(req: "SwiftRequest", record: ObjectRecord) -> Response:
    items = await run(large.manifest, req.service, record)
    headers = views.object_headers(record)
    headers["ETag"] = (await run(_md5_of_blob, req.service, record))
    headers["Content-Type"] = "application/json; charset=utf-8"
    if req.query.get("format") == "raw":
        items = [{"path": i["name"], "etag": i["hash"], "size_bytes": i["bytes"],
                  **({"range": i["range"]} if i.get("range") else {})} for i in items]
    body = orjson.dumps(items)
    headers["Content-Length"] = str(len(body))
    if req.method == "HEAD":
        return Response(b"", 200, headers=headers)
    return Response(body, 200, headers=headers)


def _md5_of_blob(service: Any, record: ObjectRecord) -> str:
    import hashlib

    md5 = hashlib.md5(usedforsecurity=False)
    for chunk in service.store.read(record):
        md5.update(chunk)
    return md5.hexdigest()


# -- PUT --------------------------------------------------------------------------------
async def put(req: "SwiftRequest") -> Response:
    h = req.headers
    store, service = req.store, req.service
    te = h.get("transfer-encoding", "").lower()
    length = h.get("content-length")
    if length is None and "chunked" not in te:
        raise LengthRequired("Missing Content-Length header.")
    if length is not None and not length.isdigit():
        raise BadRequest("Invalid Content-Length header.")
    delete_at = delete_at_of(h)
    meta = object_meta(h)
    if "X-Object-Manifest" in meta:
        manifest = unquote(meta["X-Object-Manifest"])
        if "/" not in manifest.lstrip("/") or manifest.startswith("/"):
            raise BadRequest("X-Object-Manifest must be in the format container/prefix")
    ctype = content_type_for(req, req.obj)
    if "X-Symlink-Target" in meta:
        _split_ref(meta["X-Symlink-Target"])
        if length not in (None, "0"):
            raise BadRequest("Symlink requests require a zero byte body")
        if "X-Symlink-Target-Account" in meta and \
                auth.project_of(meta["X-Symlink-Target-Account"]) is None:
            raise BadRequest("Invalid X-Symlink-Target-Account")
    if h.get("if-none-match") == "*":
        if await run(store.find, req.account, req.container, req.obj) is not None:
            raise PreconditionFailed("A precondition for this request was not met.")
    if length is not None and int(length) > (1 << 20):
        # Refuse a big body before reading it; small ones are checked at commit only.
        await run(store.check_quota, req.account, req.container, int(length))
    if req.query.get("multipart-manifest") == "put":
        return await _put_slo(req, ctype, meta, delete_at)
    writer = await service.receive_writer(req.request, inline=True)
    wanted = h.get("etag")

    def finish() -> ObjectRecord:  # one worker-thread hop: fsyncs, then the row
        blob = writer.commit()
        if wanted and wanted.strip('"').lower() != blob.md5:
            store.discard(blob)
            raise Unprocessable("The ETag you supplied does not match the data received.")
        return store.commit(req.account, req.container, req.obj, blob, content_type=ctype,
                            meta=meta, delete_at=None if delete_at is False else delete_at)

    record = await run_durable(finish)
    return reply(201, {"ETag": record.etag, "Last-Modified": http_date(record.timestamp),
                       "X-Timestamp": f"{record.timestamp:016.5f}"})


async def _put_slo(req: "SwiftRequest", ctype: str, meta: dict[str, str],
                   delete_at: Any) -> Response:
    service, store = req.service, req.store
    body = b""
    async for chunk in req.request.stream():
        body += chunk
        if len(body) > large.MAX_MANIFEST_SIZE:
            raise BadRequest("Manifest is too large.")
    stored, etag, total = await run(large.build_slo, service, req.account, body)
    wanted = req.headers.get("etag")
    if wanted and wanted.strip('"') != etag:
        raise Unprocessable("The ETag you supplied does not match the manifest's ETag.")
    blob = await service.blob_from_iter(iter([stored]))
    meta = {**meta, "X-Static-Large-Object": "True"}
    record = await run(lambda: store.commit(
        req.account, req.container, req.obj, blob, content_type=ctype, meta=meta,
        delete_at=None if delete_at is False else delete_at, size=total, etag=etag))
    return reply(201, {"ETag": f'"{etag}"', "Last-Modified": http_date(record.timestamp)})


# -- POST / DELETE ----------------------------------------------------------------------
async def post(req: "SwiftRequest") -> Response:
    meta = object_meta(req.headers)
    delete_at = delete_at_of(req.headers)
    if req.headers.get("x-remove-delete-at") is not None:
        delete_at = None
    ctype = req.headers.get("content-type")
    await run(req.store.update_meta, req.account, req.container, req.obj, meta, ctype,
              delete_at)
    return reply(202, body=b"<html><h1>Accepted</h1><p>The request is accepted for "
                       b"processing.</p></html>")


async def delete(req: "SwiftRequest") -> Response:
    store = req.store
    if req.query.get("multipart-manifest") == "delete":
        record = await run(store.get, req.account, req.container, req.obj)
        if record.is_slo:
            items = await run(large.manifest, req.service, record)
            deleted, missing = 1, 0
            for item in items:
                container, name = large.split_path(item["name"])
                try:
                    await run(store.delete, req.account, container, name)
                    deleted += 1
                except NotFound:
                    missing += 1
            await run(store.delete, req.account, req.container, req.obj)
            body = (f"Number Deleted: {deleted}\nNumber Not Found: {missing}\n"
                    "Response Body: \nResponse Status: 200 OK\nErrors: \n").encode()
            return reply(200, body=body, content_type="text/plain")
    await run(store.delete, req.account, req.container, req.obj)
    return reply(204)


# -- COPY -------------------------------------------------------------------------------
async def copy(req: "SwiftRequest", src_account: str, src_container: str, src_obj: str,
               dst_account: str, dst_container: str, dst_obj: str) -> Response:
    store, service = req.store, req.service
    await authorize(req, False, account=src_account, container=src_container)
    src: ObjectRecord = await run(store.get, src_account, src_container, src_obj)
    manifest_get = req.query.get("multipart-manifest") == "get"
    fresh = req.headers.get("x-fresh-metadata", "").lower() in ("true", "1", "yes")
    meta = {} if fresh else {k: v for k, v in src.meta.items()
                             if manifest_get or k not in ("X-Static-Large-Object",
                                                          "X-Object-Manifest")}
    meta.update(object_meta(req.headers))
    ctype = req.headers.get("content-type") if req.method == "COPY" else None
    if req.method == "PUT" and req.headers.get("content-type"):
        ctype = req.headers["content-type"]
    delete_at = delete_at_of(req.headers)
    size = etag = None
    if (src.is_slo or src.dlo_manifest) and not manifest_get:
        writer = service.driver.writer()
        try:
            async for chunk in service.body_iter(src, 0, (await _large_size(req, src))):
                writer.write(chunk)
            blob = await run(writer.commit)
        except BaseException:
            writer.abort()
            raise
    else:
        blob = await run(store.copy_blob, src)
        if src.is_slo:
            size, etag = src.size, src.etag
    record = await run(lambda: store.commit(
        dst_account, dst_container, dst_obj, blob, content_type=ctype or src.content_type,
        meta=meta, delete_at=None if delete_at is False else delete_at, size=size,
        etag=etag))
    headers = {**{k: str(v) for k, v in record.meta.items()
                  if k.startswith("X-Object-Meta-")},
               "Content-Type": record.content_type,
               "ETag": record.etag, "Last-Modified": http_date(record.timestamp),
               "X-Copied-From": quote(f"{src_container}/{src_obj}"),
               "X-Copied-From-Last-Modified": http_date(src.timestamp),
               "X-Timestamp": f"{record.timestamp:016.5f}"}
    if src_account != dst_account:
        headers["X-Copied-From-Account"] = src_account
    return reply(201, headers)


async def _large_size(req: "SwiftRequest", record: ObjectRecord) -> int:
    if record.is_slo:
        return record.size
    _, size = await run(large.dlo_etag_and_size, req.service, record)
    return size


# -- static web -------------------------------------------------------------------------
def is_static_web(crec: ContainerRecord) -> bool:
    meta = crec.meta
    return bool(meta.get("X-Container-Meta-Web-Index")) or \
        meta.get("X-Container-Meta-Web-Listings", "").lower() in ("true", "1", "yes", "on")


async def static_object(req: "SwiftRequest", crec: ContainerRecord) -> Response:
    """Anonymous GET of an object in a static-web container: the object, the index of a
    pseudo-directory, or <status><Web-Error> for a missing one."""
    name = req.obj or ""
    if name.endswith("/"):
        return await static_web(req, crec, name)
    record = await run(req.store.find, req.account, crec.name, name)
    if record is None:
        index = crec.meta.get("X-Container-Meta-Web-Index")
        if index and await run(req.store.find, req.account, crec.name, f"{name}/{index}"):
            return reply(301, {"Location": f"{req.full_path}/"})
        return await _web_error(req, crec, 404)
    return await get(req)


async def _web_error(req: "SwiftRequest", crec: ContainerRecord, status: int) -> Response:
    error = crec.meta.get("X-Container-Meta-Web-Error")
    if error:
        page = await run(req.store.find, req.account, crec.name, f"{status}{error}")
        if page is not None:
            body = await req.service.read_all(page)
            return reply(status, body=body, content_type=page.content_type)
    raise NotFound("The resource could not be found.")


async def static_web(req: "SwiftRequest", crec: ContainerRecord, sub: str) -> Response:
    """Serve X-Container-Meta-Web-Index / Web-Listings for anonymous readers."""
    index = crec.meta.get("X-Container-Meta-Web-Index")
    store = req.store
    if index:
        record = await run(store.find, req.account, crec.name, sub + index)
        if record is not None:
            headers = views.object_headers(record)
            if req.method == "HEAD":
                return Response(b"", 200, headers=headers)
            return StreamingResponse(req.service.body_iter(record, 0, record.size), 200,
                                     headers=headers)
    if crec.meta.get("X-Container-Meta-Web-Listings", "").lower() in ("true", "1", "yes", "on"):
        items = await run(lambda: store.list_objects(req.account, crec.name, prefix=sub,
                                                     delimiter="/", limit=10000))
        css = crec.meta.get("X-Container-Meta-Web-Listings-Css")
        link = (f'<link rel="stylesheet" type="text/css" href="{escape(css)}" />\n'
                if css else "")
        rows = []
        for i in items:
            name = i if isinstance(i, str) else i.name
            rel = name[len(sub):]
            rows.append(f'<tr><td class="colname"><a href="{escape(quote(rel))}">'
                        f"{escape(rel)}</a></td></tr>\n")
        title = f"Listing of /{escape(crec.name)}/{escape(sub)}"
        body = (f"<!DOCTYPE html>\n<html>\n<head>\n<title>{title}</title>\n{link}</head>\n"
                f"<body>\n<h1>{title}</h1>\n<table>\n{''.join(rows)}</table>\n</body>\n"
                "</html>\n").encode()
        return reply(200, body=body)
    return await _web_error(req, crec, 404)
