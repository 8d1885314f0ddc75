"""Nova's proxy APIs (deprecated at 2.36, still used by Tempest's compute tests and old
clients): /images on the image service and /os-security-groups on the network service.
They call those slices in-process; without the slice, they answer 404 like a Nova whose
proxied service is absent."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.microversions import APIVersion

_IMAGE_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING",
                 "importing": "SAVING", "uploading": "SAVING", "killed": "ERROR",
                 "deleted": "DELETED", "pending_delete": "DELETED", "deactivated": "ERROR"}
_CORE = {"id", "name", "status", "visibility", "size", "checksum", "created_at", "updated_at",
         "file", "schema", "self", "tags", "owner", "protected", "min_disk", "min_ram",
         "disk_format", "container_format", "virtual_size", "locations", "direct_url",
         "os_hash_algo", "os_hash_value", "os_hidden", "stores"}


def register(svc: Any, add: Any, base: str) -> None:  # noqa: C901
    V = "/v2.1"

    def image_service():  # noqa: ANN202
        images = svc.cloud.services.get("image")
        if images is None:
            raise NotFound("Image not found.")
        return images

    def no_proxy(ver: APIVersion) -> None:
        if ver.has("no_proxy_quotas"):  # 2.36 removed the proxy APIs
            raise NotFound("The resource could not be found.")

    def image_view(img: dict[str, Any], detail: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": img["id"], "name": img.get("name"), "links": [
            {"rel": "self", "href": f"{base}/v2.1/images/{img['id']}"},
            {"rel": "bookmark", "href": f"{base}/images/{img['id']}"},
            {"rel": "alternate", "type": "application/vnd.openstack.image",
             "href": f"{svc.settings.base_url}/image/images/{img['id']}"}]}
        if not detail:
            return body
        meta = {k: str(v) for k, v in img.items() if k not in _CORE and v is not None
                and not isinstance(v, (dict, list))}
        status = _IMAGE_STATUS.get(img.get("status", ""), "UNKNOWN")
        body.update({"status": status, "progress": 100 if status == "ACTIVE" else 50,
                     "minDisk": img.get("min_disk") or 0, "minRam": img.get("min_ram") or 0,
                     "created": img.get("created_at"), "updated": img.get("updated_at"),
                     "metadata": meta, "OS-EXT-IMG-SIZE:size": img.get("size")})
        if meta.get("instance_uuid"):
            sid = meta["instance_uuid"]
            body["server"] = {"id": sid, "links": [
                {"rel": "self", "href": f"{base}/v2.1/servers/{sid}"},
                {"rel": "bookmark", "href": f"{base}/servers/{sid}"}]}
        return body

    def _get_image(ctx, image_id: str) -> dict:  # noqa: ANN001
        try:
            return image_service().get_image(ctx, image_id)
        except NotFound:
            raise NotFound("Image not found.") from None

    async def image_show(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"image": image_view(await run(_get_image, req.ctx, req.params["image_id"]))})

    def _list_images(ctx, query) -> list[dict]:  # noqa: ANN001
        images = image_service()
        lister = getattr(images, "list_images", None)
        if lister is None:
            from pocketstack.services.image import images as image_api

            return image_api.list_images(images, ctx, query)["images"]
        return lister(ctx, query)

    def image_list(detail: bool):  # noqa: ANN202
        async def handler(req: Req, ver: APIVersion) -> Response:
            no_proxy(ver)
            query = {k: v for k, v in req.query.items() if k in ("limit", "marker", "name")}
            rows = await run(_list_images, req.ctx, query)
            return json({"images": [image_view(i, detail) for i in rows]})
        handler.__name__ = "images_detail" if detail else "images"
        return handler

    def _delete_image(ctx, image_id: str) -> None:  # noqa: ANN001
        images = image_service()
        _get_image(ctx, image_id)
        deleter = getattr(images, "delete_image", None)
        if deleter is None:
            from pocketstack.services.image import images as image_api

            image_api.remove(images, ctx, image_id)
        else:
            deleter(ctx, image_id)

    async def image_delete(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        await run(_delete_image, req.ctx, req.params["image_id"])
        return empty(204)

    async def image_metadata(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        img = await run(_get_image, req.ctx, req.params["image_id"])
        return json({"metadata": image_view(img)["metadata"]})

    add("get", V + "/images", image_list(False))
    add("get", V + "/images/detail", image_list(True))
    add("get", V + "/images/{image_id}", image_show)
    add("delete", V + "/images/{image_id}", image_delete)
    add("get", V + "/images/{image_id}/metadata", image_metadata)

    async def image_no_id(req: Req, ver: APIVersion) -> Response:
        raise NotFound("The resource could not be found.")
    add("delete", V + "/images/", image_no_id)

    # -- security groups ---------------------------------------------------------------------
    def network():  # noqa: ANN202
        net = svc.cloud.services.get("network")
        if net is None:
            raise NotFound("Security groups need the network service.")
        return net

    def rule_view(r: dict[str, Any], groups: dict[str, str]) -> dict[str, Any]:
        group: dict[str, Any] = {}
        if r.get("remote_group_id"):
            group = {"name": groups.get(r["remote_group_id"], ""), "tenant_id": r.get("project_id")}
        proto = r.get("protocol")
        return {"id": r["id"], "parent_group_id": r["security_group_id"],
                "ip_protocol": proto, "from_port": r.get("port_range_min") if proto else None,
                "to_port": r.get("port_range_max") if proto else None,
                "ip_range": {"cidr": r["remote_ip_prefix"]} if r.get("remote_ip_prefix") else {},
                "group": group}

    def sg_view(sg: dict[str, Any], groups: dict[str, str] | None = None) -> dict[str, Any]:
        groups = groups or {sg["id"]: sg["name"]}
        return {"id": sg["id"], "name": sg["name"], "description": sg.get("description", ""),
                "tenant_id": sg.get("project_id") or sg.get("tenant_id"),
                "rules": [rule_view(r, groups) for r in sg.get("security_group_rules", [])
                          if r.get("direction") == "ingress"]}

    def _translate(fn, *args):  # noqa: ANN001, ANN202
        try:
            return fn(*args)
        except Conflict as exc:  # Nova answers 400 where Neutron says 409
            raise BadRequest(exc.message) from None

    def _sg_list(ctx) -> list[dict]:  # noqa: ANN001
        rows = network().security_groups.list(ctx, QueryParams(), "")["security_groups"]
        names = {g["id"]: g["name"] for g in rows}
        return [sg_view(g, names) for g in rows]

    def _sg_get(ctx, sg_id: str) -> dict:  # noqa: ANN001
        try:
            return sg_view(network().security_groups.get(ctx, sg_id))
        except NotFound:
            raise NotFound(f"Security group {sg_id} not found.") from None

    def _sg_body(body: Any) -> dict[str, str]:
        if not isinstance(body, dict) or not isinstance(body.get("security_group"), dict):
            raise BadRequest("Invalid input for field/attribute security_group")
        sg = body["security_group"]
        name, desc = sg.get("name"), sg.get("description", "")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Security group name is a required non-blank string of at most "
                             "255 characters.")
        if not isinstance(desc, str) or len(desc) > 255:
            raise BadRequest("Security group description must be a string of at most 255 "
                             "characters.")
        return {"name": name, "description": desc}

    async def sg_list(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"security_groups": await run(_sg_list, req.ctx)})

    async def sg_create(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        attrs = _sg_body(await req.json())
        sg = await run(_translate, network().security_groups.create, req.ctx, attrs)
        return json({"security_group": sg_view(sg)})

    async def sg_show(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"security_group": await run(_sg_get, req.ctx, req.params["sg_id"])})

    async def sg_update(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        attrs = _sg_body(await req.json())
        await run(_sg_get, req.ctx, req.params["sg_id"])
        sg = await run(_translate, network().security_groups.update, req.ctx,
                       req.params["sg_id"], attrs)
        return json({"security_group": sg_view(sg)})

    def _sg_delete(ctx, sg_id: str) -> None:  # noqa: ANN001
        sg = network().security_groups.get(ctx, sg_id)
        if sg.get("name") == "default":
            raise BadRequest("Removing default security group not allowed.")
        _translate(network().security_groups.delete, ctx, sg_id)

    async def sg_delete(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        await run(_sg_get, req.ctx, req.params["sg_id"])
        await run(_sg_delete, req.ctx, req.params["sg_id"])
        return empty(202)

    def _rule_create(ctx, body: Any) -> dict:  # noqa: ANN001
        if not isinstance(body, dict) or not isinstance(body.get("security_group_rule"), dict):
            raise BadRequest("Invalid input for field/attribute security_group_rule")
        r = body["security_group_rule"]
        parent = r.get("parent_group_id")
        _sg_get(ctx, str(parent))
        attrs: dict[str, Any] = {"security_group_id": parent, "direction": "ingress",
                                 "ethertype": "IPv4"}
        proto = r.get("ip_protocol")
        if proto:
            attrs["protocol"] = str(proto).lower()
            try:
                lo, hi = int(r.get("from_port")), int(r.get("to_port"))
            except (TypeError, ValueError):
                raise BadRequest("from_port and to_port must be integers") from None
            if attrs["protocol"] == "icmp":
                if lo != -1:
                    attrs["port_range_min"] = lo
                if hi != -1:
                    attrs["port_range_max"] = hi
            else:
                attrs["port_range_min"], attrs["port_range_max"] = lo, hi
        if r.get("group_id"):
            attrs["remote_group_id"] = r["group_id"]
        else:
            attrs["remote_ip_prefix"] = r.get("cidr") or "0.0.0.0/0"
        rule = _translate(network().security_group_rules.create, ctx, attrs)
        return rule_view(rule, {})

    async def rule_create(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"security_group_rule": await run(_rule_create, req.ctx, await req.json())})

    async def rule_delete(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        try:
            await run(network().security_group_rules.delete, req.ctx, req.params["rule_id"])
        except NotFound:
            raise NotFound(f"Rule ({req.params['rule_id']}) not found") from None
        return empty(202)

    add("get", V + "/os-security-groups", sg_list)
    add("post", V + "/os-security-groups", sg_create)
    add("get", V + "/os-security-groups/{sg_id}", sg_show)
    add("put", V + "/os-security-groups/{sg_id}", sg_update)
    add("delete", V + "/os-security-groups/{sg_id}", sg_delete)

    async def sg_no_id(req: Req, ver: APIVersion) -> Response:
        raise NotFound("The resource could not be found.")
    add("delete", V + "/os-security-groups", sg_no_id)
    add("put", V + "/os-security-groups", sg_no_id)
    add("post", V + "/os-security-group-rules", rule_create)
    add("delete", V + "/os-security-group-rules/{rule_id}", rule_delete)

    # server <-> security groups (through the server's ports)
    def _server_ports(ctx, server_id: str) -> list[dict]:  # noqa: ANN001
        svc.servers.get(ctx, server_id)
        from pocketstack.context import RequestContext

        return network().ports.list(RequestContext.internal(),
                                    QueryParams({"device_id": server_id}), "")["ports"]

    def _server_groups(ctx, server_id: str) -> list[dict]:  # noqa: ANN001
        ids: list[str] = []
        for p in _server_ports(ctx, server_id):
            for g in p.get("security_groups", []):
                if g not in ids:
                    ids.append(g)
        from pocketstack.context import RequestContext

        out = []
        for g in ids:
            try:
                out.append(sg_view(network().security_groups.get(RequestContext.internal(), g)))
            except NotFound:
                pass
        return out

    async def server_sgs(req: Req, ver: APIVersion) -> Response:
        return json({"security_groups": await run(_server_groups, req.ctx,
                                                  req.params["server_id"])})

    add("get", V + "/servers/{server_id}/os-security-groups", server_sgs)

    def change_server_group(ctx, server_id: str, arg: Any, add_it: bool) -> None:  # noqa: ANN001
        name = arg.get("name") if isinstance(arg, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest("Security group name is required")
        groups = [g for g in network().security_groups.list(ctx, QueryParams({"name": name}), "")
                  ["security_groups"] if g["name"] == name]
        if not groups:
            raise NotFound(f"Security group {name} not found.")
        if len(groups) > 1:
            raise Conflict(f"Multiple security groups named {name}; use the id.")
        gid = groups[0]["id"]
        ports = _server_ports(ctx, server_id)
        if not ports:
            raise BadRequest(f"Server {server_id} has no ports to add a security group to.")
        from pocketstack.context import RequestContext

        internal = RequestContext.internal()
        for p in ports:
            current = list(p.get("security_groups", []))
            if add_it and gid not in current:
                current.append(gid)
            elif not add_it:
                if gid not in current:
                    raise BadRequest(f"Security group {name} not associated with the instance")
                current.remove(gid)
            network().ports.update(internal, p["id"], {"security_groups": current})
        from pocketstack.services.compute.models import Server

        with svc.db.write() as s:
            srv = s.get(Server, server_id)
            names = list(srv.security_groups or [])
            if add_it and name not in names:
                names.append(name)
            if not add_it and name in names:
                names.remove(name)
            srv.security_groups = names

    svc.change_server_security_group = change_server_group


