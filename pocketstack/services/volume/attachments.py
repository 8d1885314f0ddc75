"""Attachments: the 3.27+ attachments API, the legacy os-* attach actions, and the calls
compute makes to attach a volume to a server for real.

The host side of an attachment is an *export* (driver.export: a loop device for the file
backend, the LV node for lvm). An export is shared by every attachment of the volume on
this host and released when the last one goes (``_release``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.volume.base import VolumeDriverError
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.volume import volumes
from pocketstack.services.volume.common import is_uuid
from pocketstack.services.volume.models import Volume, VolumeAttachment

log = logging.getLogger("pocketstack.volume")


def not_found(attachment_id: str) -> NotFound:
    return NotFound(f"Volume attachment could not be found with filter: attachment_id = "
                    f"{attachment_id}.", kind="VolumeAttachmentNotFound")


def _load(s: Session, ctx: RequestContext, attachment_id: str) -> VolumeAttachment:
    att = s.get(VolumeAttachment, attachment_id) if is_uuid(attachment_id) else None
    if att is None or not (ctx.is_admin or att.volume.project_id == ctx.project_id):
        raise not_found(attachment_id)
    return att


def _attachable(vol: Volume, instance_uuid: str | None) -> None:
    live = [a for a in vol.attachments if a.attach_status != "detached"]
    if vol.status == "available" or (vol.status in ("in-use", "reserved", "attaching")
                                     and vol.multiattach):
        if instance_uuid and any(a.instance_uuid == instance_uuid for a in live):
            raise BadRequest(f"Invalid volume: volume {vol.id} is already attached to server "
                             f"{instance_uuid}.")
        return
    raise BadRequest(f"Invalid volume: Volume {vol.id} status must be available or "
                     f"downloading to reserve, but the current status is {vol.status}.")


def _release(svc, volume_id: str) -> None:  # noqa: ANN001
    """Unexport the volume unless a live attachment still uses the export."""
    with svc.db.read() as s:
        busy = s.scalar(select(VolumeAttachment.id).where(
            VolumeAttachment.volume_id == volume_id,
            VolumeAttachment.device_path.is_not(None),
            VolumeAttachment.attach_status.in_(("attaching", "attached", "detaching")))
            .limit(1))
    if busy is None:
        svc.driver.unexport(volume_id)


def _settle(vol: Volume) -> None:
    """Volume status from its attachments (after one was added or removed)."""
    states = [a.attach_status for a in vol.attachments]
    if "attached" in states:
        vol.status = "in-use"
    elif "attaching" in states:
        vol.status = "attaching"
    elif "reserved" in states:
        vol.status = "reserved"
    else:
        vol.status = "available"
    vol.updated_at = utcnow()


def connection_info(device: str | None, mode: str) -> dict[str, Any] | None:
    if device is None:
        return None
    return {"driver_volume_type": "local", "data": {"device_path": device,
                                                     "access_mode": mode}}


def _export(svc, volume_id: str, readonly: bool) -> str:  # noqa: ANN001
    try:
        return svc.driver.export(volume_id, readonly=readonly)
    except VolumeDriverError as exc:
        raise BadRequest(f"Unable to export volume {volume_id}: {exc}",
                         kind="VolumeBackendAPIException") from None


# -- attachments API (3.27+) ----------------------------------------------------------------
def create(svc, ctx: RequestContext, volume_id: Any, instance_uuid: Any,  # noqa: ANN001
           connector: Any = None, mode: str | None = None,
           info: dict[str, Any] | None = None) -> VolumeAttachment:
    """A new attachment; with a connector the volume is exported at once. ``info`` is
    stored as the connector of a reservation (compute keeps its mapping there)."""
    if not volume_id:
        raise BadRequest("Invalid input for field/attribute volume_uuid: is a required "
                         "property")
    if connector is not None and not isinstance(connector, dict):
        raise BadRequest("Invalid input for field/attribute connector: must be an object")
    if mode not in (None, "rw", "ro"):
        raise BadRequest(f"Invalid attach mode {mode}; use rw or ro.")
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, str(volume_id), action="attachment_create")
        _attachable(vol, instance_uuid)
        att_mode = "ro" if vol.readonly else (mode or "rw")
        if vol.readonly and mode == "rw":
            raise BadRequest("Invalid volume: Cannot attach a read-only volume in rw mode.")
        att = VolumeAttachment(volume_id=vol.id, instance_uuid=instance_uuid or None,
                               attach_status="attaching" if connector else "reserved",
                               attach_mode=att_mode, connector=connector or info,
                               attached_host=(connector or {}).get("host"),
                               mountpoint=(connector or {}).get("mountpoint"))
        vol.attachments.append(att)
        _settle(vol)
        s.flush()
        attachment_id = att.id
    if connector:
        update(svc, ctx, attachment_id, connector)
    with svc.db.read() as s:
        return s.get(VolumeAttachment, attachment_id)


def update(svc, ctx: RequestContext, attachment_id: str, connector: Any) -> VolumeAttachment:  # noqa: ANN001
    if not isinstance(connector, dict):
        raise BadRequest("Invalid input for field/attribute connector: is a required property")
    with svc.db.write() as s:
        att = _load(s, ctx, attachment_id)
        policy.enforce(ctx, "volume:attachment_update", {"project_id": att.volume.project_id})
        if att.attach_status not in ("reserved", "attaching", "attached"):
            raise BadRequest(f"Invalid attachment status {att.attach_status}.")
        volume_id, readonly = att.volume_id, att.attach_mode == "ro"
    device = _export(svc, volume_id, readonly)
    with svc.db.write() as s:
        att = s.get(VolumeAttachment, attachment_id)
        if att is None:
            _release(svc, volume_id)
            raise not_found(attachment_id)
        att.connector = connector
        att.attached_host = connector.get("host")
        att.mountpoint = connector.get("mountpoint") or att.mountpoint
        att.device_path = device
        if att.attach_status == "reserved":
            att.attach_status = "attaching"
        _settle(att.volume)
        s.flush()
        return att


def complete(svc, ctx: RequestContext, attachment_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        att = _load(s, ctx, attachment_id)
        policy.enforce(ctx, "volume:attachment_complete", {"project_id": att.volume.project_id})
        att.attach_status = "attached"
        att.attach_time = att.attach_time or utcnow()
        _settle(att.volume)


def _nova_uses(svc, att: VolumeAttachment) -> None:  # noqa: ANN001
    """Cinder's fix for OSSA-2023-003 (bug #2004555): a user may not delete, detach or
    terminate the connection of an attachment a server still uses — the volume would stay
    connected to the compute host while Cinder hands it to someone else. Only Nova (here:
    compute's own calls, which do not come through these functions) may."""
    # Nova's own attachments keep its block device mapping in the connector ("nova"); one
    # made through Cinder alone (os-attach with a server's id) is not Nova's: it may go.
    if att.instance_uuid is None or "nova" not in (att.connector or {}):
        return
    compute = svc.cloud.services.get("compute")
    if compute is not None and compute.server_exists(att.instance_uuid):
        raise Conflict(f"Detach volume from instance {att.instance_uuid} using the Compute "
                       "API", kind="ConflictNovaUsingAttachment")


def delete(svc, ctx: RequestContext, attachment_id: str) -> str:  # noqa: ANN001
    with svc.db.write() as s:
        att = _load(s, ctx, attachment_id)
        policy.enforce(ctx, "volume:attachment_delete", {"project_id": att.volume.project_id})
        _nova_uses(svc, att)
        vol = att.volume
        vol.attachments.remove(att)
        s.delete(att)
        s.flush()
        _settle(vol)
        volume_id = vol.id
        status = vol.status
    _release(svc, volume_id)
    return status


def list_attachments(svc, ctx: RequestContext, query: Any) -> list[VolumeAttachment]:  # noqa: ANN001
    policy.enforce(ctx, "volume:attachment_get_all", {"project_id": ctx.project_id})
    stmt = select(VolumeAttachment).join(Volume).order_by(VolumeAttachment.created_at.desc(),
                                                          VolumeAttachment.id.desc())
    all_tenants = ctx.is_admin and str(query.get("all_tenants", "")).lower() in ("1", "true")
    if not all_tenants:
        stmt = stmt.where(Volume.project_id == ctx.project_id)
    if query.get("volume_id"):
        stmt = stmt.where(VolumeAttachment.volume_id == query["volume_id"])
    if query.get("instance_id"):
        stmt = stmt.where(VolumeAttachment.instance_uuid == query["instance_id"])
    if query.get("status"):
        stmt = stmt.where(VolumeAttachment.attach_status == query["status"])
    with svc.db.read() as s:
        return list(s.scalars(stmt))


def show(svc, ctx: RequestContext, attachment_id: str) -> VolumeAttachment:  # noqa: ANN001
    with svc.db.read() as s:
        att = _load(s, ctx, attachment_id)
        policy.enforce(ctx, "volume:attachment_get", {"project_id": att.volume.project_id})
        return att


# -- legacy os-* actions --------------------------------------------------------------------
def reserve(svc, ctx: RequestContext, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="reserve_volume")
        if vol.status != "available" and not (vol.multiattach and vol.status == "in-use"):
            raise BadRequest(f"Invalid volume: Volume status must be available to reserve, "
                             f"but the status is {vol.status}.")
        vol.status = "attaching"


def unreserve(svc, ctx: RequestContext, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="unreserve_volume")
        if vol.status == "attaching":
            _settle(vol)


def initialize_connection(svc, ctx: RequestContext, volume_id: str, connector: Any) -> dict:  # noqa: ANN001
    if not isinstance(connector, dict):
        raise BadRequest("Must specify 'connector'")
    with svc.db.read() as s:
        vol = volumes.load(s, ctx, volume_id, action="initialize_connection")
        readonly = vol.readonly
    device = _export(svc, volume_id, readonly)
    return connection_info(device, "ro" if readonly else "rw") or {}


def terminate_connection(svc, ctx: RequestContext, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.read() as s:
        vol = volumes.load(s, ctx, volume_id, action="terminate_connection")
        for att in vol.attachments:
            _nova_uses(svc, att)
    _release(svc, volume_id)


def legacy_attach(svc, ctx: RequestContext, volume_id: str, body: Any) -> None:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid request to attach volume.")
    instance_uuid = body.get("instance_uuid")
    host_name = body.get("host_name")
    if not instance_uuid and not host_name:
        raise BadRequest("Invalid request to attach volume to an invalid target")
    if instance_uuid and not is_uuid(instance_uuid):
        raise BadRequest("Invalid request to attach volume with an invalid instance_uuid.")
    mode = body.get("mode", "rw")
    if mode not in ("rw", "ro"):
        raise BadRequest("Invalid request to attach volume with an invalid mode. Attaching "
                         "mode should be 'rw' or 'ro'")
    if not body.get("mountpoint"):
        raise BadRequest("Must specify 'mountpoint'")
    exported = svc.driver.exports().get(volume_id)
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="attach")
        if vol.status not in ("available", "attaching", "reserved") and not (
                vol.multiattach and vol.status == "in-use"):
            raise BadRequest(f"Invalid volume: Volume status must be available or attaching "
                             f"(is {vol.status}).")
        if vol.readonly and mode == "rw":
            raise BadRequest("Invalid volume: Cannot attach a read-only volume in rw mode.",
                             kind="InvalidVolumeAttachMode")
        att = VolumeAttachment(volume_id=vol.id, instance_uuid=instance_uuid,
                               attached_host=host_name, mountpoint=body["mountpoint"],
                               attach_status="attached", attach_mode=mode,
                               device_path=exported, attach_time=utcnow())
        vol.attachments.append(att)
        _settle(vol)


def legacy_detach(svc, ctx: RequestContext, volume_id: str, body: Any) -> None:  # noqa: ANN001
    attachment_id = body.get("attachment_id") if isinstance(body, dict) else None
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="detach")
        live = [a for a in vol.attachments if a.attach_status != "detached"]
        if attachment_id:
            live = [a for a in live if a.id == attachment_id]
            other = None if live else s.get(VolumeAttachment, attachment_id)
            if other is not None and other.volume.project_id == vol.project_id:
                # another volume's attachment: Cinder's InvalidVolume (Tempest's detach
                # rules scenario expects the mismatch refused with 400, not found)
                raise BadRequest(f"Invalid volume: attachment {attachment_id} is not an "
                                 f"attachment of volume {volume_id}.")
            if not live:
                raise NotFound(f"Volume attachment {attachment_id} could not be found.",
                               kind="VolumeAttachmentNotFound")
        elif len(live) > 1:
            raise BadRequest("Invalid volume: Volume has several attachments; specify "
                             "attachment_id.")
        # nothing attached: detaching is already done (idempotent, as clients retry)
        for att in live:
            _nova_uses(svc, att)
        for att in live:
            vol.attachments.remove(att)
            s.delete(att)
        s.flush()
        _settle(vol)
    _release(svc, volume_id)


def begin_detaching(svc, ctx: RequestContext, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="begin_detaching")
        if vol.status != "in-use":
            raise BadRequest(f"Invalid volume: Unable to detach volume. Volume status must "
                             f"be 'in-use' (is {vol.status}).")
        vol.status = "detaching"


def roll_detaching(svc, ctx: RequestContext, volume_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="roll_detaching")
        if vol.status == "detaching":
            _settle(vol)


def force_detach(svc, ctx: RequestContext, volume_id: str, body: Any) -> None:  # noqa: ANN001
    attachment_id = body.get("attachment_id") if isinstance(body, dict) else None
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="force_detach")
        for att in list(vol.attachments):
            if attachment_id is None or att.id == attachment_id:
                _nova_uses(svc, att)
        for att in list(vol.attachments):
            if attachment_id is None or att.id == attachment_id:
                vol.attachments.remove(att)
                s.delete(att)
        s.flush()
        _settle(vol)
    _release(svc, volume_id)


# -- compute's calls ------------------------------------------------------------------------
def attach_for_server(svc, ctx: RequestContext, volume_id: str, server_id: str,  # noqa: ANN001
                      mountpoint: str | None, host: str | None, mode: str,
                      attachment_id: str | None,
                      connector: dict[str, Any] | None = None) -> dict[str, Any]:
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="attach")
        att = None
        if attachment_id:
            att = next((a for a in vol.attachments if a.id == attachment_id), None)
            if att is None:
                raise not_found(attachment_id)
        else:
            _attachable(vol, server_id)
            att = VolumeAttachment(volume_id=vol.id, instance_uuid=server_id,
                                   attach_status="reserved")
            vol.attachments.append(att)
        att.attach_status = "attaching"
        att.attach_mode = "ro" if vol.readonly else mode
        att.mountpoint = mountpoint
        att.attached_host = host
        if connector is not None:
            att.connector = connector
        _settle(vol)
        s.flush()
        attachment_id, readonly = att.id, att.attach_mode == "ro"
    try:
        device = svc.driver.export(volume_id, readonly=readonly)
    except Exception as exc:
        with svc.db.write() as s:
            att = s.get(VolumeAttachment, attachment_id)
            if att is not None:
                vol = att.volume
                vol.attachments.remove(att)
                s.delete(att)
                s.flush()
                _settle(vol)
        _release(svc, volume_id)
        raise Conflict(f"Unable to attach volume {volume_id}: {exc}") from None
    with svc.db.write() as s:
        att = s.get(VolumeAttachment, attachment_id)
        if att is None:
            _release(svc, volume_id)
            raise not_found(attachment_id)
        att.device_path = device
        att.attach_status = "attached"
        att.attach_time = utcnow()
        _settle(att.volume)
    return {"attachment_id": attachment_id, "device_path": device, "mountpoint": mountpoint,
            "volume_id": volume_id}


def detach_for_server(svc, ctx: RequestContext, volume_id: str,  # noqa: ANN001
                      attachment_id: str | None, server_id: str | None) -> None:
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, volume_id, action="detach")
        for att in list(vol.attachments):
            if attachment_id and att.id != attachment_id:
                continue
            if server_id and att.instance_uuid != server_id:
                continue
            vol.attachments.remove(att)
            s.delete(att)
        s.flush()
        _settle(vol)
    _release(svc, volume_id)
