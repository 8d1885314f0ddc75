"""Cinder's default-types API (3.62: a project's own default volume type) and the
resource_filters API (3.33: which list filters each resource accepts).

A project default replaces the cloud's ``__DEFAULT__`` type for the volumes that project
creates without a type (``types.resolve_for_create``); a type that is some project's
default cannot be deleted (Cinder's VolumeTypeDefaultDeletionError)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, empty, json, run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import types
from pocketstack.services.volume.models import ProjectDefaultType

Mv = tuple[int, int]
MV_DEFAULT_TYPES = (3, 62)
MV_RESOURCE_FILTERS = (3, 33)

# Cinder's shipped etc/cinder/resource_filters.json: the filters each list accepts.
RESOURCE_FILTERS: dict[str, list[str]] = {
    "volume": ["name", "status", "metadata", "bootable", "migration_status",
               "availability_zone", "group_id", "size", "created_at", "updated_at",
               "consumes_quota"],
    "backup": ["name", "status", "volume_id"],
    "snapshot": ["name", "status", "volume_id", "metadata", "availability_zone",
                 "consumes_quota"],
    "group": ["name"],
    "group_snapshot": ["name", "status", "group_id"],
    "attachment": ["volume_id", "status", "instance_id", "attach_status"],
    "message": ["resource_uuid", "resource_type", "event_id", "request_id", "message_level"],
    "pool": ["name", "volume_type"],
    "volume_type": ["is_public", "extra_specs"],
}


def _view(row: ProjectDefaultType) -> dict[str, str]:
    return {"project_id": row.project_id, "volume_type_id": row.volume_type_id}


def set_default(s: Session, ctx: RequestContext, project_id: str, body: Any) -> dict:
    policy.enforce(ctx, "volume:default_type_set", {"project_id": project_id})
    inner = body.get("default_type") if isinstance(body, dict) else None
    if not isinstance(inner, dict) or set(inner) != {"volume_type"}:
        raise BadRequest("Invalid input for field/attribute default_type: it needs exactly "
                         "'volume_type'.")
    ref = inner["volume_type"]
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 255:
        raise BadRequest("Invalid input for field/attribute volume_type: a name or id of "
                         "at most 255 characters.")
    try:
        vt = types.find(s, ctx, ref)
    except NotFound as exc:  # Cinder: an unknown type is the request's mistake (400)
        raise BadRequest(exc.message) from None
    row = s.get(ProjectDefaultType, project_id)
    if row is None:
        row = ProjectDefaultType(project_id=project_id, volume_type_id=vt.id)
        s.add(row)
    else:
        row.volume_type_id = vt.id
    s.flush()
    return _view(row)


def get_default(s: Session, ctx: RequestContext, project_id: str) -> dict:
    policy.enforce(ctx, "volume:default_type_get", {"project_id": project_id})
    row = s.get(ProjectDefaultType, project_id)
    if row is None:
        raise NotFound(f"Default type for project {project_id} not found.",
                       kind="VolumeTypeProjectDefaultNotFound")
    return _view(row)


def list_defaults(s: Session, ctx: RequestContext) -> list[dict]:
    policy.enforce(ctx, "volume:default_type_get_all", {})
    return [_view(r) for r in s.scalars(select(ProjectDefaultType)
                                        .order_by(ProjectDefaultType.project_id))]


def unset_default(s: Session, ctx: RequestContext, project_id: str) -> None:
    policy.enforce(ctx, "volume:default_type_delete", {"project_id": project_id})
    row = s.get(ProjectDefaultType, project_id)
    if row is not None:
        s.delete(row)


def resource_filters(resource: str | None) -> list[dict[str, Any]]:
    if resource is not None:
        found = RESOURCE_FILTERS.get(resource)
        return [{"resource": resource, "filters": found}] if found is not None else []
    return [{"resource": r, "filters": f} for r, f in RESOURCE_FILTERS.items()]


def register(svc: Any, add: Any, identity_exists: Any) -> None:
    """Routes on the volume slice's ``add`` (both /v3/{project_id}/... and /v3/...).
    ``identity_exists(project_id)``: False for a project Keystone does not know (404)."""

    def in_tx(fn, *args):  # noqa: ANN001, ANN202
        def call():  # noqa: ANN202
            with svc.db.write() as s:
                return fn(s, *args)
        return call

    def need(mv: Mv, at_least: Mv) -> None:
        if mv < at_least:
            raise NotFound("The resource could not be found.")

    async def known_project(target: str) -> None:
        if not await run(identity_exists, target):
            raise NotFound(f"Project ID {target} could not be found.")

    async def dt_set(req: Req, mv: Mv) -> Response:
        need(mv, MV_DEFAULT_TYPES)
        target = req.params["target"]
        body = await req.json()
        policy.enforce(req.ctx, "volume:default_type_set", {"project_id": target})
        await known_project(target)
        return json({"default_type": await run(in_tx(set_default, req.ctx, target, body))})

    async def dt_show(req: Req, mv: Mv) -> Response:
        need(mv, MV_DEFAULT_TYPES)
        target = req.params["target"]
        policy.enforce(req.ctx, "volume:default_type_get", {"project_id": target})
        await known_project(target)
        return json({"default_type": await run(in_tx(get_default, req.ctx, target))})

    async def dt_list(req: Req, mv: Mv) -> Response:
        need(mv, MV_DEFAULT_TYPES)
        return json({"default_types": await run(in_tx(list_defaults, req.ctx))})

    async def dt_delete(req: Req, mv: Mv) -> Response:
        need(mv, MV_DEFAULT_TYPES)
        # As Cinder: the default of a project Keystone no longer knows is unset anyway.
        await run(in_tx(unset_default, req.ctx, req.params["target"]))
        return empty(204)

    async def filters_list(req: Req, mv: Mv) -> Response:
        need(mv, MV_RESOURCE_FILTERS)
        return json({"resource_filters": resource_filters(req.query.get("resource"))})

    add("PUT", "/default-types/{target}", dt_set)
    add("GET", "/default-types/{target}", dt_show)
    add("GET", "/default-types", dt_list)
    add("DELETE", "/default-types/{target}", dt_delete)
    add("GET", "/resource_filters", filters_list)
