"""S3 object operations: Put/Get/Head/Delete/Copy, DeleteObjects (uploads: multipart.py)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.sax.saxutils import escape

import orjson
from starlette.responses import Response, StreamingResponse

from pocketstack.api.http import run, run_durable
from pocketstack.drivers.objects.base import BlobInfo
from pocketstack.errors import BadRequest, Conflict, NotFound, PocketError
from pocketstack.services.object_store import auth as swift_auth
from pocketstack.services.object_store.names import (check_container, check_object,
                                                     http_date, parse_http_date)
from pocketstack.services.object_store.store import ObjectRecord
from pocketstack.services.s3 import (acl, attributes, checksums, sigv4, sse, subresources,
                                     views)
from pocketstack.services.s3.support import has_prefix

if TYPE_CHECKING:
    from pocketstack.services.s3.routes import S3Request

STORED_HEADERS = ("content-disposition", "content-encoding", "content-language",
                  "cache-control", "expires")


class NoSuchKey(PocketError):
    status = 404
    kind = "NoSuchKey"


class PreconditionFailed(PocketError):
    status = 412
    kind = "PreconditionFailed"


class ConditionalRequestConflict(PocketError):
    status = 409
    kind = "ConditionalRequestConflict"


def _etags(value: str) -> set[str]:
    return {t.strip().strip('"') for t in value.split(",")}


def write_condition(headers: Any, etag: str | None = None,
                    none_match: bool = True) -> Callable[[ObjectRecord | None], None] | None:
    """S3 conditional writes and deletes: If-Match (the current object's ETag, or *) and
    If-None-Match: * (no current object), checked by the store inside the write's
    transaction (``ObjectStore.commit``/``delete``). ``etag``: DeleteObjects' per-object
    ETag element, which acts as If-Match."""
    if etag is None and not has_prefix(headers, b"if-match", b"if-none-match"):
        return None
    match = headers.get("if-match") if etag is None else etag
    none = headers.get("if-none-match") if none_match else None
    if match is None and none is None:
        return None
    if none is not None and none.strip() != "*":
        raise PocketError("If-None-Match on a write accepts only *.", status=501,
                          kind="NotImplemented")

    def check(current: ObjectRecord | None) -> None:
        if none is not None and current is not None:
            raise PreconditionFailed("At least one of the pre-conditions you specified did "
                                     "not hold")
        if match is not None:
            if current is None:
                raise NoSuchKey("The specified key does not exist.")
            if match.strip() != "*" and current.etag.strip('"') not in _etags(match):
                raise PreconditionFailed("At least one of the pre-conditions you specified "
                                         "did not hold")
    return check


def conditional(call: Callable[[], Any], condition: Any) -> Any:
    """Run a store write; a unique-key race between two conditional writers (PostgreSQL,
    MariaDB) is S3's 409 ConditionalRequestConflict."""
    try:
        return call()
    except Conflict:
        if condition is None:
            raise
        raise ConditionalRequestConflict("A conflicting conditional operation is currently "
                                         "in progress against this resource. Please try "
                                         "again.") from None


# The upload an object was completed from (system metadata, never shown): a repeated
# CompleteMultipartUpload of that upload answers the same result, as S3 does.
UPLOAD_ID = "X-Object-Sysmeta-S3-Upload-Id"

SMALL_PUT = 1 << 20  # bodies up to this size are read before the bucket is looked up


def _title(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def _text(value: str) -> str:
    """A header value (decoded as Latin-1) as the text the client meant: UTF-8 bytes when
    they are valid UTF-8 (botocore sends non-ASCII metadata so), else Latin-1."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _header(value: str) -> str:
    """A stored value as a response header: Latin-1 if it fits, else RFC 2047's
    =?UTF-8?B?...?= (what S3 answers for such metadata)."""
    try:
        value.encode("latin-1")
        return value
    except UnicodeEncodeError:
        return "=?UTF-8?B?" + base64.b64encode(value.encode()).decode() + "?="


def s3_meta(headers: Any) -> dict[str, str]:
    meta: dict[str, str] = {}
    for key, value in headers.items():
        k = key.lower()
        if k.startswith("x-amz-meta-") and len(k) > 11:
            meta[_title("x-object-meta-" + k[11:])] = _text(value)
        elif k in STORED_HEADERS:
            meta[_title(k)] = value
        elif k == "x-amz-tagging":
            meta[subresources.OBJECT_TAGS] = orjson.dumps(
                subresources.parse_tagging_header(value)).decode()
    if sum(len(k) + len(v) for k, v in meta.items()) > 8192:
        raise BadRequest("Your metadata headers exceed the maximum allowed metadata size.",
                         kind="MetadataTooLarge")
    return meta


def _etag(record: ObjectRecord) -> str:
    return f'"{record.etag.strip(chr(34))}"'


def object_headers(record: ObjectRecord) -> dict[str, str]:
    h = {"ETag": _etag(record), "Last-Modified": http_date(record.timestamp),
         "Content-Type": record.content_type, "Content-Length": str(record.size),
         "Accept-Ranges": "bytes"}
    for k, v in record.meta.items():
        if k.startswith("X-Object-Meta-"):
            h["x-amz-meta-" + k[14:].lower()] = _header(v)
        elif k.lower() in STORED_HEADERS:
            h[k] = v
    tags = subresources.object_tags(record.meta)
    if tags:
        h["x-amz-tagging-count"] = str(len(tags))
    return h


async def _get_record(req: "S3Request") -> ObjectRecord:
    try:
        return await run(req.store.get, req.account, req.bucket, req.key)
    except NotFound:
        if await run(req.store.find_container, req.account, req.bucket) is None:
            from pocketstack.services.s3.routes import NoSuchBucket

            raise NoSuchBucket("The specified bucket does not exist") from None
        raise NoSuchKey("The specified key does not exist.") from None


async def _bucket_read(req: "S3Request") -> str | None:
    """The bucket's X-Container-Read: an object's reads follow it (acl.py)."""
    crec = await run(req.store.find_container, req.account, req.bucket)
    return crec.meta.get("X-Container-Read") if crec is not None else None


async def handle(req: "S3Request") -> Response:
    from pocketstack.services.s3.multipart import (complete_upload, create_upload,
                                                   list_parts, upload_part)

    if req.identity is not None and not swift_auth.is_owner(req.ctx, req.account):
        raise sigv4.AccessDenied("Access Denied")
    check_object(req.key)
    method, q = req.method, req.query
    if method == "PUT":
        if "uploadId" in q:
            return await upload_part(req)
        if "tagging" in q:
            return await subresources.object_tagging(req, await _get_record(req))
        if "acl" in q:
            await _get_record(req)
            acl.check_object_acl(req.headers, await _bucket_read(req))
            body = await req.body(64 * 1024)
            if "x-amz-acl" not in req.headers and body.strip() and \
                    acl.read_acl_from_policy(body, req.project_id):
                raise PocketError("Object ACLs other than the owner's are not implemented.",
                                  status=501, kind="NotImplemented")
            return Response(status_code=200)
        if has_prefix(req.headers, b"x-amz-acl", b"x-amz-grant-"):
            acl.check_object_acl(req.headers, await _bucket_read(req))
        if req.headers.get("x-amz-copy-source"):
            return await copy_object(req)
        return await put_object(req)
    if method in ("GET", "HEAD"):
        if "uploadId" in q:
            return await list_parts(req)
        if "acl" in q:
            await _get_record(req)
            return acl.document(req.project_id, await _bucket_read(req))
        if "tagging" in q and method == "GET":
            return await subresources.object_tagging(req, await _get_record(req))
        if "attributes" in q:
            return attributes.get_object_attributes(req, await _get_record(req))
        return await get(req)
    if method == "DELETE":
        if "tagging" in q:
            return await subresources.object_tagging(req, await _get_record(req))
        if "uploadId" in q:
            upload = await run(req.store.upload, req.account, q["uploadId"])
            await run(req.store.finish_upload, upload.id)
            return Response(status_code=204)
        condition = write_condition(req.headers, none_match=False)
        try:
            await run(lambda: conditional(lambda: req.store.delete(
                req.account, req.bucket, req.key, expect=condition), condition))
        except NotFound:
            if await run(req.store.find_container, req.account, req.bucket) is None:
                from pocketstack.services.s3.routes import NoSuchBucket

                raise NoSuchBucket("The specified bucket does not exist") from None
        return Response(status_code=204)
    if method == "POST":
        if "uploads" in q:
            if has_prefix(req.headers, b"x-amz-acl", b"x-amz-grant-"):
                acl.check_object_acl(req.headers, await _bucket_read(req))
            return await create_upload(req)
        if "uploadId" in q:
            return await complete_upload(req)
    raise PocketError("The specified method is not allowed against this resource.",
                      status=405, kind="MethodNotAllowed")


async def _receive_writer(req: "S3Request", inline: bool = False,
                          checksum: checksums.Checksum | None = None,
                          encrypt: tuple[sse.Key, dict[str, str]] | None = None,
                          digests: dict[str, str] | None = None) -> Any:
    ident = req.identity
    chunked = req.stream() if ident is not None and ident.streaming or \
        "aws-chunked" in req.headers.get("content-encoding", "") else None
    if checksum is not None:  # computed as the data passes, checked at its end
        chunked = checksums.computed(
            chunked if chunked is not None else req.request.stream(), checksum,
            req.headers.get("content-length") if chunked is None else None)
    if encrypt is not None:  # Content-MD5 is checked here, on the plaintext
        if chunked is None and not (req.headers.get("content-length") or "").isdigit():
            raise PocketError("You must provide the Content-Length HTTP header.",
                              status=411, kind="MissingContentLength")
        chunked = sse.encrypt_body(chunked if chunked is not None else req.request.stream(),
                                   *encrypt, req.headers.get("content-md5"),
                                   ident.payload_sha256 if ident else None,
                                   digests if digests is not None else {})
    return await req.service.receive_writer(req.request, chunks=chunked,
                                            sha256=ident.payload_sha256
                                            if ident and encrypt is None else None,
                                            inline=inline)


def _commit_checked(req: "S3Request", writer: Any, check_md5: bool = True) -> BlobInfo:
    """Commit a received blob (worker thread) and check Content-MD5."""
    blob = writer.commit()
    md5 = req.headers.get("content-md5")
    if md5 and check_md5:
        try:
            wanted = base64.b64decode(md5).hex()
        except ValueError:
            wanted = ""
        if wanted != blob.md5:
            req.store.discard(blob)
            raise BadRequest("The Content-MD5 you specified did not match what we received.",
                             kind="BadDigest")
    return blob


async def _receive(req: "S3Request", checksum: checksums.Checksum | None = None) -> BlobInfo:
    writer = await _receive_writer(req, checksum=checksum)
    return await run(_commit_checked, req, writer)


def _content_type(req: "S3Request") -> str:
    return req.headers.get("content-type") or "binary/octet-stream"


async def put_object(req: "S3Request") -> Response:
    from pocketstack.services.s3.routes import NoSuchBucket

    store = req.store
    length = req.headers.get("content-length") or ""
    if not length.isdigit() or int(length) > SMALL_PUT:
        # Refuse a big body for a missing bucket before reading it; a small one is
        # checked in the commit transaction below (one worker-thread hop less per PUT).
        if await run(store.find_container, req.account, req.bucket) is None:
            raise NoSuchBucket("The specified bucket does not exist")
    meta = s3_meta(req.headers)
    meta.pop("Content-Encoding", None) if "aws-chunked" in meta.get("Content-Encoding", "") \
        else None
    condition = write_condition(req.headers)
    checksum = checksums.from_request(req.headers)
    key = sse.for_write(req.headers, req.service.cloud.settings.data_dir)
    encrypt = (key, sse.new_params(key)) if key is not None else None
    if encrypt is not None:
        meta[sse.META] = sse.dump(encrypt[1])
    digests: dict[str, str] = {}
    writer = await _receive_writer(req, inline=True, checksum=checksum, encrypt=encrypt,
                                   digests=digests)
    etag = digests.get("md5") if key is not None and key.mode == "S3" else None
    ctype = _content_type(req)
    if checksum is not None:
        meta[checksums.STORED] = f"{checksum.algorithm}:{checksum.value()}"

    def finish() -> ObjectRecord:  # one worker-thread hop: fsyncs, then the row
        blob = _commit_checked(req, writer, check_md5=encrypt is None)
        try:
            return conditional(lambda: store.commit(
                req.account, req.bucket, req.key, blob, content_type=ctype, meta=meta,
                etag=etag, expect=condition), condition)
        except NotFound:  # the bucket is gone (or never was); the blob is already removed
            raise NoSuchBucket("The specified bucket does not exist") from None

    record = await run_durable(finish)
    headers = {"ETag": _etag(record)}
    if checksum is not None:
        headers[checksum.header] = checksum.value()
    if key is not None:
        headers.update(key.headers())
    return Response(status_code=200, headers=headers)


async def get(req: "S3Request") -> Response:
    data = None
    try:
        record, data = await run(req.store.get_with_data, req.account, req.bucket, req.key,
                                 64 * 1024 if req.method == "GET" else 0)
    except NotFound:
        record = await _get_record(req)  # raises NoSuchBucket/NoSuchKey
    headers = object_headers(record)
    etag = record.etag.strip('"')
    h = req.headers
    params, key = sse.params_of(record.meta), None
    if params is not None:  # the right key (SSE-C) or none (SSE-S3), before anything else
        key = sse.unlock(params, h, req.service.cloud.settings.data_dir)
        headers.update(key.headers())
    elif sse.customer_key(h) is not None:
        raise BadRequest("The encryption parameters are not applicable to this object.",
                         kind="InvalidRequest")
    modified = float(int(record.timestamp) + (1 if record.timestamp % 1 else 0))
    if h.get("if-match") and etag not in {t.strip().strip('"') for t in h["if-match"].split(",")} \
            and h["if-match"].strip() != "*":
        raise PreconditionFailed("At least one of the pre-conditions you specified did not "
                                 "hold")
    if h.get("if-unmodified-since") and not h.get("if-match"):
        when = parse_http_date(h["if-unmodified-since"])
        if when is not None and modified > when:
            raise PreconditionFailed("At least one of the pre-conditions you specified did "
                                     "not hold")
    if h.get("if-none-match"):
        if etag in {t.strip().strip('"') for t in h["if-none-match"].split(",")} or \
                h["if-none-match"].strip() == "*":
            return Response(status_code=304, headers={"ETag": headers["ETag"],
                                                      "Last-Modified": headers["Last-Modified"]})
    elif h.get("if-modified-since"):
        when = parse_http_date(h["if-modified-since"])
        if when is not None and modified <= when:
            return Response(status_code=304, headers={"ETag": headers["ETag"],
                                                      "Last-Modified": headers["Last-Modified"]})
    for param, header in (("response-content-type", "Content-Type"),
                          ("response-content-disposition", "Content-Disposition"),
                          ("response-content-encoding", "Content-Encoding"),
                          ("response-content-language", "Content-Language"),
                          ("response-cache-control", "Cache-Control"),
                          ("response-expires", "Expires")):
        if req.query.get(param):
            headers[header] = req.query[param]
    size = record.size
    start, end, status = 0, size, 200
    rng = h.get("range")
    if "partNumber" in req.query:
        start, end, part = attributes.part_range(record, req.query["partNumber"], bool(rng))
        headers.update(part)
        status = 206 if "Content-Range" in part else 200
    elif rng and rng.startswith("bytes=") and "," not in rng:
        first, _, last = rng[6:].strip().partition("-")
        try:
            if first:
                start = int(first)
                end = min(int(last) + 1, size) if last else size
            elif last:
                start, end = max(0, size - int(last)), size
            if start >= size or end <= start:
                raise PocketError("The requested range is not satisfiable", status=416,
                                  kind="InvalidRange",
                                  headers={"Content-Range": f"bytes */{size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
            headers["Content-Length"] = str(end - start)
        except ValueError:
            start, end = 0, size
    headers.update(checksums.response_headers(record.meta, h, status == 206))
    if req.method == "HEAD":
        return Response(b"", status, headers=headers)
    if data is not None:
        body = data[start:end]
        if key is not None:
            body = sse.transform(key, params, start, body)  # type: ignore[arg-type]
        return Response(body, status, headers=headers)
    stream = req.service.body_iter(record, start, end)
    if key is not None:
        stream = sse.transform_stream(stream, key, params, start)  # type: ignore[arg-type]
    return StreamingResponse(stream, status, headers=headers)


def _copy_source(req: "S3Request") -> tuple[str, str]:
    src = unquote(req.headers["x-amz-copy-source"]).split("?versionId=")[0].lstrip("/")
    bucket, _, key = src.partition("/")
    if not bucket or not key:
        raise BadRequest("Copy Source must mention the source bucket and key: "
                         "sourcebucket/sourcekey", kind="InvalidArgument")
    return check_container(bucket), check_object(key)


def check_copy_source(headers: Any, src: ObjectRecord) -> None:
    """x-amz-copy-source-if-{match,none-match,modified-since,unmodified-since}: 412
    PreconditionFailed when they do not hold for the source (CopyObject, UploadPartCopy)."""
    etag = src.etag.strip('"')
    modified = float(int(src.timestamp) + (1 if src.timestamp % 1 else 0))
    match = headers.get("x-amz-copy-source-if-match")
    none = headers.get("x-amz-copy-source-if-none-match")
    since = parse_http_date(headers.get("x-amz-copy-source-if-modified-since") or "")
    until = parse_http_date(headers.get("x-amz-copy-source-if-unmodified-since") or "")
    failed = (match is not None and match.strip() != "*" and etag not in _etags(match)) or \
        (none is not None and (none.strip() == "*" or etag in _etags(none))) or \
        (until is not None and match is None and modified > until) or \
        (since is not None and none is None and modified <= since)
    if failed:
        raise PreconditionFailed("At least one of the pre-conditions you specified did not "
                                 "hold")


async def copy_object(req: "S3Request") -> Response:
    store = req.store
    bucket, key = _copy_source(req)
    condition = write_condition(req.headers)  # on the destination (before any copying)
    try:
        src: ObjectRecord = await run(store.get, req.account, bucket, key)
    except NotFound:
        raise NoSuchKey("The specified key does not exist.") from None
    check_copy_source(req.headers, src)
    data_dir = req.service.cloud.settings.data_dir
    src_params = sse.params_of(src.meta)
    if src_params is not None:
        src_key = sse.unlock(src_params, req.headers, data_dir, prefix=sse.COPY_CUSTOMER)
    elif sse.customer_key(req.headers, sse.COPY_CUSTOMER) is not None:
        raise BadRequest("The encryption parameters are not applicable to this object.",
                         kind="InvalidRequest")
    dst_key = sse.for_write(req.headers, data_dir)
    directive = req.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive == "COPY" and (bucket, key) == (req.bucket, req.key) and \
            dst_key is None and src_params is None:
        raise BadRequest("This copy request is illegal because it is trying to copy an object "
                         "to itself without changing the object's metadata, storage class, "
                         "website redirect location or encryption attributes.",
                         kind="InvalidRequest")
    if directive == "REPLACE":
        meta, ctype = s3_meta(req.headers), _content_type(req)
    else:
        meta, ctype = dict(src.meta), src.content_type
    # tags follow x-amz-tagging-directive (default COPY), not the metadata directive
    meta.pop(subresources.OBJECT_TAGS, None)
    meta.pop(UPLOAD_ID, None)
    meta.pop(sse.META, None)
    meta.pop(attributes.PARTS, None)  # the copy is one piece
    if req.headers.get("x-amz-tagging-directive", "COPY").upper() == "REPLACE":
        if req.headers.get("x-amz-tagging"):
            meta[subresources.OBJECT_TAGS] = orjson.dumps(
                subresources.parse_tagging_header(req.headers["x-amz-tagging"])).decode()
    elif src.meta.get(subresources.OBJECT_TAGS):
        meta[subresources.OBJECT_TAGS] = src.meta[subresources.OBJECT_TAGS]
    if src.is_slo or src.dlo_manifest or src_params is not None or dst_key is not None:
        # through the plaintext: decrypted from the source's key, encrypted to the new one
        stream = req.service.body_iter(src, 0, src.size)
        if src_params is not None:
            stream = sse.transform_stream(stream, src_key, src_params)
        if dst_key is not None:
            dst_params = sse.new_params(dst_key)
            meta[sse.META] = sse.dump(dst_params)
            stream = sse.transform_stream(stream, dst_key, dst_params)
        writer = req.service.driver.writer()
        try:
            async for chunk in stream:
                writer.write(chunk)
            blob = await run(writer.commit)
        except BaseException:
            writer.abort()
            raise
        meta.pop("X-Static-Large-Object", None)
        meta.pop("X-Object-Manifest", None)
        # SSE-S3 keeps the plaintext's MD5 as ETag (a source's, if it has it)
        plain_md5 = not (src.is_slo or src.dlo_manifest) and \
            (src_params is None or src_params["mode"] == "S3")
        etag = src.etag if dst_key is not None and dst_key.mode == "S3" and plain_md5 \
            else None
    else:
        blob = await run(store.copy_blob, src)
        etag = src.etag
    record = await run(lambda: conditional(lambda: store.commit(
        req.account, req.bucket, req.key, blob, content_type=ctype, meta=meta, etag=etag,
        expect=condition), condition))
    return views.xml(f'<CopyObjectResult xmlns="{views.NS}"><LastModified>'
                     f"{views.last_modified(record.timestamp)}</LastModified><ETag>{_etag(record)}"
                     "</ETag></CopyObjectResult>",
                     headers=dst_key.headers() if dst_key is not None else None)


async def delete_objects(req: "S3Request") -> Response:
    root = views.xml_root(await req.body(2 << 20))
    quiet = (root.findtext("Quiet") or "").lower() == "true"
    keys = [(el.findtext("Key") or "", el.findtext("ETag")) for el in root.findall("Object")]
    if len(keys) > 1000:
        raise BadRequest("The XML you provided was not well-formed or did not validate "
                         "against our published schema.", kind="MalformedXML")
    out = [f'<DeleteResult xmlns="{views.NS}">']
    for key, etag in keys:
        try:
            check_object(key)
            condition = write_condition({}, etag=etag) if etag is not None else None
            try:
                await run(lambda: conditional(lambda: req.store.delete(
                    req.account, req.bucket, key, expect=condition), condition))
            except NotFound:
                pass
            if not quiet:
                out.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
        except PocketError as exc:
            out.append(f"<Error><Key>{escape(key)}</Key><Code>{exc.kind}</Code><Message>"
                       f"{escape(exc.message)}</Message></Error>")
    out.append("</DeleteResult>")
    return views.xml("".join(out))
