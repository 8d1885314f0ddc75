"""Nova server routes: servers, their addresses, metadata, tags, instance actions and
os-server-password. Registered from routes.register, in the same order as before."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute import consoles, views
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent, Server
from pocketstack.services.compute.routes import required_body

V = "/v2.1"
Handler = Callable[[Req, APIVersion], Awaitable[Response]]


def register(svc: Any, add: Callable[..., None], base: str,
             paged: Callable[..., dict]) -> None:  # noqa: C901 - a table of small handlers
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
        body = await required_body(req, "server")
        server = body["server"]
        if isinstance(server, dict):
            for key in ("os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"):
                if key in body:
                    server = {**server, key: body[key]}
        created, admin_pass, reservation = await run(svc.servers.create, req.ctx, server, ver)
        if isinstance(body["server"], dict) and body["server"].get("return_reservation_id"):
            return json({"reservation_id": reservation}, 202)
        first = created[0]
        # Nova echoes the request's security groups (default: "default"), so an explicit
        # empty list answers empty (Tempest's port-security-disabled network scenario)
        asked = body["server"].get("security_groups") if isinstance(body["server"], dict) else None
        out = {"id": first.id, "links": views.link(base, "servers", first.id),
               "OS-DCF:diskConfig": first.disk_config,
               "security_groups": [{"name": g["name"]} for g in asked] if isinstance(asked, list)
               else [{"name": "default"}]}
        out["adminPass"] = admin_pass or _password()
        return json({"server": out}, 202,
                    headers={"Location": f"{base}/v2.1/servers/{first.id}"})

    async def server_show(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        body = (await run(server_views, [srv], ver, req.ctx, True))[0]
        return json({"server": body})

    async def server_update(req: Req, ver: APIVersion) -> Response:
        body = await required_body(req, "server")
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
            if ver.at_least(2, 57):  # rebuild's own user_data replaces the admin attribute
                view.pop("OS-EXT-SRV-ATTR:user_data", None)
                view["user_data"] = srv.user_data
            if not full and ver.at_least(2, 63):
                view["trusted_image_certificates"] = None
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
        elif name in ("addFloatingIp", "removeFloatingIp") and not ver.at_least(2, 44):
            fips = svc.floating_ip_proxy  # proxies_network.py
            await run(fips.add_to_server if name == "addFloatingIp" else
                      fips.remove_from_server, req.ctx, sid, arg)
        elif name in ("addFixedIp", "removeFixedIp") and not ver.at_least(2, 44):
            from pocketstack.services.compute import interfaces

            fn = interfaces.add_fixed_ip if name == "addFixedIp" else interfaces.remove_fixed_ip
            await run(fn, svc, req.ctx, sid, arg, ver)
        elif name == "os-getConsoleOutput":
            return json({"output": await run(acts.console_output, req.ctx, sid, arg)})
        elif name in consoles.LEGACY_ACTION_NAMES:
            return json(await consoles.legacy_action(svc, req, ver, name, arg))
        elif name == "createImage":
            image_id = await run(acts.create_image, req.ctx, sid, arg)
            headers = {"Location": f"{svc.settings.base_url}/image/v2/images/{image_id}"}
            if ver.at_least(2, 45):
                return json({"image_id": image_id}, 202, headers=headers)
            return empty(202, headers=headers)
        elif name == "createBackup":  # 2.45+: the id in the body, no Location (as Nova)
            image_id = await run(acts.create_image, req.ctx, sid, arg, True)
            if ver.at_least(2, 45):
                return json({"image_id": image_id}, 202)
            rotation = int(arg["rotation"])
            return empty(202, headers={"Location": f"{base}/v2.1/images/{image_id}"}
                         if rotation > 0 else None)
        elif name == "injectNetworkInfo":
            await run(acts.inject_network_info, req.ctx, sid)
        elif name == "migrate":
            await run(acts.migrate, req.ctx, sid, arg, ver)
        elif name == "evacuate":
            await run(acts.evacuate, req.ctx, sid, arg, ver)
        elif name in ("shelve", "shelveOffload", "unshelve"):
            from pocketstack.services.compute import server_shelve

            if name == "unshelve":
                await run(server_shelve.unshelve, acts, req.ctx, sid, arg, ver)
            else:
                await run(server_shelve.shelve if name == "shelve" else
                          server_shelve.shelve_offload, acts, req.ctx, sid)
        elif name in ("rescue", "unrescue"):
            from pocketstack.services.compute import server_rescue

            if name == "unrescue":
                await run(server_rescue.unrescue, acts, req.ctx, sid)
            else:
                return json({"adminPass": await run(server_rescue.rescue, acts, req.ctx, sid,
                                                    arg, ver)})
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
            body = await required_body(req, "metadata")
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
        body = await required_body(req, "meta")
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
        body = await required_body(req, "tags")
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

    # os-server-password: what the guest posted to the metadata service (its password,
    # encrypted with the key pair's public key by the guest), once, until cleared
    async def server_password(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        return json({"password": await run(svc.server_password, srv.id)})

    async def server_password_clear(req: Req, ver: APIVersion) -> Response:
        srv = await run(svc.servers.get, req.ctx, req.params["server_id"])
        await run(svc.set_server_password, srv.id, None)
        return empty(204)

    add("get", V + "/servers/{server_id}/os-server-password", server_password)
    add("delete", V + "/servers/{server_id}/os-server-password", server_password_clear)
    add("get", V + "/servers/{server_id}/os-instance-actions", actions_list)
    add("get", V + "/servers/{server_id}/os-instance-actions/{request_id}", action_show)


def _password() -> str:
    import secrets

    return secrets.token_urlsafe(9)
