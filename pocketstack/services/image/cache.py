"""Glance's image cache ([image] image_cache): local copies of image data on this node.

Why it matters here: an image whose data is only at an http location (the read-only HTTP
store) has no local file, so compute could not use it and every download would go back
to the remote server. A cached copy in ``<data_dir>/image-cache`` serves both: downloads
read it (counting hits), and ``ImageService.image_path`` returns it, fetching it first
when compute asks for an image that has no local copy. Admins manage it with the cache
API (v2.14): GET /v2/cache, PUT/DELETE /v2/cache/{image_id}, DELETE /v2/cache with
``x-image-cache-clear-target: cache|queue``.

Entries live in the database (state ``queued`` or ``cached``, size, hits, times); the
files are written like image files (temp file, fsync, rename), so a crash leaves nothing
half-cached. When the total passes ``image_cache_max_size`` the least recently used
copies are removed.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.images.filesystem import FilesystemImageStore
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.image.models import Image, ImageCacheEntry

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

log = logging.getLogger("pocketstack.image")


class ImageCache:
    def __init__(self, svc: "ImageService") -> None:
        self.svc = svc
        self.enabled = bool(svc.settings.image.image_cache)
        self.max_size = int(svc.settings.image.image_cache_max_size)
        self.files = FilesystemImageStore(svc.settings.data_dir / "image-cache",
                                          store_id="cache") if self.enabled else None
        self._fill = threading.Lock()  # one prefetch pass at a time

    # -- the API --------------------------------------------------------------------------
    def listing(self, ctx: RequestContext) -> dict[str, Any]:
        policy.enforce(ctx, "image:cache_list", {})
        with self.svc.db.read() as s:
            rows = s.scalars(select(ImageCacheEntry).order_by(ImageCacheEntry.created_at)).all()
            return {
                "cached_images": [{
                    "image_id": r.image_id, "hits": r.hits, "size": r.size,
                    "last_accessed": _epoch(r.last_accessed or r.last_modified),
                    "last_modified": _epoch(r.last_modified)}
                    for r in rows if r.state == "cached"],
                "queued_images": [r.image_id for r in rows if r.state == "queued"],
            }

    def queue(self, ctx: RequestContext, image_id: str) -> None:
        policy.enforce(ctx, "image:cache_image", {})
        with self.svc.db.write() as s:
            row = s.get(Image, image_id)
            if row is None:
                raise NotFound(f"Image {image_id} not found.")
            if row.status != "active":
                raise BadRequest(f"Only images with status active can be targeted for "
                                 f"queueing (image {image_id} is {row.status}).")
            if s.get(ImageCacheEntry, image_id) is None:
                s.add(ImageCacheEntry(image_id=image_id, state="queued"))

    def delete(self, ctx: RequestContext, image_id: str) -> None:
        policy.enforce(ctx, "image:cache_delete", {})
        with self.svc.db.read() as s:
            known = s.get(Image, image_id) is not None or \
                s.get(ImageCacheEntry, image_id) is not None
        if not known:
            raise NotFound(f"Image {image_id} not found.")
        self.forget(image_id)

    def clear(self, ctx: RequestContext, target: str | None) -> None:
        policy.enforce(ctx, "image:cache_delete", {})
        target = (target or "").strip().lower()
        if target not in ("", "cache", "queue"):
            raise BadRequest(f"Invalid x-image-cache-clear-target {target!r}: use 'cache' or "
                             "'queue' (or no header for both).")
        states = {"": ("queued", "cached"), "cache": ("cached",), "queue": ("queued",)}[target]
        with self.svc.db.write() as s:
            ids = list(s.scalars(select(ImageCacheEntry.image_id)
                                 .where(ImageCacheEntry.state.in_(states))))
            for image_id in ids:
                s.delete(s.get(ImageCacheEntry, image_id))
        for image_id in ids:
            self.files.delete(image_id)

    # -- filling it -----------------------------------------------------------------------
    def prefetch(self) -> int:
        """Cache every queued image (a worker thread); return how many were cached."""
        done = 0
        with self._fill:
            while True:
                with self.svc.db.read() as s:
                    image_id = s.scalars(select(ImageCacheEntry.image_id).where(
                        ImageCacheEntry.state == "queued").limit(1)).first()
                if image_id is None:
                    return done
                try:
                    self._fetch(image_id)
                    done += 1
                except Exception as exc:  # noqa: BLE001 - a failed copy leaves the queue
                    log.warning("image cache: %s could not be cached: %s", image_id, exc)
                    self.forget(image_id)

    def ensure(self, image_id: str) -> Path:
        """The cached file of ``image_id``, cached now if it is not (compute's path)."""
        found = self.lookup(image_id, count=False)
        if found is not None:
            return found
        with self.svc.db.write() as s:
            if s.get(ImageCacheEntry, image_id) is None:
                s.add(ImageCacheEntry(image_id=image_id, state="queued"))
        with self._fill:
            self._fetch(image_id)
        found = self.lookup(image_id, count=False)
        if found is None:
            raise NotFound(f"Image {image_id} could not be cached.")
        return found

    def _fetch(self, image_id: str) -> None:
        with self.svc.db.read() as s:
            row = s.get(Image, image_id)
            entry = s.get(ImageCacheEntry, image_id)
            if entry is None or entry.state == "cached":
                return
            if row is None or row.status not in ("active", "deactivated"):
                raise NotFound(f"Image {image_id} has no data to cache.")
            store = self.svc.store_for(row)
            url = (row.http_locations or [{}])[0].get("url") if store.read_only else None
        chunks = (store.read_location(url.split("#", 1)[0], chunk_size=4 << 20) if url
                  else store.read(image_id, chunk_size=4 << 20))
        w = self.files.writer(image_id)
        try:
            for chunk in chunks:
                w.write(chunk)
            w.commit()
        except BaseException:
            w.abort()
            raise
        with self.svc.db.write() as s:
            entry = s.get(ImageCacheEntry, image_id)
            if entry is None or s.get(Image, image_id) is None:  # cleared or deleted meanwhile
                self.files.delete(image_id)
                return
            entry.state, entry.size = "cached", w.size
            entry.last_modified = entry.last_accessed = utcnow()
        self.prune()

    # -- using it -------------------------------------------------------------------------
    def lookup(self, image_id: str, count: bool = True) -> Path | None:
        """The cached copy, if there is one; a download (``count``) is a hit."""
        if not self.enabled:
            return None
        with self.svc.db.write() as s:
            entry = s.get(ImageCacheEntry, image_id)
            if entry is None or entry.state != "cached":
                return None
            try:
                path = self.files.path(image_id)
            except FileNotFoundError:
                s.delete(entry)  # the file went away (a crash, or an operator): forget it
                return None
            if count:
                entry.hits += 1
            entry.last_accessed = utcnow()
            return path

    def forget(self, image_id: str) -> None:
        """Drop ``image_id`` from the cache and the queue (image deleted, or asked)."""
        if not self.enabled:
            return
        with self.svc.db.write() as s:
            entry = s.get(ImageCacheEntry, image_id)
            if entry is not None:
                s.delete(entry)
        self.files.delete(image_id)

    def prune(self) -> None:
        with self.svc.db.write() as s:
            total = s.scalar(select(func.coalesce(func.sum(ImageCacheEntry.size), 0)).where(
                ImageCacheEntry.state == "cached")) or 0
            if total <= self.max_size:
                return
            drop = []
            for entry in s.scalars(select(ImageCacheEntry).where(
                    ImageCacheEntry.state == "cached").order_by(
                    ImageCacheEntry.last_accessed)):
                if total <= self.max_size:
                    break
                total -= entry.size or 0
                drop.append(entry.image_id)
                s.delete(entry)
        for image_id in drop:
            self.files.delete(image_id)

    def recover(self) -> int:
        """Start-up: temp files, entries without files, files without entries."""
        if not self.enabled:
            return 0
        removed = self.files.sweep()
        on_disk = set(self.files.list_ids())
        with self.svc.db.write() as s:
            entries = {e.image_id: e for e in s.scalars(select(ImageCacheEntry))}
            for image_id, entry in entries.items():
                if entry.state == "cached" and image_id not in on_disk:
                    s.delete(entry)
        for image_id in on_disk - set(entries):
            self.files.delete(image_id)
            removed += 1
        return removed


def _epoch(when: Any) -> float | None:
    return when.timestamp() if when is not None else None
