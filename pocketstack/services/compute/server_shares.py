"""Nova 2.97: /servers/{id}/shares, Manila shares mounted in a guest over virtiofs. Nova
only attaches a share when the server's compute host reports the COMPUTE_STORAGE_VIRTIO_FS
trait (nova/virt/hardware.py check_shares_supported); no driver here does, so a server
never has a share: the list is empty, a share is not found, and an attach is refused with
Nova's own answer for such hosts (409 ForbiddenSharesNotConfiguredCorrectly)."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, json, run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.server_validation import is_uuid

_TAG = re.compile(r"^[a-zA-Z0-9-]*\Z")


def _server(svc: Any, ctx: RequestContext, server_id: str, ver: APIVersion) -> Any:
    if not ver.has("server_shares"):
        raise NotFound("The resource could not be found.")
    return svc.servers.get(ctx, server_id)  # 404 unless ctx may see the server


def list_(svc: Any, ctx: RequestContext, server_id: str, ver: APIVersion) -> list:
    _server(svc, ctx, server_id, ver)
    return []


def show(svc: Any, ctx: RequestContext, server_id: str, share_id: str,
         ver: APIVersion) -> dict:
    _server(svc, ctx, server_id, ver)
    raise NotFound(f"Share {share_id} could not be found.")


def attach(svc: Any, ctx: RequestContext, server_id: str, body: Any, ver: APIVersion) -> dict:
    srv = _server(svc, ctx, server_id, ver)
    share = body.get("share") if isinstance(body, dict) and set(body) == {"share"} else None
    if not isinstance(share, dict) or set(share) - {"share_id", "tag"} or \
            not isinstance(share.get("share_id"), str) or not is_uuid(share["share_id"]):
        raise BadRequest("Invalid input for field/attribute share. 'share_id' (a uuid) is a "
                         "required property; only share_id and tag are allowed")
    tag = share.get("tag")
    if tag is not None and (not isinstance(tag, str) or not 1 <= len(tag) <= 255
                            or not _TAG.match(tag)):
        raise BadRequest(f"Invalid input for field/attribute tag. Value: {tag}.")
    if srv.vm_state != "stopped":
        raise Conflict(f"Cannot 'create share' instance {server_id} while it is in vm_state "
                       f"{srv.vm_state}", kind="InstanceInvalidState")
    raise Conflict("Feature not supported because either compute or instance are not "
                   "configured correctly.")


def detach(svc: Any, ctx: RequestContext, server_id: str, share_id: str,
           ver: APIVersion) -> None:
    srv = _server(svc, ctx, server_id, ver)
    if srv.vm_state not in ("stopped", "error"):
        raise Conflict(f"Cannot 'delete share' instance {server_id} while it is in vm_state "
                       f"{srv.vm_state}", kind="InstanceInvalidState")
    raise NotFound(f"Share {share_id} could not be found.")


def register(svc: Any, add: Any) -> None:
    base = "/v2.1/servers/{server_id}/shares"

    async def index(req: Req, ver: APIVersion) -> Response:
        return json({"shares": await run(list_, svc, req.ctx, req.params["server_id"], ver)})

    async def show_(req: Req, ver: APIVersion) -> Response:
        return json({"share": await run(show, svc, req.ctx, req.params["server_id"],
                                        req.params["share_id"], ver)})

    async def create(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        return json({"share": await run(attach, svc, req.ctx, req.params["server_id"], body,
                                        ver)}, 201)

    async def delete(req: Req, ver: APIVersion) -> Response:
        await run(detach, svc, req.ctx, req.params["server_id"], req.params["share_id"], ver)
        return Response(status_code=200)

    add("get", base, index)
    add("post", base, create)
    add("get", base + "/{share_id}", show_)
    add("delete", base + "/{share_id}", delete)
