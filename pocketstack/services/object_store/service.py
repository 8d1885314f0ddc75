"""The object-store service object: the store, its driver, streaming, startup and expiry.

Both APIs (Swift at /object-store, S3 at /s3) use this one object, reached in-process as
``cloud.services["object-store"]``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from sqlalchemy import select
from starlette.requests import ClientDisconnect, Request

from pocketstack.api.http import run
from pocketstack.drivers.objects import DRIVERS
from pocketstack.drivers.objects.base import BlobInfo, BlobWriter
from pocketstack.errors import BadRequest, NotFound, PocketError, RequestEntityTooLarge
from pocketstack.services.object_store import large
from pocketstack.services.object_store.names import MAX_FILE_SIZE
from pocketstack.services.object_store.store import INLINE_MAX, ObjectRecord, ObjectStore

log = logging.getLogger("pocketstack.object_store")

RESELLER_ADMIN_ROLE = "ResellerAdmin"
# Roles that make a user an owner of their project's account (keystoneauth
# operator_roles; tempest's object_storage.operator_role is "member").
OPERATOR_ROLES = frozenset({"admin", "member", "swiftoperator"})
SMALL_READ = 1 << 20  # objects up to this size are read on the event loop (page cache)


class ClientGone(PocketError):
    status = 499
    kind = "ClientDisconnected"


class ObjectStorageService:
    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.driver = DRIVERS["filesystem"](cloud.settings.data_dir / "objects")
        self.store = ObjectStore(cloud.db, self.driver)
        self._reaper: asyncio.Task | None = None
        self.reap_interval = 5.0

    # -- lifecycle ------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Idempotent, at every start: the ResellerAdmin role exists (Tempest and swift's
        keystoneauth use it), counters match rows, crash leftovers are swept."""
        self._ensure_reseller_role()
        self.store.recount()
        removed = self.store.sweep_orphans(older_than=time.time())
        if removed:
            log.info("object store: removed %d unreferenced blob(s) left by a crash", removed)

    def _ensure_reseller_role(self) -> None:
        if "identity" not in self.cloud.services:
            return
        from pocketstack.services.identity.models import Role

        with self.cloud.db.write() as s:
            found = s.scalars(select(Role).where(Role.name == RESELLER_ADMIN_ROLE,
                                                 Role.domain_id == "")).first()
            if found is None:
                s.add(Role(id=uuid.uuid4().hex, name=RESELLER_ADMIN_ROLE, domain_id="",
                           options={}, extra={}))

    async def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap_loop())

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            try:
                await self._reaper
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval)
            try:
                await run(self.store.reap_expired)
                await run(self.store.sync_containers)
            except Exception:  # noqa: BLE001 - keep going; the next round retries
                log.exception("object expiry/sync round failed")

    # -- EC2 credentials for S3 -----------------------------------------------------------
    def ec2_credential(self, access: str) -> dict[str, Any] | None:
        """{user_id, project_id, secret} for an EC2 access key, or None."""
        identity = self.cloud.services.get("identity")
        lookup = getattr(identity, "ec2_credential", None)
        if lookup is not None:
            try:
                found = lookup(access)
            except PocketError:
                return None
            return dict(found) if found else None
        return _read_ec2_credential(self.cloud.db, access)

    # -- data in --------------------------------------------------------------------------
    async def receive(self, request: Request, *, limit: int = MAX_FILE_SIZE,
                      chunks: AsyncIterator[bytes] | None = None,
                      sha256: str | None = None) -> BlobInfo:
        """Stream a request body into a new durable blob (not yet referenced)."""
        writer = await self.receive_writer(request, limit=limit, chunks=chunks, sha256=sha256)
        return await run(writer.commit)  # fsyncs: never on the event loop

    async def receive_writer(self, request: Request, *, limit: int = MAX_FILE_SIZE,
                             chunks: AsyncIterator[bytes] | None = None,
                             sha256: str | None = None, inline: bool = False) -> BlobWriter:
        """Stream a request body into a blob writer, checked but not yet committed: the
        caller commits it (in a worker thread) or aborts it. ``inline``: a body of at most
        INLINE_MAX bytes commits to an inline blob (no file) for an object row; blobs for
        anything else (upload parts) must be files.

        File-system calls (create, write) block while the journal commits other writers'
        fsyncs, so none runs on the event loop: the body is gathered in memory and written
        by a worker thread in slices of up to BUFFER bytes.
        """
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise RequestEntityTooLarge("Your request is too large.")
        writer = _DeferredWriter(self.driver, INLINE_MAX if inline else -1)
        digest = hashlib.sha256() if sha256 else None
        try:
            source = chunks if chunks is not None else request.stream()
            async for chunk in source:
                if not chunk:
                    continue
                writer.add(chunk)
                if digest is not None:
                    digest.update(chunk)
                if writer.size > limit:
                    raise RequestEntityTooLarge("Your request is too large.")
                if writer.pending >= BUFFER:
                    await run(writer.flush)
            if length is not None and length.isdigit() and chunks is None and \
                    writer.size != int(length):
                raise ClientGone("The client sent less data than its Content-Length.")
            if digest is not None and digest.hexdigest() != sha256:
                raise BadRequest("The provided 'x-amz-content-sha256' header does not match "
                                 "what was computed.", kind="XAmzContentSHA256Mismatch")
            return writer
        except ClientDisconnect:
            await run(writer.abort)
            raise ClientGone("The client disconnected during the upload.") from None
        except BaseException:
            await run(writer.abort)
            raise

    async def blob_from_iter(self, source: Iterator[bytes]) -> BlobInfo:
        """A new blob from server-side data (copies of large objects, archives)."""
        def work() -> BlobInfo:
            writer = self.driver.writer()
            try:
                for chunk in source:
                    writer.write(chunk)
                return writer.commit()
            except BaseException:
                writer.abort()
                raise
        return await run(work)

    # -- data out -------------------------------------------------------------------------
    def body_iter(self, record: ObjectRecord, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes [start, end) of an object as a client sees it (large objects
        assembled from their segments)."""
        if record.is_slo or record.dlo_manifest:
            return self._large_iter(record, start, end)
        return self._blob_iter(record, start, end, record.size)

    async def _blob_iter(self, record: ObjectRecord, start: int, end: int, size: int
                         ) -> AsyncIterator[bytes]:
        try:
            if record.inline and record.data is None:  # from a listing: a DB read
                it = await run(self.store.read, record, start, end)
            else:
                it = self.store.read(record, start, end)
        except FileNotFoundError:
            raise NotFound("The object's data is missing.") from None
        if size <= SMALL_READ:
            for chunk in it:
                yield chunk
            return
        while True:
            chunk = await run(next, it, None)
            if chunk is None:
                return
            yield chunk

    async def _large_iter(self, record: ObjectRecord, start: int, end: int
                          ) -> AsyncIterator[bytes]:
        segments = await run(large.segments, self, record)
        offset = 0
        for seg in segments:
            seg_len = seg.length
            seg_start, seg_end = offset, offset + seg_len
            offset = seg_end
            if seg_end <= start:
                continue
            if seg_start >= end:
                break
            lo = max(start, seg_start) - seg_start + seg.range_start
            hi = min(end, seg_end) - seg_start + seg.range_start
            async for chunk in self._blob_iter(seg.record, lo, hi, hi - lo):
                yield chunk

    async def read_all(self, record: ObjectRecord, limit: int = 16 << 20) -> bytes:
        if record.size > limit:
            raise RequestEntityTooLarge("Object too large to process.")
        out = []
        async for chunk in self.body_iter(record, 0, record.size):
            out.append(chunk)
        return b"".join(out)


BUFFER = 1 << 20  # bytes gathered before a worker thread writes them


class _DeferredWriter(BlobWriter):
    """A blob writer whose file is created and written in worker threads (flush/commit);
    the event loop only appends bytes to a list. A body of at most ``inline_max`` bytes
    makes no file at all: commit returns it as an inline blob."""

    def __init__(self, driver: Any, inline_max: int = -1) -> None:
        self.driver = driver
        self.inline_max = inline_max
        self.inner: BlobWriter | None = None
        self.chunks: list[bytes] = []
        self.pending = 0
        self._size = 0

    def add(self, data: bytes) -> None:
        self.chunks.append(data)
        self.pending += len(data)
        self._size += len(data)

    def write(self, data: bytes) -> None:
        self.add(data)
        self.flush()

    @property
    def size(self) -> int:
        return self._size

    def flush(self) -> None:  # worker thread
        if self.inner is None:
            self.inner = self.driver.writer()
        data, self.chunks, self.pending = b"".join(self.chunks), [], 0
        if data:
            self.inner.write(data)

    def commit(self) -> BlobInfo:  # worker thread
        if self.inner is None and self._size <= self.inline_max:
            data, self.chunks, self.pending = b"".join(self.chunks), [], 0
            return BlobInfo("", len(data), hashlib.md5(data, usedforsecurity=False).hexdigest(),
                            data)
        self.flush()
        assert self.inner is not None
        return self.inner.commit()

    def abort(self) -> None:
        self.chunks, self.pending = [], 0
        if self.inner is not None:
            self.inner.abort()


def _read_ec2_credential(db: Any, access: str) -> dict[str, Any] | None:
    """Read Keystone's credential table directly (used only while the identity slice
    offers no ``ec2_credential``): EC2 rows are type "ec2", id sha256(access)."""
    import json

    from pocketstack.services.identity.models import Credential

    cred_id = hashlib.sha256(access.encode()).hexdigest()
    with db.read() as s:
        row = s.get(Credential, cred_id)
        if row is None or row.type != "ec2":
            return None
        try:
            blob = json.loads(row.blob)
        except ValueError:
            return None
        if blob.get("access") != access:
            return None
        return {"user_id": row.user_id, "project_id": row.project_id or blob.get("project_id"),
                "secret": blob.get("secret", "")}
