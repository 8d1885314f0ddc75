"""Neutron v2.0 HTTP routes: parsing and rendering only; logic lives in the managers.

Every collection has the same shape (api-ref "General API Overview"): list/create on
``/v2.0/<collection>``, show/update/delete on ``/v2.0/<collection>/<id>``, bulk create with
the plural key, and the tag sub-resource.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.network import ext_routes, extensions
from pocketstack.services.network.schemas import parse_body
from pocketstack.services.network.service import NetworkService

# URL segment -> (manager attribute, body singular key, attribute map name)
COLLECTIONS = {
    "networks": ("networks", "network", "network"),
    "subnets": ("subnets", "subnet", "subnet"),
    "ports": ("ports", "port", "port"),
    "routers": ("routers", "router", "router"),
    "floatingips": ("floatingips", "floatingip", "floatingip"),
    "security-groups": ("security_groups", "security_group", "security_group"),
    "security-group-rules": ("security_group_rules", "security_group_rule",
                             "security_group_rule"),
    "rbac-policies": ("rbac_policies", "rbac_policy", "rbac_policy"),
    "metering/metering-labels": ("metering_labels", "metering_label", "metering_label"),
    "metering/metering-label-rules": ("metering_label_rules", "metering_label_rule",
                                      "metering_label_rule"),
    "subnetpools": ("subnetpools", "subnetpool", "subnetpool"),
    "address-scopes": ("address_scopes", "address_scope", "address_scope"),
    "trunks": ("trunks", "trunk", "trunk"),
    "qos/policies": ("qos_policies", "policy", "qos_policy"),
    "flavors": ("flavors", "flavor", "flavor"),
    "service_profiles": ("service_profiles", "service_profile", "service_profile"),
}


def register(svc: NetworkService, r: Routes) -> None:
    base = svc.settings.base_url + "/network"

    async def versions(req: Req) -> Response:
        return json({"versions": [{"id": "v2.0", "status": "CURRENT", "links": [
            {"href": f"{base}/v2.0/", "rel": "self"}]}]})

    async def version(req: Req) -> Response:
        resources = [{"name": singular, "collection": plural.split("/")[-1],
                      "links": [{"href": f"{base}/v2.0/{plural}", "rel": "self"}]}
                     for plural, (_, singular, _) in COLLECTIONS.items()]
        return json({"resources": resources})

    async def list_extensions(req: Req) -> Response:
        return json({"extensions": extensions.EXTENSIONS})

    async def show_extension(req: Req) -> Response:
        alias = req.params["alias"]
        ext = next((e for e in extensions.EXTENSIONS if e["alias"] == alias), None)
        if ext is None:
            raise NotFound(f"Extension with alias {alias} does not exist",
                           kind="HTTPNotFound")
        return json({"extension": ext})

    async def availability_zones(req: Req) -> Response:
        zones = [{"name": "nova", "resource": res, "state": "available"}
                 for res in ("network", "router")]
        for key in ("name", "resource", "state"):
            wanted = req.query.getlist(key)
            if wanted:
                zones = [z for z in zones if z[key] in wanted]
        return json({"availability_zones": zones})

    r.get("/", versions, auth=False)
    r.get("/v2.0", version)
    r.get("/v2.0/", version)
    r.get("/v2.0/extensions", list_extensions)
    r.get("/v2.0/extensions/{alias}", show_extension)
    r.get("/v2.0/availability_zones", availability_zones)

    async def agents(req: Req) -> Response:
        # Agent-less: the data plane is driven in-process, so there are no agents to list.
        return json({"agents": []})

    r.get("/v2.0/agents", agents)

    # the fixed routes of the extensions (trunk actions, QoS rules, ...) come first: a
    # collection's /{id} pattern must not swallow /qos/rule-types
    ext_routes.register(svc, r, base)
    for path, (attr, singular, schema) in COLLECTIONS.items():
        _collection(r, svc, base, path, getattr(svc, attr), singular, schema)

    routers = svc.routers

    async def add_interface(req: Req) -> Response:
        return json(await run(routers.add_interface, req.ctx, req.params["id"],
                              await req.json()))

    async def remove_interface(req: Req) -> Response:
        return json(await run(routers.remove_interface, req.ctx, req.params["id"],
                              await req.json()))

    async def add_routes(req: Req) -> Response:
        return json({"router": await run(routers.extra_routes, req.ctx, req.params["id"],
                                         await req.json(), True)})

    async def remove_routes(req: Req) -> Response:
        return json({"router": await run(routers.extra_routes, req.ctx, req.params["id"],
                                         await req.json(), False)})

    r.put("/v2.0/routers/{id}/add_router_interface", add_interface)
    r.put("/v2.0/routers/{id}/remove_router_interface", remove_interface)
    r.put("/v2.0/routers/{id}/add_extraroutes", add_routes)
    r.put("/v2.0/routers/{id}/remove_extraroutes", remove_routes)

    quotas = svc.quotas

    async def list_quotas(req: Req) -> Response:
        return json({"quotas": await run(quotas.list, req.ctx)})

    def _pid(req: Req) -> str:
        pid = req.params["project_id"]
        return pid[:-5] if pid.endswith(".json") else pid

    async def show_quota(req: Req) -> Response:
        return json({"quota": await run(quotas.show, req.ctx, _pid(req))})

    async def default_quota(req: Req) -> Response:
        return json({"quota": await run(quotas.defaults, req.ctx, _pid(req))})

    async def quota_details(req: Req) -> Response:
        return json({"quota": await run(quotas.details, req.ctx, _pid(req))})

    async def update_quota(req: Req) -> Response:
        return json({"quota": await run(quotas.update, req.ctx, _pid(req), await req.json())})

    async def delete_quota(req: Req) -> Response:
        await run(quotas.delete, req.ctx, _pid(req))
        return empty(204)

    r.get("/v2.0/quotas", list_quotas)
    r.get("/v2.0/quotas/{project_id}/default", default_quota)
    r.get("/v2.0/quotas/{project_id}/details", quota_details)
    r.get("/v2.0/quotas/{project_id}/details.json", quota_details)
    r.get("/v2.0/quotas/{project_id}", show_quota)
    r.put("/v2.0/quotas/{project_id}", update_quota)
    r.delete("/v2.0/quotas/{project_id}", delete_quota)


def _collection(r: Routes, svc: NetworkService, base: str, path: str, mgr: Any,
                singular: str, schema: str) -> None:
    plural = mgr.plural
    url = f"{base}/v2.0/{path}"

    async def list_(req: Req) -> Response:
        return json(await run(mgr.list, req.ctx, req.query, url))

    async def show(req: Req) -> Response:
        item = await run(mgr.get, req.ctx, req.params["id"], req.query.getlist("fields"))
        return json({singular: item})

    async def create(req: Req) -> Response:
        body = await req.json()
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.", kind="HTTPBadRequest")
        if plural in body and singular not in body:
            items = body[plural]
            if not isinstance(items, list) or not items:
                raise BadRequest(f"Invalid input: '{plural}' must be a non-empty list.",
                                 kind="HTTPBadRequest")
            parsed = [parse_body(schema, item) for item in items]
            return json({plural: await run(mgr.create_bulk, req.ctx, parsed)}, 201)
        if singular not in body:
            raise BadRequest(f"Resource body required: expected '{singular}'.",
                             kind="HTTPBadRequest")
        attrs = parse_body(schema, body[singular])
        return json({singular: await run(mgr.create, req.ctx, attrs)}, 201)

    async def update(req: Req) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or singular not in body:
            raise BadRequest(f"Resource body required: expected '{singular}'.",
                             kind="HTTPBadRequest")
        attrs = parse_body(schema, body[singular], update=True)
        return json({singular: await run(mgr.update, req.ctx, req.params["id"], attrs)})

    async def delete(req: Req) -> Response:
        await run(mgr.delete, req.ctx, req.params["id"])
        return empty(204)

    r.get(f"/v2.0/{path}", list_, name=f"list_{plural}")
    r.post(f"/v2.0/{path}", create, name=f"create_{plural}")
    r.get(f"/v2.0/{path}/{{id}}", show, name=f"show_{plural}")
    r.put(f"/v2.0/{path}/{{id}}", update, name=f"update_{plural}")
    r.delete(f"/v2.0/{path}/{{id}}", delete, name=f"delete_{plural}")
    if schema in ("network", "subnet", "port", "router", "floatingip", "security_group",
                  "subnetpool", "trunk", "qos_policy"):
        _tags(r, path, mgr, plural)
    if schema == "qos_policy":  # Neutron's tag extension names QoS policies "policies"
        _tags(r, "policies", mgr, "qos_policies_alias")


def _tags(r: Routes, path: str, mgr: Any, plural: str) -> None:
    async def get_tags(req: Req) -> Response:
        return json({"tags": await run(mgr.get_tags, req.ctx, req.params["id"])})

    async def put_tags(req: Req) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "tags" not in body:
            raise BadRequest("Invalid input: expected {'tags': [...]}", kind="HTTPBadRequest")
        return json({"tags": await run(mgr.set_tags, req.ctx, req.params["id"], body["tags"])})

    async def delete_tags(req: Req) -> Response:
        await run(mgr.remove_tag, req.ctx, req.params["id"], None)
        return empty(204)

    async def check_tag(req: Req) -> Response:
        if not await run(mgr.has_tag, req.ctx, req.params["id"], req.params["tag"]):
            raise NotFound(f"Tag {req.params['tag']} could not be found.", kind="TagNotFound")
        return empty(204)

    async def add_tag(req: Req) -> Response:
        await run(mgr.add_tag, req.ctx, req.params["id"], req.params["tag"])
        return empty(201)

    async def delete_tag(req: Req) -> Response:
        await run(mgr.remove_tag, req.ctx, req.params["id"], req.params["tag"])
        return empty(204)

    r.get(f"/v2.0/{path}/{{id}}/tags", get_tags, name=f"tags_{plural}")
    r.put(f"/v2.0/{path}/{{id}}/tags", put_tags, name=f"settags_{plural}")
    r.delete(f"/v2.0/{path}/{{id}}/tags", delete_tags, name=f"deltags_{plural}")
    r.get(f"/v2.0/{path}/{{id}}/tags/{{tag}}", check_tag, name=f"tag_{plural}")
    r.put(f"/v2.0/{path}/{{id}}/tags/{{tag}}", add_tag, name=f"addtag_{plural}")
    r.delete(f"/v2.0/{path}/{{id}}/tags/{{tag}}", delete_tag, name=f"deltag_{plural}")
