"""Image data: streamed upload (PUT /file), staging (PUT /stage) and download
(interoperable import is in ``imports``).

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
import hashlib
import logging
import mmap
import threading
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
from pocketstack.services.image import access, formats
from pocketstack.services.image.images import over_limit
from pocketstack.services.image.models import Image

if TYPE_CHECKING:
    from pocketstack.drivers.images.base import ImageWriter
    from pocketstack.services.image.service import ImageService

log = logging.getLogger("pocketstack.image")

HASH_ALGO = "sha512"
BATCH = 4 << 20  # bytes handed to a worker thread at once
# md5 and sha512 of one batch run side by side (hashlib releases the GIL), next to the write.
_HASHERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ps-image-hash")


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
                 container_format: str | None = None, store: Any = None) -> None:
        self.svc, self.image_id, self.owner, self.area = svc, image_id, owner, area
        self.store = store if store is not None else svc.store  # X-Image-Meta-Store
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

    def account(self, n: int) -> None:
        """Count ``n`` more bytes, refusing them past the quota or size cap."""
        if self.size + n > self.max_bytes:
            raise self._too_big(self.size + n)
        self.size += n

    def feed(self, data: bytes | memoryview) -> None:
        """Hash and write ``data`` in the calling thread (``pump`` uses lanes instead)."""
        self.account(len(data))
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
                    row.stores = self.store.store_id
                    row.status = "active"
                else:
                    row.staged_size, row.staged_hash = self.size, hash_value
                row.updated_at = utcnow()
                s.flush()
                from pocketstack.services.image.images import render

                return render(self.svc, s, row)
        except BaseException:
            self.store.delete(self.image_id, self.area)
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
                 content_md5: str | None = None, store_id: str | None = None
                 ) -> UploadSession:
    """``store_id`` (X-Image-Meta-Store) picks the store of a PUT /file upload; staged
    data always goes to the default store's staging area."""
    expected = _parse_md5(content_md5)
    store = svc.get_store(store_id) if store_id and area == "images" else svc.store
    if store.read_only:
        raise BadRequest(f"Store {store.store_id} is read-only; image data cannot be "
                         "uploaded to it.")
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
                                container_format=row.container_format, store=store)
        if content_length is not None and content_length > max_bytes:
            raise session._too_big(content_length)  # noqa: SLF001 - before any change
        row.status = "saving" if area == "images" else "uploading"
        row.updated_at = utcnow()
    try:
        session.writer = store.writer(row.id, area)
    except BaseException as exc:
        session.writer = _NullWriter()
        session.fail(exc)
        raise
    return session


class _NullWriter:
    def abort(self) -> None:
        pass


RING = 4  # BATCH-sized buffers per upload: up to RING - 1 batches in flight


class _Lanes:
    """The md5, the sha512 and the file write of one upload, each in its own thread.

    Each lane takes the batches in order, so its state (a hash, a file offset) needs no
    lock, and no lane waits for the others' work on the same batch: md5 (the slowest,
    ~570 MiB/s on one core here) runs back to back while sha512, the write and the event
    loop's receiving share the other core. A buffer is reused only when all three lanes
    are done with it.
    """

    def __init__(self) -> None:
        self.fns: tuple = ()
        self.pools = [ThreadPoolExecutor(max_workers=1, thread_name_prefix="ps-image-lane")
                      for _ in range(3)]

    @classmethod
    def take(cls, session: UploadSession) -> "_Lanes":
        """Lanes for ``session``, reusing an idle set: new threads each get their own
        malloc arena, and one set per upload left the server ~20 MiB larger each time."""
        with _IDLE_LOCK:
            lanes = _IDLE_LANES.pop() if _IDLE_LANES else cls()
        lanes.fns = (session.md5.update, session.sha.update, session.writer.write)
        return lanes

    def submit(self, data: memoryview) -> asyncio.Future:
        """All three lanes' work on ``data``; awaiting it returns their results or
        exceptions only once every lane is done with the buffer."""
        loop = asyncio.get_running_loop()
        return asyncio.gather(*(asyncio.wrap_future(pool.submit(fn, data), loop=loop)
                                for pool, fn in zip(self.pools, self.fns, strict=True)),
                              return_exceptions=True)

    @staticmethod
    async def done(fut: asyncio.Future) -> None:
        for result in await fut:
            if isinstance(result, BaseException):
                raise result

    def close(self) -> None:
        """Back to the idle sets once every lane has finished (a lane still writing for
        a failed upload must not start on the next one's data)."""
        self.fns = ()
        for pool in self.pools:
            pool.submit(lambda: None).result()
        with _IDLE_LOCK:
            if len(_IDLE_LANES) < MAX_IDLE_LANES:
                _IDLE_LANES.append(self)
                return
        for pool in self.pools:
            pool.shutdown(wait=False)


_IDLE_LANES: list[_Lanes] = []
_IDLE_LOCK = threading.Lock()
MAX_IDLE_LANES = 4


async def pump(chunks: AsyncIterator[bytes], session: UploadSession) -> dict[str, Any]:
    """Feed a request body to ``session`` while the next batches arrive.

    Chunks are copied into RING preallocated BATCH-sized buffers used in turn; each full
    one goes to the three lanes (md5, sha512, write) while the event loop fills the next.
    Reusing them (instead of joining each batch into a new 4 MiB object) keeps their
    pages mapped, so the copy is a plain memcpy and not a page fault per 4 KiB.
    """
    # Anonymous mmaps: page-aligned (an O_DIRECT store could take them as they are).
    bufs = [mmap.mmap(-1, BATCH) for _ in range(RING)]
    views_ = [memoryview(b) for b in bufs]
    busy: list[asyncio.Future | None] = [None] * RING
    lanes = _Lanes.take(session)
    which, filled = 0, 0
    try:
        async for chunk in chunks:
            src, n, pos = memoryview(chunk), len(chunk), 0
            while pos < n:
                if filled == 0 and busy[which] is not None:
                    await lanes.done(busy[which])  # the lanes are done with this buffer
                    busy[which] = None
                take = min(n - pos, BATCH - filled)
                views_[which][filled:filled + take] = src[pos:pos + take]
                filled += take
                pos += take
                if filled == BATCH:
                    session.account(BATCH)
                    busy[which] = lanes.submit(views_[which])
                    which, filled = (which + 1) % RING, 0
        if filled:
            session.account(filled)
            busy[which] = lanes.submit(views_[which][:filled])
        for i, fut in enumerate(busy):
            if fut is not None:
                busy[i] = None
                await lanes.done(fut)
        return await run(session.finish)
    except BaseException as exc:
        for fut in busy:
            if fut is not None:
                try:
                    await fut
                except BaseException:  # noqa: BLE001 - the first error is the one to report
                    pass
        await asyncio.shield(run(session.fail, exc))
        raise
    finally:
        await run(lanes.close)


# -- download ------------------------------------------------------------------------------

@dataclass
class Download:
    image_id: str
    size: int
    checksum: str | None
    path: Path | None  # local file, when the store has one
    store: Any = None  # the store to stream from when there is no local file
    url: str | None = None  # the location to read, for the read-only HTTP store


def open_download(svc: "ImageService", ctx: RequestContext, image_id: str) -> Download | None:
    """What GET /file should send; None means "no data" (204)."""
    with svc.db.read() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "download_image", row)
        if row.status == "deactivated":
            if not ctx.is_admin:
                raise Forbidden("The requested image has been deactivated. Image data "
                                "download is prohibited.")
        elif row.status != "active" or not (row.location or row.http_locations):
            return None
        size, checksum = row.size or 0, row.checksum
        store = svc.store_for(row)
        url = (row.http_locations or [{}])[0].get("url") if store.read_only else None
    path = svc.cache.lookup(image_id)  # a cached copy first (a hit)
    if path is None and store.capabilities.local_files:
        try:
            path = store.path(image_id)
        except FileNotFoundError:
            raise NotFound(f"Image data for {image_id} is missing from the store.") from None
    return Download(image_id, size, checksum, path, store,
                    url.split("#", 1)[0] if url else None)
