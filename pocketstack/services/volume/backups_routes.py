"""Cinder v3 backups API (HTTP and rendering only; logic in ``backups``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest
from pocketstack.services.volume import backups, backups_records, microversion
from pocketstack.services.volume.common import (next_link, page, parse_limit, parse_offset,
                                                parse_sort, project_scope, truthy)
from pocketstack.services.volume.models import Backup
from pocketstack.services.volume.views import links, ts

Mv = tuple[int, int]


def summary(b: Backup, base: str) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "links": links(base, b.project_id, "backups", b.id)}


def detail(b: Backup, base: str, ctx: Any, mv: Mv) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": b.id, "name": b.name, "description": b.description, "status": b.status,
        "availability_zone": b.availability_zone, "container": b.container,
        "created_at": ts(b.created_at), "updated_at": ts(b.updated_at),
        "data_timestamp": ts(b.data_timestamp or b.created_at),
        "fail_reason": b.fail_reason, "volume_id": b.volume_id, "snapshot_id": b.snapshot_id,
        "size": b.size, "object_count": b.object_count,
        "is_incremental": b.parent_id is not None,
        "has_dependent_backups": b.num_dependent_backups > 0,
        "links": links(base, b.project_id, "backups", b.id),
    }
    if mv >= (3, 18) and ctx.is_admin:
        out["os-backup-project-attr:project_id"] = b.project_id
    if mv >= (3, 43):
        out["metadata"] = dict(b.metadata_ or {})
    if mv >= (3, 56):
        out["user_id"] = b.user_id
    if mv >= (3, 64):
        out["encryption_key_id"] = None
    return out


def _one(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return data[key]


def register_backups(svc: Any, add: Any, base: str) -> None:
    async def listing(req: Req, mv: Mv, full: bool) -> Response:
        q = req.query
        all_projects, project = project_scope(req.ctx, q)
        sort = parse_sort(q, backups.SORT_KEYS)
        limit, offset = parse_limit(q), parse_offset(q)
        rows = await run(backups.list_backups, svc, req.ctx, q, all_projects=all_projects,
                         project_id=project if all_projects and project else None, sort=sort)
        items, more = page(rows, sort, q.get("marker"), limit, offset)
        body: dict[str, Any] = {"backups": [detail(b, base, req.ctx, mv) if full
                                            else summary(b, base) for b in items]}
        if more and items:
            body["backups_links"] = next_link(
                f"{base}/{req.ctx.project_id}/backups{'/detail' if full else ''}", q,
                items[-1].id)
        if mv >= (3, 45) and truthy(q.get("with_count", "false")):
            body["count"] = len(rows)
        return json(body)

    async def backup_index(req: Req, mv: Mv) -> Response:
        return await listing(req, mv, False)

    async def backup_detail(req: Req, mv: Mv) -> Response:
        return await listing(req, mv, True)

    async def backup_create(req: Req, mv: Mv) -> Response:
        body = _one(await req.json(), "backup")
        b = await run(backups.create, svc, req.ctx, body, mv)
        out = summary(b, base)
        if mv >= (3, 43):
            out["metadata"] = dict(b.metadata_ or {})
        return json({"backup": out}, 202)

    async def backup_show(req: Req, mv: Mv) -> Response:
        b = await run(backups.get, svc, req.ctx, req.params["backup_id"])
        return json({"backup": detail(b, base, req.ctx, mv)})

    async def backup_update(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 9))
        body = _one(await req.json(), "backup")
        b = await run(backups.update, svc, req.ctx, req.params["backup_id"], body, mv)
        out = summary(b, base)
        if mv >= (3, 43):
            out["metadata"] = dict(b.metadata_ or {})
        return json({"backup": out})

    async def backup_delete(req: Req, mv: Mv) -> Response:
        await run(backups.delete, svc, req.ctx, req.params["backup_id"])
        return empty(202)

    async def backup_restore(req: Req, mv: Mv) -> Response:
        data = await req.json()
        body = data.get("restore") if isinstance(data, dict) else None
        result = await run(backups.restore, svc, req.ctx, req.params["backup_id"], body)
        return json({"restore": result}, 202)

    async def backup_action(req: Req, mv: Mv) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or len(data) != 1:
            raise BadRequest("There is no such action: the body must name exactly one action.")
        (action, body), = data.items()
        bid = req.params["backup_id"]
        if action == "os-reset_status":
            await run(backups.reset_status, svc, req.ctx, bid, body)
        elif action == "os-force_delete":
            await run(backups.delete, svc, req.ctx, bid, force=True)
        else:
            raise BadRequest(f"There is no such action: {action}")
        return empty(202)

    async def backup_export(req: Req, mv: Mv) -> Response:
        rec = await run(backups_records.export_record, svc, req.ctx, req.params["backup_id"])
        return json({"backup-record": rec})

    async def backup_import(req: Req, mv: Mv) -> Response:
        body = _one(await req.json(), "backup-record")
        b = await run(backups_records.import_record, svc, req.ctx, body)
        return json({"backup": summary(b, base)}, 201)

    B = "/backups/{backup_id}"
    for method, path, handler in [
        ("GET", "/backups", backup_index), ("POST", "/backups", backup_create),
        ("GET", "/backups/detail", backup_detail),
        ("POST", "/backups/import_record", backup_import),
        ("GET", B, backup_show), ("PUT", B, backup_update), ("DELETE", B, backup_delete),
        ("POST", B + "/restore", backup_restore), ("POST", B + "/action", backup_action),
        ("GET", B + "/export_record", backup_export),
    ]:
        add(method, path, handler)
