"""Nova's os-volume_attachments (``openstack server add volume`` / ``remove volume``) and the
volume side of server deletion, on top of the volume service's internal interface
(``cloud.services["volume"]``: attach / detach / server_attachments / server_deleted).

Nova's own record of an attachment (its block device mapping: tag, delete_on_termination)
is kept in the Cinder attachment's connector under ``"nova"``, so one row says everything
and nothing can drift between the two services.

Attaching for real: the volume service exports the volume on this host (a loop device for
the file backend, the LV for lvm) and the compute driver makes that device appear inside
the server at the requested name (``ComputeDriver.attach_block_device``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.microversions import APIVersion

log = logging.getLogger("pocketstack.compute")

DEVICE = re.compile(r"^/dev/[a-z]+[a-z0-9]*\Z")
# states a volume may be attached or detached in (Nova's check_instance_state)
ATTACHABLE = {"active", "stopped", "paused", "suspended", "shelved", "shelved_offloaded",
              "resized"}


def _volume_service(svc: Any) -> Any:
    vol = svc.cloud.services.get("volume")
    if vol is None:
        raise BadRequest("This cloud has no block storage service.")
    return vol


def bdm_uuid(att: dict[str, Any]) -> str:
    """The uuid of Nova's block device mapping for this attachment: kept in the connector
    since 2.89 was served; older attachments get one derived from the attachment id, so it
    is stable across calls."""
    nova = (att.get("connector") or {}).get("nova") or {}
    return nova.get("bdm_uuid") or str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                  f"bdm:{att['attachment_id']}"))


def _view(server_id: str, att: dict[str, Any], ver: APIVersion,
          created: bool = False) -> dict[str, Any]:
    nova = (att.get("connector") or {}).get("nova") or {}
    body: dict[str, Any] = {"device": att.get("device"), "id": att["volume_id"],
                            "serverId": server_id, "volumeId": att["volume_id"]}
    if ver.has("volume_attachment_ids") and not created:
        # 2.89: index and show name the Cinder attachment and the BDM, not the volume
        # again (Nova forgot the POST response, which keeps "id")
        del body["id"]
        body["attachment_id"], body["bdm_uuid"] = att["attachment_id"], bdm_uuid(att)
    if ver.at_least(2, 70):
        body["tag"] = nova.get("tag")
    if ver.at_least(2, 79):
        body["delete_on_termination"] = bool(nova.get("delete_on_termination", False))
    return body


def _next_device(used: set[str]) -> str:
    for letter in "bcdefghijklmnopqrstuvwxyz":
        dev = f"/dev/vd{letter}"
        if dev not in used:
            return dev
    raise BadRequest("No free disk device names for prefix 'vd'")


def _attached(svc: Any, ctx: RequestContext, server_id: str) -> list[dict[str, Any]]:
    return [a for a in _volume_service(svc).server_attachments(ctx, server_id)
            if a["status"] in ("attached", "attaching")]


def list_(svc: Any, ctx: RequestContext, server_id: str) -> list[dict[str, Any]]:
    svc.servers.get(ctx, server_id)  # 404 unless ctx may see the server
    return _attached(svc, ctx, server_id)


def attach(svc: Any, ctx: RequestContext, server_id: str, body: Any,
           ver: APIVersion) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("volumeId"), str):
        raise BadRequest("Invalid input for field/attribute volumeAttachment. 'volumeId' is a "
                         "required property")
    allowed = {"volumeId", "device"} | ({"tag"} if ver.at_least(2, 49) else set()) | (
        {"delete_on_termination"} if ver.at_least(2, 79) else set())
    extra = set(body) - allowed
    if extra:
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         f"properties are not allowed ({', '.join(sorted(extra))} were "
                         "unexpected)")
    device = body.get("device")
    if device is not None and (not isinstance(device, str) or not DEVICE.match(device)):
        raise BadRequest(f"The supplied device path ({device}) is invalid.")
    tag = body.get("tag")
    if tag is not None and (not isinstance(tag, str) or len(tag) > 60 or "/" in tag):
        raise BadRequest("Invalid input for field/attribute tag.")
    dot = body.get("delete_on_termination", False)
    if not isinstance(dot, bool):
        raise BadRequest("Invalid input for field/attribute delete_on_termination: must be "
                         "a boolean")
    srv = svc.servers.get(ctx, server_id)
    if srv.vm_state not in ATTACHABLE or srv.task_state:
        raise Conflict(f"Cannot 'attach_volume' instance {server_id} while it is in "
                       f"vm_state {srv.vm_state}", kind="InstanceInvalidState")
    volsvc = _volume_service(svc)
    used = {a["device"] for a in _attached(svc, ctx, server_id) if a["device"]}
    used.add("/dev/vda")
    if device is None or device in used:
        if device is not None and device in used:
            raise BadRequest(f"The supplied device path ({device}) is in use.")
        device = _next_device(used)
    volsvc.get_volume(ctx, body["volumeId"])  # 404 before anything changes
    # Nova records attach_volume (event compute_attach_volume) once the request is valid.
    with _action(svc, ctx, srv, "attach_volume", "compute_attach_volume"):
        result = volsvc.attach(ctx, body["volumeId"], server_id, mountpoint=device,
                               host=srv.host, connector={"host": srv.host, "nova": {
                                   "tag": tag, "delete_on_termination": dot,
                                   "bdm_uuid": str(uuid.uuid4())}})
        driver = svc.driver
        if srv.host and srv.vm_state == "active":
            try:
                driver.attach_block_device(srv.host, server_id, result["device_path"], device)
            except Exception as exc:  # noqa: BLE001 - undo the Cinder side, report the reason
                volsvc.detach(ctx, body["volumeId"], result["attachment_id"])
                raise Conflict(f"Failed to attach volume {body['volumeId']} to server "
                               f"{server_id}: {exc}") from None
    return _view(server_id, {"volume_id": body["volumeId"], "device": device,
                             "connector": {"nova": {"tag": tag,
                                                    "delete_on_termination": dot}}}, ver,
                 created=True)


def _find(svc: Any, ctx: RequestContext, server_id: str, volume_id: str) -> dict[str, Any]:
    for att in list_(svc, ctx, server_id):
        if att["volume_id"] == volume_id:
            return att
    raise NotFound(f"Volume {volume_id} is not attached to server {server_id}.")


def detach(svc: Any, ctx: RequestContext, server_id: str, volume_id: str) -> None:
    srv = svc.servers.get(ctx, server_id)
    att = _find(svc, ctx, server_id, volume_id)
    if srv.vm_state not in ATTACHABLE:
        raise Conflict(f"Cannot 'detach_volume' instance {server_id} while it is in "
                       f"vm_state {srv.vm_state}", kind="InstanceInvalidState")
    with _action(svc, ctx, srv, "detach_volume", "compute_detach_volume"):
        if srv.host and att.get("device"):
            try:
                svc.driver.detach_block_device(srv.host, server_id, att["device"])
            except Exception as exc:  # noqa: BLE001 - the host side is released regardless
                log.warning("detach of %s from %s in the guest: %s", volume_id, server_id,
                            exc)
        _volume_service(svc).detach(ctx, volume_id, att["attachment_id"])


@contextmanager
def _action(svc: Any, ctx: RequestContext, srv: Any, action: str, event: str) -> Iterator[None]:
    """An instance action with one event around the work (Success, or Error and re-raise)."""
    from pocketstack.services.compute import actions

    with svc.db.write() as s:
        actions.record(s, srv, action, ctx)
    with actions.event(svc.db, srv.id, action, event, srv.host):
        yield


def volumes_attached(svc: Any, server_ids: list[str],
                     ver: APIVersion) -> dict[str, list[dict[str, Any]]]:
    """``os-extended-volumes:volumes_attached`` for each server, in one query."""
    vol = svc.cloud.services.get("volume")
    if vol is None:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for server_id, atts in vol.attached_volumes(server_ids).items():
        for att in atts:
            item: dict[str, Any] = {"id": att["volume_id"]}
            if ver.at_least(2, 3):
                nova = (att.get("connector") or {}).get("nova") or {}
                item["delete_on_termination"] = bool(nova.get("delete_on_termination", False))
            out.setdefault(server_id, []).append(item)
    return out


def volume_extended(svc: Any, server_id: str, volume_id: str) -> None:
    """Cinder's "volume-extended" event: record Nova's extend_volume instance action. The
    guest already sees the new size (the host device was resized in place)."""
    from pocketstack.services.compute import actions
    from pocketstack.services.compute.models import Server

    with svc.db.write() as s:
        srv = s.get(Server, server_id)
        if srv is None or srv.deleted:
            return
        actions.record(s, srv, "extend_volume", RequestContext.internal(srv.project_id))
        host = srv.host
    with actions.event(svc.db, server_id, "extend_volume", "compute_extend_volume", host):
        pass


def server_deleted(svc: Any, server_id: str) -> None:
    """Called when a server is destroyed: release its volumes (delete_on_termination)."""
    vol = svc.cloud.services.get("volume")
    if vol is not None:
        vol.server_deleted(RequestContext.internal(), server_id)


def register(svc: Any, add: Any) -> None:
    """Routes on the compute slice's ``add`` (microversion and request-id headers)."""
    base = "/v2.1/servers/{server_id}/os-volume_attachments"

    async def index(req: Req, ver: APIVersion) -> Response:
        sid = req.params["server_id"]
        rows = await run(list_, svc, req.ctx, sid)
        return json({"volumeAttachments": [_view(sid, a, ver) for a in rows]})

    async def create(req: Req, ver: APIVersion) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or not isinstance(data.get("volumeAttachment"), dict):
            raise BadRequest("Invalid input for field/attribute volumeAttachment: is a "
                             "required property")
        att = await run(attach, svc, req.ctx, req.params["server_id"],
                        data["volumeAttachment"], ver)
        if ver.has("attach_returns_202"):
            return empty(202)
        return json({"volumeAttachment": att})

    async def show(req: Req, ver: APIVersion) -> Response:
        sid = req.params["server_id"]
        att = await run(_find, svc, req.ctx, sid, req.params["volume_id"])
        return json({"volumeAttachment": _view(sid, att, ver)})

    async def update(req: Req, ver: APIVersion) -> Response:
        from pocketstack.services.compute import volume_attachment_update

        data = await req.json()
        body = data.get("volumeAttachment") if isinstance(data, dict) else None
        sid, vid = req.params["server_id"], req.params["volume_id"]
        if ver.has("volume_attachment_update") and isinstance(body, dict) and \
                body.get("volumeId") == vid:
            await run(volume_attachment_update.update, svc, req.ctx, sid, vid, body)
        else:
            await run(volume_attachment_update.swap, svc, req.ctx, sid, vid, body)
        return empty(202)

    async def delete(req: Req, ver: APIVersion) -> Response:
        await run(detach, svc, req.ctx, req.params["server_id"], req.params["volume_id"])
        return empty(202)

    register_proxy(svc, add)
    vol = svc.cloud.services.get("volume")
    if vol is not None and hasattr(vol, "extend_listeners"):
        vol.extend_listeners.append(lambda server_id, volume_id, size:
                                    volume_extended(svc, server_id, volume_id))
    add("get", base, index)
    add("post", base, create)
    add("get", base + "/{volume_id}", show)
    add("put", base + "/{volume_id}", update)
    add("delete", base + "/{volume_id}", delete)


# =========================================================================================
# Boot from volume: block_device_mapping_v2 entries with destination_type "volume".
# servers.create validates them (parse_block_devices) and keeps the plan with the server
# (scheduler_hints["pocketstack:block_device_mapping"], never shown by the API); the build
# worker makes and reserves the volumes before spawning (prepare_boot_volumes) and attaches
# them after (attach_boot_volumes). A container server boots the root file system of the
# image its boot volume was made from, and has the volume itself as /dev/vda.
# =========================================================================================
PLAN_KEY = "pocketstack:block_device_mapping"
SOURCES = {"image", "volume", "snapshot", "blank"}


def parse_block_devices(svc: Any, ctx: RequestContext, bdm: list[Any] | None,
                        image_ref: str, count: int) -> tuple[str, list[dict[str, Any]]]:
    """Validate block_device_mapping_v2; return (image to boot, plan of volume mappings)."""
    plan: list[dict[str, Any]] = []
    for i, item in enumerate(bdm or []):
        if not isinstance(item, dict):
            raise BadRequest("Block Device Mapping is Invalid: each mapping must be an object.")
        source = item.get("source_type")
        dest = item.get("destination_type", "volume" if source in ("volume", "snapshot")
                        else "local")
        if source not in SOURCES:
            raise BadRequest(f"Block Device Mapping is Invalid: source_type {source!r}.")
        if dest not in ("local", "volume"):
            raise BadRequest(f"Block Device Mapping is Invalid: destination_type {dest!r}.")
        boot_index = item.get("boot_index")
        try:
            boot_index = None if boot_index in (None, "none", "None") else int(boot_index)
        except (TypeError, ValueError):
            raise BadRequest("Block Device Mapping is Invalid: boot_index must be an "
                             "integer.") from None
        if dest == "local":
            if source == "image" and not image_ref and item.get("uuid"):
                image_ref = str(item["uuid"])
            continue
        if source != "blank" and not item.get("uuid"):
            raise BadRequest("Block Device Mapping is Invalid: a uuid is required for "
                             f"source_type {source}.")
        size = item.get("volume_size")
        if size is not None:
            try:
                size = int(size)
            except (TypeError, ValueError):
                raise BadRequest("Block Device Mapping is Invalid: volume_size must be an "
                                 "integer.") from None
        if source in ("image", "blank") and not size:
            raise BadRequest("Block Device Mapping is Invalid: volume_size is required for "
                             f"source_type {source} to a volume.")
        dot = item.get("delete_on_termination", False)
        if isinstance(dot, str):
            dot = dot.lower() in ("1", "true", "yes")
        device = item.get("device_name")
        if device is not None and not (isinstance(device, str) and (
                DEVICE.match(device) or re.match(r"^[a-z]+[a-z0-9]*$", device))):
            raise BadRequest(f"Block Device Mapping is Invalid: device name {device!r}.")
        if device and not device.startswith("/dev/"):
            device = "/dev/" + device
        entry = {"index": i, "source_type": source, "uuid": item.get("uuid"),
                 "volume_size": size, "boot_index": boot_index,
                 "delete_on_termination": bool(dot), "device_name": device,
                 "volume_type": item.get("volume_type"), "tag": item.get("tag")}
        plan.append(entry)
        volsvc = _volume_service(svc)
        if source == "volume":
            if count > 1:
                raise BadRequest("Block Device Mapping is Invalid: an existing volume can be "
                                 "attached to one server only (min_count/max_count > 1).")
            try:
                vol = volsvc.get_volume(ctx, str(item["uuid"]))
            except NotFound:
                raise BadRequest(f"Block Device Mapping is Invalid: failed to get volume "
                                 f"{item['uuid']}.") from None
            if vol["status"] != "available" and not vol["multiattach"]:
                raise BadRequest(f"Block Device Mapping is Invalid: volume {vol['id']} is "
                                 f"{vol['status']}, not available.")
            if boot_index == 0 and not image_ref:
                image_ref = (vol.get("image_metadata") or {}).get("image_id") or ""
                if not image_ref:
                    raise BadRequest(f"Block Device Mapping is Invalid: volume {vol['id']} "
                                     "holds no image this compute driver can boot.")
        elif source == "image" and boot_index == 0 and not image_ref:
            image_ref = str(item["uuid"])
        elif source == "snapshot" and boot_index == 0 and not image_ref:
            # the image its volume was made from (Cinder keeps volume_image_metadata with
            # the snapshot's volume): what a driver that boots images needs to boot it
            try:
                vol = volsvc.get_volume(ctx, volsvc.snapshot_volume_id(ctx, str(item["uuid"])))
            except NotFound:
                raise BadRequest(f"Block Device Mapping is Invalid: failed to get snapshot "
                                 f"{item['uuid']}.") from None
            image_ref = (vol.get("image_metadata") or {}).get("image_id") or ""
            if not image_ref:
                raise BadRequest(f"Block Device Mapping is Invalid: snapshot {item['uuid']} "
                                 "holds no image this compute driver can boot.")
    return image_ref, plan


def _owner_ctx(srv: Any) -> RequestContext:
    return RequestContext(user_id=srv.user_id, project_id=srv.project_id,
                          roles=frozenset({"member", "reader"}))


def _plan(srv: Any) -> list[dict[str, Any]]:
    return list((srv.scheduler_hints or {}).get(PLAN_KEY) or [])


def prepare_boot_volumes(svc: Any, srv: Any, timeout: float = 600) -> None:
    """Create (from image/snapshot/blank) and reserve the server's volumes. Idempotent:
    mappings already reserved for this server (by plan index) are skipped."""
    plan = _plan(srv)
    if not plan:
        return
    volsvc = _volume_service(svc)
    ctx = _owner_ctx(srv)
    done = {(a.get("connector") or {}).get("nova", {}).get("bdm_index")
            for a in volsvc.server_attachments(RequestContext.internal(), srv.id)}
    for entry in plan:
        if entry["index"] in done:
            continue
        source = entry["source_type"]
        if source == "volume":
            volume_id = str(entry["uuid"])
        else:
            from pocketstack.services.volume import volumes

            body: dict[str, Any] = {"size": entry["volume_size"], "name": "",
                                    "volume_type": entry.get("volume_type")}
            if source == "image":
                body["imageRef"] = entry["uuid"]
            elif source == "snapshot":
                body["snapshot_id"] = entry["uuid"]
            volume_id = volumes.create(volsvc, ctx, body).id
            vol = volsvc.wait_until(ctx, volume_id, ("available",), timeout)
            if vol["status"] != "available":
                raise RuntimeError(f"volume {volume_id} for the server went to "
                                   f"{vol['status']}: {vol.get('error') or ''}")
        volsvc.reserve(ctx, volume_id, srv.id, info={"nova": {
            "bdm_index": entry["index"], "boot_index": entry["boot_index"],
            "delete_on_termination": entry["delete_on_termination"], "tag": entry.get("tag"),
            "device_name": entry.get("device_name")}})


def attach_boot_volumes(svc: Any, srv: Any) -> None:
    """Attach the reserved volumes for real (after spawn): boot volume at /dev/vda."""
    if not _plan(srv):
        return
    volsvc = _volume_service(svc)
    ctx = _owner_ctx(srv)
    atts = volsvc.server_attachments(RequestContext.internal(), srv.id)
    used = {a["device"] for a in atts if a["device"] and a["status"] == "attached"}
    pending = [a for a in atts if a["status"] == "reserved"]
    pending.sort(key=lambda a: (a["connector"].get("nova", {}).get("boot_index") is None,
                                a["connector"].get("nova", {}).get("boot_index") or 0))
    for att in pending:
        nova = att["connector"].get("nova") or {}
        device = nova.get("device_name")
        if not device or device in used:
            device = "/dev/vda" if nova.get("boot_index") == 0 and "/dev/vda" not in used \
                else _next_device(used | {"/dev/vda"})
        used.add(device)
        result = volsvc.attach(ctx, att["volume_id"], srv.id, mountpoint=device,
                               host=srv.host, attachment_id=att["attachment_id"],
                               connector={"host": srv.host, "nova": nova})
        svc.driver.attach_block_device(srv.host, srv.id, result["device_path"], device)


# =========================================================================================
# Nova's deprecated volume proxy (os-volumes, os-snapshots; microversions up to 2.35):
# the same volumes and snapshots as Cinder, in Nova's camelCase shape.
# =========================================================================================
def _proxy_volume(vol: Any, type_name: str | None) -> dict[str, Any]:
    from pocketstack.db.base import isotime

    attached = [a for a in vol.attachments if a.attach_status == "attached"]
    return {"id": vol.id, "status": vol.status, "size": vol.size,
            "availabilityZone": vol.availability_zone,
            "createdAt": isotime(vol.created_at, micro=True, z=False),
            "displayName": vol.name, "displayDescription": vol.description,
            "volumeType": type_name, "snapshotId": vol.snapshot_id,
            "metadata": dict(vol.metadata_),
            "attachments": [{"id": a.id, "volumeId": vol.id, "serverId": a.instance_uuid,
                             "device": a.mountpoint} for a in attached] or [{}]}


def _proxy_snapshot(snap: Any) -> dict[str, Any]:
    from pocketstack.db.base import isotime

    return {"id": snap.id, "volumeId": snap.volume_id, "status": snap.status,
            "size": snap.size, "createdAt": isotime(snap.created_at, micro=True, z=False),
            "displayName": snap.name, "displayDescription": snap.description}


def register_proxy(svc: Any, add_route: Any) -> None:
    from pocketstack.services.volume import snapshots as vsnaps
    from pocketstack.services.volume import volumes as vvols
    from pocketstack.services.volume.common import parse_limit, parse_offset

    def add(method: str, path: str, handler: Any) -> None:
        async def gone_from_2_36(req: Req, ver: APIVersion) -> Response:
            if ver.at_least(2, 36):
                raise NotFound("The resource could not be found (the volume proxy APIs are "
                               "gone from microversion 2.36).")
            return await handler(req, ver)
        gone_from_2_36.__name__ = "proxy_" + handler.__name__
        add_route(method, path, gone_from_2_36)

    def vs() -> Any:
        return _volume_service(svc)

    def names() -> dict[str, str]:
        from sqlalchemy import select

        from pocketstack.services.volume.models import VolumeType

        with svc.db.read() as s:
            return dict(s.execute(select(VolumeType.id, VolumeType.name)).all())

    async def vol_list(req: Req, ver: APIVersion) -> Response:
        def call() -> list[dict[str, Any]]:
            rows = vvols.list_volumes(vs(), req.ctx, {}, all_projects=False, project_id=None,
                                      sort=[("created_at", "desc"), ("id", "desc")])
            off, lim = parse_offset(req.query), parse_limit(req.query)
            rows = rows[off:] if lim is None else rows[off:off + lim]
            n = names()
            return [_proxy_volume(v, n.get(v.volume_type_id or "")) for v in rows]
        return json({"volumes": await run(call)})

    async def vol_create(req: Req, ver: APIVersion) -> Response:
        data = await req.json()
        body = data.get("volume") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute volume: is a required property")
        cinder_body = {"size": body.get("size"), "name": body.get("display_name"),
                       "description": body.get("display_description"),
                       "volume_type": body.get("volume_type"),
                       "metadata": body.get("metadata"), "snapshot_id": body.get("snapshot_id"),
                       "availability_zone": body.get("availability_zone")}

        def call() -> dict[str, Any]:
            vol = vvols.create(vs(), req.ctx, cinder_body)
            return _proxy_volume(vvols.get(vs(), req.ctx, vol.id),
                                 names().get(vol.volume_type_id or ""))
        return json({"volume": await run(call)})

    async def vol_show(req: Req, ver: APIVersion) -> Response:
        def call() -> dict[str, Any]:
            vol = vvols.get(vs(), req.ctx, req.params["volume_id"])
            return _proxy_volume(vol, names().get(vol.volume_type_id or ""))
        return json({"volume": await run(call)})

    async def vol_delete(req: Req, ver: APIVersion) -> Response:
        await run(vvols.delete, vs(), req.ctx, req.params["volume_id"])
        return empty(202)

    async def snap_list(req: Req, ver: APIVersion) -> Response:
        def call() -> list[dict[str, Any]]:
            rows = vsnaps.list_snapshots(vs(), req.ctx, {}, all_projects=False,
                                         project_id=None,
                                         sort=[("created_at", "desc"), ("id", "desc")])
            return [_proxy_snapshot(x) for x in rows]
        return json({"snapshots": await run(call)})

    async def snap_create(req: Req, ver: APIVersion) -> Response:
        data = await req.json()
        body = data.get("snapshot") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute snapshot: is a required "
                             "property")
        snap = await run(vsnaps.create, vs(), req.ctx, {
            "volume_id": body.get("volume_id"), "name": body.get("display_name"),
            "description": body.get("display_description"), "force": body.get("force", False)})
        return json({"snapshot": _proxy_snapshot(snap)})

    async def snap_show(req: Req, ver: APIVersion) -> Response:
        snap = await run(vsnaps.get, vs(), req.ctx, req.params["snapshot_id"])
        return json({"snapshot": _proxy_snapshot(snap)})

    async def snap_delete(req: Req, ver: APIVersion) -> Response:
        await run(vsnaps.delete, vs(), req.ctx, req.params["snapshot_id"])
        return empty(202)

    add("get", "/v2.1/os-volumes", vol_list)
    add("get", "/v2.1/os-volumes/detail", vol_list)
    add("post", "/v2.1/os-volumes", vol_create)
    add("get", "/v2.1/os-volumes/{volume_id}", vol_show)
    add("delete", "/v2.1/os-volumes/{volume_id}", vol_delete)
    async def no_id(req: Req, ver: APIVersion) -> Response:
        raise NotFound("The resource could not be found.")

    for path in ("/v2.1/os-volumes/", "/v2.1/os-snapshots/"):
        add("get", path, no_id)
        add("delete", path, no_id)
    add("get", "/v2.1/os-snapshots", snap_list)
    add("get", "/v2.1/os-snapshots/detail", snap_list)
    add("post", "/v2.1/os-snapshots", snap_create)
    add("get", "/v2.1/os-snapshots/{snapshot_id}", snap_show)
    add("delete", "/v2.1/os-snapshots/{snapshot_id}", snap_delete)
