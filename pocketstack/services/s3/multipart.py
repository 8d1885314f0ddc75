"""S3 multipart uploads: Create, UploadPart (and UploadPartCopy), ListParts,
ListMultipartUploads, Complete (repeatable, conditional) and Abort (in objects.handle)."""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import TYPE_CHECKING

from xml.sax.saxutils import escape

from starlette.responses import Response

from pocketstack.api.http import run
from pocketstack.drivers.objects.base import BlobInfo
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.object_store.models import S3Upload
from pocketstack.services.s3 import attributes, checksums, sse, views
from pocketstack.services.s3.objects import (UPLOAD_ID, NoSuchKey, _content_type,
                                             _copy_source, _receive, check_copy_source,
                                             conditional, s3_meta, write_condition)

if TYPE_CHECKING:
    from pocketstack.services.s3.routes import S3Request

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10000


async def create_upload(req: "S3Request") -> Response:
    upload = S3Upload(id=uuid.uuid4().hex, account=req.account, container=req.bucket,
                      name=req.key, created=time.time(), content_type=_content_type(req),
                      meta=s3_meta(req.headers))
    try:
        await run(req.store.create_upload, upload)
    except NotFound:
        from pocketstack.services.s3.routes import NoSuchBucket

        raise NoSuchBucket("The specified bucket does not exist") from None
    return views.xml(f'<InitiateMultipartUploadResult xmlns="{views.NS}"><Bucket>'
                     f"{escape(req.bucket)}</Bucket><Key>{escape(req.key)}</Key><UploadId>"
                     f"{upload.id}</UploadId></InitiateMultipartUploadResult>")


def _part_number(req: "S3Request") -> int:
    raw = req.query.get("partNumber", "")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PARTS:
        raise BadRequest("Part number must be an integer between 1 and 10000, inclusive",
                         kind="InvalidArgument")
    return int(raw)


async def _upload_for(req: "S3Request") -> S3Upload:
    upload = await run(req.store.upload, req.account, req.query["uploadId"])
    if upload.container != req.bucket or upload.name != req.key:
        raise NotFound("The specified upload does not exist.", kind="NoSuchUpload")
    return upload


async def upload_part(req: "S3Request") -> Response:
    number = _part_number(req)
    upload = await _upload_for(req)
    if req.headers.get("x-amz-copy-source"):
        bucket, key = _copy_source(req)
        try:
            src = await run(req.store.get, req.account, bucket, key)
        except NotFound:
            raise NoSuchKey("The specified key does not exist.") from None
        check_copy_source(req.headers, src)
        if sse.params_of(src.meta) is not None:  # its parts would be ciphertext
            raise sse.not_implemented("UploadPartCopy from an encrypted object")
        start, end = 0, src.size
        rng = req.headers.get("x-amz-copy-source-range", "")
        if rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start, end = int(a), min(int(b) + 1, src.size)
        writer = req.service.driver.writer()
        try:
            async for chunk in req.service.body_iter(src, start, end):
                writer.write(chunk)
            blob = await run(writer.commit)
        except BaseException:
            writer.abort()
            raise
        await run(req.store.put_part, upload.id, number, blob)
        return views.xml(f'<CopyPartResult xmlns="{views.NS}"><LastModified>'
                         f"{views.iso(time.time())}</LastModified><ETag>\"{blob.md5}\"</ETag>"
                         "</CopyPartResult>")
    checksum = checksums.from_request(req.headers)
    blob = await _receive(req, checksum)
    await run(req.store.put_part, upload.id, number, blob)
    headers = {"ETag": f'"{blob.md5}"'}
    if checksum is not None:
        headers[checksum.header] = checksum.value()
    return Response(status_code=200, headers=headers)


async def list_parts(req: "S3Request") -> Response:
    upload = await _upload_for(req)
    parts = await run(req.store.parts, upload.id)
    try:
        marker = int(req.query.get("part-number-marker", "0") or 0)
        max_parts = min(int(req.query.get("max-parts", "1000")), 1000)
    except ValueError:
        raise BadRequest("Invalid part-number-marker or max-parts",
                         kind="InvalidArgument") from None
    parts = [p for p in parts if p.number > marker]
    truncated = len(parts) > max_parts
    parts = parts[:max_parts]
    body = [f'<ListPartsResult xmlns="{views.NS}"><Bucket>{escape(req.bucket)}</Bucket>'
            f"<Key>{escape(req.key)}</Key><UploadId>{upload.id}</UploadId>"
            f"{views.owner(req.project_id).replace('Owner>', 'Initiator>')}"
            f"{views.owner(req.project_id)}<StorageClass>STANDARD</StorageClass>"
            f"<PartNumberMarker>{marker}</PartNumberMarker>"
            f"<NextPartNumberMarker>{parts[-1].number if parts else 0}</NextPartNumberMarker>"
            f"<MaxParts>{max_parts}</MaxParts><IsTruncated>{str(truncated).lower()}"
            "</IsTruncated>"]
    for p in parts:
        body.append(f"<Part><PartNumber>{p.number}</PartNumber><LastModified>"
                    f"{views.iso(p.timestamp)}</LastModified><ETag>\"{p.etag}\"</ETag>"
                    f"<Size>{p.size}</Size></Part>")
    body.append("</ListPartsResult>")
    return views.xml("".join(body))


async def list_uploads(req: "S3Request") -> Response:
    uploads = await run(req.store.list_uploads, req.account, req.bucket)
    prefix = req.query.get("prefix", "")
    body = [f'<ListMultipartUploadsResult xmlns="{views.NS}"><Bucket>{escape(req.bucket)}'
            "</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>"
            f"<MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>"]
    for u in uploads:
        if not u.name.startswith(prefix):
            continue
        body.append(f"<Upload><Key>{escape(u.name)}</Key><UploadId>{u.id}</UploadId>"
                    f"{views.owner(req.project_id).replace('Owner>', 'Initiator>')}"
                    f"{views.owner(req.project_id)}<StorageClass>STANDARD</StorageClass>"
                    f"<Initiated>{views.iso(u.created)}</Initiated></Upload>")
    body.append("</ListMultipartUploadsResult>")
    return views.xml("".join(body))


def _complete_result(req: "S3Request", etag: str) -> Response:
    location = f"{req.request.base_url}{req.bucket}/{req.key}"
    return views.xml(f'<CompleteMultipartUploadResult xmlns="{views.NS}"><Location>'
                     f"{escape(location)}</Location><Bucket>{escape(req.bucket)}</Bucket>"
                     f"<Key>{escape(req.key)}</Key><ETag>\"{etag}\"</ETag>"
                     "</CompleteMultipartUploadResult>")


async def complete_upload(req: "S3Request") -> Response:
    try:
        upload = await _upload_for(req)
    except NotFound:
        done = await run(req.store.find, req.account, req.bucket, req.key)
        if done is None or done.meta.get(UPLOAD_ID) != req.query["uploadId"]:
            raise
        await req.body(4 << 20)
        return _complete_result(req, done.etag.strip('"'))
    root = views.xml_root(await req.body(4 << 20))
    wanted = []
    for el in root.findall("Part"):
        num, etag = el.findtext("PartNumber"), (el.findtext("ETag") or "").strip().strip('"')
        if not num or not num.isdigit():
            raise BadRequest("The XML you provided was not well-formed or did not validate "
                             "against our published schema.", kind="MalformedXML")
        wanted.append((int(num), etag))
    if not wanted:
        raise BadRequest("You must specify at least one part", kind="MalformedXML")
    if [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
        raise BadRequest("The list of parts was not in ascending order. The parts list must "
                         "be specified in order by part number.", kind="InvalidPartOrder")
    stored = {p.number: p for p in await run(req.store.parts, upload.id)}
    chosen = []
    for i, (num, etag) in enumerate(wanted):
        part = stored.get(num)
        if part is None or part.etag != etag:
            raise BadRequest("One or more of the specified parts could not be found. The part "
                             "may not have been uploaded, or the specified entity tag may not "
                             "match the part's entity tag.", kind="InvalidPart")
        if i < len(wanted) - 1 and part.size < MIN_PART_SIZE:
            raise BadRequest("Your proposed upload is smaller than the minimum allowed object "
                             "size.", kind="EntityTooSmall")
        chosen.append(part)
    md5s = b"".join(bytes.fromhex(p.etag) for p in chosen)
    etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{len(chosen)}"
    driver = req.service.driver

    def assemble() -> BlobInfo:
        writer = driver.writer()
        try:
            for part in chosen:
                for chunk in driver.read(part.file_id):
                    writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise

    condition = write_condition(req.headers)
    blob = await run(assemble)
    await run(lambda: conditional(lambda: req.store.commit(
        req.account, req.bucket, req.key, blob, content_type=upload.content_type,
        meta={**(upload.meta or {}), UPLOAD_ID: upload.id,
              attributes.PARTS: ",".join(str(p.size) for p in chosen)},
        etag=etag, expect=condition),
        condition))
    await run(req.store.finish_upload, upload.id)
    return _complete_result(req, etag)
