"""Glance v2 metadata definitions routes (/v2/metadefs/...): HTTP only."""

from __future__ import annotations

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.services.image import metadefs
from pocketstack.services.image.service import ImageService

NS = "/v2/metadefs/namespaces/{namespace}"


def register(svc: ImageService, r: Routes) -> None:
    async def resource_types(req: Req) -> Response:
        return json(await run(metadefs.list_resource_types, svc, req.ctx))

    async def list_namespaces(req: Req) -> Response:
        return json(await run(metadefs.list_namespaces, svc, req.ctx, req.query))

    async def create_namespace(req: Req) -> Response:
        return json(await run(metadefs.create_namespace, svc, req.ctx, await req.json()), 201)

    async def show_namespace(req: Req) -> Response:
        return json(await run(metadefs.show_namespace, svc, req.ctx, req.params["namespace"]))

    async def update_namespace(req: Req) -> Response:
        return json(await run(metadefs.update_namespace, svc, req.ctx,
                              req.params["namespace"], await req.json()))

    async def delete_namespace(req: Req) -> Response:
        await run(metadefs.delete_namespace, svc, req.ctx, req.params["namespace"])
        return empty(204)

    def collection(kind: str):  # noqa: ANN202
        async def listing(req: Req) -> Response:
            return json(await run(metadefs.list_items, svc, req.ctx, req.params["namespace"],
                                  kind))

        async def create(req: Req) -> Response:
            body = await req.json()
            if kind == "tags":
                append = req.header("x-openstack-append") or ""
                return json(await run(metadefs.replace_tags, svc, req.ctx,
                                      req.params["namespace"], body,
                                      append.strip().lower() in ("1", "true", "yes", "on",
                                                                 "y", "t")), 201)
            if kind == "resource_types":
                return json(await run(metadefs.associate, svc, req.ctx,
                                      req.params["namespace"], body), 201)
            return json(await run(metadefs.create_item, svc, req.ctx,
                                  req.params["namespace"], kind, body), 201)

        async def show(req: Req) -> Response:
            return json(await run(metadefs.show_item, svc, req.ctx, req.params["namespace"],
                                  kind, req.params["name"]))

        async def update(req: Req) -> Response:
            return json(await run(metadefs.update_item, svc, req.ctx, req.params["namespace"],
                                  kind, req.params["name"], await req.json()))

        async def delete(req: Req) -> Response:
            await run(metadefs.delete_item, svc, req.ctx, req.params["namespace"], kind,
                      req.params["name"])
            return empty(204)

        async def create_one_tag(req: Req) -> Response:
            return json(await run(metadefs.create_item, svc, req.ctx, req.params["namespace"],
                                  "tags", None, req.params["name"]), 201)

        async def clear_tags(req: Req) -> Response:
            await run(metadefs.clear_tags, svc, req.ctx, req.params["namespace"])
            return empty(204)

        listing.__name__ = f"list_metadef_{kind}"
        r.get(f"{NS}/{kind}", listing)
        r.post(f"{NS}/{kind}", create)
        if kind != "resource_types":
            r.get(f"{NS}/{kind}/{{name}}", show)
            r.put(f"{NS}/{kind}/{{name}}", update)
        r.delete(f"{NS}/{kind}/{{name}}", delete)
        if kind == "tags":
            r.post(f"{NS}/tags/{{name}}", create_one_tag)
            r.delete(f"{NS}/tags", clear_tags)

    r.get("/v2/metadefs/resource_types", resource_types)
    r.get("/v2/metadefs/namespaces", list_namespaces)
    r.post("/v2/metadefs/namespaces", create_namespace)
    r.get(NS, show_namespace)
    r.put(NS, update_namespace)
    r.delete(NS, delete_namespace)
    for kind in ("objects", "properties", "tags", "resource_types"):
        collection(kind)
