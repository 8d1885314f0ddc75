"""Regions, services, endpoints, endpoint groups (OS-EP-FILTER) and policies.

Every catalog write calls ``svc.catalog_changed()`` so tokens carry the new catalog.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, Forbidden
from pocketstack.services.identity.common import (body_object, collection, get_row, links,
                                                  merge_extra, opt_bool, opt_str, split_extra)
from pocketstack.services.identity.models import (Endpoint, EndpointGroup, Policy, Region,
                                                  Service)

INTERFACES = ("public", "internal", "admin")


# -- regions --------------------------------------------------------------------------------
def region_view(svc: Any, r: Region) -> dict[str, Any]:
    return {**(r.extra or {}), "id": r.id, "description": r.description or "",
            "parent_region_id": r.parent_region_id, "links": links(svc.base, f"regions/{r.id}")}


def _check_parent(s: Session, region_id: str | None, parent_id: Any) -> str | None:
    if parent_id is None:
        return None
    if not isinstance(parent_id, str):
        raise BadRequest("Invalid input for field 'region.parent_region_id': must be a string")
    if s.get(Region, parent_id) is None:
        raise BadRequest(f"The parent region {parent_id} does not exist.")
    cur: str | None = parent_id
    seen = set()
    while cur is not None and cur not in seen:
        if cur == region_id:
            raise BadRequest("This region's parent would create a cycle.")
        seen.add(cur)
        row = s.get(Region, cur)
        cur = row.parent_region_id if row else None
    return parent_id


def create_region(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    import uuid

    data = body_object(body, "region")
    policy.enforce(ctx, "identity:create_region", {})
    region_id = p.get("region_id") or opt_str(data, "id", prefix="region", max_len=255) \
        or uuid.uuid4().hex
    if p.get("region_id") and "id" in data and data["id"] != p["region_id"]:
        raise BadRequest("The region id in the body differs from the URL.")
    with svc.db.write() as s:
        if s.get(Region, region_id) is not None:
            raise Conflict(f"Conflict occurred attempting to store region - Duplicate ID, "
                           f"{region_id}.")
        region = Region(id=region_id,
                        description=opt_str(data, "description", prefix="region") or "",
                        parent_region_id=_check_parent(s, region_id,
                                                       data.get("parent_region_id")),
                        extra=split_extra(data, {"description", "parent_region_id"}))
        s.add(region)
        s.flush()
        out = region_view(svc, region)
    svc.catalog_changed()
    return {"region": out}


def list_regions(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_regions", {})
    with svc.db.read() as s:
        stmt = select(Region).order_by(Region.id)
        if "parent_region_id" in q:
            stmt = stmt.where(Region.parent_region_id == q["parent_region_id"])
        items = [region_view(svc, r) for r in s.scalars(stmt).all()]
    return collection(svc.base, "regions", "regions", items)


def show_region(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_region", {})
    with svc.db.read() as s:
        return {"region": region_view(svc, get_row(s, Region, p["region_id"], "region"))}


def update_region(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "region")
    policy.enforce(ctx, "identity:update_region", {})
    with svc.db.write() as s:
        region = get_row(s, Region, p["region_id"], "region")
        if "id" in data and data["id"] != region.id:
            raise BadRequest("The region id cannot be changed.")
        if "description" in data:
            region.description = opt_str(data, "description", prefix="region") or ""
        if "parent_region_id" in data:
            region.parent_region_id = _check_parent(s, region.id, data["parent_region_id"])
        merge_extra(region, data, {"description", "parent_region_id"})
        s.flush()
        out = region_view(svc, region)
    svc.catalog_changed()
    return {"region": out}


def delete_region(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:delete_region", {})
    with svc.db.write() as s:
        region = get_row(s, Region, p["region_id"], "region")
        if s.scalars(select(Region.id).where(Region.parent_region_id == region.id)).first():
            raise Forbidden(f"Region {region.id} has child regions; delete them first.")
        s.execute(delete(Endpoint).where(Endpoint.region_id == region.id))
        s.delete(region)
    svc.catalog_changed()


# -- services -------------------------------------------------------------------------------
def service_view(svc: Any, x: Service) -> dict[str, Any]:
    return {**(x.extra or {}), "id": x.id, "type": x.type, "enabled": x.enabled,
            "links": links(svc.base, f"services/{x.id}")}


def _service_type(data: dict[str, Any], required: bool) -> str | None:
    value = data.get("type")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 255:
        raise BadRequest("Invalid input for field 'service.type': is a required string of 1 "
                         "to 255 characters")
    return value


def create_service(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "service")
    policy.enforce(ctx, "identity:create_service", {})
    type_ = _service_type(data, True)
    enabled = opt_bool(data, "enabled", prefix="service", default=True)
    for field in ("name", "description"):
        opt_str(data, field, prefix="service", max_len=255 if field == "name" else None)
    with svc.db.write() as s:
        row = Service(type=type_, enabled=enabled, extra=split_extra(data, {"type", "enabled"}))
        s.add(row)
        s.flush()
        out = service_view(svc, row)
    svc.catalog_changed()
    return {"service": out}


def list_services(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_services", {})
    with svc.db.read() as s:
        stmt = select(Service)
        if "type" in q:
            stmt = stmt.where(Service.type == q["type"])
        rows = s.scalars(stmt).all()
        if "name" in q:
            rows = [r for r in rows if (r.extra or {}).get("name") == q["name"]]
        items = [service_view(svc, r) for r in rows]
    return collection(svc.base, "services", "services", items)


def show_service(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_service", {})
    with svc.db.read() as s:
        return {"service": service_view(svc, get_row(s, Service, p["service_id"], "service"))}


def update_service(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "service")
    policy.enforce(ctx, "identity:update_service", {})
    with svc.db.write() as s:
        row = get_row(s, Service, p["service_id"], "service")
        type_ = _service_type(data, False)
        if type_ is not None:
            row.type = type_
        enabled = opt_bool(data, "enabled", prefix="service")
        if enabled is not None:
            row.enabled = enabled
        merge_extra(row, data, {"type", "enabled"})
        s.flush()
        out = service_view(svc, row)
    svc.catalog_changed()
    return {"service": out}


def delete_service(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:delete_service", {})
    with svc.db.write() as s:
        row = get_row(s, Service, p["service_id"], "service")
        s.execute(delete(Endpoint).where(Endpoint.service_id == row.id))
        s.delete(row)
    svc.catalog_changed()


# -- endpoints ------------------------------------------------------------------------------
def endpoint_view(svc: Any, e: Endpoint) -> dict[str, Any]:
    return {**(e.extra or {}), "id": e.id, "interface": e.interface, "service_id": e.service_id,
            "url": e.url, "region_id": e.region_id, "region": e.region_id, "enabled": e.enabled,
            "links": links(svc.base, f"endpoints/{e.id}")}


def _endpoint_fields(s: Session, data: dict[str, Any], create: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    enabled = opt_bool(data, "enabled", prefix="endpoint")
    if enabled is not None:
        out["enabled"] = enabled
    if create or "interface" in data:
        if data.get("interface") not in INTERFACES:
            raise BadRequest("Invalid input for field 'endpoint.interface': must be one of "
                             "public, internal, admin")
        out["interface"] = data["interface"]
    if create or "url" in data:
        url = data.get("url")
        if not isinstance(url, str) or not urlparse(url).scheme or len(url) > 2048:
            raise BadRequest("Invalid input for field 'endpoint.url': must be a URL")
        out["url"] = url
    if create or "service_id" in data:
        sid = data.get("service_id")
        if not isinstance(sid, str) or s.get(Service, sid) is None:
            raise BadRequest(f"Invalid input for field 'endpoint.service_id': no service {sid!r}")
        out["service_id"] = sid
    if data.get("region_id") is not None:
        region = data["region_id"]
        if not isinstance(region, str):
            raise BadRequest("Invalid input for field 'endpoint.region_id': must be a string")
        if s.get(Region, region) is None:
            raise BadRequest(f"Invalid input for field 'endpoint.region_id': no region "
                             f"{region!r}")
        out["region_id"] = region
    elif data.get("region") is not None:
        # The v2-style ``region`` attribute: Keystone creates the region if it is missing.
        region = data["region"]
        if not isinstance(region, str) or not region or len(region) > 255:
            raise BadRequest("Invalid input for field 'endpoint.region': must be a string")
        if s.get(Region, region) is None:
            s.add(Region(id=region, description="", parent_region_id=None, extra={}))
            s.flush()
        out["region_id"] = region
    elif "region_id" in data:
        out["region_id"] = None
    return out


ENDPOINT_COLUMNS = {"interface", "url", "service_id", "region_id", "region", "enabled"}


def create_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "endpoint")
    policy.enforce(ctx, "identity:create_endpoint", {})
    with svc.db.write() as s:
        fields = _endpoint_fields(s, data, True)
        row = Endpoint(**{"enabled": True, **fields},
                       extra=split_extra(data, ENDPOINT_COLUMNS))
        s.add(row)
        s.flush()
        out = endpoint_view(svc, row)
    svc.catalog_changed()
    return {"endpoint": out}


def list_endpoints(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_endpoints", {})
    with svc.db.read() as s:
        stmt = select(Endpoint)
        if "interface" in q:
            stmt = stmt.where(Endpoint.interface == q["interface"])
        if "service_id" in q:
            stmt = stmt.where(Endpoint.service_id == q["service_id"])
        if "region_id" in q:
            stmt = stmt.where(Endpoint.region_id == q["region_id"])
        items = [endpoint_view(svc, r) for r in s.scalars(stmt).all()]
    return collection(svc.base, "endpoints", "endpoints", items)


def show_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_endpoint", {})
    with svc.db.read() as s:
        return {"endpoint": endpoint_view(svc, get_row(s, Endpoint, p["endpoint_id"], "endpoint"))}


def update_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "endpoint")
    policy.enforce(ctx, "identity:update_endpoint", {})
    with svc.db.write() as s:
        row = get_row(s, Endpoint, p["endpoint_id"], "endpoint")
        for key, value in _endpoint_fields(s, data, False).items():
            setattr(row, key, value)
        merge_extra(row, data, ENDPOINT_COLUMNS)
        s.flush()
        out = endpoint_view(svc, row)
    svc.catalog_changed()
    return {"endpoint": out}


def delete_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:delete_endpoint", {})
    with svc.db.write() as s:
        s.delete(get_row(s, Endpoint, p["endpoint_id"], "endpoint"))
        from pocketstack.services.identity.ep_filter import forget

        forget(s, endpoint_id=p["endpoint_id"])
    svc.catalog_changed()


# -- endpoint groups (OS-EP-FILTER) -----------------------------------------------------------
EP_FILTERS = {"interface", "service_id", "region_id"}


def epg_view(svc: Any, g: EndpointGroup) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "description": g.description, "filters": g.filters,
            "links": {"self": f"{svc.base}/v3/OS-EP-FILTER/endpoint_groups/{g.id}"}}


def _epg_fields(data: dict[str, Any], create: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # `openstack endpoint group set` sends "name": null when --name is not given: on an
    # update that means "unchanged" here (Keystone's schema would refuse the null).
    if create or data.get("name") is not None:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field 'endpoint_group.name': a non-empty string")
        out["name"] = name
    if "description" in data:
        out["description"] = opt_str(data, "description", prefix="endpoint_group")
    if create or data.get("filters") is not None:  # null: unchanged, as the name
        filters = data.get("filters")
        # Keystone refuses empty filters on create only; an update may clear them.
        if not isinstance(filters, dict) or (create and not filters) or \
                set(filters) - EP_FILTERS:
            raise BadRequest("Invalid input for field 'endpoint_group.filters': an object "
                             "with interface, service_id and/or region_id")
        if "interface" in filters and filters["interface"] not in INTERFACES:
            raise BadRequest("Invalid input for field 'endpoint_group.filters.interface'.")
        out["filters"] = filters
    return out


def create_epg(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "endpoint_group")
    policy.enforce(ctx, "identity:manage_endpoint_groups", {})
    with svc.db.write() as s:
        row = EndpointGroup(**_epg_fields(data, True))
        s.add(row)
        s.flush()
        return {"endpoint_group": epg_view(svc, row)}


def list_epgs(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_endpoint_groups", {})
    with svc.db.read() as s:
        stmt = select(EndpointGroup)
        if "name" in q:
            stmt = stmt.where(EndpointGroup.name == q["name"])
        items = [epg_view(svc, r) for r in s.scalars(stmt).all()]
    return {"endpoint_groups": items,
            "links": {"self": f"{svc.base}/v3/OS-EP-FILTER/endpoint_groups",
                      "previous": None, "next": None}}


def show_epg(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_endpoint_groups", {})
    with svc.db.read() as s:
        row = get_row(s, EndpointGroup, p["group_id"], "endpoint group")
        return {"endpoint_group": epg_view(svc, row)}


def update_epg(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "endpoint_group")
    policy.enforce(ctx, "identity:manage_endpoint_groups", {})
    with svc.db.write() as s:
        row = get_row(s, EndpointGroup, p["group_id"], "endpoint group")
        for key, value in _epg_fields(data, False).items():
            setattr(row, key, value)
        s.flush()
        return {"endpoint_group": epg_view(svc, row)}


def delete_epg(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_endpoint_groups", {})
    with svc.db.write() as s:
        s.delete(get_row(s, EndpointGroup, p["group_id"], "endpoint group"))
        from pocketstack.services.identity.ep_filter import forget

        forget(s, group_id=p["group_id"])


# -- policies (stored blobs, as Keystone's /v3/policies) ------------------------------------------
def policy_view(svc: Any, x: Policy) -> dict[str, Any]:
    return {**(x.extra or {}), "id": x.id, "type": x.type, "blob": x.blob,
            "links": links(svc.base, f"policies/{x.id}")}


def create_policy(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "policy")
    policy.enforce(ctx, "identity:manage_policy", {})
    blob, type_ = data.get("blob"), data.get("type")
    if not isinstance(blob, str) or not isinstance(type_, str) or len(type_) > 255:
        raise BadRequest("Invalid input for field 'policy': 'blob' and 'type' are required "
                         "strings")
    with svc.db.write() as s:
        row = Policy(type=type_, blob=blob, extra=split_extra(data, {"type", "blob"}))
        s.add(row)
        s.flush()
        return {"policy": policy_view(svc, row)}


def list_policies(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_policy", {})
    with svc.db.read() as s:
        stmt = select(Policy)
        if "type" in q:
            stmt = stmt.where(Policy.type == q["type"])
        items = [policy_view(svc, r) for r in s.scalars(stmt).all()]
    return collection(svc.base, "policies", "policies", items)


def show_policy(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_policy", {})
    with svc.db.read() as s:
        return {"policy": policy_view(svc, get_row(s, Policy, p["policy_id"], "policy"))}


def update_policy(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "policy")
    policy.enforce(ctx, "identity:manage_policy", {})
    with svc.db.write() as s:
        row = get_row(s, Policy, p["policy_id"], "policy")
        for field in ("blob", "type"):
            if field in data:
                if not isinstance(data[field], str):
                    raise BadRequest(f"Invalid input for field 'policy.{field}': must be a "
                                     "string")
                setattr(row, field, data[field])
        merge_extra(row, data, {"type", "blob"})
        s.flush()
        return {"policy": policy_view(svc, row)}


def delete_policy(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_policy", {})
    with svc.db.write() as s:
        s.delete(get_row(s, Policy, p["policy_id"], "policy"))


