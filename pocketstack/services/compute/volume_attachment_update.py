"""PUT /servers/{id}/os-volume_attachments/{volume_id}: Nova's swap_volume (another
volumeId, admin) and, from 2.85, the update of the attachment's delete_on_termination (the
same volumeId, the server's members). Split from volume_attachments.py, whose helpers it
uses."""

from __future__ import annotations

from typing import Any

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.volume_attachments import (_action, _find,
                                                              _volume_service, log)


def swap(svc: Any, ctx: RequestContext, server_id: str, volume_id: str, body: Any) -> None:
    """PUT os-volume_attachments/{volume_id} with another volumeId: Nova's swap_volume
    (admin; the new volume takes the old one's device, the old one is released). A 2.85
    body that names the same volume is update()'s."""
    policy.enforce(ctx, "compute:server_volume_swap", {})
    if not isinstance(body, dict) or not isinstance(body.get("volumeId"), str) or \
            set(body) - {"volumeId", "id", "serverId", "device"}:
        raise BadRequest("Invalid input for field/attribute volumeAttachment. 'volumeId' is "
                         "a required property")
    new_id = body["volumeId"]
    srv = svc.servers.get(ctx, server_id)
    old = _find(svc, ctx, server_id, volume_id)
    if new_id == volume_id:
        raise BadRequest("The new volume must be different from the attached one.")
    if srv.vm_state not in ("active", "paused", "resized") or srv.task_state:
        raise Conflict(f"Cannot 'swap_volume' instance {server_id} while it is in vm_state "
                       f"{srv.vm_state}", kind="InstanceInvalidState")
    volsvc = _volume_service(svc)
    new_vol = volsvc.get_volume(ctx, new_id)  # 404 before anything changes
    if new_vol.get("status") != "available":
        raise BadRequest(f"Volume {new_id} must be available to be swapped in, not "
                         f"{new_vol.get('status')}.")
    device = old["device"]
    with _action(svc, ctx, srv, "swap_volume", "compute_swap_volume"):
        result = volsvc.attach(ctx, new_id, server_id, mountpoint=device, host=srv.host,
                               connector={"host": srv.host,
                                          "nova": (old.get("connector") or {}).get("nova")})
        if srv.host and srv.vm_state == "active" and device:
            try:
                svc.driver.detach_block_device(srv.host, server_id, device)
                svc.driver.attach_block_device(srv.host, server_id, result["device_path"],
                                               device)
            except Exception as exc:  # noqa: BLE001 - put the old volume back, say why
                volsvc.detach(ctx, new_id, result["attachment_id"])
                try:
                    svc.driver.attach_block_device(srv.host, server_id, old["device_path"],
                                                   device)
                except Exception:  # noqa: BLE001 - the reason below is the first failure
                    log.exception("re-attaching %s to %s", volume_id, server_id)
                raise Conflict(f"Failed to swap volume {volume_id} for {new_id} on server "
                               f"{server_id}: {exc}") from None
        volsvc.detach(ctx, volume_id, old["attachment_id"])


def update(svc: Any, ctx: RequestContext, server_id: str, volume_id: str,
                      body: dict[str, Any]) -> None:
    """2.85 PUT os-volume_attachments/{volume_id} naming the same volume: only
    delete_on_termination may change; id, serverId, device and tag must be what they are
    (Nova's _update_volume_regular)."""
    from pocketstack.services.volume.models import VolumeAttachment

    policy.enforce(ctx, "compute:server_volume_update")
    allowed = {"volumeId", "id", "serverId", "device", "tag", "delete_on_termination"}
    extra = set(body) - allowed
    if extra:
        raise BadRequest("Invalid input for field/attribute volumeAttachment. Additional "
                         f"properties are not allowed ({', '.join(sorted(extra))} were "
                         "unexpected)")
    dot = body.get("delete_on_termination")
    if "delete_on_termination" in body and not isinstance(dot, bool):
        raise BadRequest("Invalid input for field/attribute delete_on_termination: must be "
                         "a boolean")
    svc.servers.get(ctx, server_id)  # 404 unless ctx may see the server
    att = _find(svc, ctx, server_id, volume_id)
    nova = (att.get("connector") or {}).get("nova") or {}
    for key, now in (("id", volume_id), ("serverId", server_id), ("device", att["device"]),
                     ("tag", nova.get("tag"))):
        if key in body and body[key] != now:
            raise BadRequest(f"The {key} property is not mutable")
    if "delete_on_termination" not in body:
        return
    # Nova's BDM lives in the Cinder attachment's connector (see the module docstring)
    vol = _volume_service(svc)
    with vol.db.write() as s:
        row = s.get(VolumeAttachment, att["attachment_id"])
        if row is None:
            raise NotFound(f"Volume {volume_id} is not attached to server {server_id}.")
        connector = dict(row.connector or {})
        connector["nova"] = {**(connector.get("nova") or {}), "delete_on_termination": dot}
        row.connector = connector
