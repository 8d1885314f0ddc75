"""Accounts, containers and objects: the one store behind the Swift and S3 APIs.

Synchronous domain code (run in worker threads). Every object write is: blob made durable
by the driver first, then one database transaction that points the object's row at it
and updates the container's counters; the replaced blob is deleted after the commit. So
after kill -9 the database holds either the old or the new object, and every row points at
a complete blob. Blobs that no row references (a crash between the two steps) are swept
when the service starts.

Inline objects. A body of at most INLINE_MAX bytes received for an object PUT is not
written to a file: its bytes go into the row (``data``, ``file_id`` ""), in the same
transaction. A file-backed PUT waits for two fsyncs of its own (file, directory); an inline
one waits for a share of one group commit, so small PUTs stop queueing on the journal
(S3 4 KiB PUT, 8 connections: ~750 -> ~1,200 req/s here). The guarantees are the
database's: after kill -9 the row and its bytes are both there or both not. (A power cut
can lose the last commits, as for any row under SQLite's synchronous=NORMAL; the object
is then gone, never torn.) Reads of inline objects come with the row (one query, no file).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pocketstack.db import Database
from pocketstack.db.engine import Statements
from pocketstack.db.group import GroupCommitter
from pocketstack.drivers.objects.base import BlobInfo, ObjectDriver
from pocketstack.errors import Conflict, NotFound
from pocketstack.services.object_store.listing import listing, upper_bound
from pocketstack.services.object_store.maintenance import MaintenanceMixin
from pocketstack.services.object_store.models import SwiftAccount, SwiftContainer, SwiftObject
from pocketstack.services.object_store.records import (AccountRecord, ContainerRecord,
                                                       ObjectRecord, OverQuota)
from pocketstack.services.object_store.uploads import UploadsMixin

# Bodies up to this size are kept in the database row (see "Inline objects" above).
INLINE_MAX = 64 * 1024

# A check of the object a write replaces (None: no object); raises to refuse the write.
Expectation = Callable[[ObjectRecord | None], None]

__all__ = ["AccountRecord", "ContainerRecord", "ObjectRecord", "ObjectStore", "OverQuota",
           "version_prefix"]

log = logging.getLogger("pocketstack.object_store")


def version_prefix(name: str) -> str:
    """Swift's legacy versioning names: <3 hex digits of len(name)><name>/<timestamp>."""
    return f"{len(name):03x}{name}/"


class ObjectStore(MaintenanceMixin, UploadsMixin):
    def __init__(self, db: Database, driver: ObjectDriver) -> None:
        self.db = db
        self.driver = driver
        # SQLite: small-object commits share transactions (db/group.py); elsewhere each
        # commit is its own transaction, concurrent ones do not queue on a lock.
        self._group = (GroupCommitter(db, "objects", finish=_count_batch) if db.is_sqlite
                       else None)
        # Blobs replaced by a commit are unlinked by one background thread, off the
        # PUT's path (an unlink was ~11% of a small PUT's time in its worker). If the
        # process dies first, the start-up sweep removes them: no row references them.
        self._reap: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._reaper: threading.Thread | None = None

    # -- accounts -------------------------------------------------------------------------
    def account(self, account: str) -> AccountRecord:
        with self.db.read() as s:
            row = s.get(SwiftAccount, account)
            count, objects, used = s.execute(
                select(func.count(), func.coalesce(func.sum(SwiftContainer.object_count), 0),
                       func.coalesce(func.sum(SwiftContainer.bytes_used), 0))
                .where(SwiftContainer.account == account)).one()
        if row is None:
            now = time.time()
            return AccountRecord(account, now, now, 0, 0, 0, {}, False)
        return AccountRecord(account, row.created, row.put_timestamp, int(count), int(objects),
                             int(used), dict(row.meta or {}), True)

    @staticmethod
    def _ensure_account(s: Session, account: str) -> SwiftAccount:
        row = s.get(SwiftAccount, account)
        if row is None:
            now = time.time()
            row = SwiftAccount(name=account, created=now, put_timestamp=now, meta={})
            s.add(row)
            s.flush()
        return row

    def update_account_meta(self, account: str, changes: dict[str, str | None]) -> None:
        with self.db.write() as s:
            row = self._ensure_account(s, account)
            row.meta = _apply_meta(row.meta, changes)
            row.put_timestamp = time.time()

    def list_containers(self, account: str, **kw: Any) -> list[Any]:
        with self.db.read() as s:
            rows = listing(s, SwiftContainer, [SwiftContainer.account == account], **kw)
            return [r if isinstance(r, str) else ContainerRecord.of(r) for r in rows]

    # -- containers -----------------------------------------------------------------------
    def container(self, account: str, name: str) -> ContainerRecord:
        with self.db.read() as s:
            row = s.get(SwiftContainer, (account, name))
            if row is None:
                raise NotFound("The resource could not be found.")
            return ContainerRecord.of(row)

    def find_container(self, account: str, name: str) -> ContainerRecord | None:
        with self.db.read() as s:
            row = s.get(SwiftContainer, (account, name))
            return ContainerRecord.of(row) if row is not None else None

    def find_public_container(self, name: str) -> ContainerRecord | None:
        """The one container of that name whose read ACL lets anyone in (anonymous S3)."""
        with self.db.read() as s:
            rows = [r for r in s.scalars(select(SwiftContainer)
                                         .where(SwiftContainer.name == name)).all()
                    if ".r:" in (r.meta or {}).get("X-Container-Read", "")]
            return ContainerRecord.of(rows[0]) if len(rows) == 1 else None

    def put_container(self, account: str, name: str, changes: dict[str, str | None]) -> bool:
        """Create the container or update its metadata; True if it was created."""
        with self.db.write() as s:
            self._ensure_account(s, account)
            row = s.get(SwiftContainer, (account, name))
            now = time.time()
            if row is None:
                s.add(SwiftContainer(account=account, name=name, created=now, put_timestamp=now,
                                     object_count=0, bytes_used=0,
                                     meta=_apply_meta({}, changes)))
                return True
            row.meta = _apply_meta(row.meta, changes)
            row.put_timestamp = now
            return False

    def update_container_meta(self, account: str, name: str,
                              changes: dict[str, str | None]) -> None:
        with self.db.write() as s:
            row = s.get(SwiftContainer, (account, name))
            if row is None:
                raise NotFound("The resource could not be found.")
            row.meta = _apply_meta(row.meta, changes)
            row.put_timestamp = time.time()

    def delete_container(self, account: str, name: str) -> None:
        with self.db.write() as s:
            row = s.get(SwiftContainer, (account, name))
            if row is None:
                raise NotFound("The resource could not be found.")
            now = int(time.time())
            live = s.scalar(select(func.count()).select_from(SwiftObject).where(
                SwiftObject.account == account, SwiftObject.container == name,
                (SwiftObject.delete_at.is_(None)) | (SwiftObject.delete_at > now)))
            if live:
                raise Conflict("There was a conflict when trying to complete your request.",
                               kind="BucketNotEmpty")
            # Expired objects the expirer has not reaped yet do not keep a container alive.
            garbage = list(s.scalars(select(SwiftObject.file_id).where(
                SwiftObject.account == account, SwiftObject.container == name)).all())
            s.execute(delete(SwiftObject).where(SwiftObject.account == account,
                                                SwiftObject.container == name))
            s.delete(row)
        self._drop(garbage)

    # -- objects --------------------------------------------------------------------------
    def list_objects(self, account: str, container: str, **kw: Any) -> list[Any]:
        now = int(time.time())
        with self.db.read() as s:
            rows = listing(s, SwiftObject, [SwiftObject.account == account,
                                             SwiftObject.container == container], **kw)
        return [r if isinstance(r, str) else ObjectRecord.of(r) for r in rows
                if isinstance(r, str) or r.delete_at is None or r.delete_at > now]

    def get(self, account: str, container: str, name: str) -> ObjectRecord:
        # Plain SQL on the cursor, not ORM: this is the hottest read (every GET/HEAD).
        row = self.db.fetch_one(_GET_OBJECT, {"a": account, "c": container, "n": name})
        if row is None or (row[5] is not None and row[5] <= time.time()):
            raise NotFound("The resource could not be found.")
        file_id, size, etag, content_type, timestamp, delete_at, meta, data = row
        return ObjectRecord(account, container, name, file_id, size, etag, content_type,
                            timestamp, delete_at, orjson.loads(meta) if meta else {},
                            None if data is None else bytes(data))  # PostgreSQL: memoryview

    def get_with_data(self, account: str, container: str, name: str, inline: int
                      ) -> tuple[ObjectRecord, bytes | None]:
        """The record and, for a plain object of at most ``inline`` bytes, its data (one
        worker-thread hop for a small GET)."""
        record = self.get(account, container, name)
        if record.is_slo or record.dlo_manifest or "X-Symlink-Target" in record.meta:
            return record, None
        if record.inline:
            return record, record.data
        if record.size > inline:
            return record, None
        try:
            return record, b"".join(self.driver.read(record.file_id))
        except FileNotFoundError:
            raise NotFound("The object's data is missing.") from None

    def find(self, account: str, container: str, name: str) -> ObjectRecord | None:
        try:
            return self.get(account, container, name)
        except NotFound:
            return None

    def check_quota(self, account: str, container: str, size: int, *,
                    replacing: bool = False) -> None:
        """Fail early (before reading a body) when a known size cannot fit."""
        with self.db.read() as s:
            self._check_quota(s, account, container, size)

    @staticmethod
    def _check_quota(s: Session, account: str, container: str, size: int) -> None:
        crow = s.get(SwiftContainer, (account, container))
        if crow is None:
            raise NotFound("The resource could not be found.")
        meta = crow.meta or {}
        qbytes = _int_or_none(meta.get("X-Container-Meta-Quota-Bytes"))
        if qbytes is not None and crow.bytes_used + size > qbytes:
            raise OverQuota("Upload exceeds quota.")
        qcount = _int_or_none(meta.get("X-Container-Meta-Quota-Count"))
        if qcount is not None and crow.object_count + 1 > qcount:
            raise OverQuota("Upload exceeds quota.")
        arow = s.get(SwiftAccount, account)
        ameta = (arow.meta or {}) if arow is not None else {}
        aqbytes = _int_or_none(ameta.get("X-Account-Meta-Quota-Bytes"))
        aqcount = _int_or_none(ameta.get("X-Account-Quota-Count"))
        if aqbytes is None and aqcount is None:
            return
        objects, used = s.execute(
            select(func.coalesce(func.sum(SwiftContainer.object_count), 0),
                   func.coalesce(func.sum(SwiftContainer.bytes_used), 0))
            .where(SwiftContainer.account == account)).one()
        if aqbytes is not None and used + size > aqbytes:
            raise OverQuota("Upload exceeds quota.")
        if aqcount is not None and objects + 1 > aqcount:
            raise OverQuota("Upload exceeds quota.")

    def commit(self, account: str, container: str, name: str, blob: BlobInfo, *,
               content_type: str, meta: dict[str, Any], delete_at: int | None = None,
               size: int | None = None, etag: str | None = None,
               timestamp: float | None = None,
               expect: Expectation | None = None) -> ObjectRecord:
        """Point (account, container, name) at a durable blob; the blob is owned by the
        store from here on (deleted on failure).

        ``expect`` (S3 conditional writes) is called with the object being replaced (None
        if there is none) inside the write transaction, with its row locked: it raises to
        refuse, and nothing changes; so two conditional writers can never both win."""
        def fast(st: Statements) -> tuple[ObjectRecord | None, list[str]]:
            # The replaced blobs come back with the result: only the run that committed
            # names them (a batch that was rolled back and retried may have seen others).
            found: list[str] = []
            return self._commit_fast(st, account, container, name, blob, content_type,
                                     meta, delete_at, size, etag, timestamp, found), found

        try:
            if expect is not None:  # the general path reads the replaced row
                record, garbage = None, []
            elif self._group is not None:
                record, garbage = self._group.submit(fast)
            else:
                with self.db.statements() as st:
                    record, garbage = fast(st)
            if record is None:
                with self.db.write() as s:
                    record = self._commit(s, account, container, name, blob, content_type,
                                          meta, delete_at, size, etag, timestamp, garbage,
                                          expect)
        except BaseException:
            self._drop([blob.file_id])
            raise
        if garbage:
            self._reap_later(garbage)
        return record

    def discard(self, blob: BlobInfo) -> None:
        """Throw away a blob no row will reference (a check failed after receiving it)."""
        self._drop([blob.file_id])

    def _drop(self, file_ids: list[str]) -> None:
        """Delete the files of rows that are gone (inline objects have none)."""
        for file_id in file_ids:
            if file_id:
                self.driver.delete(file_id)

    def _reap_later(self, file_ids: list[str]) -> None:
        file_ids = [f for f in file_ids if f]  # inline objects have no file
        if not file_ids:
            return
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap_loop, daemon=True,
                                            name="ps-object-reaper")
            self._reaper.start()
        for file_id in file_ids:
            self._reap.put(file_id)

    def _reap_loop(self) -> None:
        while True:
            file_id = self._reap.get()
            try:
                self.driver.delete(file_id)
            except OSError:
                log.warning("could not remove replaced blob %s (the sweep will)", file_id,
                            exc_info=True)

    def _commit(self, s: Session, account: str, container: str, name: str, blob: BlobInfo,
                content_type: str, meta: dict[str, Any], delete_at: int | None,
                size: int | None, etag: str | None, timestamp: float | None,
                garbage: list[str], expect: Expectation | None = None) -> ObjectRecord:
        """The general write (versioning, quotas, conditions), through the ORM."""
        crow = s.get(SwiftContainer, (account, container))
        if crow is None:
            raise NotFound("The resource could not be found.")
        listed_size = blob.size if size is None else size
        self._check_quota(s, account, container, listed_size)
        now = timestamp or time.time()
        old = s.get(SwiftObject, (account, container, name), with_for_update=expect is not None)
        if expect is not None:
            expect(_current(old))
        if old is not None:
            if not self._archive(s, crow, old, now):
                garbage.append(old.file_id)
                crow.object_count -= 1
                crow.bytes_used -= old.size
                s.delete(old)
                s.flush()
        row = SwiftObject(account=account, container=container, name=name,
                          file_id=blob.file_id, size=listed_size, etag=etag or blob.md5,
                          content_type=content_type, timestamp=now, delete_at=delete_at,
                          meta=meta, data=blob.data)
        s.add(row)
        crow.object_count += 1
        crow.bytes_used += listed_size
        return ObjectRecord.of(row)

    def _commit_fast(self, st: Statements, account: str, container: str, name: str,
                     blob: BlobInfo, content_type: str, meta: dict[str, Any],
                     delete_at: int | None, size: int | None, etag: str | None,
                     timestamp: float | None, garbage: list[str]) -> ObjectRecord | None:
        """The common write (no versioning, no quotas) in three plain SQL statements (the
        ORM costs many times more per PUT); None, having changed nothing, when the
        container or account needs the general path."""
        keys = {"a": account, "c": container, "n": name}
        # Container settings, account settings and the replaced object in one statement.
        row = st.first(_COMMIT_LOOKUP, keys)
        if row is None:
            raise NotFound("The resource could not be found.")
        cmeta, ameta, old_file_id, old_size = row
        # The settings are JSON text here: a key's name in it sends us the general way
        # (at worst a value that merely mentions one does too, which is only slower).
        if cmeta and any(k in cmeta for k in _SLOW_CONTAINER_META):
            return None
        if ameta and any(k in ameta for k in _QUOTA_ACCOUNT_META):
            return None
        listed_size = blob.size if size is None else size
        now = timestamp or time.time()
        values = {**keys, "file_id": blob.file_id, "size": listed_size,
                  "etag": etag or blob.md5, "content_type": content_type, "ts": now,
                  "delete_at": delete_at, "meta": orjson.dumps(meta).decode(),
                  "data": blob.data}
        if old_file_id is not None:
            st.run(_UPDATE_OBJECT, values)
            garbage.append(old_file_id)
            d_count, d_bytes = 0, listed_size - old_size
        else:
            st.run(_INSERT_OBJECT, values)
            d_count, d_bytes = 1, listed_size
        if st.batch is None:
            st.run(_COUNT_CONTAINER, {**keys, "dc": d_count, "db": d_bytes})
        else:  # one counter update per container per batch (_count_batch)
            counts = st.batch.setdefault("counts", {})
            dc, db = counts.get((account, container), (0, 0))
            counts[(account, container)] = (dc + d_count, db + d_bytes)
        return ObjectRecord(account, container, name, blob.file_id, listed_size,
                            values["etag"], content_type, now, delete_at, dict(meta), blob.data)

    def _archive(self, s: Session, crow: SwiftContainer, old: SwiftObject, now: float) -> bool:
        """Move a replaced or deleted object into the versions/history container, if the
        container has one (the row moves; its blob is shared, not copied)."""
        meta = crow.meta or {}
        target = meta.get("X-Versions-Location") or meta.get("X-History-Location")
        if not target or old.meta.get("X-Object-Manifest"):
            return False
        vrow = s.get(SwiftContainer, (crow.account, target))
        if vrow is None:
            return False
        vname = f"{version_prefix(old.name)}{old.timestamp:016.5f}"
        existing = s.get(SwiftObject, (crow.account, target, vname))
        if existing is not None:
            return False
        s.add(SwiftObject(account=crow.account, container=target, name=vname,
                          file_id=old.file_id, size=old.size, etag=old.etag,
                          content_type=old.content_type, timestamp=old.timestamp,
                          delete_at=old.delete_at, meta=dict(old.meta or {}), data=old.data))
        vrow.object_count += 1
        vrow.bytes_used += old.size
        crow.object_count -= 1
        crow.bytes_used -= old.size
        s.delete(old)
        s.flush()
        return True

    def update_meta(self, account: str, container: str, name: str, meta: dict[str, Any],
                    content_type: str | None, delete_at: int | None | bool) -> ObjectRecord:
        """Swift POST: replace the object's user metadata (data unchanged).

        ``delete_at`` False means keep; None means remove.
        """
        with self.db.write() as s:
            row = s.get(SwiftObject, (account, container, name))
            if row is None or (row.delete_at is not None and row.delete_at <= time.time()):
                raise NotFound("The resource could not be found.")
            keep = {k: v for k, v in (row.meta or {}).items()
                    if k in _SYSTEM_OBJECT_META or k.startswith(SYSMETA_PREFIX)}
            row.meta = {**keep, **meta}
            if content_type:
                row.content_type = content_type
            if delete_at is not False:
                row.delete_at = delete_at  # type: ignore[assignment]
            row.timestamp = time.time()
            return ObjectRecord.of(row)

    def set_system_meta(self, account: str, container: str, name: str, key: str,
                        value: str | None) -> None:
        """Set (None: remove) one system metadata item of an object; its data, user
        metadata and Last-Modified stay (S3 PutObjectTagging)."""
        with self.db.write() as s:
            row = s.get(SwiftObject, (account, container, name))
            if row is None or (row.delete_at is not None and row.delete_at <= time.time()):
                raise NotFound("The resource could not be found.")
            row.meta = _apply_meta(row.meta, {key: value})

    def delete(self, account: str, container: str, name: str,
               expect: Expectation | None = None) -> ObjectRecord | None:
        """Delete an object; with X-Versions-Location the previous version comes back.
        ``expect`` as for ``commit``."""
        garbage: list[str] = []
        with self.db.write() as s:
            crow = s.get(SwiftContainer, (account, container))
            if crow is None:
                raise NotFound("The resource could not be found.")
            meta = crow.meta or {}
            row = s.get(SwiftObject, (account, container, name),
                        with_for_update=expect is not None)
            if expect is not None:
                expect(_current(row))
            expired = row is not None and row.delete_at is not None and \
                row.delete_at <= time.time()
            record = ObjectRecord.of(row) if row is not None and not expired else None
            versions = meta.get("X-Versions-Location")
            if row is not None:
                if meta.get("X-History-Location") and not expired and \
                        self._archive(s, crow, row, time.time()):
                    return record
                garbage.append(row.file_id)
                crow.object_count -= 1
                crow.bytes_used -= row.size
                s.delete(row)
                s.flush()
            restored = versions and self._restore(s, crow, versions, name)
            if record is None and not restored:
                raise NotFound("The resource could not be found.")
        self._drop(garbage)
        return record

    @staticmethod
    def _restore(s: Session, crow: SwiftContainer, versions: str, name: str) -> bool:
        vrow = s.get(SwiftContainer, (crow.account, versions))
        if vrow is None:
            return False
        prefix = version_prefix(name)
        latest = s.scalars(select(SwiftObject).where(
            SwiftObject.account == crow.account, SwiftObject.container == versions,
            SwiftObject.name >= prefix, SwiftObject.name < (upper_bound(prefix) or prefix))
            .order_by(SwiftObject.name.desc()).limit(1)).first()
        if latest is None:
            return False
        s.add(SwiftObject(account=crow.account, container=crow.name, name=name,
                          file_id=latest.file_id, size=latest.size, etag=latest.etag,
                          content_type=latest.content_type, timestamp=time.time(),
                          delete_at=latest.delete_at, meta=dict(latest.meta or {}),
                          data=latest.data))
        vrow.object_count -= 1
        vrow.bytes_used -= latest.size
        crow.object_count += 1
        crow.bytes_used += latest.size
        s.delete(latest)
        return True

    def copy_blob(self, record: ObjectRecord) -> BlobInfo:
        if record.inline:
            data = self._inline_data(record)
            return BlobInfo("", len(data), record.etag, data)
        blob = self.driver.copy(record.file_id)
        return BlobInfo(blob.file_id, blob.size, record.etag)

    def read(self, record: ObjectRecord, start: int = 0, end: int | None = None
             ) -> Iterator[bytes]:
        """The stored bytes [start, end) of the record's object (a manifest's own bytes
        for a large object). FileNotFoundError if they are gone (replaced meanwhile)."""
        if record.inline:
            return iter((self._inline_data(record)[start:end],))
        return self.driver.read(record.file_id, start, end)

    def _inline_data(self, record: ObjectRecord) -> bytes:
        if record.data is not None:
            return record.data
        # A record from a listing: read the bytes of that same version (as a replaced
        # file-backed object's file is gone, a replaced inline one is not found).
        row = self.db.fetch_one(_GET_INLINE, {
            "a": record.account, "c": record.container, "n": record.name,
            "ts": record.timestamp, "etag": record.etag})
        if row is None or row[0] is None:
            raise FileNotFoundError(f"inline data of {record.container}/{record.name}")
        return bytes(row[0])

_GET_OBJECT = (
    "SELECT o.file_id, o.size, o.etag, o.content_type, o.timestamp, o.delete_at, o.meta, "
    "o.data FROM swift_object o WHERE o.account = :a AND o.container = :c AND o.name = :n")
_GET_INLINE = (
    "SELECT o.data FROM swift_object o WHERE o.account = :a AND o.container = :c "
    "AND o.name = :n AND o.file_id = '' AND o.timestamp = :ts AND o.etag = :etag")

# The write fast path (see ObjectStore._commit_fast). Text JSON in meta, like JSONText.
_COMMIT_LOOKUP = (
    "SELECT c.meta AS meta, (SELECT a.meta FROM swift_account a WHERE a.name = :a) AS ameta, "
    "o.file_id AS file_id, o.size AS size FROM swift_container c "
    "LEFT JOIN swift_object o ON o.account = c.account AND o.container = c.name "
    "AND o.name = :n WHERE c.account = :a AND c.name = :c")
_UPDATE_OBJECT = (
    "UPDATE swift_object SET file_id = :file_id, size = :size, etag = :etag, "
    "content_type = :content_type, timestamp = :ts, delete_at = :delete_at, meta = :meta, "
    "data = :data WHERE account = :a AND container = :c AND name = :n")
_INSERT_OBJECT = (
    "INSERT INTO swift_object (account, container, name, file_id, size, etag, content_type, "
    "timestamp, delete_at, meta, data) VALUES (:a, :c, :n, :file_id, :size, :etag, "
    ":content_type, :ts, :delete_at, :meta, :data)")
_COUNT_CONTAINER = (
    "UPDATE swift_container SET object_count = object_count + :dc, "
    "bytes_used = bytes_used + :db WHERE account = :a AND name = :c")

def _current(row: SwiftObject | None) -> ObjectRecord | None:
    """The object a row shows to clients: none if it has expired."""
    if row is None or (row.delete_at is not None and row.delete_at <= time.time()):
        return None
    return ObjectRecord.of(row)


def _count_batch(st: Statements, batch: dict[str, Any]) -> None:
    """The container counters of a group-commit batch, one statement per container."""
    for (account, container), (dc, db) in batch.get("counts", {}).items():
        st.run(_COUNT_CONTAINER, {"a": account, "c": container, "dc": dc, "db": db})


# Container/account settings that need the general (ORM) write path.
_SLOW_CONTAINER_META = ("X-Versions-Location", "X-History-Location",
                        "X-Container-Meta-Quota-Bytes", "X-Container-Meta-Quota-Count")
_QUOTA_ACCOUNT_META = ("X-Account-Meta-Quota-Bytes", "X-Account-Quota-Count")

# Metadata kept for the S3 API (tags): never shown or set through Swift, kept by a POST.
SYSMETA_PREFIX = "X-Object-Sysmeta-"

# Object metadata that is not user metadata and survives a POST.
_SYSTEM_OBJECT_META = {"X-Static-Large-Object", "X-Object-Manifest-Etag", "X-Slo-Size"}


def _apply_meta(current: dict[str, Any] | None, changes: dict[str, str | None]) -> dict[str, Any]:
    meta = dict(current or {})
    for key, value in changes.items():
        if value is None or value == "":
            meta.pop(key, None)
        else:
            meta[key] = value
    return meta


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None

