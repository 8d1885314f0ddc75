"""Volume backups to the object store (Cinder's chunked Swift backup driver, in-process).

Layout in the owner's Swift account (``AUTH_<project>``), container ``volumebackups`` by
default, as Cinder's swift driver names things: ``volume_<vol>/<stamp>/az_<az>_backup_<id>``
is the prefix; ``<prefix>-00001``... hold zlib-compressed chunks of ``CHUNK`` bytes and
``<prefix>_metadata`` the JSON index (chunk list with sha256 per chunk, the source volume's
metadata and bootable flag). All-zero chunks are recorded, not stored. An incremental
backup stores only the chunks whose sha256 differs from its parent's and points at the
parent's objects for the rest (so a parent with dependents cannot be deleted).

Every byte moves chunk by chunk (driver.read_bytes / write_bytes), never a whole volume in
memory. State changes go to the database first (status + ``task``), then a volume worker
does the work; ``recover`` reruns a create/restore/delete a crash interrupted (each is
idempotent: object names are deterministic and a store commit replaces), and after
``MAX_ATTEMPTS`` gives up with ``fail_reason`` set, so nothing stays ``creating`` or
``restoring``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import zlib
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.volume.base import GiB, VolumeDriverError
from pocketstack.errors import BadRequest, NotFound, OverQuota, PocketError, ServiceUnavailable
from pocketstack.services.volume import quotas
from pocketstack.services.volume.common import (apply_sort, check_metadata, check_name,
                                                is_uuid, parse_bool)
from pocketstack.services.volume.common import scoped_select
from pocketstack.services.volume.models import Backup, Snapshot, Volume

log = logging.getLogger("pocketstack.volume.backup")

CHUNK = 8 * 1024 * 1024
ZERO = bytes(CHUNK)
ZERO_SHA = hashlib.sha256(ZERO).hexdigest()
DEFAULT_CONTAINER = "volumebackups"
MAX_ATTEMPTS = 3
SERVICE = "cinder.backup.drivers.swift.SwiftBackupDriver"
SORT_KEYS = {"id", "created_at", "updated_at", "name", "status", "size", "volume_id",
             "project_id", "container"}
STATUSES = {"creating", "available", "deleting", "error", "error_deleting", "restoring"}


def not_found(backup_id: str) -> NotFound:
    return NotFound(f"Backup {backup_id} could not be found.", kind="BackupNotFound")


def account(project_id: str) -> str:
    return f"AUTH_{project_id}"


def account_of(b: Backup) -> str:
    return b.account or account(b.project_id)


def _objects(svc):  # noqa: ANN001, ANN202
    os_ = svc.cloud.services.get("object-store")
    if os_ is None:
        raise ServiceUnavailable("Service cinder-backup could not be found: this cloud has "
                                 "no object store to keep backups in.")
    return os_.store


def load(s: Session, ctx: RequestContext, backup_id: str, action: str = "get") -> Backup:
    b = s.get(Backup, backup_id) if is_uuid(backup_id) else None
    if b is None or not (ctx.is_admin or b.project_id == ctx.project_id):
        raise not_found(backup_id)
    policy.enforce(ctx, f"backup:{action}", {"project_id": b.project_id})
    return b


def get(svc, ctx: RequestContext, backup_id: str) -> Backup:  # noqa: ANN001
    with svc.db.read() as s:
        return load(s, ctx, backup_id)


def list_backups(svc, ctx: RequestContext, query: Any, *, all_projects: bool,  # noqa: ANN001
                 project_id: str | None, sort: list) -> list[Backup]:
    policy.enforce(ctx, "backup:get_all", {"project_id": ctx.project_id})
    stmt = scoped_select(Backup, ctx, all_projects=all_projects, project_id=project_id,
                         query=query, equal=("name", "status", "volume_id"))
    stmt = apply_sort(stmt, Backup, sort)
    with svc.db.read() as s:
        return list(s.scalars(stmt))


# -- quota --------------------------------------------------------------------------------
def usage(s: Session, project_id: str) -> tuple[int, int]:
    count, size = s.execute(select(func.count(), func.coalesce(func.sum(Backup.size), 0))
                            .where(Backup.project_id == project_id)).one()
    return int(count), int(size)


def _check_quota(s: Session, project_id: str, size: int) -> None:
    quotas.lock_project(s, project_id)
    limits = quotas.limits_for(s, project_id)
    count, used = usage(s, project_id)
    limit = limits.get("backups", -1)
    if limit >= 0 and count + 1 > limit:
        raise OverQuota(f"Maximum number of backups allowed ({limit}) exceeded.", status=413,
                        kind="BackupLimitExceeded")
    glimit = limits.get("backup_gigabytes", -1)
    if glimit >= 0 and used + size > glimit:
        raise OverQuota(f"Requested backup exceeds allowed Backup gigabytes quota. Requested "
                        f"{size}G, quota is {glimit}G and {used}G has been consumed.",
                        status=413, kind="VolumeBackupSizeExceedsAvailableQuota")


# -- create --------------------------------------------------------------------------------
def create(svc, ctx: RequestContext, body: Any, mv: tuple[int, int]) -> Backup:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute backup.")
    volume_id = body.get("volume_id")
    if not isinstance(volume_id, str) or not volume_id:
        raise BadRequest("Invalid input for field/attribute volume_id.")
    container = body.get("container") or DEFAULT_CONTAINER
    if not isinstance(container, str) or len(container) > 255 or "/" in container:
        raise BadRequest("Invalid input for field/attribute container.")
    name = check_name(body.get("name"))
    description = check_name(body.get("description"), "description")
    incremental = parse_bool(body.get("incremental", False), "incremental")
    force = parse_bool(body.get("force", False), "force")
    metadata = check_metadata(body.get("metadata")) if mv >= (3, 43) else {}
    snapshot_id = body.get("snapshot_id")
    policy.enforce(ctx, "backup:create", {"project_id": ctx.project_id})
    _objects(svc)
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id) if is_uuid(volume_id) else None
        if vol is None or not (ctx.is_admin or vol.project_id == ctx.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.", kind="VolumeNotFound")
        if snapshot_id:
            snap = s.get(Snapshot, snapshot_id) if is_uuid(snapshot_id) else None
            if snap is None or snap.volume_id != vol.id:
                raise NotFound(f"Snapshot {snapshot_id} could not be found.",
                               kind="SnapshotNotFound")
            if snap.status != "available":
                raise BadRequest(f"Invalid snapshot: Snapshot to be backed up must be "
                                 f"available, but the current status is \"{snap.status}\".")
        elif vol.status not in ("available", "in-use") or \
                (vol.status == "in-use" and not force):
            raise BadRequest(f"Invalid volume: Volume to be backed up must be available or "
                             f"in-use, but the current status is \"{vol.status}\".")
        parent = None
        if incremental:
            parent = s.scalars(select(Backup).where(
                Backup.volume_id == vol.id, Backup.status == "available")
                .order_by(Backup.created_at.desc(), Backup.id.desc()).limit(1)).first()
            if parent is None:
                raise BadRequest("Invalid backup: No backups available to do an incremental "
                                 "backup.")
        project = vol.project_id
        _check_quota(s, project, vol.size)
        now = utcnow()
        backup = Backup(project_id=project, user_id=ctx.user_id or "", volume_id=vol.id,
                        snapshot_id=snapshot_id or None, name=name, description=description,
                        status="creating", availability_zone=vol.availability_zone,
                        container=container, object_prefix="", size=vol.size,
                        parent_id=parent.id if parent else None, metadata_=metadata,
                        data_timestamp=now)
        s.add(backup)
        s.flush()
        backup.object_prefix = (f"volume_{vol.id}/{now.strftime('%Y%m%d%H%M%S')}/"
                                f"az_{vol.availability_zone}_backup_{backup.id}")
        backup.task = {"kind": "create", "attempts": 0, "volume_status": vol.status}
        if parent is not None:
            parent.num_dependent_backups += 1
        if not snapshot_id:
            vol.status = "backing-up"
        s.flush()
        backup_id = backup.id
    svc.submit("backup", backup_id, run_create, svc, backup_id)
    return backup


def _attempt(svc, backup_id: str, kind: str) -> dict[str, Any] | None:  # noqa: ANN001
    """Count an attempt at the backup's task; None when it is not (or no longer) ours."""
    with svc.db.write() as s:
        b = s.get(Backup, backup_id)
        if b is None or not b.task or b.task.get("kind") != kind:
            return None
        task = dict(b.task)
        task["attempts"] = int(task.get("attempts", 0)) + 1
        b.task = task
        return task


def _restore_volume_status(s: Session, volume_id: str, status: str | None) -> None:
    vol = s.get(Volume, volume_id)
    if vol is not None and vol.status == "backing-up":
        live = [a for a in vol.attachments if a.attach_status == "attached"]
        vol.status = "in-use" if live else (status if status in ("available", "in-use")
                                            else "available")


def _fail(svc, backup_id: str, reason: str, status: str = "error") -> None:  # noqa: ANN001
    with svc.db.write() as s:
        b = s.get(Backup, backup_id)
        if b is None:
            return
        task = b.task or {}
        if task.get("kind") == "create":
            _restore_volume_status(s, b.volume_id, task.get("volume_status"))
        elif task.get("kind") == "restore":
            vol = s.get(Volume, task.get("volume_id"))
            if vol is not None and vol.status == "restoring-backup":
                vol.status = "error_restoring"
                vol.error = reason
        b.status, b.fail_reason, b.task = status, reason[:1000], None
        b.updated_at = utcnow()


def _read_meta(store, b_account: str, container: str, prefix: str) -> dict[str, Any]:  # noqa: ANN001
    rec = store.get(b_account, container, prefix + "_metadata")
    return orjson.loads(b"".join(store.read(rec)))


def _put(store, acct: str, container: str, name: str, data: bytes,  # noqa: ANN001
         content_type: str = "application/octet-stream") -> None:
    w = store.driver.writer()
    try:
        w.write(data)
        blob = w.commit()
    except BaseException:
        w.abort()
        raise
    store.commit(acct, container, name, blob, content_type=content_type, meta={})


def run_create(svc, backup_id: str) -> None:  # noqa: ANN001
    task = _attempt(svc, backup_id, "create")
    if task is None:
        return
    if task["attempts"] > MAX_ATTEMPTS:
        _fail(svc, backup_id, "backup did not finish after repeated restarts")
        return
    with svc.db.read() as s:
        b = s.get(Backup, backup_id)
        vol = s.get(Volume, b.volume_id)
        if vol is None:
            info = None
        else:
            info = {"metadata": dict(vol.metadata_ or {}), "bootable": vol.bootable,
                    "image_metadata": dict(vol.image_metadata or {}), "size": vol.size,
                    "name": vol.name, "description": vol.description}
        acct, container, prefix = account_of(b), b.container, b.object_prefix
        parent = s.get(Backup, b.parent_id) if b.parent_id else None
        parent_loc = (account_of(parent), parent.container, parent.object_prefix) \
            if parent else None
        size, volume_id, snapshot_id = b.size, b.volume_id, b.snapshot_id
    if info is None:
        _fail(svc, backup_id, f"volume {volume_id} no longer exists")
        return
    drv = svc.driver
    source = volume_id
    try:
        store = _objects(svc)
        store.put_container(acct, container, {})
        parent_chunks: list[dict[str, Any]] = []
        if parent_loc:
            parent_chunks = _read_meta(store, *parent_loc)["chunks"]
        if snapshot_id:
            # the snapshot's bytes, through a temporary volume made from it
            source = f"backup-src-{backup_id}"
            if not drv.volume_exists(source):
                drv.create_volume_from_snapshot(source, size, snapshot_id, volume_id)
        chunks: list[dict[str, Any]] = []
        stored = 0
        total = size * GiB
        for index, offset in enumerate(range(0, total, CHUNK)):
            length = min(CHUNK, total - offset)
            data = drv.read_bytes(source, offset, length)
            if len(data) < length:
                data += bytes(length - len(data))
            zero = data == ZERO[:length]
            digest = ZERO_SHA if zero and length == CHUNK else hashlib.sha256(data).hexdigest()
            entry: dict[str, Any] = {"offset": offset, "length": length, "sha256": digest}
            prev = parent_chunks[index] if index < len(parent_chunks) else None
            if prev is not None and prev["sha256"] == digest:
                entry = dict(prev)
            elif zero:
                entry["zero"] = True
            else:
                name = f"{prefix}-{index + 1:05d}"
                _put(store, acct, container, name, zlib.compress(data, 1))
                entry.update(object=name, container=container, compression="zlib")
                stored += 1
            chunks.append(entry)
            del data
        meta = {"version": "1.0.0", "backup_id": backup_id, "volume_id": volume_id,
                "parent_id": parent_loc and parent_loc[2], "chunk_size": CHUNK,
                "volume_meta": info, "chunks": chunks}
        _put(store, acct, container, prefix + "_metadata", orjson.dumps(meta),
             "application/json")
    except (VolumeDriverError, OSError, PocketError, KeyError, ValueError) as exc:
        log.warning("backup %s failed: %s", backup_id, exc)
        _fail(svc, backup_id, str(getattr(exc, "message", exc)))
        return
    finally:
        if source != volume_id:
            try:
                drv.delete_volume(source)
            except VolumeDriverError as exc:
                log.warning("could not remove backup source %s: %s", source, exc)
    with svc.db.write() as s:
        b = s.get(Backup, backup_id)
        if b is None:
            return
        _restore_volume_status(s, volume_id, task.get("volume_status"))
        b.status, b.task, b.object_count, b.fail_reason = "available", None, stored + 1, None
        b.updated_at = utcnow()


# -- restore -------------------------------------------------------------------------------
def restore(svc, ctx: RequestContext, backup_id: str, body: Any) -> dict[str, Any]:  # noqa: ANN001
    from pocketstack.services.volume import volumes

    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute restore.")
    volume_id = body.get("volume_id")
    name = check_name(body.get("name"))
    with svc.db.read() as s:
        b = load(s, ctx, backup_id, "restore")
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available, but the "
                             f"current status is \"{b.status}\".")
        size = b.size
    if volume_id is None:
        vol = volumes.create(svc, ctx, {"size": size,
                                        "name": name or f"restore_backup_{backup_id}"})
        return start_restore(svc, ctx, backup_id, vol.id, created=True)
    return start_restore(svc, ctx, backup_id, volume_id, created=False)


def create_volume_from_backup(svc, ctx: RequestContext, body: dict[str, Any]) -> Volume:  # noqa: ANN001
    """POST /volumes with ``backup_id`` (3.47): a new volume, then the backup restored
    into it (status ``creating`` -> ``restoring-backup`` -> ``available``)."""
    from pocketstack.services.volume import volumes

    backup_id = body["backup_id"]
    with svc.db.read() as s:
        b = load(s, ctx, str(backup_id), "restore")
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available, but the "
                             f"current status is \"{b.status}\".")
        size = b.size
    wanted = body.get("size")
    if wanted is not None and (not isinstance(wanted, int) or isinstance(wanted, bool)
                               or wanted < size):
        raise BadRequest(f"Invalid input received: volume size {wanted}GB cannot be smaller "
                         f"than the backup size {size}GB.")
    rest = {k: v for k, v in body.items() if k != "backup_id"}
    vol = volumes.create(svc, ctx, {**rest, "size": wanted or size})
    start_restore(svc, ctx, b.id, vol.id, created=True)
    return vol


def start_restore(svc, ctx: RequestContext, backup_id: str, volume_id: Any,  # noqa: ANN001
                  *, created: bool) -> dict[str, Any]:
    with svc.db.write() as s:
        b = load(s, ctx, backup_id, "restore")
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available, but the "
                             f"current status is \"{b.status}\".")
        vol = s.get(Volume, volume_id) if isinstance(volume_id, str) and is_uuid(volume_id) \
            else None
        if vol is None or not (ctx.is_admin or vol.project_id == ctx.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.", kind="VolumeNotFound")
        if not created:
            if vol.status != "available":
                raise BadRequest(f"Invalid volume: Volume to be restored to must be "
                                 f"available, but the current status is \"{vol.status}\".")
            if vol.size < b.size:
                raise BadRequest(f"Invalid volume: volume size {vol.size}GB cannot be smaller "
                                 f"than the backup size {b.size}GB. It must be >= backup size.")
            vol.status = "restoring-backup"
        b.status = "restoring"
        b.task = {"kind": "restore", "attempts": 0, "volume_id": vol.id}
        vol_name = vol.name
    svc.submit("backup", backup_id, run_restore, svc, backup_id)
    return {"backup_id": backup_id, "volume_id": volume_id, "volume_name": vol_name}


def run_restore(svc, backup_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        b = s.get(Backup, backup_id)
        vol = s.get(Volume, (b.task or {}).get("volume_id")) if b is not None else None
        waiting = vol is not None and vol.status in ("creating", "downloading")
    if waiting:
        # the new volume is still being made (by a volume worker): look again shortly
        # instead of holding this worker, which that creation may need
        timer = threading.Timer(0.2, svc.submit, ("backup", backup_id, run_restore, svc,
                                                  backup_id))
        timer.daemon = True
        timer.start()
        return
    task = _attempt(svc, backup_id, "restore")
    if task is None:
        return
    volume_id = task["volume_id"]
    if task["attempts"] > MAX_ATTEMPTS:
        _fail(svc, backup_id, "restore did not finish after repeated restarts", "available")
        return
    with svc.db.read() as s:
        vol = s.get(Volume, volume_id)
        status = vol.status if vol is not None else "deleted"
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id)
        if vol is None or status not in ("available", "restoring-backup"):
            reason = f"volume {volume_id} to restore to is {status}"
            b = s.get(Backup, backup_id)
            if b is not None:
                b.status, b.task, b.fail_reason = "available", None, reason
            return
        vol.status = "restoring-backup"
        b = s.get(Backup, backup_id)
        acct, container, prefix = account_of(b), b.container, b.object_prefix
    drv = svc.driver
    try:
        store = _objects(svc)
        meta = _read_meta(store, acct, container, prefix)
        for entry in meta["chunks"]:
            if entry.get("zero"):
                data = bytes(entry["length"])
            else:
                rec = store.get(acct, entry.get("container", container), entry["object"])
                data = zlib.decompress(b"".join(store.read(rec)))
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise ValueError(f"backup object {entry['object']} is corrupt")
            drv.write_bytes(volume_id, entry["offset"], data)
            del data
    except (VolumeDriverError, OSError, PocketError, KeyError, ValueError,
            zlib.error) as exc:
        log.warning("restore of backup %s failed: %s", backup_id, exc)
        _fail(svc, backup_id, str(getattr(exc, "message", exc)), "available")
        return
    info = meta.get("volume_meta") or {}
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id)
        if vol is not None:
            vol.metadata_ = {**(info.get("metadata") or {}), **(vol.metadata_ or {})}
            vol.bootable = bool(info.get("bootable", vol.bootable))
            if info.get("image_metadata"):
                vol.image_metadata = dict(info["image_metadata"])
            vol.status = "available"
            vol.updated_at = utcnow()
        b = s.get(Backup, backup_id)
        if b is not None:
            b.status, b.task, b.fail_reason = "available", None, None
            b.updated_at = utcnow()


# -- update / delete / admin actions -----------------------------------------------------
def update(svc, ctx: RequestContext, backup_id: str, body: Any,  # noqa: ANN001
           mv: tuple[int, int]) -> Backup:
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute backup.")
    allowed = {"name", "description"} | ({"metadata"} if mv >= (3, 43) else set())
    if not body or set(body) - allowed:
        raise BadRequest(f"Invalid input for field/attribute backup: only "
                         f"{', '.join(sorted(allowed))} may be updated.")
    with svc.db.write() as s:
        b = load(s, ctx, backup_id, "update")
        if "name" in body:
            b.name = check_name(body["name"])
        if "description" in body:
            b.description = check_name(body["description"], "description")
        if "metadata" in body:
            b.metadata_ = check_metadata(body["metadata"])
        b.updated_at = utcnow()
        s.flush()
        return b


def delete(svc, ctx: RequestContext, backup_id: str, *, force: bool = False) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        b = load(s, ctx, backup_id, "force_delete" if force else "delete")
        if not force and b.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid backup: Backup status must be available or error, but "
                             f"the current status is \"{b.status}\".")
        if force and b.status == "deleting":
            return
        if b.num_dependent_backups > 0:
            raise BadRequest("Invalid backup: Incremental backups exist for this backup.")
        old = b.task or {}
        if old.get("kind") == "create":
            _restore_volume_status(s, b.volume_id, old.get("volume_status"))
        elif old.get("kind") == "restore":
            vol = s.get(Volume, old.get("volume_id"))
            if vol is not None and vol.status == "restoring-backup":
                vol.status, vol.error = "error_restoring", "its backup was force-deleted"
        b.status = "deleting"
        b.task = {"kind": "delete", "attempts": 0}
    svc.submit("backup", backup_id, run_delete, svc, backup_id)


def run_delete(svc, backup_id: str) -> None:  # noqa: ANN001
    task = _attempt(svc, backup_id, "delete")
    if task is None:
        return
    with svc.db.read() as s:
        b = s.get(Backup, backup_id)
        acct, container, prefix = account_of(b), b.container, b.object_prefix
        # another row (an imported record) may point at the same objects: keep them then
        shared = s.scalar(select(func.count()).select_from(Backup).where(
            Backup.object_prefix == prefix, Backup.id != backup_id)) or 0
    try:
        store = _objects(svc)
        if not shared:
            for name in store.list_objects(acct, container, prefix=prefix):
                obj = name if isinstance(name, str) else name.name
                # only this backup's objects: "<prefix>-NNNNN" and "<prefix>_metadata"
                if obj == prefix + "_metadata" or obj.startswith(prefix + "-"):
                    try:
                        store.delete(acct, container, obj)
                    except NotFound:
                        pass
    except NotFound:
        pass  # the container is gone: nothing left to remove
    except (OSError, PocketError) as exc:
        _fail(svc, backup_id, str(getattr(exc, "message", exc)), "error_deleting")
        return
    with svc.db.write() as s:
        b = s.get(Backup, backup_id)
        if b is None:
            return
        if b.parent_id:
            parent = s.get(Backup, b.parent_id)
            if parent is not None and parent.num_dependent_backups > 0:
                parent.num_dependent_backups -= 1
        s.delete(b)


def reset_status(svc, ctx: RequestContext, backup_id: str, body: Any) -> None:  # noqa: ANN001
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("available", "error"):
        raise BadRequest(f"Invalid backup status: {status!r}; must be available or error.")
    with svc.db.write() as s:
        b = load(s, ctx, backup_id, "reset_status")
        old = b.task or {}
        if old.get("kind") == "create":
            _restore_volume_status(s, b.volume_id, old.get("volume_status"))
        b.status, b.task = status, None
        b.updated_at = utcnow()


def recover(svc) -> None:  # noqa: ANN001
    """At start: rerun every create/restore/delete a dead process left in flight."""
    with svc.db.write() as s:
        rows = list(s.scalars(select(Backup).where(
            Backup.status.in_(("creating", "restoring", "deleting")))))
        todo = [(b.id, (b.task or {}).get("kind")) for b in rows]
        # the volume service's own recovery put "backing-up" volumes back to available;
        # a backup being resumed reads them again, so mark them busy again
        for b in rows:
            task = b.task or {}
            if task.get("kind") == "create" and not b.snapshot_id:
                vol = s.get(Volume, b.volume_id)
                if vol is not None and vol.status in ("available", "in-use"):
                    task = {**task, "volume_status": vol.status}
                    b.task = task
                    vol.status = "backing-up"
    fns = {"create": run_create, "restore": run_restore, "delete": run_delete}
    for backup_id, kind in todo:
        if kind in fns:
            svc.submit("backup", backup_id, fns[kind], svc, backup_id)
        else:
            _fail(svc, backup_id, "interrupted with no record of its work")
