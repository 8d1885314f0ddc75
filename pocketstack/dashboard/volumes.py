"""Volumes: list (with what each is attached to), create (empty or from an image),
attach to / detach from an instance (through Nova's os-volume_attachments code, as the
CLI's `server add volume` does), delete."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY, VER, server_names
from pocketstack.dashboard.web import TRANSITIONAL, View, age
from pocketstack.errors import BadRequest, PocketError

VOLUME_BUSY = {"creating", "attaching", "detaching", "deleting", "downloading", "extending",
               "reserved"}


def listing(cloud: Any, ctx: Any) -> dict[str, Any]:
    from pocketstack.services.volume import volumes as cinder

    volume = cloud.services["volume"]
    rows = cinder.list_volumes(volume, ctx, NO_QUERY, all_projects=False, project_id=None,
                               sort=[("created_at", "desc"), ("id", "desc")])
    servers = server_names(cloud.services["compute"], ctx)
    names = {sid: name for sid, name, _ in servers}
    out = []
    for v in rows:  # attachments come with the rows (one selectin query for all)
        out.append({"id": v.id, "name": v.name or v.id[:8], "size": v.size, "status": v.status,
                    "bootable": v.bootable, "age": age(v.created_at),
                    "attached": [{"server_id": a.instance_uuid,
                                  "server": names.get(a.instance_uuid or "", a.instance_uuid),
                                  "device": a.mountpoint}
                                 for a in v.attachments if a.attach_status == "attached"]})
    live = [{"id": sid, "name": name} for sid, name, st in servers if st not in TRANSITIONAL]
    return {"volumes": out, "servers": live,
            "polling": any(v["status"] in VOLUME_BUSY for v in out)}


def image_choices(cloud: Any, ctx: Any) -> list[dict[str, str]]:
    from pocketstack.services.image.images import list_images

    images = list_images(cloud.services["image"], ctx, NO_QUERY)["images"]
    return [{"id": i["id"], "name": i.get("name") or i["id"]} for i in images
            if i.get("status") == "active"]


async def volumes_page(v: View, error: str | None = None, status: int = 200) -> Response:
    data = await v.call(listing, v.cloud, v.ctx)
    images = await v.call(image_choices, v.cloud, v.ctx)
    return v.render("volumes.html", status, nav="volumes", error=error, images=images, **data)


async def create(v: View) -> Response:
    from pocketstack.services.volume import volumes as cinder

    try:
        try:
            size = int(v.field("size", "1"))
        except ValueError:
            raise BadRequest("Size must be a whole number of GiB.") from None
        body: dict[str, Any] = {"name": v.field("name"), "size": size}
        if v.field("image"):
            body["imageRef"] = v.field("image")
        await v.call(cinder.create, v.service("volume"), v.ctx, body)
    except PocketError as err:
        return await volumes_page(v, err.message, err.status)
    return v.redirect("/dashboard/volumes")


async def action(v: View) -> Response:
    from pocketstack.services.compute import volume_attachments
    from pocketstack.services.volume import volumes as cinder

    if "volume_id" in v.params:
        vid, name = v.params["volume_id"], v.params["action"]
    else:  # /volumes/attach: the form names the volume in a field
        vid, name = v.field("volume_id"), "attach"
    compute = v.service("compute")
    try:
        if name == "attach":
            await v.call(volume_attachments.attach, compute, v.ctx, v.field("server_id"),
                         {"volumeId": vid}, VER)
        elif name == "detach":
            await v.call(volume_attachments.detach, compute, v.ctx, v.field("server_id"), vid)
        elif name == "delete":
            await v.call(cinder.delete, v.service("volume"), v.ctx, vid)
        else:
            raise BadRequest(f"There is no such action: {name}")
    except PocketError as err:
        if err.status in (403, 404):
            raise
        return await volumes_page(v, err.message, err.status)
    return v.redirect("/dashboard/volumes")
