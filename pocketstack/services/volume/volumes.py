"""Volumes: create (empty, from image, snapshot or volume), list, show, update, delete,
metadata, and the worker functions (run_create, run_delete) that drive the driver for the
slow parts. This is the volume's lifecycle; the actions on an existing volume (extend,
flags, reset-status, revert, retype, upload to image) are in ``volume_actions``, which
imports ``load()`` and the ``_finish`` helpers from here."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.volume.base import GiB, VolumeDriverError
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import quotas, types
from pocketstack.services.volume.common import (check_metadata, check_name, is_uuid,
                                                parse_bool, parse_size)
from pocketstack.services.volume.models import Snapshot, Volume

log = logging.getLogger("pocketstack.volume")

SORT_KEYS = {"id", "created_at", "updated_at", "name", "size", "status", "availability_zone",
             "bootable", "project_id", "user_id", "volume_type_id"}
FILTERS = {"name", "status", "availability_zone", "bootable", "size", "migration_status",
           "group_id", "volume_type", "volume_type_id"}
STATUSES = {"creating", "available", "reserved", "attaching", "detaching", "in-use",
            "maintenance", "deleting", "awaiting-transfer", "error", "error_deleting",
            "backing-up", "restoring-backup", "error_backing-up", "error_restoring",
            "error_extending", "downloading", "uploading", "retyping", "extending",
            "error_managing", "managing"}


def not_found(volume_id: str) -> NotFound:
    return NotFound(f"Volume {volume_id} could not be found.", kind="VolumeNotFound")


def load(s: Session, ctx: RequestContext, volume_id: str, *, action: str = "get",
         for_update: bool = False) -> Volume:
    vol = s.get(Volume, volume_id) if is_uuid(volume_id) else None
    if vol is None or not (ctx.is_admin or vol.project_id == ctx.project_id):
        raise not_found(volume_id)
    policy.enforce(ctx, f"volume:{action}", {"project_id": vol.project_id})
    return vol


def get(svc, ctx: RequestContext, volume_id: str) -> Volume:  # noqa: ANN001
    with svc.db.read() as s:
        return load(s, ctx, volume_id)


def list_volumes(svc, ctx: RequestContext, query: Any, *, all_projects: bool,  # noqa: ANN001
                 project_id: str | None, sort: list, glance_meta: bool = False) -> list[Volume]:
    from pocketstack.services.volume.common import apply_sort, parse_dict_param, scoped_select

    policy.enforce(ctx, "volume:get_all", {"project_id": ctx.project_id})
    stmt = scoped_select(Volume, ctx, all_projects=all_projects, project_id=project_id)
    for key in FILTERS:
        if key not in query:
            continue
        value = query[key]
        if key == "bootable":
            stmt = stmt.where(Volume.bootable.is_(parse_bool(value, "bootable")))
        elif key == "size":
            try:
                stmt = stmt.where(Volume.size == int(value))
            except ValueError:
                raise BadRequest(f"Invalid filter size: {value}") from None
        elif key == "volume_type":
            with svc.db.read() as s:
                vt = types.find(s, ctx, value, quiet=True)
            stmt = stmt.where(Volume.volume_type_id == (vt.id if vt else value))
        elif key == "group_id":
            stmt = stmt.where(Volume.group_id == value)
        else:
            stmt = stmt.where(getattr(Volume, key) == value)
    if "name~" in query:
        stmt = stmt.where(Volume.name.contains(query["name~"]))
    stmt = apply_sort(stmt, Volume, sort)
    with svc.db.read() as s:
        rows = list(s.scalars(stmt))
    if "metadata" in query:
        wanted = parse_dict_param(query["metadata"], "metadata")
        rows = [v for v in rows if all(v.metadata_.get(k) == val for k, val in wanted.items())]
    if "glance_metadata" in query:
        wanted = parse_dict_param(query["glance_metadata"], "glance_metadata")
        rows = [v for v in rows
                if all(v.image_metadata.get(k) == val for k, val in wanted.items())]
    return rows


# -- create ------------------------------------------------------------------------------
def create(svc, ctx: RequestContext, body: dict[str, Any]) -> Volume:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute volume: must be an object")
    policy.enforce(ctx, "volume:create", {"project_id": ctx.project_id})
    name = check_name(body.get("name", body.get("display_name")))
    description = check_name(body.get("description", body.get("display_description")),
                             "description")
    metadata = check_metadata(body.get("metadata"))
    snapshot_id = body.get("snapshot_id")
    source_volid = body.get("source_volid")
    image_ref = body.get("imageRef", body.get("image_id"))
    if body.get("backup_id"):  # 3.47: an empty volume the backup is then restored into
        from pocketstack.services.volume import backups

        return backups.create_volume_from_backup(svc, ctx, body)
    sources = [x for x in (snapshot_id, source_volid, image_ref) if x]
    if len(sources) > 1:
        raise BadRequest("Invalid input received: only one of snapshot_id, source_volid and "
                         "imageRef may be given.")
    size = parse_size(body.get("size"), required=not (snapshot_id or source_volid))
    multiattach = parse_bool(body.get("multiattach", False), "multiattach")
    az = body.get("availability_zone") or svc.az
    if az != svc.az:
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")

    image: dict[str, Any] | None = None
    if image_ref:
        image = _image(svc, ctx, str(image_ref))
        image_gb = max(1, math.ceil((image.get("size") or 0) / GiB))
        min_disk = int(image.get("min_disk") or 0)
        if size is None:
            size = max(image_gb, min_disk, 1)
        if size < image_gb:
            raise BadRequest(f"Invalid input received: Size of specified image {image_gb}GB "
                             f"is larger than volume size {size}GB.")
        if size < min_disk:
            raise BadRequest(f"Invalid input received: Volume size {size}GB cannot be smaller "
                             f"than the image minDisk size {min_disk}GB.")

    with svc.db.write() as s:
        vtype = types.resolve_for_create(s, ctx, body.get("volume_type"))
        bootable, image_meta = False, {}
        task: dict[str, Any] = {"kind": "empty"}
        if snapshot_id:
            snap = s.get(Snapshot, snapshot_id) if is_uuid(snapshot_id) else None
            if snap is None or not (ctx.is_admin or snap.project_id == ctx.project_id):
                raise NotFound(f"Snapshot {snapshot_id} could not be found.",
                               kind="SnapshotNotFound")
            if snap.status != "available":
                raise BadRequest(f"Invalid snapshot: Originating snapshot status must be "
                                 f"one of 'available' values (it is {snap.status}).")
            size = snap.size if size is None else size
            if size < snap.size:
                raise BadRequest(f"Invalid input received: Volume size '{size}'GB cannot be "
                                 f"smaller than the snapshot size {snap.size}GB. They must "
                                 "be >= original snapshot size.")
            origin = s.get(Volume, snap.volume_id)
            if origin is not None:
                bootable, image_meta = origin.bootable, dict(origin.image_metadata)
                if body.get("volume_type") is None:
                    vtype = types.get_row(s, origin.volume_type_id) or vtype
            task = {"kind": "snapshot", "snapshot_id": snap.id, "source": snap.volume_id}
        elif source_volid:
            src = s.get(Volume, source_volid) if is_uuid(source_volid) else None
            if src is None or not (ctx.is_admin or src.project_id == ctx.project_id):
                raise NotFound(f"Volume {source_volid} could not be found.",
                               kind="VolumeNotFound")
            if src.status not in ("available", "in-use"):
                raise BadRequest("Invalid volume: Unable to clone volumes that are in "
                                 f"{src.status} status.")
            size = src.size if size is None else size
            if size < src.size:
                raise BadRequest(f"Invalid input received: Clones currently must be >= "
                                 f"original volume size ({size} < {src.size}).")
            bootable, image_meta = src.bootable, dict(src.image_metadata)
            if body.get("volume_type") is None:
                vtype = types.get_row(s, src.volume_type_id) or vtype
            task = {"kind": "clone", "source": src.id}
        elif image is not None:
            bootable = True
            image_meta = _image_metadata(image)
            task = {"kind": "image", "image_id": image["id"],
                    "disk_format": image.get("disk_format") or "raw"}
        assert size is not None
        group_id = None
        if body.get("group_id"):  # 3.13: a member of a generic volume group
            from pocketstack.services.volume import groups

            group_id = groups.check_volume_group(s, ctx, body["group_id"], vtype)
        quotas.check(s, ctx.project_id or "", volumes=1, gigabytes=size,
                     type_name=vtype.name if vtype else None, size=size)
        from pocketstack.services.volume import scheduling

        placed = scheduling.backend_passes(svc, vtype.extra_specs if vtype else {})
        vol = Volume(project_id=ctx.project_id, user_id=ctx.user_id or "", name=name,
                     description=description, size=size,
                     status="creating" if placed else "error", task=task if placed else None,
                     availability_zone=az, volume_type_id=vtype.id if vtype else None,
                     snapshot_id=snapshot_id or None, source_volid=source_volid or None,
                     image_id=image["id"] if image else None, bootable=bootable,
                     multiattach=multiattach, metadata_=metadata, image_metadata=image_meta,
                     host=svc.pool_host, group_id=group_id)
        s.add(vol)
        s.flush()
        volume_id = vol.id
        vol.attachments  # noqa: B018 - load before the session closes (rendered later)
        if not placed:  # Cinder's scheduler: no valid backend -> error + user message
            vol.error = scheduling.NO_VALID_BACKEND
            scheduling.record_failure(s, vol.project_id, ctx.request_id, volume_id)
    if placed:
        svc.submit("volume", volume_id, run_create, svc, volume_id)
    return vol


def _image(svc, ctx: RequestContext, image_id: str) -> dict[str, Any]:  # noqa: ANN001
    images = svc.cloud.services.get("image")
    if images is None:
        raise BadRequest("Invalid input received: no image service in this cloud to create "
                         "a volume from an image.")
    try:
        image = images.get_image(ctx, image_id)
    except NotFound:
        raise NotFound(f"Image {image_id} could not be found.", kind="ImageNotFound") from None
    if image.get("status") != "active":
        raise BadRequest(f"Invalid input received: Image {image_id} is not active.")
    return image


GLANCE_CORE = {"id", "name", "status", "visibility", "protected", "checksum", "os_hash_algo",
               "os_hash_value", "owner", "size", "min_ram", "min_disk", "disk_format",
               "container_format", "created_at", "updated_at", "tags", "self", "file",
               "schema", "virtual_size", "os_hidden", "locations", "direct_url", "stores"}


def _image_metadata(image: dict[str, Any]) -> dict[str, str]:
    meta = {"image_id": image["id"], "image_name": image.get("name") or "",
            "checksum": image.get("checksum") or "",
            "container_format": image.get("container_format") or "",
            "disk_format": image.get("disk_format") or "",
            "min_disk": str(image.get("min_disk") or 0), "min_ram": str(image.get("min_ram") or 0),
            "size": str(image.get("size") or 0)}
    for k, v in image.items():  # Glance v2 puts custom properties at the top level
        if k not in GLANCE_CORE and v is not None and not isinstance(v, (dict, list)):
            meta.setdefault(k, str(v))
    return meta


def _finish(svc, volume_id: str, status: str, error: str | None = None, **fields: Any) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id)
        if vol is None:
            return
        vol.status = status
        vol.task = None
        vol.error = error
        for k, v in fields.items():
            setattr(vol, k, v)


def run_create(svc, volume_id: str) -> None:  # noqa: ANN001
    """Worker: make the volume's bytes; status -> available, or error with the reason."""
    with svc.db.read() as s:
        vol = s.get(Volume, volume_id)
        if vol is None or vol.status not in ("creating", "downloading"):
            return
        task, size = dict(vol.task or {"kind": "empty"}), vol.size
    drv = svc.driver
    try:
        kind = task.get("kind")
        if kind == "image":
            images = svc.cloud.services.get("image")
            if images is None:
                raise VolumeDriverError("the image service is not available")
            _finish_status(svc, volume_id, "downloading")
            path = Path(images.image_path(task["image_id"]))
            drv.create_volume_from_image(volume_id, size, path, task.get("disk_format", "raw"))
        elif kind == "snapshot":
            drv.create_volume_from_snapshot(volume_id, size, task["snapshot_id"], task["source"])
        elif kind == "clone":
            drv.clone_volume(volume_id, size, task["source"])
        else:
            drv.create_volume(volume_id, size)
    except (VolumeDriverError, OSError, KeyError) as exc:
        log.warning("creating volume %s failed: %s", volume_id, exc)
        _finish(svc, volume_id, "error", str(exc))
        return
    _finish(svc, volume_id, "available", launched_at=utcnow())


def _finish_status(svc, volume_id: str, status: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id)
        if vol is not None:
            vol.status = status


# -- update / delete ----------------------------------------------------------------------
def update(svc, ctx: RequestContext, volume_id: str, body: Any) -> Volume:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute volume: must be an object")
    allowed = {"name", "description", "display_name", "display_description", "metadata"}
    bad = set(body) - allowed
    if bad:
        raise BadRequest(f"Invalid input for field/attribute volume. Additional properties "
                         f"are not allowed ({', '.join(sorted(bad))} unexpected)")
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update")
        if "name" in body or "display_name" in body:
            vol.name = check_name(body.get("name", body.get("display_name")))
        if "description" in body or "display_description" in body:
            vol.description = check_name(body.get("description",
                                                  body.get("display_description")),
                                         "description")
        if "metadata" in body:
            vol.metadata_ = check_metadata(body["metadata"])
        vol.updated_at = utcnow()
        s.flush()
        return vol


def delete(svc, ctx: RequestContext, volume_id: str, *, cascade: bool = False,  # noqa: ANN001
           force: bool = False) -> None:
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="force_delete" if force else "delete")
        if not force:
            if vol.status not in ("available", "error", "error_restoring", "error_extending",
                                  "error_managing"):
                raise BadRequest(f"Invalid volume: Volume status must be available or error "
                                 f"or error_restoring or error_extending or error_managing "
                                 f"and must not be migrating, attached, belong to a group, "
                                 f"have snapshots, awaiting a transfer, or be disassociated "
                                 f"from snapshots after volume transfer. (status: {vol.status})")
            if any(a.attach_status != "detached" for a in vol.attachments):
                raise BadRequest("Invalid volume: Volume cannot be deleted while in attached "
                                 "state.")
        snaps = list(s.scalars(select(Snapshot).where(Snapshot.volume_id == vol.id)))
        if snaps and not cascade:
            raise BadRequest("Invalid volume: Volume has snapshots; delete them first or use "
                             "cascade=True.")
        for snap in snaps:
            if snap.status not in ("available", "error") and not force:
                raise BadRequest(f"Invalid volume: snapshot {snap.id} is {snap.status}.")
            snap.status = "deleting"
        vol.status = "deleting"
        vol.task = {"kind": "delete", "snapshots": [x.id for x in snaps]}
    svc.submit("volume", volume_id, run_delete, svc, volume_id)


def run_delete(svc, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        vol = s.get(Volume, volume_id)
        if vol is None:
            return
        snap_ids = list(s.scalars(select(Snapshot.id).where(Snapshot.volume_id == volume_id)))
    try:
        for snap_id in snap_ids:
            svc.driver.delete_snapshot(snap_id, volume_id)
        svc.driver.unexport(volume_id)
        svc.driver.delete_volume(volume_id)
    except (VolumeDriverError, OSError) as exc:
        log.warning("deleting volume %s failed: %s", volume_id, exc)
        _finish(svc, volume_id, "error_deleting", str(exc))
        return
    with svc.db.write() as s:
        for snap in s.scalars(select(Snapshot).where(Snapshot.volume_id == volume_id)):
            s.delete(snap)
        vol = s.get(Volume, volume_id)
        if vol is not None:
            s.delete(vol)


# -- metadata ---------------------------------------------------------------------------------
def metadata(svc, ctx: RequestContext, volume_id: str) -> dict[str, str]:  # noqa: ANN001
    with svc.db.read() as s:
        return dict(load(s, ctx, volume_id, action="get_volume_metadata").metadata_)


def set_metadata(svc, ctx: RequestContext, volume_id: str, values: Any,  # noqa: ANN001
                 *, replace: bool) -> dict[str, str]:
    meta = check_metadata(values)
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update_volume_metadata")
        if vol.status == "maintenance":
            raise BadRequest("Invalid volume: volume is in maintenance.")
        merged = {} if replace else dict(vol.metadata_)
        merged.update(meta)
        vol.metadata_ = merged
        return merged


def delete_metadata_key(svc, ctx: RequestContext, volume_id: str, key: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="delete_volume_metadata")
        if key not in vol.metadata_:
            raise NotFound(f"Volume {volume_id} has no metadata with key {key}.",
                           kind="MetadataNotFound")
        meta = dict(vol.metadata_)
        meta.pop(key)
        vol.metadata_ = meta


def internal_view(svc, vol: Volume) -> dict[str, Any]:  # noqa: ANN001
    return {"id": vol.id, "name": vol.name, "size": vol.size, "status": vol.status,
            "project_id": vol.project_id, "bootable": vol.bootable,
            "multiattach": vol.multiattach, "readonly": vol.readonly,
            "availability_zone": vol.availability_zone, "image_id": vol.image_id,
            "image_metadata": dict(vol.image_metadata), "error": vol.error,
            "attachments": [{"id": a.id, "server_id": a.instance_uuid,
                             "device": a.mountpoint, "device_path": a.device_path,
                             "status": a.attach_status} for a in vol.attachments]}
