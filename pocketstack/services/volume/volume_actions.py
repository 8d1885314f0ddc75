"""Volume actions: the ``POST /volumes/{id}/action`` operations that change an existing
volume (extend and its worker, bootable and readonly flags, reset-status, image metadata,
revert to snapshot, retype, upload to image). They live apart from ``volumes`` (create,
list, update, delete and their workers) because each action is a self-contained state
change on a volume that already exists; they share only ``load()`` and the ``_finish``
helpers, which they import from ``volumes``, so the dependency runs one way."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.volume.base import VolumeDriverError
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.volume import quotas, types
from pocketstack.services.volume.common import (check_metadata, is_uuid, parse_bool,
                                                parse_size)
from pocketstack.services.volume.models import Snapshot, Volume
from pocketstack.services.volume.volumes import STATUSES, _finish, _finish_status, load

log = logging.getLogger("pocketstack.volume")


# -- actions ------------------------------------------------------------------------------
def extend(svc, ctx: RequestContext, volume_id: str, new_size: Any,  # noqa: ANN001
           online: bool = True) -> None:
    """``online``: the request's microversion allows extending an in-use volume (3.42)."""
    size = parse_size(new_size, "new_size")
    assert size is not None
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="extend")
        attached = vol.status == "in-use" and online
        if vol.status != "available" and not attached:
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be available "
                             f"or in-use to extend, but current status is: {vol.status}.")
        if size <= vol.size:
            raise BadRequest(f"Invalid input received: New size for extend must be greater "
                             f"than current size. (current: {vol.size}, extended: {size}).")
        vtype = types.get_row(s, vol.volume_type_id)
        quotas.check(s, vol.project_id, gigabytes=size - vol.size,
                     type_name=vtype.name if vtype else None, size=size)
        vol.task = {"kind": "extend", "new_size": size, "previous": vol.status}
        vol.status = "extending"
    svc.submit("volume", volume_id, run_extend, svc, volume_id)


def run_extend(svc, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        vol = s.get(Volume, volume_id)
        if vol is None or vol.status != "extending":
            return
        task = dict(vol.task or {})
        live = any(a.attach_status == "attached" for a in vol.attachments)
        servers = [a.instance_uuid for a in vol.attachments
                   if a.attach_status == "attached" and a.instance_uuid]
    new_size = int(task.get("new_size", 0))
    back = "in-use" if live else "available"
    try:
        svc.driver.extend_volume(volume_id, new_size)
    except (VolumeDriverError, OSError) as exc:
        _finish(svc, volume_id, "error_extending", str(exc))
        return
    _finish(svc, volume_id, back, size=new_size)
    for server_id in servers:  # Nova's "volume-extended" external event
        for listener in list(svc.extend_listeners):
            try:
                listener(server_id, volume_id, new_size)
            except Exception:  # noqa: BLE001 - the extend itself succeeded
                log.exception("volume-extended event for server %s failed", server_id)


def set_bootable(svc, ctx: RequestContext, volume_id: str, value: Any) -> None:  # noqa: ANN001
    flag = parse_bool(value, "bootable")
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update")
        vol.bootable = flag
        vol.updated_at = utcnow()


def update_readonly(svc, ctx: RequestContext, volume_id: str, value: Any) -> None:  # noqa: ANN001
    flag = parse_bool(value, "readonly")
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update_readonly_flag")
        if vol.status != "available":
            raise BadRequest(f"Invalid volume: Volume status must be available to update "
                             f"readonly flag (status: {vol.status}).")
        vol.readonly = flag
        vol.metadata_ = dict(vol.metadata_)  # admin metadata is rendered from the flag
        vol.updated_at = utcnow()


def reset_status(svc, ctx: RequestContext, volume_id: str, body: Any) -> None:  # noqa: ANN001
    if not isinstance(body, dict) or not body:
        raise BadRequest("Must specify 'status', 'attach_status' or 'migration_status' for "
                         "update.")
    status = body.get("status")
    attach_status = body.get("attach_status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"Must specify a valid status (got {status}).")
    if attach_status is not None and attach_status not in ("attached", "detached"):
        raise BadRequest(f"Must specify a valid attach status (got {attach_status}).")
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="reset_status")
        if status:
            vol.status = status
            vol.task = None
        if attach_status == "detached":
            for att in list(vol.attachments):
                s.delete(att)
        if "migration_status" in body:
            vol.migration_status = body["migration_status"] or None
        vol.updated_at = utcnow()


def set_image_metadata(svc, ctx: RequestContext, volume_id: str, metadata: Any) -> dict:  # noqa: ANN001
    meta = check_metadata(metadata)
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update_volume_metadata")
        merged = dict(vol.image_metadata)
        merged.update(meta)
        vol.image_metadata = merged
        return merged


def unset_image_metadata(svc, ctx: RequestContext, volume_id: str, key: Any) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="update_volume_metadata")
        if key not in vol.image_metadata:
            raise NotFound(f"Glance metadata for volume {volume_id} with key {key} could not "
                           "be found.", kind="GlanceMetadataNotFound")
        meta = dict(vol.image_metadata)
        meta.pop(key)
        vol.image_metadata = meta


def revert(svc, ctx: RequestContext, volume_id: str, snapshot_id: Any) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="revert_to_snapshot")
        snap = s.get(Snapshot, snapshot_id) if is_uuid(snapshot_id) else None
        if snap is None or snap.volume_id != vol.id:
            raise BadRequest(f"Invalid snapshot: snapshot {snapshot_id} is not a snapshot of "
                             f"volume {volume_id}.")
        latest = s.scalars(select(Snapshot).where(Snapshot.volume_id == vol.id)
                           .order_by(Snapshot.created_at.desc())).first()
        if latest is not None and latest.id != snap.id:
            raise BadRequest("Invalid snapshot: only the latest snapshot can be reverted to.")
        if vol.status != "available" or snap.status != "available":
            raise Conflict("Volume and snapshot must be available to revert.")
        if vol.size != snap.size:
            raise BadRequest("Invalid volume: volume size differs from the snapshot size.")
        vol.status = "reverting"
        snap.status = "restoring"
    try:
        svc.driver.revert_to_snapshot(volume_id, snapshot_id)
        status, err = "available", None
    except (VolumeDriverError, OSError) as exc:
        status, err = "error", str(exc)
    with svc.db.write() as s:
        vol = s.get(Volume, volume_id)
        snap = s.get(Snapshot, snapshot_id)
        if vol is not None:
            vol.status, vol.error = status, err
        if snap is not None:
            snap.status = "available"


def retype(svc, ctx: RequestContext, volume_id: str, body: Any) -> None:  # noqa: ANN001
    if not isinstance(body, dict) or not body.get("new_type"):
        raise BadRequest("New volume type must be specified.")
    policy_name = body.get("migration_policy") or "never"
    if policy_name not in ("never", "on-demand"):
        raise BadRequest(f"Invalid migration policy {policy_name}.")
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="retype")
        vtype = types.find(s, ctx, body["new_type"])
        if vol.status not in ("available", "in-use"):
            raise BadRequest(f"Invalid volume: Volume status must be available or in-use "
                             f"(status: {vol.status}).")
        if vtype.id == vol.volume_type_id:
            raise BadRequest("Invalid input received: Retype requested to the same type.")
        quotas.check(s, vol.project_id, volumes=1, gigabytes=vol.size, type_name=vtype.name)
        # One backend: every type maps to it, so a retype is a metadata change (Cinder's
        # "driver retype" path), done at once.
        vol.volume_type_id = vtype.id
        vol.updated_at = utcnow()


def upload_to_image(svc, ctx: RequestContext, volume_id: str, body: Any) -> dict[str, Any]:  # noqa: ANN001
    images = svc.cloud.services.get("image")
    if images is None or not hasattr(images, "create_image_from_file"):
        raise BadRequest("Invalid input received: no image service in this cloud to upload "
                         "the volume to.")
    if not isinstance(body, dict):
        body = {}
    force = parse_bool(body.get("force", False), "force")
    disk_format = body.get("disk_format") or "raw"
    container_format = body.get("container_format") or "bare"
    if disk_format not in ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx", "ploop"):
        raise BadRequest(f"Invalid disk-format '{disk_format}' is specified.")
    image_name = body.get("image_name") or f"volume-{volume_id}"
    with svc.db.write() as s:
        vol = load(s, ctx, volume_id, action="copy_volume_to_image")
        if vol.status not in ("available",) and not (force and vol.status == "in-use"):
            raise BadRequest(f"Invalid volume: Volume {volume_id} status must be available "
                             f"or in-use with force, but current status is: {vol.status}.")
        previous = vol.status
        vol.status = "uploading"
        vtype = types.get_row(s, vol.volume_type_id)
        size = vol.size
        props = {k: v for k, v in vol.image_metadata.items()
                 if k not in ("image_id", "image_name", "checksum", "container_format",
                              "disk_format", "min_disk", "min_ram", "size")}
    try:
        image = images.create_image_placeholder(
            ctx, name=image_name, disk_format=disk_format, container_format=container_format,
            visibility=body.get("visibility") or "private",
            protected=parse_bool(body.get("protected", False), "protected"),
            properties=props) if hasattr(images, "create_image_placeholder") else None
    except Exception:
        _finish_status(svc, volume_id, previous)
        raise

    result: dict[str, Any] = {}

    def work() -> None:
        tmp = svc.settings.data_dir / "volume-uploads" / f"{volume_id}.{disk_format}"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            svc.driver.copy_volume_to_file(volume_id, tmp, disk_format)
            kwargs: dict[str, Any] = {"name": image_name, "disk_format": disk_format,
                                      "container_format": container_format,
                                      "properties": props}
            if image is not None:
                kwargs["image_id"] = image["id"]
            made = images.create_image_from_file(ctx, path=tmp, move=True, **kwargs)
            result.update(made if isinstance(made, dict) else {"id": made})
        finally:
            tmp.unlink(missing_ok=True)
            _finish_status(svc, volume_id, previous)

    if image is None:
        # The image service has no placeholder call: upload now to learn the image id.
        try:
            work()
        except (VolumeDriverError, OSError) as exc:
            raise BadRequest(f"Uploading the volume to an image failed: {exc}") from None
        image = result
    else:
        def background() -> None:
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - the image stays queued; logged
                log.warning("upload of volume %s to image failed: %s", volume_id, exc)

        svc.submit("upload", volume_id, background)
    return {"id": volume_id, "updated_at": None, "status": "uploading",
            "display_description": None, "size": size,
            "volume_type": vtype_view(vtype), "image_id": image["id"],
            "container_format": container_format, "disk_format": disk_format,
            "image_name": image_name}


def vtype_view(vtype) -> dict[str, Any] | None:  # noqa: ANN001
    if vtype is None:
        return None
    return {"id": vtype.id, "name": vtype.name, "description": vtype.description,
            "is_public": vtype.is_public, "extra_specs": vtype.extra_specs, "deleted": False,
            "created_at": None, "updated_at": None, "deleted_at": None, "qos_specs_id": None}
