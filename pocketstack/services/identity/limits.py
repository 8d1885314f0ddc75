"""Unified limits (flat model): registered limits (a service's default per resource) and
project/domain limits that override them. Other slices ask ``limit_for``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.identity.common import body_object, get_row
from pocketstack.services.identity.models import (Limit, Project, Region, RegisteredLimit,
                                                  Service)


def registered_view(svc: Any, r: RegisteredLimit) -> dict[str, Any]:
    return {"id": r.id, "service_id": r.service_id, "region_id": r.region_id,
            "resource_name": r.resource_name, "default_limit": r.default_limit,
            "description": r.description,
            "links": {"self": f"{svc.base}/v3/registered_limits/{r.id}"}}


def limit_view(svc: Any, x: Limit) -> dict[str, Any]:
    return {"id": x.id, "project_id": x.project_id, "domain_id": x.domain_id,
            "service_id": x.service_id, "region_id": x.region_id,
            "resource_name": x.resource_name, "resource_limit": x.resource_limit,
            "description": x.description, "links": {"self": f"{svc.base}/v3/limits/{x.id}"}}


def _number(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value <= 2 ** 31 - 1:
        raise BadRequest(f"Invalid input for field '{field}': an integer from -1 is required")
    return value


def _common(s: Session, data: dict[str, Any], prefix: str, create: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if create or "service_id" in data:
        sid = data.get("service_id")
        if not isinstance(sid, str) or s.get(Service, sid) is None:
            raise BadRequest(f"Invalid input for field '{prefix}.service_id': no service "
                             f"{sid!r}")
        out["service_id"] = sid
    if "region_id" in data or create:
        rid = data.get("region_id")
        if rid is not None and (not isinstance(rid, str) or s.get(Region, rid) is None):
            raise BadRequest(f"Invalid input for field '{prefix}.region_id': no region {rid!r}")
        out["region_id"] = rid
    if create or "resource_name" in data:
        name = data.get("resource_name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest(f"Invalid input for field '{prefix}.resource_name': a non-empty "
                             "string of at most 255 characters")
        out["resource_name"] = name
    if "description" in data:
        desc = data["description"]
        if desc is not None and not isinstance(desc, str):
            raise BadRequest(f"Invalid input for field '{prefix}.description'.")
        out["description"] = desc
    return out


def _items(body: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get(key), list) or not body[key]:
        raise BadRequest(f"Invalid input for field '{key}': a non-empty list is required")
    if not all(isinstance(x, dict) for x in body[key]):
        raise BadRequest(f"Invalid input for field '{key}': items must be objects")
    return body[key]


# -- registered limits -------------------------------------------------------------------------
def create_registered(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_limits", {})
    out = []
    with svc.db.write() as s:
        for data in _items(body, "registered_limits"):
            fields = _common(s, data, "registered_limit", True)
            fields["default_limit"] = _number(data.get("default_limit"), "default_limit")
            dup = s.scalars(select(RegisteredLimit.id).where(
                RegisteredLimit.service_id == fields["service_id"],
                RegisteredLimit.region_id.is_(None) if fields["region_id"] is None
                else RegisteredLimit.region_id == fields["region_id"],
                RegisteredLimit.resource_name == fields["resource_name"])).first()
            if dup:
                raise Conflict(f"Duplicate entry: a registered limit for "
                               f"{fields['resource_name']} already exists.")
            row = RegisteredLimit(**fields)
            s.add(row)
            s.flush()
            out.append(registered_view(svc, row))
    return {"registered_limits": out}


def list_registered(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_limits", {})
    with svc.db.read() as s:
        stmt = select(RegisteredLimit)
        for key in ("service_id", "region_id", "resource_name"):
            if key in q:
                stmt = stmt.where(getattr(RegisteredLimit, key) == q[key])
        items = [registered_view(svc, r) for r in s.scalars(stmt).all()]
    return {"registered_limits": items,
            "links": {"self": f"{svc.base}/v3/registered_limits", "previous": None,
                      "next": None}}


def show_registered(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_limits", {})
    with svc.db.read() as s:
        row = get_row(s, RegisteredLimit, p["limit_id"], "registered limit")
        return {"registered_limit": registered_view(svc, row)}


def _in_use(s: Session, row: RegisteredLimit) -> bool:
    return s.scalars(select(Limit.id).where(
        Limit.service_id == row.service_id, Limit.resource_name == row.resource_name,
        Limit.region_id.is_(None) if row.region_id is None
        else Limit.region_id == row.region_id)).first() is not None


def update_registered(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "registered_limit")
    policy.enforce(ctx, "identity:manage_limits", {})
    with svc.db.write() as s:
        row = get_row(s, RegisteredLimit, p["limit_id"], "registered limit")
        fields = _common(s, data, "registered_limit", False)
        if fields.keys() & {"service_id", "region_id", "resource_name"} and _in_use(s, row):
            raise Forbidden("A registered limit that project limits refer to cannot change "
                            "its service, region or resource.")
        if "default_limit" in data:
            fields["default_limit"] = _number(data["default_limit"], "default_limit")
        for key, value in fields.items():
            setattr(row, key, value)
        s.flush()
        return {"registered_limit": registered_view(svc, row)}


def delete_registered(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_limits", {})
    with svc.db.write() as s:
        row = get_row(s, RegisteredLimit, p["limit_id"], "registered limit")
        if _in_use(s, row):
            raise Forbidden("Project limits still refer to this registered limit.")
        s.delete(row)


# -- project/domain limits ---------------------------------------------------------------------
def create_limits(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_limits", {})
    out = []
    with svc.db.write() as s:
        for data in _items(body, "limits"):
            fields = _common(s, data, "limit", True)
            fields["resource_limit"] = _number(data.get("resource_limit"), "resource_limit")
            project_id, domain_id = data.get("project_id"), data.get("domain_id")
            if (project_id is None) == (domain_id is None):
                raise BadRequest("A limit needs exactly one of project_id and domain_id.")
            owner = s.get(Project, project_id or domain_id) if isinstance(
                project_id or domain_id, str) else None
            if owner is None or owner.is_domain != (domain_id is not None):
                raise BadRequest(f"No such {'domain' if domain_id else 'project'}: "
                                 f"{project_id or domain_id}.")
            region_clause = (RegisteredLimit.region_id.is_(None) if fields["region_id"] is None
                             else RegisteredLimit.region_id == fields["region_id"])
            if s.scalars(select(RegisteredLimit.id).where(
                    RegisteredLimit.service_id == fields["service_id"], region_clause,
                    RegisteredLimit.resource_name == fields["resource_name"])).first() is None:
                raise Forbidden("There is no registered limit for this service, region and "
                                "resource; register one first.")
            dup = s.scalars(select(Limit.id).where(
                Limit.project_id == project_id if project_id else Limit.domain_id == domain_id,
                Limit.service_id == fields["service_id"],
                Limit.resource_name == fields["resource_name"],
                Limit.region_id.is_(None) if fields["region_id"] is None
                else Limit.region_id == fields["region_id"])).first()
            if dup:
                raise Conflict("Duplicate entry: this limit already exists.")
            row = Limit(project_id=project_id, domain_id=domain_id, **fields)
            s.add(row)
            s.flush()
            out.append(limit_view(svc, row))
    return {"limits": out}


def list_limits(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_limits", {})
    with svc.db.read() as s:
        stmt = select(Limit)
        for key in ("service_id", "region_id", "resource_name", "project_id", "domain_id"):
            if key in q:
                stmt = stmt.where(getattr(Limit, key) == q[key])
        if not ctx.is_admin:  # a project sees its own limits only
            stmt = stmt.where(Limit.project_id == ctx.project_id)
        items = [limit_view(svc, x) for x in s.scalars(stmt).all()]
    return {"limits": items, "links": {"self": f"{svc.base}/v3/limits", "previous": None,
                                       "next": None}}


def _get_limit(s: Session, ctx: RequestContext, limit_id: str) -> Limit:
    row = s.get(Limit, limit_id)
    if row is None or not (ctx.is_admin or (row.project_id and row.project_id == ctx.project_id)):
        raise NotFound(f"Could not find limit: {limit_id}.")
    return row


def show_limit(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_limits", {})
    with svc.db.read() as s:
        return {"limit": limit_view(svc, _get_limit(s, ctx, p["limit_id"]))}


def update_limit(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "limit")
    policy.enforce(ctx, "identity:manage_limits", {})
    if set(data) - {"resource_limit", "description"}:
        raise BadRequest("Only resource_limit and description of a limit can change.")
    with svc.db.write() as s:
        row = _get_limit(s, ctx, p["limit_id"])
        if "resource_limit" in data:
            row.resource_limit = _number(data["resource_limit"], "resource_limit")
        if "description" in data:
            row.description = _common(s, data, "limit", False).get("description")
        s.flush()
        return {"limit": limit_view(svc, row)}


def delete_limit(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_limits", {})
    with svc.db.write() as s:
        s.delete(_get_limit(s, ctx, p["limit_id"]))


def model(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    return {"model": {"name": "flat", "description": "Limit enforcement and validation does "
                      "not take project hierarchy into consideration."}}


# -- for other slices --------------------------------------------------------------------------
def limit_for(svc: Any, project_id: str, service_type: str, resource_name: str) -> int | None:
    """The project's limit for a resource of a service type: its own limit, else the
    registered default (this region's, else a region-less one), else None."""
    region = svc.settings.identity.region
    with svc.db.read() as s:
        service_ids = list(s.scalars(select(Service.id).where(Service.type == service_type)))
        if not service_ids:
            return None
        rows = s.scalars(select(Limit).where(Limit.project_id == project_id,
                                             Limit.service_id.in_(service_ids),
                                             Limit.resource_name == resource_name)).all()
        for wanted in (region, None):
            for row in rows:
                if row.region_id == wanted:
                    return row.resource_limit
        regs = s.scalars(select(RegisteredLimit).where(
            RegisteredLimit.service_id.in_(service_ids),
            RegisteredLimit.resource_name == resource_name)).all()
        for wanted in (region, None):
            for reg in regs:
                if reg.region_id == wanted:
                    return reg.default_limit
    return None
