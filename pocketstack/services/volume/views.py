"""Rendering Cinder v3 bodies. ``mv`` is the request's microversion as a (3, minor) tuple."""

from __future__ import annotations

from typing import Any

from pocketstack.context import RequestContext
from pocketstack.db.base import isotime
from pocketstack.services.volume.models import (Snapshot, Transfer, Volume, VolumeAttachment,
                                                VolumeType)

Mv = tuple[int, int]


def ts(value: Any) -> str | None:
    # Cinder renders naive UTC with microseconds and no zone: 2026-11-21T22:01:43.000000
    return isotime(value, micro=True, z=False)


def links(base: str, project_id: str, kind: str, rid: str) -> list[dict[str, str]]:
    root = base.rsplit("/v3", 1)[0]
    return [{"href": f"{base}/{project_id}/{kind}/{rid}", "rel": "self"},
            {"href": f"{root}/{project_id}/{kind}/{rid}", "rel": "bookmark"}]


def attachment_in_volume(att: VolumeAttachment) -> dict[str, Any]:
    return {"server_id": att.instance_uuid, "attachment_id": att.id,
            "attached_at": ts(att.attach_time), "host_name": att.attached_host,
            "volume_id": att.volume_id, "device": att.mountpoint, "id": att.volume_id}


def volume_summary(vol: Volume, base: str) -> dict[str, Any]:
    return {"id": vol.id, "name": vol.name, "links": links(base, vol.project_id, "volumes", vol.id)}


def volume(vol: Volume, base: str, ctx: RequestContext, mv: Mv, type_name: str | None,
           host: str, *, created: bool = False) -> dict[str, Any]:
    """The detailed view; ``created`` is the POST response, which in Cinder is the core
    view only (the os-vol-* extension attributes decorate show and list, not create)."""
    metadata = dict(vol.metadata_)
    # Cinder shows the visible admin metadata (readonly, attached_mode) inside metadata.
    attached = [a for a in vol.attachments if a.attach_status == "attached"]
    if vol.readonly is not None:
        metadata["readonly"] = str(bool(vol.readonly))
    if attached:
        metadata["attached_mode"] = attached[0].attach_mode
    body: dict[str, Any] = {
        "id": vol.id, "name": vol.name, "description": vol.description, "status": vol.status,
        "size": vol.size, "availability_zone": vol.availability_zone,
        "created_at": ts(vol.created_at), "updated_at": ts(vol.updated_at),
        "attachments": [attachment_in_volume(a) for a in attached],
        "links": links(base, vol.project_id, "volumes", vol.id),
        "volume_type": type_name, "snapshot_id": vol.snapshot_id,
        "source_volid": vol.source_volid, "metadata": metadata, "user_id": vol.user_id,
        "bootable": "true" if vol.bootable else "false", "encrypted": False,
        "replication_status": None, "consistencygroup_id": None,
        "multiattach": vol.multiattach, "migration_status": vol.migration_status,
    }
    if not created:
        body["os-vol-tenant-attr:tenant_id"] = vol.project_id
        if vol.image_metadata:
            body["volume_image_metadata"] = dict(vol.image_metadata)
    if ctx.is_admin and not created:
        body["os-vol-host-attr:host"] = host
        body["os-vol-mig-status-attr:migstat"] = vol.migration_status
        body["os-vol-mig-status-attr:name_id"] = None
    if mv >= (3, 13):
        body["group_id"] = vol.group_id
    if mv >= (3, 21) and ctx.is_admin:
        body["provider_id"] = None
    if mv >= (3, 48):
        body["service_uuid"] = None
        body["shared_targets"] = False if mv < (3, 69) else None
    if mv >= (3, 61) and ctx.is_admin:
        body["cluster_name"] = None
    if mv >= (3, 63):
        body["volume_type_id"] = vol.volume_type_id
    if mv >= (3, 64):
        body["encryption_key_id"] = None
    if mv >= (3, 65):
        body["consumes_quota"] = vol.consumes_quota
    return body


def snapshot(snap: Snapshot, ctx: RequestContext, mv: Mv, core: bool = False) -> dict[str, Any]:
    """``core``: create/update responses, without the os-extended-snapshot-attributes."""
    body: dict[str, Any] = {
        "id": snap.id, "name": snap.name, "description": snap.description,
        "status": snap.status, "size": snap.size, "volume_id": snap.volume_id,
        "created_at": ts(snap.created_at), "updated_at": ts(snap.updated_at),
        "metadata": dict(snap.metadata_),
    }
    if not core and (ctx.is_admin or ctx.project_id == snap.project_id):
        body["os-extended-snapshot-attributes:project_id"] = snap.project_id
        body["os-extended-snapshot-attributes:progress"] = snap.progress or "0%"
    if mv >= (3, 14):
        body["group_snapshot_id"] = snap.group_snapshot_id
    if mv >= (3, 41):
        body["user_id"] = snap.user_id
    if mv >= (3, 65):
        body["consumes_quota"] = snap.consumes_quota
    return body


def volume_type(vt: VolumeType, ctx: RequestContext, core: bool = False,
                updated: bool = False) -> dict[str, Any]:
    """``core``: create/update responses, which carry no qos_specs_id; an update response
    has no os-volume-type-access:is_public either (Cinder's views differ by call)."""
    body: dict[str, Any] = {"id": vt.id, "name": vt.name, "description": vt.description,
                            "is_public": vt.is_public}
    if not updated:
        body["os-volume-type-access:is_public"] = vt.is_public
    if ctx.is_admin:
        body["extra_specs"] = dict(vt.extra_specs)
        if not core:
            body["qos_specs_id"] = getattr(vt, "qos_specs_id", None)
    else:
        # Non-admins see only the specs Cinder lets users see.
        body["extra_specs"] = {k: v for k, v in vt.extra_specs.items()
                               if k in ("multiattach", "RESKEY:availability_zones",
                                        "replication_enabled")}
    return body


def encryption(vt: VolumeType) -> dict[str, Any]:
    enc = dict(vt.encryption or {})
    return {"volume_type_id": vt.id, "encryption_id": enc.get("encryption_id"),
            "key_size": enc.get("key_size"), "provider": enc.get("provider"),
            "control_location": enc.get("control_location", "front-end"),
            "cipher": enc.get("cipher"), "deleted": False, "created_at": enc.get("created_at"),
            "updated_at": enc.get("updated_at"), "deleted_at": None}


def attachment(att: VolumeAttachment, *, detail: bool) -> dict[str, Any]:
    from pocketstack.services.volume.attachments import connection_info

    status = att.attach_status
    body: dict[str, Any] = {"id": att.id, "status": status, "instance": att.instance_uuid,
                            "volume_id": att.volume_id}
    if detail:
        body.update({"attached_at": ts(att.attach_time), "detached_at": None,
                     "attach_mode": att.attach_mode,
                     "connection_info": connection_info(att.device_path, att.attach_mode)})
    return body


def transfer(tr: Transfer, base: str, *, detail: bool, mv: Mv,
             auth_key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": tr.id, "name": tr.name, "volume_id": tr.volume_id,
                            "links": links(base, tr.project_id, "os-volume-transfer", tr.id)}
    if detail or auth_key:
        body["created_at"] = ts(tr.created_at)
    if auth_key:
        body["auth_key"] = auth_key
    if mv >= (3, 55) and (detail or auth_key):
        body["no_snapshots"] = tr.no_snapshots
    if mv >= (3, 57) and (detail or auth_key):
        body.update({"destination_project_id": None, "source_project_id": tr.project_id,
                     "accepted": False})
    return body
