"""Glance v2 HTTP routes: parsing and rendering only; logic is in the service modules."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, NotFound, RangeNotSatisfiable, UnsupportedMediaType
from pocketstack.services.image import (data, images, imports, locations, members,
                                        routes_metadefs, schemas)
from pocketstack.services.image.service import ImageService

# Glance answers every minor version it supports; v2.17 (add location) is the newest.
VERSIONS = [f"v2.{n}" for n in range(17, -1, -1)]
CHUNK = 4 << 20  # download read size: few thread hops, flat memory
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)\Z")


def register(svc: ImageService, r: Routes) -> None:
    base = svc.settings.base_url + "/image"

    def versions_body() -> dict:
        return {"versions": [
            {"id": v, "status": "CURRENT" if i == 0 else "SUPPORTED",
             "links": [{"rel": "self", "href": f"{base}/v2/"}]}
            for i, v in enumerate(VERSIONS)]}

    async def versions_choice(req: Req) -> Response:
        return json(versions_body(), 300)

    async def versions(req: Req) -> Response:
        return json(versions_body())

    # -- images ---------------------------------------------------------------------------
    async def list_images(req: Req) -> Response:
        return json(await run(images.list_images, svc, req.ctx, req.query))

    async def create_image(req: Req) -> Response:
        body = await req.json()
        image = await run(images.create, svc, req.ctx, body)
        return json(image, 201, headers={
            "Location": f"{base}/v2/images/{image['id']}",
            # glance advertises these on create; openstacksdk's use_import relies on them
            "OpenStack-image-import-methods": ",".join(svc.import_methods()),
            "OpenStack-image-store-ids": ",".join(svc.stores)})

    async def show_image(req: Req) -> Response:
        return json(await run(images.show, svc, req.ctx, req.params["image_id"]))

    async def update_image(req: Req) -> Response:
        ctype = req.header("content-type")
        raw = await req.body()
        import orjson

        try:
            body = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"Malformed JSON in request body: {exc}") from None
        changes = images.parse_patch(ctype, body)
        return json(await run(images.update, svc, req.ctx, req.params["image_id"], changes))

    async def delete_image(req: Req) -> Response:
        await run(images.remove, svc, req.ctx, req.params["image_id"])
        return empty(204)

    async def no_image(req: Req) -> Response:
        raise NotFound("No image found with ID ''")

    async def deactivate(req: Req) -> Response:
        await run(images.set_active, svc, req.ctx, req.params["image_id"], False)
        return empty(204)

    async def reactivate(req: Req) -> Response:
        await run(images.set_active, svc, req.ctx, req.params["image_id"], True)
        return empty(204)

    async def add_tag(req: Req) -> Response:
        await run(images.add_tag, svc, req.ctx, req.params["image_id"], req.params["tag"])
        return empty(204)

    async def delete_tag(req: Req) -> Response:
        await run(images.delete_tag, svc, req.ctx, req.params["image_id"], req.params["tag"])
        return empty(204)

    # -- data -----------------------------------------------------------------------------
    async def _receive(req: Req, area: str) -> None:
        ctype = (req.header("content-type") or "application/octet-stream").split(";")[0]
        if ctype.strip().lower() != "application/octet-stream":
            raise UnsupportedMediaType(f"Unsupported Content-Type {ctype}; image data must "
                                       "be application/octet-stream.")
        length = req.header("content-length")
        size = int(length) if length and length.isdigit() else None
        session = await run(data.begin_upload, svc, req.ctx, req.params["image_id"],
                            area=area, content_length=size,
                            content_md5=req.header("content-md5"),
                            store_id=req.header("x-image-meta-store"))
        try:
            await data.pump(req.request.stream(), session)
        except ClientDisconnect:
            raise BadRequest("The client disconnected before sending all image data; "
                             "nothing was stored.") from None

    async def upload(req: Req) -> Response:
        await _receive(req, "images")
        return empty(204)

    async def stage(req: Req) -> Response:
        await _receive(req, "staging")
        return empty(204)

    async def download(req: Req) -> Response:
        dl = await run(data.open_download, svc, req.ctx, req.params["image_id"])
        if dl is None:
            return empty(204)
        start, end, status = 0, dl.size, 200
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        rng = req.header("range")
        if rng:
            m = RANGE_RE.match(rng.strip().replace(" ", ""))
            if not m or (not m.group(1) and not m.group(2)):
                raise RangeNotSatisfiable("Invalid or multiple byte ranges are not supported.",
                                          headers={"Content-Range": f"bytes */{dl.size}"})
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)) + 1, dl.size) if m.group(2) else dl.size
            else:  # suffix range: the last N bytes
                start = max(0, dl.size - int(m.group(2)))
            if start >= dl.size or start >= end:
                raise RangeNotSatisfiable("Requested range not satisfiable",
                                          headers={"Content-Range": f"bytes */{dl.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{dl.size}"
        elif dl.checksum:
            headers["Content-MD5"] = dl.checksum
        headers["Content-Length"] = str(end - start)
        if req.request.method == "HEAD":
            return Response(status_code=status, headers=headers)
        if dl.path is not None:
            try:
                fd = await run(os.open, str(dl.path), os.O_RDONLY)
            except FileNotFoundError:
                raise NotFound("Image data is gone (the image was deleted).") from None
            body = _file_chunks(fd, start, end)
        else:
            body = _store_chunks(dl.store, dl.image_id, start, end, dl.url)
        return StreamingResponse(body, status_code=status, headers=headers)

    async def import_image(req: Req) -> Response:
        body = await req.json()
        task_id = await run(imports.start_import, svc, req.ctx, req.params["image_id"], body,
                            req.header("x-image-meta-store"))
        if task_id is not None:
            task = asyncio.ensure_future(run(imports.run_import, svc, task_id))
            svc.background.add(task)
            task.add_done_callback(svc.background.discard)
        return empty(202)

    async def image_tasks(req: Req) -> Response:
        tasks = await run(imports.image_tasks, svc, req.ctx, req.params["image_id"])
        return json({"tasks": tasks})

    async def add_location(req: Req) -> Response:
        body = await req.json()
        task_id = await run(locations.add_location, svc, req.ctx, req.params["image_id"], body)
        task = asyncio.ensure_future(run(locations.run_location_import, svc, task_id))
        svc.background.add(task)
        task.add_done_callback(svc.background.discard)
        return empty(202)

    async def cache_list(req: Req) -> Response:
        return json(await run(svc.cache.listing, req.ctx))

    async def cache_queue(req: Req) -> Response:
        await run(svc.cache.queue, req.ctx, req.params["image_id"])
        task = asyncio.ensure_future(run(svc.cache.prefetch))
        svc.background.add(task)
        task.add_done_callback(svc.background.discard)
        return empty(202)

    async def cache_delete(req: Req) -> Response:
        await run(svc.cache.delete, req.ctx, req.params["image_id"])
        return empty(204)

    async def cache_clear(req: Req) -> Response:
        await run(svc.cache.clear, req.ctx, req.header("x-image-cache-clear-target"))
        return empty(204)

    async def delete_from_store(req: Req) -> Response:
        await run(imports.delete_from_store, svc, req.ctx, req.params["store_id"],
                  req.params["image_id"])
        return empty(204)

    # -- members --------------------------------------------------------------------------
    async def list_members(req: Req) -> Response:
        return json(await run(members.list_members, svc, req.ctx, req.params["image_id"]))

    async def add_member(req: Req) -> Response:
        body = await req.json()
        return json(await run(members.add, svc, req.ctx, req.params["image_id"], body))

    async def show_member(req: Req) -> Response:
        return json(await run(members.show, svc, req.ctx, req.params["image_id"],
                              req.params["member_id"]))

    async def update_member(req: Req) -> Response:
        body = await req.json()
        return json(await run(members.update, svc, req.ctx, req.params["image_id"],
                              req.params["member_id"], body))

    async def delete_member(req: Req) -> Response:
        await run(members.remove, svc, req.ctx, req.params["image_id"],
                  req.params["member_id"])
        return empty(204)

    # -- schemas, info, tasks -------------------------------------------------------------
    async def schema(req: Req) -> Response:
        try:
            return json(schemas.get(req.params["name"]))
        except KeyError:
            raise NotFound(f"Schema {req.params['name']} not found") from None

    async def info_import(req: Req) -> Response:
        return json(svc.info_import())

    async def info_stores(req: Req) -> Response:
        return json(svc.info_stores())

    async def info_stores_detail(req: Req) -> Response:
        from pocketstack import policy

        policy.enforce(req.ctx, "image:stores_info_detail", {})
        return json(svc.info_stores(detail=True))

    async def info_usage(req: Req) -> Response:
        return json(await run(svc.info_usage, req.ctx))

    async def list_tasks(req: Req) -> Response:
        return json(await run(svc.list_tasks, req.ctx))

    async def show_task(req: Req) -> Response:
        return json(await run(svc.show_task, req.ctx, req.params["task_id"]))

    async def create_task(req: Req) -> Response:
        body = await req.json()
        return json(await run(svc.create_task, req.ctx, body), 201)

    r.get("/", versions_choice, auth=False)
    r.get("/versions", versions, auth=False)
    r.get("/v2", versions_choice, auth=False)
    r.get("/v2/", versions_choice, auth=False)
    r.get("/v2/images", list_images)
    r.post("/v2/images", create_image)
    r.add("/v2/images/", ["GET", "DELETE", "PATCH"], no_image)
    r.get("/v2/images/{image_id}", show_image)
    r.patch("/v2/images/{image_id}", update_image)
    r.delete("/v2/images/{image_id}", delete_image)
    r.put("/v2/images/{image_id}/file", upload)
    r.get("/v2/images/{image_id}/file", download)
    r.put("/v2/images/{image_id}/stage", stage)
    r.post("/v2/images/{image_id}/import", import_image)
    r.get("/v2/images/{image_id}/tasks", image_tasks)
    r.delete("/v2/stores/{store_id}/{image_id}", delete_from_store)
    r.post("/v2/images/{image_id}/locations", add_location)
    if svc.cache.enabled:  # as Glance: the cache API exists only where there is a cache
        r.get("/v2/cache", cache_list)
        r.delete("/v2/cache", cache_clear)
        r.put("/v2/cache/{image_id}", cache_queue)
        r.delete("/v2/cache/{image_id}", cache_delete)
    r.post("/v2/images/{image_id}/actions/deactivate", deactivate)
    r.post("/v2/images/{image_id}/actions/reactivate", reactivate)
    r.put("/v2/images/{image_id}/tags/{tag}", add_tag)
    r.delete("/v2/images/{image_id}/tags/{tag}", delete_tag)
    r.get("/v2/images/{image_id}/members", list_members)
    r.post("/v2/images/{image_id}/members", add_member)
    r.get("/v2/images/{image_id}/members/{member_id}", show_member)
    r.put("/v2/images/{image_id}/members/{member_id}", update_member)
    r.delete("/v2/images/{image_id}/members/{member_id}", delete_member)
    r.get("/v2/schemas/{name:path}", schema)
    r.get("/v2/info/import", info_import)
    r.get("/v2/info/stores", info_stores)
    r.get("/v2/info/stores/detail", info_stores_detail)
    r.get("/v2/info/usage", info_usage)
    r.get("/v2/tasks", list_tasks)
    r.post("/v2/tasks", create_task)
    r.get("/v2/tasks/{task_id}", show_task)
    routes_metadefs.register(svc, r)


async def _file_chunks(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """Stream [start, end) of an open file, one worker-thread read per chunk."""
    try:
        offset = start
        while offset < end:
            chunk = await run(os.pread, fd, min(CHUNK, end - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            yield chunk
    finally:
        os.close(fd)


async def _store_chunks(store: Any, image_id: str, start: int, end: int,
                        url: str | None = None) -> AsyncIterator[bytes]:
    if url is not None:  # the read-only HTTP store: data stays at its location
        it = await run(store.read_location, url, start, end)
    else:
        it = await run(store.read, image_id, start, end)
    while True:
        chunk = await run(next, it, None)
        if chunk is None:
            return
        yield chunk
