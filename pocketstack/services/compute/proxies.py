"""Nova's proxy APIs (deprecated at 2.36, still used by Tempest's compute tests and old
clients): /images on the image service and /os-security-groups on the network service.
They call those slices in-process; without the slice, they answer 404 like a Nova whose
proxied service is absent."""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams
from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.compute.microversions import APIVersion

# nova/api/openstack/compute/views/images.py: glance status -> Nova status and progress
_IMAGE_STATUS = {"active": "ACTIVE", "queued": "SAVING", "saving": "SAVING",
                 "deleted": "DELETED", "pending_delete": "DELETED", "killed": "ERROR"}
_IMAGE_PROGRESS = {"queued": 25, "saving": 50, "active": 100}
# nova/api/openstack/compute/images.py SUPPORTED_FILTERS, as glance v2 names them
_IMAGE_FILTERS = {"name": "name", "status": "status", "changes-since": "changes-since",
                  "server": "instance_uuid", "type": "image_type", "minRam": "min_ram",
                  "minDisk": "min_disk"}


_META_KEY = re.compile(r"[a-zA-Z0-9-_:. ]{1,255}")


def glance_query(query: Any) -> QueryParams:
    """Nova's image list query (filters and paging) as the image service's query."""
    out: list[tuple[str, str]] = []
    for key, value in query.multi_items():
        if key in ("limit", "marker", "sort_key", "sort_dir"):
            if key == "limit":
                try:
                    if int(value) < 0:
                        raise ValueError
                except ValueError:
                    raise BadRequest(f"Invalid input for query parameters limit. Value: "
                                     f"{value}. {value!r} is not a valid non-negative "
                                     "integer") from None
            out.append((key, value))
        elif key in _IMAGE_FILTERS or key.startswith("property-"):
            name = _IMAGE_FILTERS.get(key) or key.removeprefix("property-")
            if name == "instance_uuid":  # a server id or a server's URL
                value = value.rsplit("/", 1)[-1]
            elif name == "status":
                value = value.lower()
            elif name == "changes-since":
                name, value = "updated_at", f"gte:{value}"
            out.append((name, value))
    return QueryParams(out)


def uuid_like(value: Any) -> bool:
    """oslo's is_uuid_like: 32 hex digits once dashes and braces are dropped."""
    if not isinstance(value, str):
        return False
    try:
        return str(uuid.UUID(value)).replace("-", "") == \
            value.replace("-", "").replace("{", "").replace("}", "").lower()
    except ValueError:
        return False


def image_properties(img: dict[str, Any]) -> dict[str, Any]:
    """An image's extra properties: Nova's image ``metadata``."""
    if "properties" in img:
        return dict(img["properties"])
    from pocketstack.services.image.service import BASE_VIEW_KEYS

    return {k: v for k, v in img.items() if k not in BASE_VIEW_KEYS}


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
        meta = image_properties(img)
        status = img.get("status", "")
        body.update({"status": _IMAGE_STATUS.get(status, "UNKNOWN"),
                     "progress": _IMAGE_PROGRESS.get(status, 0),
                     "minDisk": int(img.get("min_disk") or 0),
                     "minRam": int(img.get("min_ram") or 0),
                     "created": img.get("created_at"), "updated": img.get("updated_at"),
                     "metadata": meta, "OS-EXT-IMG-SIZE:size": img.get("size")})
        if meta.get("auto_disk_config") is not None:
            auto = str(meta["auto_disk_config"]).lower() in ("1", "t", "true", "on", "y", "yes")
            body["OS-DCF:diskConfig"] = "AUTO" if auto else "MANUAL"
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

    def _list_images(ctx, query: QueryParams) -> list[dict]:  # noqa: ANN001
        from pocketstack.services.image import images as image_api

        return image_api.list_images(image_service(), ctx, query)["images"]

    def image_list(detail: bool):  # noqa: ANN202
        async def handler(req: Req, ver: APIVersion) -> Response:
            no_proxy(ver)
            query = glance_query(req.query)
            rows = await run(_list_images, req.ctx, query)
            body: dict[str, Any] = {"images": [image_view(i, detail) for i in rows]}
            if "limit" in query and rows and len(rows) >= int(query["limit"]):
                params = {k: v for k, v in req.query.items() if k != "marker"}
                params["marker"] = rows[-1]["id"]
                path = "images/detail" if detail else "images"
                body["images_links"] = [{"rel": "next",
                                         "href": f"{base}/v2.1/{path}?{urlencode(params)}"}]
            return json(body)
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

    # -- image metadata (nova/api/openstack/compute/image_metadata.py, up to 2.38) ---------
    def no_image_meta(ver: APIVersion) -> None:
        if ver.at_least(2, 39):
            raise NotFound("The resource could not be found.")

    def _meta_items(body: Any, key: str) -> dict[str, str]:
        if not isinstance(body, dict) or key not in body:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: None. "
                             f"'{key}' is a required property")
        items = body[key]
        if not isinstance(items, dict):
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {items}. "
                             f"{items!r} is not of type 'object'")
        for k, v in items.items():
            if not _META_KEY.fullmatch(k):  # nova parameter_types.metadata
                raise BadRequest(f"Invalid input for field/attribute {key}. Value: {items}. "
                                 f"{k!r} does not match any of the regexes")
            if not isinstance(v, str) or len(v) > 255:
                raise BadRequest(f"Invalid input for field/attribute {k}. Value: {v}. "
                                 f"{v!r} is not a valid string of at most 255 characters")
        return items

    def _set_properties(ctx, image_id: str, new: dict[str, str], purge: bool) -> dict:  # noqa: ANN001
        """Write ``new`` into the image's properties (dropping the others with ``purge``),
        within Nova's image metadata quota; answers the properties afterwards."""
        from pocketstack.services.image import images as image_api
        from pocketstack.services.image.images import RESERVED_NS

        current = image_properties(_get_image(ctx, image_id))
        merged = dict(new) if purge else {**current, **new}
        with svc.db.read() as s:
            limit = svc.quotas.limits(s, ctx.project_id)["metadata_items"]
        if limit >= 0 and len(merged) > limit:
            raise Forbidden("Image metadata limit exceeded")
        changes: list[dict[str, Any]] = []
        if purge:
            changes += [{"op": "remove", "path": [k], "draft": 10} for k in current
                        if k not in new and not k.startswith(RESERVED_NS)]
        changes += [{"op": "add", "path": [k], "value": v, "draft": 10}
                    for k, v in new.items() if current.get(k) != v]
        if changes:
            try:
                image_api.update(image_service(), ctx, image_id, changes)
            except Conflict as exc:
                raise BadRequest(exc.message) from None
        return image_properties(_get_image(ctx, image_id))

    def _del_property(ctx, image_id: str, key: str) -> None:  # noqa: ANN001
        from pocketstack.services.image import images as image_api

        if key not in image_properties(_get_image(ctx, image_id)):
            raise NotFound("Invalid metadata key")
        image_api.update(image_service(), ctx, image_id,
                         [{"op": "remove", "path": [key], "draft": 10}])

    async def image_metadata(req: Req, ver: APIVersion) -> Response:
        no_image_meta(ver)
        img = await run(_get_image, req.ctx, req.params["image_id"])
        return json({"metadata": image_properties(img)})

    async def image_metadata_create(req: Req, ver: APIVersion) -> Response:  # POST: merge
        no_image_meta(ver)
        items = _meta_items(await req.json(), "metadata")
        return json({"metadata": await run(_set_properties, req.ctx, req.params["image_id"],
                                           items, False)})

    async def image_metadata_replace(req: Req, ver: APIVersion) -> Response:  # PUT: all
        no_image_meta(ver)
        items = _meta_items(await req.json(), "metadata")
        await run(_set_properties, req.ctx, req.params["image_id"], items, True)
        return json({"metadata": items})

    async def image_meta_show(req: Req, ver: APIVersion) -> Response:
        no_image_meta(ver)
        img = await run(_get_image, req.ctx, req.params["image_id"])
        key = req.params["key"]
        props = image_properties(img)
        if key not in props:
            raise NotFound("The resource could not be found.")
        return json({"meta": {key: props[key]}})

    async def image_meta_update(req: Req, ver: APIVersion) -> Response:
        no_image_meta(ver)
        meta = _meta_items(await req.json(), "meta")
        key = req.params["key"]
        if len(meta) > 1:
            raise BadRequest("Invalid input for field/attribute meta. Value: "
                             f"{meta}. {meta!r} has too many properties")
        if key not in meta:
            raise BadRequest("Request body and URI mismatch")
        await run(_set_properties, req.ctx, req.params["image_id"], meta, False)
        return json({"meta": meta})

    async def image_meta_delete(req: Req, ver: APIVersion) -> Response:
        no_image_meta(ver)
        await run(_del_property, req.ctx, req.params["image_id"], req.params["key"])
        return empty(204)

    add("get", V + "/images", image_list(False))
    add("get", V + "/images/detail", image_list(True))
    add("get", V + "/images/{image_id}", image_show)
    add("delete", V + "/images/{image_id}", image_delete)
    add("get", V + "/images/{image_id}/metadata", image_metadata)
    add("post", V + "/images/{image_id}/metadata", image_metadata_create)
    add("put", V + "/images/{image_id}/metadata", image_metadata_replace)
    add("get", V + "/images/{image_id}/metadata/{key}", image_meta_show)
    add("put", V + "/images/{image_id}/metadata/{key}", image_meta_update)
    add("delete", V + "/images/{image_id}/metadata/{key}", image_meta_delete)

    async def image_no_id(req: Req, ver: APIVersion) -> Response:
        raise NotFound("The resource could not be found.")
    add("delete", V + "/images/", image_no_id)

    # -- security groups ---------------------------------------------------------------------
    def network():  # noqa: ANN202
        net = svc.cloud.services.get("network")
        if net is None:
            raise NotFound("Security groups need the network service.")
        return net

    def rule_view(r: dict[str, Any], groups: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """A Neutron ingress rule as Nova shows it (security_group_api's conversion, then
        the controller's format): ``groups`` maps remote group ids to {name, tenant_id}."""
        proto = r.get("protocol")
        lo, hi = r.get("port_range_min"), r.get("port_range_max")
        if proto and lo is None and hi is None:
            lo, hi = (1, 65535) if proto.upper() in ("TCP", "UDP") else (-1, -1)
        body: dict[str, Any] = {"id": r["id"], "parent_group_id": r["security_group_id"],
                                "ip_protocol": proto, "from_port": lo, "to_port": hi,
                                "group": {}, "ip_range": {}}
        if r.get("remote_group_id"):
            body["group"] = groups.get(r["remote_group_id"], {})
        else:
            body["ip_range"] = {"cidr": r.get("remote_ip_prefix") or "0.0.0.0/0"}
        return body

    def sg_view(sg: dict[str, Any], groups: dict[str, dict[str, Any]] | None = None
                ) -> dict[str, Any]:
        if groups is None:
            groups = _remote_groups([sg])
        return {"id": sg["id"], "name": sg["name"], "description": sg.get("description", ""),
                "tenant_id": sg.get("project_id") or sg.get("tenant_id"),
                "rules": [rule_view(r, groups) for r in sg.get("security_group_rules", [])
                          if r.get("direction") == "ingress"]}

    def _remote_groups(sgs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """{id: {name, tenant_id}} of the groups the rules of ``sgs`` refer to."""
        from pocketstack.context import RequestContext

        known = {g["id"]: g for g in sgs}
        out: dict[str, dict[str, Any]] = {}
        for sg in sgs:
            for r in sg.get("security_group_rules", []):
                gid = r.get("remote_group_id")
                if not gid or gid in out:
                    continue
                g = known.get(gid)
                if g is None:
                    try:
                        g = network().security_groups.get(RequestContext.internal(), gid)
                    except NotFound:
                        continue
                out[gid] = {"name": g["name"], "tenant_id": g.get("project_id")
                            or g.get("tenant_id")}
        return out

    def _translate(fn, *args):  # noqa: ANN001, ANN202
        try:
            return fn(*args)
        except Conflict as exc:  # Nova answers 400 where Neutron says 409
            raise BadRequest(exc.message) from None

    def _sg_list(ctx) -> list[dict]:  # noqa: ANN001
        rows = network().security_groups.list(ctx, QueryParams(), "")["security_groups"]
        groups = _remote_groups(rows)
        return [sg_view(g, groups) for g in rows]

    def _sg_get(ctx, sg_id: str) -> dict:  # noqa: ANN001
        if not uuid_like(sg_id):
            raise BadRequest("Security group id should be uuid")
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

    def _rule_create(ctx, body: Any) -> dict:  # noqa: ANN001, C901 - Nova's checks in order
        if not isinstance(body, dict) or not isinstance(body.get("security_group_rule"), dict):
            raise BadRequest("Invalid input for field/attribute security_group_rule. "
                             "Value: None. 'security_group_rule' is a required property")
        r = body["security_group_rule"]
        parent, group_id = r.get("parent_group_id"), r.get("group_id")
        for name, value in (("parent_group_id", parent), ("group_id", group_id)):
            if (value is not None or name == "parent_group_id") and not (
                    isinstance(value, str) and uuid_like(value)):
                raise BadRequest(f"Invalid input for field/attribute {name}. Value: {value}. "
                                 f"{value!r} is not a 'uuid'")
        _sg_get(ctx, parent)
        source: dict[str, Any] = {}
        if group_id is not None:
            source = _sg_get(ctx, group_id)
        proto, lo, hi = r.get("ip_protocol"), r.get("from_port"), r.get("to_port")
        cidr = None
        if group_id is None:
            cidr = r.get("cidr") or "0.0.0.0/0"
            try:
                if not isinstance(cidr, str) or "/" not in cidr:
                    raise ValueError
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise BadRequest(f"Invalid cidr {cidr}.") from None
            if net.prefixlen == 0 and not net.network_address.is_unspecified:
                raise BadRequest(f"Bad prefix for network in cidr {cidr}")
        elif proto and lo is None and hi is None:  # a group rule opens the whole range
            lo, hi = (-1, -1) if str(proto).upper() == "ICMP" else (
                (1, 65535) if str(proto).upper() in ("TCP", "UDP") else (lo, hi))
        attrs: dict[str, Any] = {"security_group_id": parent, "direction": "ingress",
                                 "ethertype": "IPv4"}
        if proto and lo is not None and hi is not None:
            proto = str(proto)
            try:
                lo, hi = int(lo), int(hi)
            except (TypeError, ValueError):
                raise BadRequest("Type and Code must be integers for ICMP protocol type"
                                 if proto.upper() == "ICMP" else
                                 "To and From ports must be integers") from None
            up = proto.upper()
            if up not in ("TCP", "UDP", "ICMP"):
                raise BadRequest(f"Invalid IP protocol {proto}.")
            if up in ("TCP", "UDP") and lo > hi:
                raise BadRequest(f"Invalid port range {lo}:{hi}. Former value cannot be "
                                 "greater than the later")
            if up in ("TCP", "UDP") and (lo < 1 or hi > 65535):
                raise BadRequest(f"Invalid port range {lo}:{hi}. Valid {up} ports should be "
                                 "between 1-65535")
            if up == "ICMP" and not (-1 <= lo <= 255 and -1 <= hi <= 255):
                raise BadRequest(f"Invalid port range {lo}:{hi}. For ICMP, the type:code "
                                 "must be valid")
            attrs["protocol"] = proto.lower()
            if up == "ICMP":  # Nova sends -1 as "any" as None to Neutron
                if lo != -1:
                    attrs["port_range_min"] = lo
                if hi != -1:
                    attrs["port_range_max"] = hi
            else:
                attrs["port_range_min"], attrs["port_range_max"] = lo, hi
        elif cidr is not None:
            raise BadRequest("Not enough parameters to build a valid rule.")
        if group_id is not None:
            attrs["remote_group_id"] = group_id
        else:
            if ipaddress.ip_network(cidr, strict=False).version == 6:
                attrs["ethertype"] = "IPv6"
            attrs["remote_ip_prefix"] = cidr
        parent_sg = network().security_groups.get(ctx, parent)
        for other in parent_sg.get("security_group_rules", []):
            if other.get("direction") != "ingress":
                continue
            if ((other.get("remote_group_id"), other.get("remote_ip_prefix"),
                 other.get("protocol"), other.get("port_range_min"),
                 other.get("port_range_max")) == (
                    attrs.get("remote_group_id"), attrs.get("remote_ip_prefix"),
                    attrs.get("protocol"), attrs.get("port_range_min"),
                    attrs.get("port_range_max"))):
                raise BadRequest(f"This rule already exists in group {parent}")
        rule = _translate(network().security_group_rules.create, ctx, attrs)
        groups = {group_id: {"name": source["name"], "tenant_id": source["tenant_id"]}} \
            if group_id else {}
        return rule_view(rule, groups)

    async def rule_create(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"security_group_rule": await run(_rule_create, req.ctx, await req.json())})

    async def rule_delete(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        if not uuid_like(req.params["rule_id"]):
            raise BadRequest("Security group id should be uuid")
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

    from pocketstack.services.compute import proxies_network  # floating IPs, networks

    proxies_network.register(svc, add)
