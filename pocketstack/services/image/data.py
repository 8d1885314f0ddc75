"""Image data: streamed upload (PUT /file), staging (PUT /stage), interoperable import,
and download.

An upload never holds the image in memory: the HTTP layer hands chunks to ``pump``,
which batches them (a few MiB) and feeds them to an ``UploadSession`` in a worker
thread, hashing (md5 for ``checksum``, sha512 for ``os_hash_value``) in parallel while it
writes to a temp file. Only when every byte is there, the size is within quota and the
content passed format inspection does the file get fsynced and renamed into place, and
only then does the record say ``active``. Any failure in between removes the temp file and
puts the record back (``queued``), or marks it ``killed`` when the data itself was bad.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import logging
import mmap
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from pocketstack.api.http import run
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, PocketError
from pocketstack.services.image import access, formats, views
from pocketstack.services.image.images import over_limit
from pocketstack.services.image.models import Image, ImageProperty, ImageTask

if TYPE_CHECKING:
    from pocketstack.drivers.images.base import ImageWriter
    from pocketstack.services.image.service import ImageService

log = logging.getLogger("pocketstack.image")

HASH_ALGO = "sha512"
BATCH = 4 << 20  # bytes handed to a worker thread at once
IMPORT_METHODS = ("glance-direct",)
# md5 and sha512 of one batch run side by side (hashlib releases the GIL), next to the write.
_HASHERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ps-image-hash")


def _set_prop(s: Any, image_id: str, name: str, value: str | None) -> None:
    prop = s.get(ImageProperty, (image_id, name))
    if value is None:
        if prop is not None:
            s.delete(prop)
    elif prop is None:
        s.add(ImageProperty(image_id=image_id, name=name, value=value))
    else:
        prop.value = value


def _parse_md5(header: str | None) -> str | None:
    """Content-MD5 as hex (what glance sends back) or base64 (RFC 1864)."""
    if not header:
        return None
    h = header.strip()
    if len(h) == 32 and all(c in "0123456789abcdefABCDEF" for c in h):
        return h.lower()
    try:
        raw = base64.b64decode(h, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("Content-MD5 header is not an MD5 digest.") from None
    if len(raw) != 16:
        raise BadRequest("Content-MD5 header is not an MD5 digest.")
    return raw.hex()


def _used_bytes(s: Any, owner: str | None, staged: bool) -> int:
    col = Image.staged_size if staged else Image.size
    return int(s.scalar(select(func.coalesce(func.sum(col), 0)).where(Image.owner == owner))
               or 0)


class UploadSession:
    """One streamed upload into the ``images`` or ``staging`` area."""

    def __init__(self, svc: "ImageService", image_id: str, owner: str | None, area: str,
                 writer: "ImageWriter", max_bytes: int, limit_name: str, limit_mib: int,
                 expected_md5: str | None, disk_format: str | None, restore: str,
                 container_format: str | None = None) -> None:
        self.svc, self.image_id, self.owner, self.area = svc, image_id, owner, area
        self.writer = writer
        self.max_bytes, self.limit_name, self.limit_mib = max_bytes, limit_name, limit_mib
        self.expected_md5 = expected_md5
        self.disk_format = disk_format
        self.container_format = container_format
        self.restore = restore
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha512()
        self.size = 0

    def _too_big(self, size: int) -> PocketError:
        if self.limit_name and size > self.max_bytes and self.limit_mib >= 0:
            return over_limit(f"Request Entity Too Large: {self.limit_name} is over limit "
                              f"of {self.limit_mib} MiB for project {self.owner}.")
        return over_limit(f"Image exceeds the storage quota or size limit of "
                          f"{self.max_bytes} bytes.")

    def feed(self, data: bytes | memoryview) -> None:
        if self.size + len(data) > self.max_bytes:
            raise self._too_big(self.size + len(data))
        if len(data) >= 1 << 20:
            # md5, sha512 and the write side by side (each drops the GIL): the write's
            # copy into the page cache costs about as much as a hash.
            md5 = _HASHERS.submit(self.md5.update, data)
            sha = _HASHERS.submit(self.sha.update, data)
            try:
                self.writer.write(data)
            finally:
                md5.result()
                sha.result()
        else:
            self.md5.update(data)
            self.sha.update(data)
            self.writer.write(data)
        self.size += len(data)

    def finish(self) -> dict[str, Any]:
        checksum, hash_value = self.md5.hexdigest(), self.sha.hexdigest()
        if self.expected_md5 is not None and self.expected_md5 != checksum:
            raise BadRequest(f"Checksum verification failed: the data's md5 is {checksum}, "
                             f"the request said {self.expected_md5}.")
        inspection = None
        if self.area == "images":
            inspection = formats.check(self.writer.read_at, self.size, self.disk_format,
                                       self.svc.settings.image.require_format_match)
            formats.check_container(self.writer.read_at, self.size, self.container_format,
                                    self.svc.settings.image.require_format_match)
        location = self.writer.commit()
        status = "saving" if self.area == "images" else "uploading"
        try:
            with self.svc.db.write() as s:
                row = s.get(Image, self.image_id)
                if row is None or row.status != status:
                    raise Gone(f"Image {self.image_id} could not be found after upload. The "
                               "image may have been deleted during the upload.")
                if self.area == "images":
                    row.size, row.checksum = self.size, checksum
                    row.os_hash_algo, row.os_hash_value = HASH_ALGO, hash_value
                    row.virtual_size = inspection.virtual_size if inspection else None
                    row.location = location
                    row.status = "active"
                else:
                    row.staged_size, row.staged_hash = self.size, hash_value
                row.updated_at = utcnow()
                s.flush()
                from pocketstack.services.image.images import render

                return render(self.svc, s, row)
        except BaseException:
            self.svc.store.delete(self.image_id, self.area)
            raise

    def fail(self, exc: BaseException) -> None:
        self.writer.abort()
        status = "saving" if self.area == "images" else "uploading"
        killed = isinstance(exc, formats.InvalidImageData)
        with self.svc.db.write() as s:
            row = s.get(Image, self.image_id)
            if row is not None and row.status == status:
                row.status = "killed" if killed else self.restore
                row.updated_at = utcnow()
        if killed:
            log.warning("image %s: upload refused: %s", self.image_id, exc)


def begin_upload(svc: "ImageService", ctx: RequestContext, image_id: str, *,
                 area: str = "images", content_length: int | None = None,
                 content_md5: str | None = None) -> UploadSession:
    expected = _parse_md5(content_md5)
    cfg = svc.settings.image
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "upload_image" if area == "images" else "import_image", row)
        if area == "images":
            if row.status != "queued":
                raise Conflict(f"Image status transition from {row.status} to saving is not "
                               "allowed")
            if not row.disk_format or not row.container_format:
                raise BadRequest("Properties disk_format, container_format must be set prior "
                                 "to saving data.")
            limit_name = "image_size_total"
        else:
            if row.status != "queued":
                raise Conflict(f"Image status transition from {row.status} to uploading is "
                               "not allowed")
            limit_name = "image_stage_total"
        limit_mib = svc.limit(row.owner, limit_name)
        max_bytes = cfg.image_size_cap
        if limit_mib >= 0:
            remaining = limit_mib * (1 << 20) - _used_bytes(s, row.owner, area == "staging")
            if remaining < max_bytes:
                max_bytes = max(0, remaining)
            else:
                limit_name = ""
        else:
            limit_name = ""
        session = UploadSession(svc, row.id, row.owner, area, writer=None,  # type: ignore[arg-type]
                                max_bytes=max_bytes, limit_name=limit_name,
                                limit_mib=limit_mib, expected_md5=expected,
                                disk_format=row.disk_format, restore="queued",
                                container_format=row.container_format)
        if content_length is not None and content_length > max_bytes:
            raise session._too_big(content_length)  # noqa: SLF001 - before any change
        row.status = "saving" if area == "images" else "uploading"
        row.updated_at = utcnow()
    try:
        session.writer = svc.store.writer(row.id, area)
    except BaseException as exc:
        session.writer = _NullWriter()
        session.fail(exc)
        raise
    return session


class _NullWriter:
    def abort(self) -> None:
        pass


async def pump(chunks: AsyncIterator[bytes], session: UploadSession) -> dict[str, Any]:
    """Feed a request body to ``session`` with one batch in flight while the next arrives.

    Chunks are copied into two preallocated BATCH-sized buffers used in turn: one is being
    hashed and written by a worker thread while the event loop fills the other. Reusing
    them (instead of joining each batch into a new 4 MiB object) keeps their pages mapped,
    so the copy is a plain memcpy and not a page fault per 4 KiB.
    """
    pending: asyncio.Future | None = None
    # Anonymous mmaps: page-aligned (an O_DIRECT store could take them as they are).
    bufs = (mmap.mmap(-1, BATCH), mmap.mmap(-1, BATCH))
    views_ = (memoryview(bufs[0]), memoryview(bufs[1]))
    which, filled = 0, 0
    try:
        async for chunk in chunks:
            src, n, pos = memoryview(chunk), len(chunk), 0
            while pos < n:
                take = min(n - pos, BATCH - filled)
                views_[which][filled:filled + take] = src[pos:pos + take]
                filled += take
                pos += take
                if filled == BATCH:
                    if pending is not None:
                        await pending  # the other buffer is free again
                    pending = asyncio.ensure_future(run(session.feed, views_[which]))
                    which, filled = 1 - which, 0
        if pending is not None:
            await pending
            pending = None
        if filled:
            await run(session.feed, views_[which][:filled])
        return await run(session.finish)
    except BaseException as exc:
        if pending is not None:
            try:
                await pending
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                pass
        await asyncio.shield(run(session.fail, exc))
        raise


# -- download ------------------------------------------------------------------------------

@dataclass
class Download:
    image_id: str
    size: int
    checksum: str | None
    path: Path | None  # local file, when the store has one


def open_download(svc: "ImageService", ctx: RequestContext, image_id: str) -> Download | None:
    """What GET /file should send; None means "no data" (204)."""
    with svc.db.read() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "download_image", row)
        if row.status == "deactivated":
            if not ctx.is_admin:
                raise Forbidden("The requested image has been deactivated. Image data "
                                "download is prohibited.")
        elif row.status != "active" or not row.location:
            return None
        size, checksum = row.size or 0, row.checksum
    path = None
    if svc.store.capabilities.local_files:
        try:
            path = svc.store.path(image_id)
        except FileNotFoundError:
            raise NotFound(f"Image data for {image_id} is missing from the store.") from None
    return Download(image_id, size, checksum, path)


# -- interoperable import ------------------------------------------------------------------

def start_import(svc: "ImageService", ctx: RequestContext, image_id: str, body: Any) -> str:
    """POST /v2/images/{id}/import: validate, record the task, return its id (202)."""
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    method = body.get("method")
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise BadRequest("Import request requires a 'method' field.")
    name = method["name"]
    if name not in ("glance-direct", "web-download", "copy-image", "glance-download"):
        raise BadRequest(f"Unknown import method name '{name}'.")
    if name not in IMPORT_METHODS:
        raise BadRequest(f"Import method {name} is not enabled on this cloud; available: "
                         f"{', '.join(IMPORT_METHODS)}.")
    stores = body.get("stores")
    if stores is not None:
        if not isinstance(stores, list) or not all(isinstance(x, str) for x in stores):
            raise BadRequest("'stores' must be a list of store identifiers.")
        for store in stores:
            if store != svc.store.store_id:
                raise BadRequest(f"Unknown store {store}")
    for flag in ("all_stores", "all_stores_must_succeed"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"'{flag}' must be a boolean.")
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "import_image", row)
        if row.status != "uploading" or row.staged_size is None:
            raise Conflict("Image needs to be staged before 'glance-direct' method can be "
                           "used")
        if not row.disk_format or not row.container_format:
            raise Conflict("'disk_format' and 'container_format' need to be set before "
                           "import")
        task = ImageTask(type="api_image_import", status="processing", owner=row.owner,
                         image_id=row.id, request_id=ctx.request_id, user_id=ctx.user_id,
                         input={"image_id": row.id, "import_req": body,
                                "backend": [svc.store.store_id]},
                         expires_at=utcnow() + dt.timedelta(hours=48))
        s.add(task)
        s.flush()
        row.status = "importing"
        row.updated_at = utcnow()
        _set_prop(s, row.id, "os_glance_import_task", task.id)
        _set_prop(s, row.id, "os_glance_importing_to_stores", svc.store.store_id)
        _set_prop(s, row.id, "os_glance_failed_import", None)
        return task.id


def run_import(svc: "ImageService", task_id: str) -> None:
    """The import task: verify the staged data, inspect it, promote it, go active."""
    with svc.db.read() as s:
        task = s.get(ImageTask, task_id)
        if task is None or task.status != "processing":
            return
        image_id = task.image_id
        row = s.get(Image, image_id)
        if row is None:
            staged = None
        else:
            staged = (row.staged_size, row.staged_hash, row.disk_format,
                      row.container_format)
    try:
        if staged is None:
            raise Gone(f"Image {image_id} was deleted during import.")
        size, sha, disk_format, container_format = staged
        md5, sha512, n = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
        for chunk in svc.store.read(image_id, area="staging", chunk_size=4 << 20):
            md5.update(chunk)
            sha512.update(chunk)
            n += len(chunk)
        if n != size or sha512.hexdigest() != sha:
            raise BadRequest("Staged data does not match what was uploaded (size or "
                             f"{HASH_ALGO} checksum differ); stage it again.")
        if svc.settings.image.image_size_cap < n:
            raise over_limit("Image exceeds the image size cap.")
        reader = _StagedReader(svc, image_id)
        inspection = formats.check(reader.read_at, n, disk_format,
                                   svc.settings.image.require_format_match)
        formats.check_container(reader.read_at, n, container_format,
                                svc.settings.image.require_format_match)
        location = svc.store.promote(image_id)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the task
        message = exc.message if isinstance(exc, PocketError) else str(exc)
        with svc.db.write() as s:
            task = s.get(ImageTask, task_id)
            if task is not None:
                task.status, task.message = "failure", message
                task.result = {"image_id": image_id}
            row = s.get(Image, image_id) if image_id else None
            if row is not None and row.status == "importing":
                row.status = "queued"
                row.staged_size = row.staged_hash = None
                row.updated_at = utcnow()
                _set_prop(s, row.id, "os_glance_importing_to_stores", "")
                _set_prop(s, row.id, "os_glance_failed_import", svc.store.store_id)
        if image_id:
            svc.store.delete(image_id, "staging")
        log.warning("image %s: import task %s failed: %s", image_id, task_id, message)
        return
    with svc.db.write() as s:
        row = s.get(Image, image_id)
        task = s.get(ImageTask, task_id)
        if row is None or row.status != "importing":
            svc.store.delete(image_id, "images")
            if task is not None:
                task.status, task.message = "failure", "Image was deleted during import."
            return
        row.size, row.checksum = n, md5.hexdigest()
        row.os_hash_algo, row.os_hash_value = HASH_ALGO, sha512.hexdigest()
        row.virtual_size = inspection.virtual_size
        row.location = location
        row.staged_size = row.staged_hash = None
        row.status = "active"
        row.updated_at = utcnow()
        _set_prop(s, row.id, "os_glance_importing_to_stores", "")
        if task is not None:
            task.status = "success"
            task.result = {"image_id": image_id}


class _StagedReader:
    """read_at over a staged file, for format inspection."""

    def __init__(self, svc: "ImageService", image_id: str) -> None:
        self.svc, self.image_id = svc, image_id

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        return b"".join(self.svc.store.read(self.image_id, offset, offset + n, area="staging"))


def image_tasks(svc: "ImageService", ctx: RequestContext, image_id: str) -> list[dict[str, Any]]:
    with svc.db.read() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "get_image", row)
        tasks = s.scalars(select(ImageTask).where(ImageTask.image_id == row.id)
                          .order_by(ImageTask.created_at)).all()
        return [views.task(t) for t in tasks]
