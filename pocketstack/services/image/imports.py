"""Interoperable image import (POST /v2/images/{id}/import) and multi-store data moves.

Methods:

- ``glance-direct``: data staged with PUT /stage is verified (size and sha512 as recorded
  while staging), format-inspected, then written to every target store.
- ``web-download``: the server fetches ``method.uri`` (after Glance's URL filtering, and
  again for every redirect) into the staging area through an ``UploadSession`` (hashing,
  size cap and staging quota as for PUT /stage), then continues as glance-direct.
- ``copy-image``: an active image's data is copied from the store it is read from into
  more stores (admin only, as in Glance).

Targets are ``stores`` (a list), ``all_stores: true`` (every store), the
``X-Image-Meta-Store`` header, or the default store. While a task runs,
``os_glance_importing_to_stores`` lists the stores still to do and
``os_glance_failed_import`` those that failed; ``stores`` lists those done, highest weight
first. With ``all_stores_must_succeed`` (the default) one failed store fails the import and
removes the copies already made; otherwise the image keeps the stores that worked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, Gone, NotFound, PocketError
from pocketstack.services.image import access, formats, remote, views
from pocketstack.services.image.webfetch import fetch, validate_uri
from pocketstack.services.image.images import over_limit
from pocketstack.services.image.models import Image, ImageProperty, ImageTask

if TYPE_CHECKING:
    from pocketstack.drivers.images.base import ImageStore
    from pocketstack.services.image.service import ImageService

log = logging.getLogger("pocketstack.image")

HASH_ALGO = "sha512"
KNOWN_METHODS = ("glance-direct", "web-download", "copy-image", "glance-download")
ALL_METHODS = KNOWN_METHODS


def _set_prop(s: Any, image_id: str, name: str, value: str | None) -> None:
    prop = s.get(ImageProperty, (image_id, name))
    if value is None:
        if prop is not None:
            s.delete(prop)
    elif prop is None:
        s.add(ImageProperty(image_id=image_id, name=name, value=value))
    else:
        prop.value = value


def _get_prop(s: Any, image_id: str, name: str) -> str:
    prop = s.get(ImageProperty, (image_id, name))
    return prop.value if prop is not None else ""


def _csv(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def location_of(store: "ImageStore", image_id: str) -> str:
    if store.capabilities.local_files:
        return store.path(image_id).as_uri()
    return f"{store.store_id}://{image_id}"


# -- starting an import ---------------------------------------------------------------------

def _targets(svc: "ImageService", body: dict[str, Any], header_store: str | None
             ) -> list[str]:
    """The stores an import writes to (glance.common.utils.get_stores_from_request)."""
    stores = body.get("stores")
    if stores is not None and (not isinstance(stores, list)
                               or not all(isinstance(x, str) for x in stores)):
        raise BadRequest("'stores' must be a list of store identifiers.")
    for flag in ("all_stores", "all_stores_must_succeed"):
        if flag in body and not isinstance(body[flag], bool):
            raise BadRequest(f"'{flag}' must be a boolean.")
    if body.get("all_stores"):
        if stores is not None or header_store:
            raise BadRequest("All_stores parameter can't be used with x-image-meta-store "
                             "header or stores parameter")
        targets = svc.writable_stores()
    elif stores is not None:
        if header_store:
            raise BadRequest("Stores parameter and x-image-meta-store header can't be both "
                             "specified")
        targets = list(dict.fromkeys(stores))
    else:
        targets = [header_store or svc.store.store_id]
    if not targets:
        raise BadRequest("'stores' must name at least one store.")
    for sid in targets:
        if sid not in svc.stores:
            raise Conflict(f"Store for identifier {sid} not found")
        if svc.stores[sid].read_only:
            raise BadRequest(f"Store {sid} is read-only; nothing can be imported into it.")
    return targets


def start_import(svc: "ImageService", ctx: RequestContext, image_id: str, body: Any,
                 header_store: str | None = None) -> str | None:
    """Validate, record the task, mark the image; return the task id (None: nothing to do,
    a copy-image to all stores of an image already in all of them). Answers 202."""
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    method = body.get("method")
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise BadRequest("Import request requires a 'method' field.")
    name = method["name"]
    if name not in ALL_METHODS:
        raise BadRequest(f"Unknown import method name '{name}'.")
    offered = svc.import_methods()
    if name not in offered:
        raise BadRequest(f"Import method {name} is not enabled on this cloud; available: "
                         f"{', '.join(offered)}.")
    targets = _targets(svc, body, header_store)
    all_stores = bool(body.get("all_stores"))
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        if name == "copy-image":
            access.enforce(ctx, "copy_image", row)
        else:
            access.enforce(ctx, "import_image", row)
        if row.status == "active" and name != "copy-image":
            raise Conflict("Image with status active cannot be target for import")
        if row.status != "active" and name == "copy-image":
            raise Conflict("Only images with status active can be targeted for copying")
        if row.status != "queued" and name in ("web-download", "glance-download"):
            raise Conflict(f"Image needs to be in 'queued' state to use '{name}' method")
        if name == "glance-direct" and (row.status != "uploading"
                                        or row.staged_size is None):
            raise Conflict("Image needs to be staged before 'glance-direct' method can be "
                           "used")
        if not row.container_format:
            raise Conflict("'container_format' needs to be set before import")
        if not row.disk_format:
            raise Conflict("'disk_format' needs to be set before import")
        busy = _get_prop(s, row.id, "os_glance_import_task")
        if busy:
            task = s.get(ImageTask, busy)
            if task is not None and task.status in ("pending", "processing"):
                raise Conflict(f"Image {row.id} has an import task {busy} in progress.")
        if name == "copy-image":
            have = svc.stores_of(row)
            if all_stores:
                targets = [t for t in targets if t not in have]
                if not targets:
                    return None  # already everywhere: Glance answers 202 and does nothing
            else:
                for sid in targets:
                    if sid in have:
                        raise BadRequest(f"Image is already present at store '{sid}'")
        if name == "web-download" and not validate_uri(svc.settings.image, method.get("uri")):
            raise BadRequest(f"URI for web-download does not pass filtering: "
                             f"{method.get('uri')}")
        if name == "glance-download":
            remote.check_request(method)
        task = ImageTask(type="api_image_import", status="processing", owner=row.owner,
                         image_id=row.id, request_id=ctx.request_id, user_id=ctx.user_id,
                         input={"image_id": row.id, "import_req": body, "backend": targets},
                         expires_at=utcnow() + dt.timedelta(hours=48))
        s.add(task)
        s.flush()
        if name != "copy-image":
            row.status = "importing"
        row.updated_at = utcnow()
        _set_prop(s, row.id, "os_glance_import_task", task.id)
        _set_prop(s, row.id, "os_glance_importing_to_stores", ",".join(targets))
        _set_prop(s, row.id, "os_glance_failed_import", "")
        if name == "glance-download":
            # The user's token, to read the source image as them; memory only, never
            # stored (a restart fails the task, as it fails every task in flight).
            svc.remote_tokens[task.id] = ctx.auth_token
        return task.id


# -- running it -----------------------------------------------------------------------------

class ImportFailed(Exception):
    """The whole import fails: the image goes back to queued (or stays active: copy)."""


def run_import(svc: "ImageService", task_id: str) -> None:
    """The import task (a worker thread): get the data, verify it, write every store."""
    with svc.db.read() as s:
        task = s.get(ImageTask, task_id)
        if task is None or task.status != "processing":
            return
        image_id = task.image_id
        req = dict(task.input.get("import_req") or {})
        targets = list(task.input.get("backend") or [])
    method = (req.get("method") or {}).get("name")
    must_succeed = req.get("all_stores_must_succeed", True) is not False
    try:
        if method == "copy-image":
            _copy_image(svc, task_id, image_id, targets, must_succeed)
        else:
            metadata = None
            if method == "web-download":
                fetch(svc, image_id, (req.get("method") or {}).get("uri"))
            elif method == "glance-download":
                metadata = remote.download(svc, image_id, req.get("method") or {},
                                           svc.remote_tokens.pop(task_id, None))
            inspected = _verify_staged(svc, image_id, metadata)
            _import_staged(svc, task_id, image_id, targets, must_succeed, inspected,
                           metadata)
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the task
        message = exc.message if isinstance(exc, PocketError) else str(exc) or repr(exc)
        _fail(svc, task_id, image_id, method, message)
        return
    with svc.db.write() as s:
        task = s.get(ImageTask, task_id)
        if task is not None and task.status == "processing":
            task.status = "success"
            task.result = {"image_id": image_id}
            task.updated_at = utcnow()


def fail_task(s: Any, task_id: str, image_id: str | None, message: str) -> None:
    """Record a task's failure (its message is what `glance task-show` prints)."""
    task = s.get(ImageTask, task_id)
    if task is not None:
        task.status, task.message = "failure", message
        task.result = {"image_id": image_id}
        task.updated_at = utcnow()


def _fail(svc: "ImageService", task_id: str, image_id: str | None, method: str | None,
          message: str) -> None:
    with svc.db.write() as s:
        fail_task(s, task_id, image_id, message)
        row = s.get(Image, image_id) if image_id else None
        if row is not None:
            left = _csv(_get_prop(s, row.id, "os_glance_importing_to_stores"))
            failed = _csv(_get_prop(s, row.id, "os_glance_failed_import"))
            _set_prop(s, row.id, "os_glance_failed_import",
                      ",".join(dict.fromkeys(failed + left)))
            _set_prop(s, row.id, "os_glance_importing_to_stores", "")
            if row.status == "importing":
                row.status = "queued"
                row.staged_size = row.staged_hash = None
                row.updated_at = utcnow()
    if image_id and method != "copy-image":
        svc.store.delete(image_id, "staging")
    log.warning("image %s: import task %s failed: %s", image_id, task_id, message)


class _StagedReader:
    """read_at over a staged file, for format inspection."""

    def __init__(self, svc: "ImageService", image_id: str) -> None:
        self.svc, self.image_id = svc, image_id

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0:
            return b""
        return b"".join(self.svc.store.read(self.image_id, offset, offset + n, area="staging"))


def _verify_staged(svc: "ImageService", image_id: str,
                   metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Re-hash the staged file against what staging recorded, inspect its format (the
    source image's formats for glance-download, which the image takes on)."""
    with svc.db.read() as s:
        row = s.get(Image, image_id)
        if row is None or row.status != "importing":
            raise Gone(f"Image {image_id} was deleted during import.")
        size, sha, disk_format, container_format = (row.staged_size, row.staged_hash,
                                                    row.disk_format, row.container_format)
    if metadata:
        disk_format = metadata["disk_format"] or disk_format
        container_format = metadata["container_format"] or container_format
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
    return {"size": n, "checksum": md5.hexdigest(), "hash": sha512.hexdigest(),
            "virtual_size": inspection.virtual_size}


def _copy_file(src: "ImageStore", src_area: str, dst: "ImageStore", image_id: str) -> None:
    """Copy one image file between stores (or from staging), atomically at the target."""
    if src.capabilities.local_files:
        dst.adopt(image_id, src.path(image_id, src_area), move=False)
        return
    w = dst.writer(image_id, "images")
    try:
        for chunk in src.read(image_id, area=src_area, chunk_size=4 << 20):
            w.write(chunk)
        w.commit()
    except BaseException:
        w.abort()
        raise


def _store_done(svc: "ImageService", image_id: str, sid: str, ok: bool,
                first: dict[str, Any] | None = None,
                metadata: dict[str, Any] | None = None) -> bool:
    """Record one target store's outcome; False when the image is gone or no longer in the
    state the task expects (deleted or reset meanwhile)."""
    with svc.db.write() as s:
        row = s.get(Image, image_id)
        if row is None or row.status not in ("importing", "active"):
            return False
        left = [x for x in _csv(_get_prop(s, row.id, "os_glance_importing_to_stores"))
                if x != sid]
        _set_prop(s, row.id, "os_glance_importing_to_stores", ",".join(left))
        if not ok:
            failed = _csv(_get_prop(s, row.id, "os_glance_failed_import"))
            _set_prop(s, row.id, "os_glance_failed_import",
                      ",".join(dict.fromkeys([*failed, sid])))
            return True
        stores = svc.order_stores([*svc.own_stores_of(row), sid])
        row.stores = ",".join(stores)
        row.location = location_of(svc.stores[stores[0]], image_id)
        if first is not None and row.status == "importing":
            row.size, row.checksum = first["size"], first["checksum"]
            row.os_hash_algo, row.os_hash_value = HASH_ALGO, first["hash"]
            row.virtual_size = first["virtual_size"]
            row.staged_size = row.staged_hash = None
            row.status = "active"
            if metadata:  # glance-download: the source image's formats and properties
                row.disk_format = metadata["disk_format"]
                row.container_format = metadata["container_format"]
                for key, value in metadata["properties"].items():
                    _set_prop(s, row.id, key, value)
        row.updated_at = utcnow()
        return True


def _import_staged(svc: "ImageService", task_id: str, image_id: str, targets: list[str],
                   must_succeed: bool, inspected: dict[str, Any],
                   metadata: dict[str, Any] | None = None) -> None:
    # The default store last: its copy is a rename of the staged file, not a copy.
    order = sorted(targets, key=lambda sid: svc.stores[sid] is svc.store)
    done: list[str] = []
    errors: list[str] = []
    for sid in order:
        dst = svc.stores[sid]
        try:
            if dst is svc.store:
                dst.promote(image_id)
            else:
                _copy_file(svc.store, "staging", dst, image_id)
        except Exception as exc:  # noqa: BLE001 - recorded per store
            log.warning("image %s: import to store %s failed: %s", image_id, sid, exc)
            errors.append(f"{sid}: {exc}")
            if must_succeed:
                for other in done:
                    svc.stores[other].delete(image_id, "images")
                _reset_stores(svc, image_id)
                raise ImportFailed(f"Import to store {sid} failed ({exc}); "
                                   "all_stores_must_succeed is set.") from None
            _store_done(svc, image_id, sid, False)
            continue
        if not _store_done(svc, image_id, sid, True, inspected, metadata):
            dst.delete(image_id, "images")
            for other in done:
                svc.stores[other].delete(image_id, "images")
            raise Gone(f"Image {image_id} was deleted during import.")
        done.append(sid)
    svc.store.delete(image_id, "staging")
    if not done:
        raise ImportFailed("Import failed on every store: " + "; ".join(errors))


def _reset_stores(svc: "ImageService", image_id: str) -> None:
    with svc.db.write() as s:
        row = s.get(Image, image_id)
        if row is not None and row.status in ("importing", "active") and row.size is not None:
            # A must-succeed import that had already made the image active: back to queued.
            row.status = "importing"
            row.stores = row.location = None
            row.size = row.checksum = row.os_hash_value = row.virtual_size = None
            row.os_hash_algo = None


def _copy_image(svc: "ImageService", task_id: str, image_id: str, targets: list[str],
                must_succeed: bool) -> None:
    with svc.db.read() as s:
        row = s.get(Image, image_id)
        if row is None or row.status != "active":
            raise Conflict(f"Image {image_id} is no longer active; nothing to copy.")
        src = svc.store_for(row)
    made: list[str] = []
    for sid in targets:
        dst = svc.stores[sid]
        try:
            _copy_file(src, "images", dst, image_id)
        except Exception as exc:  # noqa: BLE001 - recorded per store
            log.warning("image %s: copy to store %s failed: %s", image_id, sid, exc)
            if must_succeed:
                for other in made:
                    _remove_from_store(svc, image_id, other)
                _store_done(svc, image_id, sid, False)
                raise ImportFailed(f"Copy to store {sid} failed ({exc}); "
                                   "all_stores_must_succeed is set.") from None
            _store_done(svc, image_id, sid, False)
            continue
        if not _store_done(svc, image_id, sid, True):
            dst.delete(image_id, "images")
            raise Gone(f"Image {image_id} was deleted during the copy.")
        made.append(sid)


def _remove_from_store(svc: "ImageService", image_id: str, sid: str) -> None:
    with svc.db.write() as s:
        row = s.get(Image, image_id)
        if row is None:
            return
        stores = [x for x in svc.own_stores_of(row) if x != sid]
        row.stores = ",".join(stores) or None
        row.location = location_of(svc.stores[stores[0]], image_id) if stores else None
        row.updated_at = utcnow()
    svc.stores[sid].delete(image_id, "images")


# -- DELETE /v2/stores/{store_id}/{image_id} -------------------------------------------------

def delete_from_store(svc: "ImageService", ctx: RequestContext, store_id: str,
                      image_id: str) -> None:
    if store_id not in svc.stores:
        raise Conflict(f"The selected store {store_id} is not available on this node.")
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "delete_image_location", row)
        if row.status != "active":
            raise Conflict("It's not allowed to remove image data from store if image "
                           "status is not 'active'")
        stores = svc.stores_of(row)
        if store_id not in stores:
            raise NotFound(f"Image {image_id} is not stored in store {store_id}.")
        if len(stores) == 1:
            raise Forbidden("Cannot delete image data from the only store containing it. "
                            "Consider deleting the image instead.")
        if svc.stores[store_id].read_only:
            raise Conflict(f"Store {store_id} is read-only: its data cannot be deleted.")
        rest = [x for x in svc.own_stores_of(row) if x != store_id]
        if not rest:
            raise Forbidden("Cannot delete the only copy of the image's data in a writable "
                            "store.")
        row.stores = ",".join(rest)
        row.location = location_of(svc.stores[rest[0]], image_id)
        row.updated_at = utcnow()
    # The record first: a crash here leaves an orphan copy that start-up removes.
    svc.stores[store_id].delete(image_id, "images")


def image_tasks(svc: "ImageService", ctx: RequestContext, image_id: str) -> list[dict[str, Any]]:
    with svc.db.read() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "get_image", row)
        tasks = s.scalars(select(ImageTask).where(ImageTask.image_id == row.id)
                          .order_by(ImageTask.created_at)).all()
        return [views.task(t) for t in tasks]
