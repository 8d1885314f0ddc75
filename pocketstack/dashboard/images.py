"""Images and key pairs: the project's lists, an image upload from the browser streamed to
the image store (XHR with a progress bar: create the record, then PUT the bytes here, which
are pumped through Glance's own upload code chunk by chunk, never held whole), delete;
key pairs created (the private key is the answer, downloaded once, never stored here),
imported and deleted through Nova's key pair code."""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from pocketstack.dashboard.instances import NO_QUERY
from pocketstack.dashboard.web import View
from pocketstack.errors import BadRequest, PocketError

DISK_FORMATS = ("raw", "qcow2", "iso", "vmdk", "vdi", "vhd", "vhdx", "aki", "ari", "ami")
CONTAINER_FORMATS = ("bare", "docker", "ovf", "ova", "aki", "ari", "ami")


def image_rows(cloud: Any, ctx: Any) -> list[dict[str, Any]]:
    from pocketstack.services.image.images import list_images

    images = list_images(cloud.services["image"], ctx, NO_QUERY)["images"]
    return [{"id": i["id"], "name": i.get("name") or i["id"][:8], "status": i.get("status"),
             "size": i.get("size"), "visibility": i.get("visibility"),
             "disk_format": i.get("disk_format"), "container_format": i.get("container_format"),
             "mine": i.get("owner") == ctx.project_id} for i in images]


async def images_page(v: View, error: str | None = None, status: int = 200) -> Response:
    rows = await v.call(image_rows, v.cloud, v.ctx)
    return v.render("images.html", status, nav="images", rows=rows, error=error,
                    disk_formats=DISK_FORMATS, container_formats=CONTAINER_FORMATS)


async def image_create(v: View) -> Response:
    """Step 1 of an upload (JSON for upload.js): the image record, queued."""
    from pocketstack.services.image import images

    body = {"name": v.field("name"), "disk_format": v.field("disk_format", "raw"),
            "container_format": v.field("container_format", "bare"),
            "visibility": v.field("visibility", "private")}
    try:
        image = await v.call(images.create, v.service("image"), v.ctx, body)
    except PocketError as err:
        return JSONResponse({"error": err.message}, status_code=err.status)
    return JSONResponse({"id": image["id"]}, status_code=201)


async def image_upload(v: View) -> Response:
    """Step 2: the bytes, streamed into the image service's upload session."""
    from pocketstack.services.image import data

    length = v.request.headers.get("content-length")
    try:
        session = await v.call(data.begin_upload, v.service("image"), v.ctx,
                               v.params["image_id"], area="images",
                               content_length=int(length) if length and length.isdigit()
                               else None, content_md5=None, store_id=None)
        try:
            await data.pump(v.request.stream(), session)
        except ClientDisconnect:
            raise BadRequest("The browser disconnected before sending all image data; "
                             "nothing was stored.") from None
    except PocketError as err:
        return JSONResponse({"error": err.message}, status_code=err.status)
    return Response(status_code=204)


async def image_delete(v: View) -> Response:
    from pocketstack.services.image import images

    try:
        await v.call(images.remove, v.service("image"), v.ctx, v.params["image_id"])
    except PocketError as err:
        if err.status in (403, 404):
            raise
        return await images_page(v, err.message, err.status)
    return v.redirect("/dashboard/images")


# -- key pairs ------------------------------------------------------------------------------
async def keypairs_page(v: View, error: str | None = None, status: int = 200) -> Response:
    from pocketstack.services.compute import keypairs

    rows = await v.call(keypairs.list_, v.service("compute"), v.ctx, NO_QUERY)
    return v.render("keypairs.html", status, nav="keypairs", error=error,
                    rows=[{"name": k.name, "type": k.type, "fingerprint": k.fingerprint}
                          for k in rows])


async def keypair_create(v: View) -> Response:
    """Create (a new key: the private half is this answer, a download, and nowhere else)
    or import (a public key given)."""
    from pocketstack.services.compute import keypairs

    body: dict[str, Any] = {"name": v.field("name").strip(), "type": v.field("type", "ssh")}
    if v.field("public_key").strip():
        body["public_key"] = v.field("public_key")
    try:
        kp, private = await v.call(keypairs.create, v.service("compute"), v.ctx, body,
                                   allow_type=True, allow_user=False)
    except PocketError as err:
        return await keypairs_page(v, err.message, err.status)
    if private is None:
        return v.redirect("/dashboard/keypairs")
    suffix = "pem" if kp.type == "ssh" else "key"
    # The name passed Nova's check (letters, digits, "-_ ." only), safe in the header.
    filename = kp.name.replace(" ", "_").replace('"', "")
    return Response(private, media_type="application/x-pem-file", headers={
        "content-disposition": f'attachment; filename="{filename}.{suffix}"'})


async def keypair_delete(v: View) -> Response:
    from pocketstack.services.compute import keypairs

    await v.call(keypairs.delete, v.service("compute"), v.ctx, v.params["name"], NO_QUERY)
    return v.redirect("/dashboard/keypairs")
