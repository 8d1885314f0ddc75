"""Nova v2.1 HTTP routes: parsing and rendering only; logic is in the service modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.compute import flavors, keypairs, microversions, server_groups, views
from pocketstack.services.compute.microversions import APIVersion, fmt

V = "/v2.1"
Handler = Callable[[Req, APIVersion], Awaitable[Response]]


async def required_body(req: Req, key: str) -> dict[str, Any]:
    """The request's JSON object, which must carry ``key`` (else 400 naming it, as Nova)."""
    body = await req.json()
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"Invalid input for field/attribute {key}: is a required property")
    return body


def register(svc: Any, r: Routes) -> None:  # noqa: C901 - a table of small handlers
    base = svc.base_url

    def add(method: str, path: str, handler: Handler, *, auth: bool = True) -> None:
        async def endpoint(req: Req) -> Response:
            ver = microversions.requested(req.headers)
            response = await handler(req, ver)
            response.headers.update(microversions.response_headers(ver))
            response.headers["X-Compute-Request-Id"] = req.ctx.request_id
            return response
        endpoint.__name__ = handler.__name__
        getattr(r, method)(path, endpoint, auth=auth)

    # -- versions ----------------------------------------------------------------------------
    def version_doc(full: bool) -> dict:
        doc = {"id": "v2.1", "status": "CURRENT", "version": fmt(microversions.MAX),
               "min_version": fmt(microversions.MIN), "updated": "2013-07-23T11:33:21Z",
               "links": [{"rel": "self", "href": f"{base}/v2.1/"}]}
        if full:
            doc["links"].append({"rel": "describedby", "type": "text/html",
                                 "href": "http://docs.openstack.org/"})
            doc["media-types"] = [{"base": "application/json",
                                   "type": "application/vnd.openstack.compute+json;version=2.1"}]
        return doc

    async def versions(req: Req, ver: APIVersion) -> Response:
        return json({"versions": [
            {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
             "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": f"{base}/v2/"}]},
            version_doc(False)]})

    async def version(req: Req, ver: APIVersion) -> Response:
        return json({"version": version_doc(True)})

    async def version_v2(req: Req, ver: APIVersion) -> Response:
        return json({"version": {
            "id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
            "updated": "2011-01-21T11:33:21Z",
            "links": [{"rel": "self", "href": f"{base}/v2/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "http://docs.openstack.org/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2"}]}})

    add("get", "/", versions, auth=False)
    # Nova's api-paste serves /v2 and /v2.1 (with or without the slash) without a token.
    add("get", "/v2", version_v2, auth=False)
    add("get", "/v2/", version_v2, auth=False)
    add("get", V, version, auth=False)
    add("get", V + "/", version, auth=False)

    from pocketstack.services.compute import extensions  # /extensions, Nova's fixed list

    extensions.register(svc, add)

    # -- flavors -----------------------------------------------------------------------------
    def paged(items: list, key: str, path: str, query, limit_hit: bool, ident) -> dict:  # noqa: ANN001
        body = {key: items}
        if limit_hit and items:
            params = {k: v for k, v in query.items() if k != "marker"}
            params["marker"] = ident
            body[f"{key}_links"] = [{"rel": "next", "href": f"{base}/v2.1/{path}?{urlencode(params)}"}]
        return body

    def flavor_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            rows = await run(flavors.list_, svc, req.ctx, req.query)
            limit = req.query.get("limit")
            hit = limit is not None and len(rows) == int(limit)
            return json(paged([views.flavor(base, f, ver, detail) for f in rows], "flavors",
                              "flavors/detail" if detail else "flavors", req.query, hit,
                              rows[-1].id if rows else None))
        handler.__name__ = "flavors_detail" if detail else "flavors"
        return handler

    async def flavor_create(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "flavor")
        f = await run(flavors.create, svc, req.ctx, body["flavor"], ver.has("flavor_description"))
        return json({"flavor": views.flavor(base, f, ver)})

    async def flavor_show(req: Req, ver: APIVersion) -> Response:
        f = await run(flavors.get, svc, req.ctx, req.params["flavor_id"])
        return json({"flavor": views.flavor(base, f, ver)})

    async def flavor_update(req: Req, ver: APIVersion) -> Response:
        if not ver.has("flavor_description"):
            raise NotFound("The resource could not be found.")
        body = await req.json()
        f = await run(flavors.update, svc, req.ctx, req.params["flavor_id"],
                      (body or {}).get("flavor") if isinstance(body, dict) else None)
        return json({"flavor": views.flavor(base, f, ver)})

    async def flavor_delete(req: Req, ver: APIVersion) -> Response:
        await run(flavors.delete, svc, req.ctx, req.params["flavor_id"])
        return empty(202)

    async def extra_specs_list(req: Req, ver: APIVersion) -> Response:
        return json({"extra_specs": await run(flavors.get_extra_specs, svc, req.ctx,
                                              req.params["flavor_id"])})

    async def extra_specs_create(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "extra_specs")
        specs = await run(flavors.set_extra_specs, svc, req.ctx, req.params["flavor_id"],
                          body["extra_specs"], None, ver.has("extra_specs_validation"))
        return json({"extra_specs": specs})

    async def extra_spec_show(req: Req, ver: APIVersion) -> Response:
        specs = await run(flavors.get_extra_specs, svc, req.ctx, req.params["flavor_id"])
        key = req.params["key"]
        if key not in specs:
            raise NotFound(f"Flavor {req.params['flavor_id']} has no extra specs with key {key}.")
        return json({key: specs[key]})

    async def extra_spec_update(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        specs = await run(flavors.set_extra_specs, svc, req.ctx, req.params["flavor_id"], body,
                          req.params["key"], ver.has("extra_specs_validation"))
        return json(specs)

    async def extra_spec_delete(req: Req, ver: APIVersion) -> Response:
        await run(flavors.delete_extra_spec, svc, req.ctx, req.params["flavor_id"], req.params["key"])
        return empty(200)

    async def flavor_access(req: Req, ver: APIVersion) -> Response:
        return json({"flavor_access": await run(flavors.list_access, svc, req.ctx,
                                                req.params["flavor_id"])})

    async def flavor_action(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Invalid flavor action")
        (name, arg), = body.items()
        if name not in ("addTenantAccess", "removeTenantAccess"):
            raise BadRequest(f"Invalid flavor action {name}")
        tenant = arg.get("tenant") if isinstance(arg, dict) else None
        rows = await run(flavors.change_access, svc, req.ctx, req.params["flavor_id"], tenant,
                         name == "addTenantAccess")
        return json({"flavor_access": rows})

    add("get", V + "/flavors", flavor_list(False))
    add("get", V + "/flavors/detail", flavor_list(True))
    add("post", V + "/flavors", flavor_create)
    add("get", V + "/flavors/{flavor_id}", flavor_show)
    add("put", V + "/flavors/{flavor_id}", flavor_update)
    add("delete", V + "/flavors/{flavor_id}", flavor_delete)
    add("get", V + "/flavors/{flavor_id}/os-extra_specs", extra_specs_list)
    add("post", V + "/flavors/{flavor_id}/os-extra_specs", extra_specs_create)
    add("get", V + "/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_show)
    add("put", V + "/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_update)
    add("delete", V + "/flavors/{flavor_id}/os-extra_specs/{key}", extra_spec_delete)
    add("get", V + "/flavors/{flavor_id}/os-flavor-access", flavor_access)
    add("post", V + "/flavors/{flavor_id}/action", flavor_action)

    # -- keypairs ----------------------------------------------------------------------------
    async def keypair_list(req: Req, ver: APIVersion) -> Response:
        rows = await run(keypairs.list_, svc, req.ctx, req.query)
        items = [{"keypair": views.keypair(k, ver)} for k in rows]
        body: dict[str, Any] = {"keypairs": items}
        if ver.has("keypair_paging") and "limit" in req.query and rows and len(rows) == int(req.query["limit"]):
            params = {k: v for k, v in req.query.items() if k != "marker"}
            params["marker"] = rows[-1].name
            body["keypairs_links"] = [{"rel": "next",
                                       "href": f"{base}/v2.1/os-keypairs?{urlencode(params)}"}]
        return json(body)

    async def keypair_create(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "keypair")
        kp, private = await run(keypairs.create, svc, req.ctx, body["keypair"],
                                allow_type=ver.has("keypair_type"),
                                allow_user=ver.has("keypair_user_id"),
                                import_only=ver.has("keypair_import_only"))
        status = 201 if ver.has("keypair_type") else 200
        return json({"keypair": views.keypair(kp, ver, private_key=private) if private else
                     {**views.keypair(kp, ver), "user_id": kp.user_id}}, status)

    async def keypair_show(req: Req, ver: APIVersion) -> Response:
        kp = await run(keypairs.get, svc, req.ctx, req.params["name"], req.query)
        return json({"keypair": views.keypair(kp, ver, detail=True)})

    async def keypair_delete(req: Req, ver: APIVersion) -> Response:
        await run(keypairs.delete, svc, req.ctx, req.params["name"], req.query)
        return empty(204 if ver.has("keypair_type") else 202)

    add("get", V + "/os-keypairs", keypair_list)
    add("post", V + "/os-keypairs", keypair_create)
    add("get", V + "/os-keypairs/{name}", keypair_show)
    add("delete", V + "/os-keypairs/{name}", keypair_delete)

    # -- servers -------------------------------------------------------------------------------
    from pocketstack.services.compute import routes_servers

    routes_servers.register(svc, add, base, paged)

    # -- server groups ---------------------------------------------------------------------------
    async def groups_list(req: Req, ver: APIVersion) -> Response:
        rows = await run(svc.groups_api.list_, req.ctx, req.query)
        return json({"server_groups": [server_groups.view(g, m, ver) for g, m in rows]})

    async def group_create(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "server_group")
        g = await run(svc.groups_api.create, req.ctx, body["server_group"], ver)
        return json({"server_group": server_groups.view(g, [], ver)})

    async def group_show(req: Req, ver: APIVersion) -> Response:
        g, members = await run(svc.groups_api.get, req.ctx, req.params["group_id"])
        return json({"server_group": server_groups.view(g, members, ver)})

    async def group_delete(req: Req, ver: APIVersion) -> Response:
        await run(svc.groups_api.delete, req.ctx, req.params["group_id"])
        return empty(204)

    add("get", V + "/os-server-groups", groups_list)
    add("post", V + "/os-server-groups", group_create)
    add("get", V + "/os-server-groups/{group_id}", group_show)
    add("delete", V + "/os-server-groups/{group_id}", group_delete)

    # -- availability zones, aggregates, hypervisors, services -------------------------------
    from pocketstack.services.compute import routes_hosts

    routes_hosts.register(svc, add)

    hosts = svc.hosts_api

    # -- quotas, limits, usage -------------------------------------------------------------------
    q = svc.quotas

    async def quota_show(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show, req.ctx, req.params["project_id"], False, ver)})

    async def quota_detail(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show, req.ctx, req.params["project_id"], True, ver)})

    async def quota_defaults(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show_defaults, req.ctx, req.params["project_id"], ver)})

    async def quota_update(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "quota_set")
        return json({"quota_set": await run(q.update, req.ctx, req.params["project_id"],
                                            body["quota_set"], ver)})

    async def quota_delete(req: Req, ver: APIVersion) -> Response:
        await run(q.delete, req.ctx, req.params["project_id"])
        return empty(202)

    async def quota_class_show(req: Req, ver: APIVersion) -> Response:
        return json({"quota_class_set": await run(q.class_show, req.ctx, req.params["name"], ver)})

    async def quota_class_update(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "quota_class_set")
        return json({"quota_class_set": await run(q.class_update, req.ctx, req.params["name"],
                                                  body["quota_class_set"], ver)})

    add("get", V + "/os-quota-sets/{project_id}", quota_show)
    add("get", V + "/os-quota-sets/{project_id}/detail", quota_detail)
    add("get", V + "/os-quota-sets/{project_id}/defaults", quota_defaults)
    add("put", V + "/os-quota-sets/{project_id}", quota_update)
    add("delete", V + "/os-quota-sets/{project_id}", quota_delete)
    add("get", V + "/os-quota-class-sets/{name}", quota_class_show)
    add("put", V + "/os-quota-class-sets/{name}", quota_class_update)

    def _limits(ctx, ver: APIVersion, project_id: str) -> dict:  # noqa: ANN001
        with svc.db.read() as s:
            lim = q.limits(s, project_id)
            used = q.usage(s, project_id)
        absolute = {
            "maxServerMeta": lim["metadata_items"], "maxImageMeta": lim["metadata_items"],
            "maxTotalKeypairs": lim["key_pairs"], "maxServerGroups": lim["server_groups"],
            "maxServerGroupMembers": lim["server_group_members"],
            "maxTotalCores": lim["cores"], "maxTotalInstances": lim["instances"],
            "maxTotalRAMSize": lim["ram"], "totalCoresUsed": used["cores"],
            "totalInstancesUsed": used["instances"], "totalRAMUsed": used["ram"],
            "totalServerGroupsUsed": used["server_groups"]}
        if not ver.has("no_personality"):
            absolute["maxPersonality"] = lim["injected_files"]
            absolute["maxPersonalitySize"] = lim["injected_file_content_bytes"]
        if not ver.has("no_proxy_quotas"):
            absolute.update(maxSecurityGroups=lim["security_groups"],
                            maxSecurityGroupRules=lim["security_group_rules"],
                            maxTotalFloatingIps=lim["floating_ips"], totalFloatingIpsUsed=0,
                            totalSecurityGroupsUsed=0)
        return {"limits": {"rate": [], "absolute": absolute}}

    async def limits(req: Req, ver: APIVersion) -> Response:
        project = req.query.get("tenant_id") or req.ctx.project_id or ""
        if project != req.ctx.project_id:
            policy.enforce(req.ctx, "compute:limits_other_project")
        return json(await run(_limits, req.ctx, ver, project))

    add("get", V + "/limits", limits)

    async def usage_list(req: Req, ver: APIVersion) -> Response:
        return json({"tenant_usages": await run(hosts.usage, req.ctx, req.query, None)})

    async def usage_show(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.usage, req.ctx, req.query, req.params["project_id"])
        return json({"tenant_usage": rows[0] if rows else {}})

    add("get", V + "/os-simple-tenant-usage", usage_list)

    from pocketstack.services.compute import proxies

    proxies.register(svc, add, base)
    add("get", V + "/os-simple-tenant-usage/{project_id}", usage_show)

    async def usage_no_project(req: Req, ver: APIVersion) -> Response:
        raise NotFound("The resource could not be found.")
    add("get", V + "/os-simple-tenant-usage/", usage_no_project)

    from pocketstack.services.compute import volume_attachments  # os-volume_attachments

    volume_attachments.register(svc, add)

    from pocketstack.services.compute import server_shares  # 2.97 /servers/{id}/shares

    server_shares.register(svc, add)

    from pocketstack.services.compute import interfaces  # os-interface

    interfaces.register(svc, add)

    from pocketstack.services.compute import admin_apis  # migrations, diagnostics, ...

    admin_apis.register(svc, add)

    from pocketstack.services.compute import consoles  # remote consoles, their pages and proxy

    consoles.register(svc, add, r)
