"""Nova v2.1 HTTP routes: parsing and rendering only; logic is in the service modules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute import flavors, keypairs, microversions, server_groups, views
from pocketstack.services.compute.microversions import APIVersion, fmt
from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent, Server

V = "/v2.1"
Handler = Callable[[Req, APIVersion], Awaitable[Response]]


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
    add("get", "/v2", version_v2)
    add("get", "/v2/", version_v2)
    add("get", V, version)
    add("get", V + "/", version)

    async def extensions(req: Req, ver: APIVersion) -> Response:
        return json({"extensions": []})
    add("get", V + "/extensions", extensions)

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
        body = await req.json()
        if not isinstance(body, dict) or "flavor" not in body:
            raise BadRequest("Invalid input for field/attribute flavor: is a required property")
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
        body = await req.json()
        if not isinstance(body, dict) or "extra_specs" not in body:
            raise BadRequest("Invalid input for field/attribute extra_specs: is a required property")
        specs = await run(flavors.set_extra_specs, svc, req.ctx, req.params["flavor_id"],
                          body["extra_specs"])
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
                          req.params["key"])
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
        body = await req.json()
        if not isinstance(body, dict) or "keypair" not in body:
            raise BadRequest("Invalid input for field/attribute keypair: is a required property")
        kp, private = await run(keypairs.create, svc, req.ctx, body["keypair"],
                                allow_type=ver.has("keypair_type"),
                                allow_user=ver.has("keypair_user_id"))
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
    def server_views(rows: list[Server], ver: APIVersion, ctx, show: bool = False,  # noqa: ANN001
                     minimal: bool = False) -> list[dict]:
        addrs = svc.servers.addresses([r.id for r in rows])
        states = svc.servers.host_states() if ver.has("host_status") and ctx.is_admin else None
        groups = None
        if show and ver.has("server_groups_in_show"):
            groups = [rows[0].group_id] if rows and rows[0].group_id else []
        out = [views.server(base, srv, ver, ctx, addresses=addrs.get(srv.id), host_states=states,
                            groups=groups, show=show, minimal=minimal) for srv in rows]
        if minimal:
            return out
        from pocketstack.services.compute.volume_attachments import volumes_attached

        attached = volumes_attached(svc, [r.id for r in rows], ver)
        for body, srv in zip(out, rows):
            body["os-extended-volumes:volumes_attached"] = attached.get(srv.id, [])
        return out

    def server_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            rows, more = await run(svc.servers.list_, req.ctx, req.query, ver)
            if detail:
                items = await run(server_views, rows, ver, req.ctx)
            else:
                items = [views.server_brief(base, s) for s in rows]
            limit = req.query.get("limit")
            hit = more or (limit is not None and len(rows) == int(limit))
            return json(paged(items, "servers", "servers/detail" if detail else "servers",
                              req.query, hit, rows[-1].id if rows else None))
        handler.__name__ = "servers_detail" if detail else "servers"
        return handler

    async def server_create(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "server" not in body:
            raise BadRequest("Invalid input for field/attribute server: is a required property")
        server = body["server"]
        if isinstance(server, dict):
            for key in ("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"):
                if key in body:
                    server = {**server, key: body[key]}
        created, admin_pass, reservation = await run(svc.servers.create, req.ctx, server, ver)
        if isinstance(body["server"], dict) and body["server"].get("return_reservation_id"):
            return json({"reservation_id": reservation}, 202)
        first = created[0]
        out = {"id": first.id, "links": views.link(base, "servers", first.id),
               "OS-DCF:diskConfig": first.disk_config,
               "security_groups": [{"name": n} for n in first.security_groups or []]}
        out["adminPass"] = admin_pass or _password()
        return json({"server": out}, 202,
                    headers={"Location": f"{base}/v2.1/servers/{first.id}"})

    async def server_show(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        body = (await run(server_views, [srv], ver, req.ctx, True))[0]
        return json({"server": body})

    async def server_update(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "server" not in body:
            raise BadRequest("Invalid input for field/attribute server: is a required property")
        srv = await run(svc.servers.update, req.ctx, req.params["server_id"], body["server"], ver)
        full = ver.has("rebuild_returns_full")
        return json({"server": (await run(server_views, [srv], ver, req.ctx, full,
                                          not full))[0]})

    async def server_delete(req: Req, ver: APIVersion) -> Response:
        await run(svc.servers.delete, req.ctx, req.params["server_id"])
        return empty(204)

    async def server_action(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("There is no such action: an action body has exactly one key")
        (name, arg), = body.items()
        sid = req.params["server_id"]
        acts = svc.actions_api
        if name in ("os-stop", "os-start", "pause", "unpause", "suspend", "resume"):
            await run(acts.simple, req.ctx, sid, name)
        elif name == "reboot":
            await run(acts.reboot, req.ctx, sid, arg)
        elif name == "lock":
            await run(acts.lock, req.ctx, sid, arg, ver.has("locked_reason"))
        elif name == "unlock":
            await run(acts.unlock, req.ctx, sid)
        elif name == "rebuild":
            admin_pass = await run(acts.rebuild, req.ctx, sid, arg, ver)
            srv = await run(svc.servers.get, req.ctx, sid)
            full = ver.has("rebuild_returns_full")
            view = (await run(server_views, [srv], ver, req.ctx, full, not full))[0]
            if not full and ver.at_least(2, 54):  # rebuild's own additions to the core view
                view["key_name"] = srv.key_name
            if not full and ver.at_least(2, 57):
                view["user_data"] = srv.user_data
            view["adminPass"] = admin_pass or _password()
            return json({"server": view}, 202)
        elif name == "resize":
            await run(acts.resize, req.ctx, sid, arg)
        elif name == "confirmResize":
            await run(acts.confirm_resize, req.ctx, sid)
            return empty(204)
        elif name == "revertResize":
            await run(acts.revert_resize, req.ctx, sid)
        elif name in ("forceDelete", "restore"):
            if name == "restore":
                await run(svc.servers.get, req.ctx, sid)  # 404 first, as Nova
                raise Conflict("Instance is not soft-deleted (soft delete is not enabled).")
            await run(svc.servers.delete, req.ctx, sid, True)
        elif name == "os-resetState":
            await run(acts.reset_state, req.ctx, sid, arg)
        elif name in ("addSecurityGroup", "removeSecurityGroup"):
            await run(svc.change_server_security_group, req.ctx, sid, arg,
                      name == "addSecurityGroup")
        elif name == "os-getConsoleOutput":
            return json({"output": await run(acts.console_output, req.ctx, sid, arg)})
        elif name == "createImage":
            image_id = await run(acts.create_image, req.ctx, sid, arg)
            headers = {"Location": f"{svc.settings.base_url}/image/v2/images/{image_id}"}
            if ver.at_least(2, 45):
                return json({"image_id": image_id}, 202, headers=headers)
            return empty(202, headers=headers)
        else:
            raise BadRequest(f"There is no such action: {name}")
        return empty(202)

    add("get", V + "/servers", server_list(False))
    add("get", V + "/servers/detail", server_list(True))
    add("post", V + "/servers", server_create)
    add("get", V + "/servers/{server_id}", server_show)
    add("put", V + "/servers/{server_id}", server_update)
    add("delete", V + "/servers/{server_id}", server_delete)
    add("post", V + "/servers/{server_id}/action", server_action)

    # ips
    async def server_ips(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        addrs = (await run(svc.servers.addresses, [srv.id])).get(srv.id) or {}
        net = req.params.get("network")
        if net is not None:
            if net not in addrs:
                raise NotFound("Instance is not a member of specified network")
            return json({net: addrs[net]})
        return json({"addresses": addrs})

    add("get", V + "/servers/{server_id}/ips", server_ips)
    add("get", V + "/servers/{server_id}/ips/{network}", server_ips)

    # metadata
    async def meta_list(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        return json({"metadata": dict(srv.metadata_ or {})})

    def meta_set(replace: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            body = await req.json()
            if not isinstance(body, dict) or "metadata" not in body:
                raise BadRequest("Invalid input for field/attribute metadata: is a required property")
            meta = await run(svc.servers.set_metadata, req.ctx, req.params["server_id"],
                             body["metadata"], replace)
            if not replace:
                srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
                meta = dict(srv.metadata_ or {})
            return json({"metadata": meta})
        handler.__name__ = "meta_replace" if replace else "meta_update"
        return handler

    async def meta_show(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        key = req.params["key"]
        if key not in (srv.metadata_ or {}):
            raise NotFound("Metadata item was not found")
        return json({"meta": {key: srv.metadata_[key]}})

    async def meta_put(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "meta" not in body:
            raise BadRequest("Invalid input for field/attribute meta: is a required property")
        meta = await run(svc.servers.set_metadata, req.ctx, req.params["server_id"], body["meta"],
                         False, req.params["key"])
        return json({"meta": meta})

    async def meta_delete(req: Req, ver: APIVersion) -> Response:
        await run(svc.servers.delete_metadata, req.ctx, req.params["server_id"], req.params["key"])
        return empty(204)

    add("get", V + "/servers/{server_id}/metadata", meta_list)
    add("put", V + "/servers/{server_id}/metadata", meta_set(True))
    add("post", V + "/servers/{server_id}/metadata", meta_set(False))
    add("get", V + "/servers/{server_id}/metadata/{key}", meta_show)
    add("put", V + "/servers/{server_id}/metadata/{key}", meta_put)
    add("delete", V + "/servers/{server_id}/metadata/{key}", meta_delete)

    # tags (2.26)
    def tags_route(fn: Handler) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            if not ver.has("server_tags"):
                raise NotFound("The resource could not be found.")
            return await fn(req, ver)
        handler.__name__ = fn.__name__
        return handler

    async def tags_list(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        return json({"tags": list(srv.tags or [])})

    async def tags_replace(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "tags" not in body:
            raise BadRequest("Invalid input for field/attribute tags: is a required property")
        return json({"tags": await run(svc.servers.set_tags, req.ctx, req.params["server_id"],
                                       body["tags"])})

    async def tags_clear(req: Req, ver: APIVersion) -> Response:
        await run(svc.servers.set_tags, req.ctx, req.params["server_id"], None, None, "*")
        return empty(204)

    async def tag_check(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        if req.params["tag"] not in (srv.tags or []):
            raise NotFound(f"Tag {req.params['tag']} could not be found for instance {srv.id}")
        return empty(204)

    async def tag_add(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        existed = req.params["tag"] in (srv.tags or [])
        await run(svc.servers.set_tags, req.ctx, srv.id, None, req.params["tag"])
        return empty(204 if existed else 201, headers={
            "Location": f"{base}/v2.1/servers/{srv.id}/tags/{req.params['tag']}"})

    async def tag_delete(req: Req, ver: APIVersion) -> Response:
        if req.params["tag"] == "*":
            raise NotFound("Tag * could not be found")
        await run(svc.servers.set_tags, req.ctx, req.params["server_id"], None, None,
                  req.params["tag"])
        return empty(204)

    add("get", V + "/servers/{server_id}/tags", tags_route(tags_list))
    add("put", V + "/servers/{server_id}/tags", tags_route(tags_replace))
    add("delete", V + "/servers/{server_id}/tags", tags_route(tags_clear))
    add("get", V + "/servers/{server_id}/tags/{tag}", tags_route(tag_check))
    add("put", V + "/servers/{server_id}/tags/{tag}", tags_route(tag_add))
    add("delete", V + "/servers/{server_id}/tags/{tag}", tags_route(tag_delete))

    # instance actions
    def _actions(ctx, sid: str, request_id: str | None) -> tuple:  # noqa: ANN001
        from sqlalchemy import select

        with svc.db.read() as s:
            srv = s.get(Server, sid)
            if srv is None or not policy.check(ctx, "compute:server_show",
                                               {"project_id": srv.project_id}):
                raise NotFound(f"Instance {sid} could not be found.")
            q = select(InstanceAction).where(InstanceAction.server_id == sid)
            if request_id is not None:
                a = s.execute(q.where(InstanceAction.request_id == request_id)).scalars().first()
                if a is None:
                    raise NotFound(f"Action for request_id {request_id} on instance {sid} not found")
                evs = list(s.execute(select(InstanceActionEvent).where(
                    InstanceActionEvent.action_id == a.id).order_by(InstanceActionEvent.id)).scalars())
                return srv, [a], evs
            return srv, list(s.execute(q.order_by(InstanceAction.id.desc())).scalars()), []

    async def actions_list(req: Req, ver: APIVersion) -> Response:
        srv, rows, _ = await run(_actions, req.ctx, req.params["server_id"], None)
        if srv.deleted and not ver.has("actions_deleted_server"):
            raise NotFound(f"Instance {srv.id} could not be found.")
        if "limit" in req.query and ver.has("actions_paging"):
            rows = rows[:int(req.query["limit"])]
        return json({"instanceActions": [views.action(a, ver) for a in rows]})

    async def action_show(req: Req, ver: APIVersion) -> Response:
        srv, (a,), evs = await run(_actions, req.ctx, req.params["server_id"],
                                   req.params["request_id"])
        body = views.action(a, ver)
        if req.ctx.is_admin or ver.at_least(2, 51):
            body["events"] = [views.event(e, ver, req.ctx, srv.project_id) for e in evs]
        return json({"instanceAction": body})

    # os-server-password: servers here never post an encrypted password, so it is empty
    async def server_password(req: Req, ver: APIVersion) -> Response:
        await run(svc.servers.get, req.ctx, req.params["server_id"])
        return json({"password": ""})

    async def server_password_clear(req: Req, ver: APIVersion) -> Response:
        await run(svc.servers.get, req.ctx, req.params["server_id"])
        return empty(204)

    add("get", V + "/servers/{server_id}/os-server-password", server_password)
    add("delete", V + "/servers/{server_id}/os-server-password", server_password_clear)
    add("get", V + "/servers/{server_id}/os-instance-actions", actions_list)
    add("get", V + "/servers/{server_id}/os-instance-actions/{request_id}", action_show)

    # -- server groups ---------------------------------------------------------------------------
    async def groups_list(req: Req, ver: APIVersion) -> Response:
        rows = await run(svc.groups_api.list_, req.ctx, req.query)
        return json({"server_groups": [server_groups.view(g, m, ver) for g, m in rows]})

    async def group_create(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "server_group" not in body:
            raise BadRequest("Invalid input for field/attribute server_group: is a required property")
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
    def az_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            zones = await run(svc.hosts_api.zones, req.ctx, detail)
            return json({"availabilityZoneInfo": zones})
        handler.__name__ = "az_detail" if detail else "az"
        return handler

    add("get", V + "/os-availability-zone", az_list(False))
    add("get", V + "/os-availability-zone/detail", az_list(True))

    hosts = svc.hosts_api

    async def aggs(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.aggregates, req.ctx)
        return json({"aggregates": [hosts.aggregate_view(a, ver) for a in rows]})

    async def agg_create(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "aggregate" not in body:
            raise BadRequest("Invalid input for field/attribute aggregate: is a required property")
        a = await run(hosts.create_aggregate, req.ctx, body["aggregate"])
        view = hosts.aggregate_view(a, ver)
        for k in ("hosts", "metadata"):
            view.pop(k, None)
        return json({"aggregate": view})

    async def agg_show(req: Req, ver: APIVersion) -> Response:
        return json({"aggregate": hosts.aggregate_view(
            await run(hosts.aggregate, req.ctx, req.params["agg_id"]), ver)})

    async def agg_update(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "aggregate" not in body:
            raise BadRequest("Invalid input for field/attribute aggregate: is a required property")
        a = await run(hosts.update_aggregate, req.ctx, req.params["agg_id"], body["aggregate"])
        return json({"aggregate": hosts.aggregate_view(a, ver)})

    async def agg_delete(req: Req, ver: APIVersion) -> Response:
        await run(hosts.delete_aggregate, req.ctx, req.params["agg_id"])
        return empty(200)

    async def agg_action(req: Req, ver: APIVersion) -> Response:
        a = await run(hosts.aggregate_action, req.ctx, req.params["agg_id"], await req.json())
        return json({"aggregate": hosts.aggregate_view(a, ver)})

    add("get", V + "/os-aggregates", aggs)
    add("post", V + "/os-aggregates", agg_create)
    add("get", V + "/os-aggregates/{agg_id}", agg_show)
    add("put", V + "/os-aggregates/{agg_id}", agg_update)
    add("delete", V + "/os-aggregates/{agg_id}", agg_delete)
    add("post", V + "/os-aggregates/{agg_id}/action", agg_action)

    def hv_list(detail: bool) -> Handler:
        async def handler(req: Req, ver: APIVersion) -> Response:
            rows = await run(hosts.hypervisors, req.ctx, req.query, ver, detail)
            return json({"hypervisors": rows})
        handler.__name__ = "hv_detail" if detail else "hv"
        return handler

    async def hv_stats(req: Req, ver: APIVersion) -> Response:
        return json({"hypervisor_statistics": await run(hosts.statistics, req.ctx)})

    async def hv_show(req: Req, ver: APIVersion) -> Response:
        return json({"hypervisor": await run(hosts.hypervisor, req.ctx, req.params["hv_id"], ver)})

    async def hv_search(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.hypervisors, req.ctx,
                         {"hypervisor_hostname_pattern": req.params["pattern"]}, ver, False)
        return json({"hypervisors": rows})

    async def hv_servers(req: Req, ver: APIVersion) -> Response:
        rows = await run(hosts.hypervisors, req.ctx,
                         {"hypervisor_hostname_pattern": req.params["pattern"],
                          "with_servers": "true"}, ver, False)
        return json({"hypervisors": rows})

    add("get", V + "/os-hypervisors", hv_list(False))
    add("get", V + "/os-hypervisors/detail", hv_list(True))
    add("get", V + "/os-hypervisors/statistics", hv_stats)
    add("get", V + "/os-hypervisors/{hv_id}", hv_show)
    async def hv_uptime(req: Req, ver: APIVersion) -> Response:
        if ver.at_least(2, 88):
            raise NotFound("The resource could not be found.")
        body = await run(hosts.hypervisor, req.ctx, req.params["hv_id"], ver)
        uptime = ""
        try:  # this machine's uptime line (all hypervisors here share it), as `uptime` prints
            import subprocess

            uptime = subprocess.run(["uptime"], capture_output=True, text=True,
                                    timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
        return json({"hypervisor": {k: body[k] for k in ("id", "hypervisor_hostname", "state",
                                                          "status")} | {"uptime": uptime}})

    add("get", V + "/os-hypervisors/{hv_id}/uptime", hv_uptime)
    add("get", V + "/os-hypervisors/{pattern}/search", hv_search)
    add("get", V + "/os-hypervisors/{pattern}/servers", hv_servers)

    async def services(req: Req, ver: APIVersion) -> Response:
        return json({"services": await run(hosts.services, req.ctx, req.query, ver)})

    async def service_legacy(req: Req, ver: APIVersion) -> Response:
        if ver.has("uuid_ids"):
            raise NotFound("The resource could not be found.")
        action = req.params["action"]
        body = await req.json()
        if not isinstance(body, dict) or not isinstance(body.get("host"), str):
            raise BadRequest("Invalid input for field/attribute host: is a required property")
        if action == "enable":
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"], status="enabled", ver=ver))
            return json({"service": {"host": view["host"], "binary": "nova-compute", "status": "enabled"}})
        if action in ("disable", "disable-log-reason"):
            reason = body.get("disabled_reason") if action == "disable-log-reason" else None
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"], status="disabled",
                                                       reason=reason, ver=ver))
            out = {"host": view["host"], "binary": "nova-compute", "status": "disabled"}
            if reason is not None:
                out["disabled_reason"] = reason
            return json({"service": out})
        if action == "force-down":
            view = await run(lambda: hosts.set_service(req.ctx, host=body["host"],
                                                       forced_down=bool(body.get("forced_down")), ver=ver))
            return json({"service": {"host": view["host"], "binary": "nova-compute",
                                     "forced_down": view.get("forced_down", False)}})
        raise NotFound(f"Unknown action {action}")

    async def service_update(req: Req, ver: APIVersion) -> Response:
        if not ver.has("uuid_ids"):
            return await service_legacy(req, ver)
        body = await req.json()
        if not isinstance(body, dict) or not body or set(body) - {"status", "disabled_reason", "forced_down"}:
            raise BadRequest("Invalid input for field/attribute service")
        status = body.get("status")
        if status is not None and status not in ("enabled", "disabled"):
            raise BadRequest(f"Invalid input for field/attribute status. Value: {status}.")
        view = await run(lambda: hosts.set_service(
            req.ctx, service_id=req.params["action"], status=status,
            reason=body.get("disabled_reason"), forced_down=body.get("forced_down"), ver=ver))
        return json({"service": view})

    async def service_delete(req: Req, ver: APIVersion) -> Response:
        await run(hosts.delete_service, req.ctx, req.params["action"])
        return empty(204)

    from pocketstack.services.compute.hosts import OsHosts

    os_hosts = OsHosts(hosts)

    def before_243(ver: APIVersion) -> None:
        if ver.at_least(2, 43):
            raise NotFound("The resource could not be found.")

    async def hosts_list(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json({"hosts": await run(os_hosts.list_, req.ctx, req.query.get("zone"))})

    async def host_show(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json({"host": await run(os_hosts.show, req.ctx, req.params["host"])})

    async def host_update(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        return json(await run(os_hosts.update, req.ctx, req.params["host"], await req.json()))

    async def host_power(req: Req, ver: APIVersion) -> Response:
        before_243(ver)
        action = req.params["action"]
        if action not in ("startup", "shutdown", "reboot"):
            raise NotFound("The resource could not be found.")
        await run(os_hosts.power_action, req.ctx, req.params["host"], action)
        return empty(200)

    add("get", V + "/os-hosts", hosts_list)
    add("get", V + "/os-hosts/{host}", host_show)
    add("put", V + "/os-hosts/{host}", host_update)
    add("get", V + "/os-hosts/{host}/{action}", host_power)
    add("get", V + "/os-services", services)
    add("put", V + "/os-services/{action}", service_update)
    add("delete", V + "/os-services/{action}", service_delete)

    # -- quotas, limits, usage -------------------------------------------------------------------
    q = svc.quotas

    async def quota_show(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show, req.ctx, req.params["project_id"], False, ver)})

    async def quota_detail(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show, req.ctx, req.params["project_id"], True, ver)})

    async def quota_defaults(req: Req, ver: APIVersion) -> Response:
        return json({"quota_set": await run(q.show_defaults, req.ctx, req.params["project_id"], ver)})

    async def quota_update(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "quota_set" not in body:
            raise BadRequest("Invalid input for field/attribute quota_set: is a required property")
        return json({"quota_set": await run(q.update, req.ctx, req.params["project_id"],
                                            body["quota_set"], ver)})

    async def quota_delete(req: Req, ver: APIVersion) -> Response:
        await run(q.delete, req.ctx, req.params["project_id"])
        return empty(202)

    async def quota_class_show(req: Req, ver: APIVersion) -> Response:
        return json({"quota_class_set": await run(q.class_show, req.ctx, req.params["name"], ver)})

    async def quota_class_update(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        if not isinstance(body, dict) or "quota_class_set" not in body:
            raise BadRequest("Invalid input for field/attribute quota_class_set: is a required property")
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

    volume_attachments.register(svc, r)


def _password() -> str:
    import secrets

    return secrets.token_urlsafe(9)
