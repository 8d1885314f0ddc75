"""Snapshots: create (a worker copies the bytes), list, update, delete, metadata, actions."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.volume.base import VolumeDriverError
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import quotas, types
from pocketstack.services.volume.common import (apply_sort, check_metadata, check_name,
                                                is_uuid, parse_bool, parse_dict_param)
from pocketstack.services.volume.common import scoped_select
from pocketstack.services.volume.models import Snapshot, Volume

log = logging.getLogger("pocketstack.volume")

SORT_KEYS = {"id", "created_at", "updated_at", "name", "status", "size", "volume_id",
             "project_id"}
STATUSES = {"creating", "available", "backing-up", "deleting", "error", "deleted",
            "unmanaging", "restoring", "error_deleting"}


def not_found(snapshot_id: str) -> NotFound:
    return NotFound(f"Snapshot {snapshot_id} could not be found.", kind="SnapshotNotFound")


def load(s: Session, ctx: RequestContext, snapshot_id: str, action: str = "get") -> Snapshot:
    snap = s.get(Snapshot, snapshot_id) if is_uuid(snapshot_id) else None
    if snap is None or not (ctx.is_admin or snap.project_id == ctx.project_id):
        raise not_found(snapshot_id)
    policy.enforce(ctx, f"volume:{action}_snapshot" if action != "get" else
                   "volume:get_snapshot", {"project_id": snap.project_id})
    return snap


def get(svc, ctx: RequestContext, snapshot_id: str) -> Snapshot:  # noqa: ANN001
    with svc.db.read() as s:
        return load(s, ctx, snapshot_id)


def list_snapshots(svc, ctx: RequestContext, query: Any, *, all_projects: bool,  # noqa: ANN001
                   project_id: str | None, sort: list) -> list[Snapshot]:
    policy.enforce(ctx, "volume:get_all_snapshots", {"project_id": ctx.project_id})
    stmt = scoped_select(Snapshot, ctx, all_projects=all_projects, project_id=project_id,
                         query=query, equal=("name", "status", "volume_id"))
    stmt = apply_sort(stmt, Snapshot, sort)
    with svc.db.read() as s:
        rows = list(s.scalars(stmt))
    if "metadata" in query:
        wanted = parse_dict_param(query["metadata"], "metadata")
        rows = [x for x in rows if all(x.metadata_.get(k) == v for k, v in wanted.items())]
    return rows


def create(svc, ctx: RequestContext, body: Any) -> Snapshot:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute snapshot.")
    volume_id = body.get("volume_id")
    if not volume_id:
        # Cinder answers a missing volume_id with VolumeNotFound (tempest checks the 404)
        raise NotFound(f"Volume {volume_id} could not be found.", kind="VolumeNotFound")
    name = check_name(body.get("name", body.get("display_name")))
    description = check_name(body.get("description", body.get("display_description")),
                             "description")
    metadata = check_metadata(body.get("metadata"))
    force = parse_bool(body.get("force", False), "force")
    policy.enforce(ctx, "volume:create_snapshot", {"project_id": ctx.project_id})
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id) if is_uuid(volume_id) else None
        if vol is None or not (ctx.is_admin or vol.project_id == ctx.project_id):
            raise NotFound(f"Volume {volume_id} could not be found.", kind="VolumeNotFound")
        if vol.status != "available" and not (force and vol.status == "in-use"):
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be available, "
                             f"but current status is: {vol.status}.")
        vtype = types.get_row(s, vol.volume_type_id)
        quotas.check(s, ctx.project_id or vol.project_id, snapshots=1, gigabytes=vol.size,
                     type_name=vtype.name if vtype else None)
        snap = Snapshot(volume_id=vol.id, project_id=ctx.project_id or vol.project_id,
                        user_id=ctx.user_id or "", name=name, description=description,
                        status="creating", progress="0%", size=vol.size, metadata_=metadata,
                        task={"kind": "create"})
        s.add(snap)
        s.flush()
        snapshot_id = snap.id
    svc.submit("snapshot", snapshot_id, run_create, svc, snapshot_id)
    return snap


def _finish(svc, snapshot_id: str, status: str, **fields: Any) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is not None:
            snap.status = status
            snap.task = None
            for k, v in fields.items():
                setattr(snap, k, v)


def run_create(svc, snapshot_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is None or snap.status != "creating":
            return
        volume_id = snap.volume_id
    try:
        svc.driver.create_snapshot(snapshot_id, volume_id)
    except (VolumeDriverError, OSError) as exc:
        log.warning("snapshot %s failed: %s", snapshot_id, exc)
        _finish(svc, snapshot_id, "error")
        return
    _finish(svc, snapshot_id, "available", progress="100%")


def update(svc, ctx: RequestContext, snapshot_id: str, body: Any) -> Snapshot:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute snapshot.")
    allowed = {"name", "description", "display_name", "display_description"}
    if set(body) - allowed or not body:
        raise BadRequest("Invalid input for field/attribute snapshot. Only name and "
                         "description may be updated.")
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "update")
        if "name" in body or "display_name" in body:
            snap.name = check_name(body.get("name", body.get("display_name")))
        if "description" in body or "display_description" in body:
            snap.description = check_name(body.get("description",
                                                   body.get("display_description")),
                                          "description")
        snap.updated_at = utcnow()
        s.flush()
        return snap


def delete(svc, ctx: RequestContext, snapshot_id: str, *, force: bool = False) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "delete")
        if not force and snap.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid snapshot: Volume Snapshot status must be available or "
                             f"error, but current status is: {snap.status}.")
        snap.status = "deleting"
        snap.task = {"kind": "delete"}
    svc.submit("snapshot", snapshot_id, run_delete, svc, snapshot_id)


def run_delete(svc, snapshot_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is None:
            return
        volume_id = snap.volume_id
    try:
        svc.driver.delete_snapshot(snapshot_id, volume_id)
    except (VolumeDriverError, OSError) as exc:
        log.warning("deleting snapshot %s failed: %s", snapshot_id, exc)
        _finish(svc, snapshot_id, "error_deleting")
        return
    with svc.db.write() as s:
        snap = s.get(Snapshot, snapshot_id)
        if snap is not None:
            s.delete(snap)


def reset_status(svc, ctx: RequestContext, snapshot_id: str, body: Any) -> None:  # noqa: ANN001
    status = body.get("status") if isinstance(body, dict) else None
    if status not in STATUSES:
        raise BadRequest(f"Must specify a valid status (got {status}).")
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "reset")
        snap.status = status
        snap.task = None


def update_status(svc, ctx: RequestContext, snapshot_id: str, body: Any) -> None:  # noqa: ANN001
    if not isinstance(body, dict) or body.get("status") not in ("available", "error",
                                                                 "creating", "deleting",
                                                                 "error_deleting"):
        raise BadRequest("'status' must be specified and valid.")
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "update")
        snap.status = body["status"]
        if body.get("progress"):
            snap.progress = str(body["progress"])


# -- metadata ------------------------------------------------------------------------------
def metadata(svc, ctx: RequestContext, snapshot_id: str) -> dict[str, str]:  # noqa: ANN001
    with svc.db.read() as s:
        return dict(load(s, ctx, snapshot_id).metadata_)


def set_metadata(svc, ctx: RequestContext, snapshot_id: str, values: Any,  # noqa: ANN001
                 *, replace: bool) -> dict[str, str]:
    meta = check_metadata(values)
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "update")
        merged = {} if replace else dict(snap.metadata_)
        merged.update(meta)
        snap.metadata_ = merged
        return merged


def delete_metadata_key(svc, ctx: RequestContext, snapshot_id: str, key: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        snap = load(s, ctx, snapshot_id, "update")
        if key not in snap.metadata_:
            raise NotFound(f"Metadata item was not found with key {key}.",
                           kind="SnapshotMetadataNotFound")
        meta = dict(snap.metadata_)
        meta.pop(key)
        snap.metadata_ = meta
