"""Background and startup work on the store: object expiry, container sync, the orphan
blob sweep and counter recount."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from pocketstack.errors import NotFound
from pocketstack.services.object_store.models import S3UploadPart, SwiftContainer, SwiftObject
from pocketstack.services.object_store.records import ContainerRecord, OverQuota


class MaintenanceMixin:
    """Mixed into ObjectStore (uses its db, driver, list_objects, commit...)."""

    db: Any
    driver: Any

    def reap_expired(self, limit: int = 500) -> int:
        """Delete objects whose X-Delete-At has passed (Swift's object expirer)."""
        now = int(time.time())
        with self.db.read() as s:
            keys = s.execute(select(SwiftObject.account, SwiftObject.container,
                                    SwiftObject.name)
                             .where(SwiftObject.delete_at.is_not(None),
                                    SwiftObject.delete_at <= now).limit(limit)).all()
        garbage: list[str] = []
        if keys:
            with self.db.write() as s:
                for account, container, name in keys:
                    row = s.get(SwiftObject, (account, container, name))
                    if row is None or row.delete_at is None or row.delete_at > now:
                        continue
                    crow = s.get(SwiftContainer, (account, container))
                    if crow is not None:
                        crow.object_count -= 1
                        crow.bytes_used -= row.size
                    garbage.append(row.file_id)
                    s.delete(row)
        self._drop(garbage)  # type: ignore[attr-defined] - ObjectStore's
        return len(garbage)

    def sync_containers(self, limit: int = 1000) -> int:
        """Container sync (X-Container-Sync-To/-Key) within this cloud: copy objects the
        destination lacks (or has with another ETag) when both containers share the key.

        Targets are ``http(s)://host/.../v1/<account>/<container>`` pointing here or
        ``//<realm>/<cluster>/<account>/<container>`` (realms name this cloud).
        """
        with self.db.read() as s:
            sources = [ContainerRecord.of(r) for r in s.scalars(select(SwiftContainer)).all()
                       if (r.meta or {}).get("X-Container-Sync-To")]
        copied = 0
        for src in sources:
            target = _sync_target(src.meta.get("X-Container-Sync-To", ""))
            key = src.meta.get("X-Container-Sync-Key")
            if target is None or not key:
                continue
            dst = self.find_container(*target)
            if dst is None or dst.meta.get("X-Container-Sync-Key") != key:
                continue
            theirs = {o.name: o.etag for o in self.list_objects(dst.account, dst.name,
                                                               limit=100000)
                      if not isinstance(o, str)}
            for obj in self.list_objects(src.account, src.name, limit=limit):
                if isinstance(obj, str) or theirs.get(obj.name) == obj.etag:
                    continue
                try:
                    blob = self.copy_blob(obj)
                    self.commit(dst.account, dst.name, obj.name, blob,
                                content_type=obj.content_type, meta=dict(obj.meta),
                                delete_at=obj.delete_at, size=obj.size, etag=obj.etag,
                                timestamp=obj.timestamp)
                    copied += 1
                except (NotFound, OverQuota, FileNotFoundError):
                    continue
        return copied

    def sweep_orphans(self, older_than: float) -> int:
        """Remove blobs no row references (left by a crash between blob and commit)."""
        with self.db.read() as s:
            referenced = set(s.scalars(select(SwiftObject.file_id)).all())
            referenced.update(s.scalars(select(S3UploadPart.file_id)).all())
        return self.driver.sweep(referenced, older_than)

    def recount(self) -> None:
        """Recompute container counters from the object rows (cheap; run at startup)."""
        with self.db.write() as s:
            totals = {(a, c): (n, b) for a, c, n, b in s.execute(
                select(SwiftObject.account, SwiftObject.container, func.count(),
                       func.coalesce(func.sum(SwiftObject.size), 0))
                .group_by(SwiftObject.account, SwiftObject.container)).all()}
            for row in s.scalars(select(SwiftContainer)).all():
                n, b = totals.get((row.account, row.name), (0, 0))
                if row.object_count != n or row.bytes_used != b:
                    row.object_count, row.bytes_used = int(n), int(b)


def _sync_target(value: str) -> tuple[str, str] | None:
    """(account, container) named by an X-Container-Sync-To value, or None."""
    from urllib.parse import unquote, urlparse

    path = urlparse(value).path if "://" in value else value
    if value.startswith("//"):
        parts = value[2:].split("/")
        if len(parts) != 4:
            return None
        return unquote(parts[2]), unquote(parts[3])
    parts = path.split("/")
    if "v1" not in parts:
        return None
    rest = parts[parts.index("v1") + 1:]
    if len(rest) != 2 or not all(rest):
        return None
    return unquote(rest[0]), unquote(rest[1])
