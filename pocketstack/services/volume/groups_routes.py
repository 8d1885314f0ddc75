"""Cinder v3 generic volume groups API: group types (3.11), groups (3.13), group snapshots
and create-from-src (3.14), reset status (3.20). HTTP and rendering only."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import groups, microversion
from pocketstack.services.volume.common import (next_link, page, parse_limit, parse_offset,
                                                parse_sort, project_scope)
from pocketstack.services.volume.models import Group, GroupSnapshot, GroupType
from pocketstack.services.volume.views import links, ts

Mv = tuple[int, int]


def group_type(gt: GroupType) -> dict[str, Any]:
    return {"id": gt.id, "name": gt.name, "description": gt.description,
            "is_public": gt.is_public, "group_specs": dict(gt.group_specs or {})}


def group(g: Group, base: str, ctx: Any, mv: Mv, volumes: list[str] | None = None
          ) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": g.id, "name": g.name, "description": g.description, "status": g.status,
        "availability_zone": g.availability_zone, "created_at": ts(g.created_at),
        "group_type": g.group_type_id, "volume_types": list(g.volume_type_ids or []),
    }
    if mv >= (3, 14):
        out["group_snapshot_id"] = g.group_snapshot_id
        out["source_group_id"] = g.source_group_id
    if mv >= (3, 25) and volumes is not None:
        out["volumes"] = volumes
    if mv >= (3, 38):
        out["replication_status"] = "disabled"
    if mv >= (3, 58):
        out["project_id"] = g.project_id
    return out


def group_snapshot(gs: GroupSnapshot, mv: Mv) -> dict[str, Any]:
    out: dict[str, Any] = {"id": gs.id, "name": gs.name, "description": gs.description,
                           "status": gs.status, "created_at": ts(gs.created_at),
                           "group_id": gs.group_id, "group_type_id": gs.group_type_id}
    if mv >= (3, 58):
        out["project_id"] = gs.project_id
    return out


def _one(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return data[key]


def register_groups(svc: Any, add: Any, base: str) -> None:
    def tx(fn, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
        def call():  # noqa: ANN202
            with svc.db.write() as s:
                return fn(s, *args, **kw)
        return run(call)

    # ---- group types ---------------------------------------------------------------------
    async def gt_index(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        rows = await tx(groups.list_types, req.ctx, req.query)
        return json({"group_types": [group_type(x) for x in rows]})

    async def gt_create(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        body = _one(await req.json(), "group_type")
        return json({"group_type": group_type(await tx(groups.create_type, req.ctx, body))},
                    202)

    async def gt_default(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        raise NotFound("Default group type not found.", kind="GroupTypeNotFound")

    async def gt_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        gt = await tx(groups.load_type, req.ctx, req.params["type_id"])
        return json({"group_type": group_type(gt)})

    async def gt_update(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        body = _one(await req.json(), "group_type")
        gt = await tx(groups.update_type, req.ctx, req.params["type_id"], body)
        return json({"group_type": group_type(gt)})

    async def gt_delete(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        await tx(groups.delete_type, req.ctx, req.params["type_id"])
        return empty(202)

    async def gt_specs(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        gt = await tx(groups.load_type, req.ctx, req.params["type_id"])
        return json({"group_specs": dict(gt.group_specs or {})})

    async def gt_specs_create(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        specs = _one(await req.json(), "group_specs")
        new = await tx(groups.set_specs, req.ctx, req.params["type_id"], specs)
        return json({"group_specs": new}, 202)

    async def gt_spec_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        gt = await tx(groups.load_type, req.ctx, req.params["type_id"])
        key = req.params["key"]
        if key not in (gt.group_specs or {}):
            raise NotFound(f"Group Type {gt.id} has no specs with key {key}.",
                           kind="GroupTypeSpecsNotFound")
        return json({key: gt.group_specs[key]})

    async def gt_spec_put(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        body = await req.json()
        key = req.params["key"]
        if not isinstance(body, dict) or key not in body:
            raise BadRequest("Request body and URI mismatch.")
        if len(body) > 1:
            raise BadRequest("Request body contains too many items.")
        new = await tx(groups.set_specs, req.ctx, req.params["type_id"], body)
        return json(new)

    async def gt_spec_delete(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 11))
        await tx(groups.delete_spec, req.ctx, req.params["type_id"], req.params["key"])
        return empty(202)

    # ---- groups --------------------------------------------------------------------------
    async def group_list(req: Req, mv: Mv, full: bool) -> Response:
        microversion.require(mv, (3, 13))
        q = req.query
        all_projects, project = project_scope(req.ctx, q)
        sort = parse_sort(q, groups.GROUP_SORT_KEYS)
        limit, offset = parse_limit(q), parse_offset(q)
        rows = await tx(groups.list_groups, req.ctx, q, all_projects=all_projects,
                        project_id=project if all_projects and project else None, sort=sort)
        items, more = page(rows, sort, q.get("marker"), limit, offset)
        body: dict[str, Any] = {"groups": [group(g, base, req.ctx, mv) if full
                                           else {"id": g.id, "name": g.name}
                                           for g in items]}
        if more and items:
            body["groups_links"] = next_link(
                f"{base}/{req.ctx.project_id}/groups{'/detail' if full else ''}", q,
                items[-1].id)
        return json(body)

    async def group_index(req: Req, mv: Mv) -> Response:
        return await group_list(req, mv, False)

    async def group_detail(req: Req, mv: Mv) -> Response:
        return await group_list(req, mv, True)

    async def group_create(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 13))
        g = await run(groups.create, svc, req.ctx, _one(await req.json(), "group"))
        return json({"group": {"id": g.id, "name": g.name}}, 202)

    async def group_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 13))

        def call():  # noqa: ANN202
            with svc.db.read() as s:
                g = groups.load(s, req.ctx, req.params["group_id"])
                return g, [v.id for v in groups.members(s, g.id)]

        g, vols = await run(call)
        want = req.query.get("list_volume", "false").lower() == "true"
        return json({"group": group(g, base, req.ctx, mv, vols if want else None)})

    async def group_update(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 13))
        await run(groups.update, svc, req.ctx, req.params["group_id"],
                  _one(await req.json(), "group"))
        return empty(202)

    async def group_action(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 13))
        data = await req.json()
        if not isinstance(data, dict) or len(data) != 1:
            raise BadRequest("There is no such action: the body must name exactly one action.")
        (action, body), = data.items()
        gid = req.params["group_id"]
        if action == "delete":
            await run(groups.delete, svc, req.ctx, gid, body)
        elif action == "reset_status":
            microversion.require(mv, (3, 20))
            await run(groups.reset_status, svc, req.ctx, gid, body)
        elif action in ("enable_replication", "disable_replication", "failover_replication",
                        "list_replication_targets"):
            microversion.require(mv, (3, 38))
            await tx(groups.load, req.ctx, gid)
            raise BadRequest(f"Invalid group: {action} needs a replication target; this "
                             "cloud has none.")
        else:
            raise BadRequest(f"There is no such action: {action}")
        return empty(202)

    async def groups_action(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 14))
        body = _one(await req.json(), "create-from-src")
        g = await run(groups.create_from_source, svc, req.ctx, body)
        return json({"group": {"id": g.id, "name": g.name}}, 202)

    # ---- group snapshots -----------------------------------------------------------------
    async def gs_list(req: Req, mv: Mv, full: bool) -> Response:
        microversion.require(mv, (3, 14))
        q = req.query
        all_projects, project = project_scope(req.ctx, q)
        sort = parse_sort(q, groups.GROUP_SORT_KEYS)
        limit, offset = parse_limit(q), parse_offset(q)
        rows = await tx(groups.list_snapshots, req.ctx, q, all_projects=all_projects,
                        project_id=project if all_projects and project else None, sort=sort)
        items, more = page(rows, sort, q.get("marker"), limit, offset)
        body: dict[str, Any] = {"group_snapshots": [
            group_snapshot(x, mv) if full else {"id": x.id, "name": x.name} for x in items]}
        if more and items:
            body["group_snapshots_links"] = next_link(
                f"{base}/{req.ctx.project_id}/group_snapshots{'/detail' if full else ''}", q,
                items[-1].id)
        return json(body)

    async def gs_index(req: Req, mv: Mv) -> Response:
        return await gs_list(req, mv, False)

    async def gs_detail(req: Req, mv: Mv) -> Response:
        return await gs_list(req, mv, True)

    async def gs_create(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 14))
        gs = await run(groups.create_snapshot, svc, req.ctx,
                       _one(await req.json(), "group_snapshot"))
        return json({"group_snapshot": {"id": gs.id, "name": gs.name,
                                        "group_type_id": gs.group_type_id}}, 202)

    async def gs_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 14))
        gs = await tx(groups.load_snapshot, req.ctx, req.params["gs_id"])
        return json({"group_snapshot": group_snapshot(gs, mv)})

    async def gs_delete(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 14))
        await run(groups.delete_snapshot, svc, req.ctx, req.params["gs_id"])
        return empty(202)

    async def gs_action(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 19))
        data = await req.json()
        body = _one(data, "reset_status")
        await run(groups.reset_snapshot_status, svc, req.ctx, req.params["gs_id"], body)
        return empty(202)

    T, G, S = "/group_types/{type_id}", "/groups/{group_id}", "/group_snapshots/{gs_id}"
    for method, path, handler in [
        ("GET", "/group_types", gt_index), ("POST", "/group_types", gt_create),
        ("GET", "/group_types/default", gt_default),
        ("GET", T, gt_show), ("PUT", T, gt_update), ("DELETE", T, gt_delete),
        ("GET", T + "/group_specs", gt_specs), ("POST", T + "/group_specs", gt_specs_create),
        ("GET", T + "/group_specs/{key}", gt_spec_show),
        ("PUT", T + "/group_specs/{key}", gt_spec_put),
        ("DELETE", T + "/group_specs/{key}", gt_spec_delete),
        ("GET", "/groups", group_index), ("POST", "/groups", group_create),
        ("GET", "/groups/detail", group_detail), ("POST", "/groups/action", groups_action),
        ("GET", G, group_show), ("PUT", G, group_update), ("POST", G + "/action", group_action),
        ("GET", "/group_snapshots", gs_index), ("POST", "/group_snapshots", gs_create),
        ("GET", "/group_snapshots/detail", gs_detail),
        ("GET", S, gs_show), ("DELETE", S, gs_delete), ("POST", S + "/action", gs_action),
    ]:
        add(method, path, handler)
