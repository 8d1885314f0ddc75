"""Cinder v3 HTTP routes: parsing and rendering only; logic lives in the resource modules.

This module holds the volume, volume action, snapshot, attachment and transfer routes and the
``add`` wrapper every route goes through: every route exists with and without the
``{project_id}`` segment (3.67 made it optional); every response carries
``OpenStack-API-Version: volume 3.N`` and ``Vary``. Other resources register their own
routes through the same wrapper from their own modules (types_routes, backups_routes,
groups_routes, info, qos) so this file stays one screenful per resource.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, NotFound, PocketError
from pocketstack.services.volume import (attachments, default_types, microversion, snapshots,
                                         transfers, volume_actions, volumes, views)
from pocketstack.services.volume.common import (next_link, page, parse_limit, parse_offset,
                                                parse_sort, project_scope, truthy)
from pocketstack.services.volume.backups_routes import register_backups
from pocketstack.services.volume.groups_routes import register_groups
from pocketstack.services.volume.info import register_info
from pocketstack.services.volume.qos import register_qos
from pocketstack.services.volume.service import VolumeService
from pocketstack.services.volume.types_routes import register_types

Mv = tuple[int, int]
Handler = Callable[[Req, Mv], Awaitable[Response]]


def _body(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return data[key]


def metadata_routes(svc: VolumeService, module: Any, base: str,
                    id_param: str) -> list[tuple[str, str, Handler]]:
    """The six metadata routes of a volume or a snapshot (same API, same rules).

    ``module`` (volumes or snapshots) provides metadata(), set_metadata(..., replace=)
    and delete_metadata_key() with the same signatures.
    """

    async def index(req: Req, mv: Mv) -> Response:
        return json({"metadata": await run(module.metadata, svc, req.ctx, req.params[id_param])})

    async def merge(req: Req, mv: Mv) -> Response:
        meta = _body(await req.json(), "metadata")
        return json({"metadata": await run(module.set_metadata, svc, req.ctx,
                                           req.params[id_param], meta, replace=False)})

    async def replace(req: Req, mv: Mv) -> Response:
        meta = _body(await req.json(), "metadata")
        return json({"metadata": await run(module.set_metadata, svc, req.ctx,
                                           req.params[id_param], meta, replace=True)})

    async def show(req: Req, mv: Mv) -> Response:
        meta = await run(module.metadata, svc, req.ctx, req.params[id_param])
        key = req.params["key"]
        if key not in meta:
            raise NotFound(f"Metadata item was not found with key {key}.")
        return json({"meta": {key: meta[key]}})

    async def put(req: Req, mv: Mv) -> Response:
        meta = _body(await req.json(), "meta")
        key = req.params["key"]
        if not isinstance(meta, dict) or len(meta) != 1:
            raise BadRequest("Request body contains too many items.")
        if key not in meta:
            raise BadRequest("Request body and URI mismatch")
        await run(module.set_metadata, svc, req.ctx, req.params[id_param], meta, replace=False)
        return json({"meta": meta})

    async def delete(req: Req, mv: Mv) -> Response:
        await run(module.delete_metadata_key, svc, req.ctx, req.params[id_param],
                  req.params["key"])
        return empty(200)

    return [("GET", base + "/metadata", index), ("POST", base + "/metadata", merge),
            ("PUT", base + "/metadata", replace), ("GET", base + "/metadata/{key}", show),
            ("PUT", base + "/metadata/{key}", put), ("DELETE", base + "/metadata/{key}", delete)]


def register(svc: VolumeService, r: Routes) -> None:
    base = svc.settings.base_url + "/volume/v3"

    def add(method: str, path: str, handler: Handler, *, auth: bool = True) -> None:
        async def endpoint(req: Req) -> Response:
            extra = {"Vary": microversion.HEADER}
            try:
                mv = microversion.parse(req.header("openstack-api-version"))
                extra[microversion.HEADER] = f"volume {microversion.fmt(mv)}"
                pid = req.params.get("project_id")
                if pid is not None and auth and req.ctx.project_id and pid != req.ctx.project_id \
                        and not req.ctx.is_admin:
                    raise BadRequest(f"Malformed request url: URL's project_id '{pid}' doesn't "
                                     f"match Context's project_id '{req.ctx.project_id}'")
                resp = await handler(req, mv)
            except PocketError as exc:
                exc.headers = {**exc.headers, **extra}
                raise
            for k, v in extra.items():
                resp.headers[k] = v
            return resp

        endpoint.__name__ = handler.__name__
        for prefix in ("/v3/{project_id}", "/v3"):
            r.add(prefix + path, [method] if method != "GET" else ["GET", "HEAD"], endpoint,
                  auth=auth, name=f"{handler.__name__}{'_p' if '{' in prefix else ''}")

    # ---- volumes -------------------------------------------------------------------------
    def type_names() -> dict[str, str]:
        from sqlalchemy import select

        from pocketstack.services.volume.models import VolumeType

        with svc.db.read() as s:
            return dict(s.execute(select(VolumeType.id, VolumeType.name)).all())

    def render_volume(vol: Any, req: Req, mv: Mv, names: dict[str, str] | None = None,
                      created: bool = False) -> dict:
        names = names if names is not None else type_names()
        return views.volume(vol, base, req.ctx, mv, names.get(vol.volume_type_id or ""),
                            vol.host or svc.host + "#" + svc.backend, created=created)

    async def list_volumes(req: Req, mv: Mv, detail: bool) -> Response:
        q = req.query
        all_projects, project = project_scope(req.ctx, q)
        sort = parse_sort(q, volumes.SORT_KEYS)
        limit, offset = parse_limit(q), parse_offset(q)
        rows = await run(volumes.list_volumes, svc, req.ctx, q, all_projects=all_projects,
                         project_id=project if all_projects and project else None, sort=sort)
        items, more = page(rows, sort, q.get("marker"), limit, offset)
        names = await run(type_names) if detail else {}
        out = [render_volume(v, req, mv, names) if detail else views.volume_summary(v, base)
               for v in items]
        body: dict[str, Any] = {"volumes": out}
        if more and items:
            body["volumes_links"] = next_link(
                f"{base}/{req.ctx.project_id}/volumes{'/detail' if detail else ''}", q, items[-1].id)
        if mv >= (3, 45) and truthy(q.get("with_count", "false")):
            body["count"] = len(rows)
        return json(body)

    async def volume_index(req: Req, mv: Mv) -> Response:
        return await list_volumes(req, mv, False)

    async def volume_detail(req: Req, mv: Mv) -> Response:
        return await list_volumes(req, mv, True)

    async def volume_create(req: Req, mv: Mv) -> Response:
        data = await req.json()
        body = _body(data, "volume")
        if isinstance(data, dict) and isinstance(data.get("OS-SCH-HNT:scheduler_hints"), dict):
            pass  # one backend: scheduler hints cannot change placement
        vol = await run(volumes.create, svc, req.ctx, body)
        return json({"volume": render_volume(vol, req, mv, created=True)}, 202)

    async def volume_show(req: Req, mv: Mv) -> Response:
        vol = await run(volumes.get, svc, req.ctx, req.params["volume_id"])
        return json({"volume": render_volume(vol, req, mv)})

    async def volume_update(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "volume")
        vol = await run(volumes.update, svc, req.ctx, req.params["volume_id"], body)
        return json({"volume": render_volume(vol, req, mv, created=True)})

    async def volume_delete(req: Req, mv: Mv) -> Response:
        cascade = truthy(req.query.get("cascade", "false"))
        force = mv >= (3, 23) and truthy(req.query.get("force", "false"))
        await run(volumes.delete, svc, req.ctx, req.params["volume_id"], cascade=cascade,
                  force=force)
        return empty(202)

    async def volume_summary(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 12))
        all_projects, project = project_scope(req.ctx, req.query)
        rows = await run(volumes.list_volumes, svc, req.ctx, req.query,
                         all_projects=all_projects,
                         project_id=project if all_projects and project else None,
                         sort=[("created_at", "desc"), ("id", "desc")])
        summary: dict[str, Any] = {"total_size": sum(v.size for v in rows),
                                   "total_count": len(rows)}
        if mv >= (3, 36):
            meta: dict[str, list[str]] = {}
            for v in rows:
                for k, val in v.metadata_.items():
                    if val not in meta.setdefault(k, []):
                        meta[k].append(val)
            summary["metadata"] = meta
        return json({"volume-summary": summary})

    async def volume_action(req: Req, mv: Mv) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or len(data) != 1:
            raise BadRequest("There is no such action: the body must name exactly one action.")
        (action, body), = data.items()
        vid = req.params["volume_id"]
        ctx = req.ctx
        if action == "os-extend":
            new_size = body.get("new_size") if isinstance(body, dict) else None
            await run(volume_actions.extend, svc, ctx, vid, new_size, mv >= (3, 42))
            return empty(202)
        if action == "os-set_bootable":
            if not isinstance(body, dict) or "bootable" not in body:
                raise BadRequest("Must specify bootable in request.")
            await run(volume_actions.set_bootable, svc, ctx, vid, body["bootable"])
            return empty(200)
        if action == "os-update_readonly_flag":
            if not isinstance(body, dict) or "readonly" not in body:
                raise BadRequest("Must specify readonly in request.")
            await run(volume_actions.update_readonly, svc, ctx, vid, body["readonly"])
            return empty(202)
        if action == "os-reset_status":
            await run(volume_actions.reset_status, svc, ctx, vid, body)
            return empty(202)
        if action == "os-force_delete":
            await run(volumes.delete, svc, ctx, vid, cascade=True, force=True)
            return empty(202)
        if action == "os-reserve":
            await run(attachments.reserve, svc, ctx, vid)
            return empty(202)
        if action == "os-unreserve":
            await run(attachments.unreserve, svc, ctx, vid)
            return empty(202)
        if action == "os-attach":
            await run(attachments.legacy_attach, svc, ctx, vid, body)
            return empty(202)
        if action == "os-detach":
            await run(attachments.legacy_detach, svc, ctx, vid, body or {})
            return empty(202)
        if action == "os-begin_detaching":
            await run(attachments.begin_detaching, svc, ctx, vid)
            return empty(202)
        if action == "os-roll_detaching":
            await run(attachments.roll_detaching, svc, ctx, vid)
            return empty(202)
        if action == "os-force_detach":
            await run(attachments.force_detach, svc, ctx, vid, body or {})
            return empty(202)
        if action == "os-initialize_connection":
            connector = body.get("connector") if isinstance(body, dict) else None
            info = await run(attachments.initialize_connection, svc, ctx, vid, connector)
            return json({"connection_info": info})
        if action == "os-terminate_connection":
            await run(attachments.terminate_connection, svc, ctx, vid)
            return empty(202)
        if action == "os-volume_upload_image":
            result = await run(volume_actions.upload_to_image, svc, ctx, vid, body)
            return json({"os-volume_upload_image": result}, 202)
        if action == "os-set_image_metadata":
            meta = body.get("metadata") if isinstance(body, dict) else None
            result = await run(volume_actions.set_image_metadata, svc, ctx, vid, meta)
            return json({"metadata": result})
        if action == "os-unset_image_metadata":
            key = body.get("key") if isinstance(body, dict) else None
            await run(volume_actions.unset_image_metadata, svc, ctx, vid, key)
            return empty(200)
        if action == "os-show_image_metadata":
            vol = await run(volumes.get, svc, ctx, vid)
            return json({"metadata": dict(vol.image_metadata)})
        if action == "os-retype":
            await run(volume_actions.retype, svc, ctx, vid, body)
            return empty(202)
        if action == "revert":
            microversion.require(mv, (3, 40))
            snap_id = body.get("snapshot_id") if isinstance(body, dict) else None
            await run(volume_actions.revert, svc, ctx, vid, snap_id)
            return empty(202)
        if action in ("os-migrate_volume", "os-migrate_volume_completion",
                      "os-enable_replication", "os-disable_replication",
                      "os-failover_replication", "os-list_replication_targets"):
            await run(volumes.get, svc, ctx, vid)
            raise BadRequest(f"Invalid volume: {action} needs a second backend; this cloud "
                             "has one.")
        raise BadRequest(f"There is no such action: {action}")

    # ---- snapshots ---------------------------------------------------------------------------
    async def list_snaps(req: Req, mv: Mv, detail: bool) -> Response:
        q = req.query
        all_projects, project = project_scope(req.ctx, q)
        sort = parse_sort(q, snapshots.SORT_KEYS)
        limit, offset = parse_limit(q), parse_offset(q)
        rows = await run(snapshots.list_snapshots, svc, req.ctx, q, all_projects=all_projects,
                         project_id=project if all_projects and project else None, sort=sort)
        items, more = page(rows, sort, q.get("marker"), limit, offset)
        out = []
        for x in items:
            body = views.snapshot(x, req.ctx, mv)
            if not detail:
                for k in ("os-extended-snapshot-attributes:project_id",
                          "os-extended-snapshot-attributes:progress"):
                    body.pop(k, None)
            out.append(body)
        result: dict[str, Any] = {"snapshots": out}
        if more and items:
            result["snapshots_links"] = next_link(
                f"{base}/{req.ctx.project_id}/snapshots{'/detail' if detail else ''}", q,
                items[-1].id)
        return json(result)

    async def snapshot_index(req: Req, mv: Mv) -> Response:
        return await list_snaps(req, mv, False)

    async def snapshot_detail(req: Req, mv: Mv) -> Response:
        return await list_snaps(req, mv, True)

    async def snapshot_create(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "snapshot")
        snap = await run(snapshots.create, svc, req.ctx, body)
        return json({"snapshot": views.snapshot(snap, req.ctx, mv, core=True)}, 202)

    async def snapshot_show(req: Req, mv: Mv) -> Response:
        snap = await run(snapshots.get, svc, req.ctx, req.params["snapshot_id"])
        return json({"snapshot": views.snapshot(snap, req.ctx, mv)})

    async def snapshot_update(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "snapshot")
        snap = await run(snapshots.update, svc, req.ctx, req.params["snapshot_id"], body)
        return json({"snapshot": views.snapshot(snap, req.ctx, mv, core=True)})

    async def snapshot_delete(req: Req, mv: Mv) -> Response:
        await run(snapshots.delete, svc, req.ctx, req.params["snapshot_id"])
        return empty(202)

    async def snapshot_action(req: Req, mv: Mv) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or len(data) != 1:
            raise BadRequest("There is no such action.")
        (action, body), = data.items()
        sid = req.params["snapshot_id"]
        if action == "os-reset_status":
            await run(snapshots.reset_status, svc, req.ctx, sid, body)
        elif action == "os-force_delete":
            policy.enforce(req.ctx, "volume:force_delete_snapshot", {})
            await run(snapshots.delete, svc, req.ctx, sid, force=True)
        elif action == "os-update_snapshot_status":
            await run(snapshots.update_status, svc, req.ctx, sid, body)
        else:
            raise BadRequest(f"There is no such action: {action}")
        return empty(202)

    # ---- attachments (3.27+) -----------------------------------------------------------------
    async def attachment_index(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        rows = await run(attachments.list_attachments, svc, req.ctx, req.query)
        return json({"attachments": [views.attachment(a, detail=False) for a in rows]})

    async def attachment_detail(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        rows = await run(attachments.list_attachments, svc, req.ctx, req.query)
        return json({"attachments": [views.attachment(a, detail=True) for a in rows]})

    async def attachment_create(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        body = _body(await req.json(), "attachment")
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute attachment.")
        mode = body.get("mode") if mv >= (3, 54) else None
        att = await run(attachments.create, svc, req.ctx, body.get("volume_uuid"),
                        body.get("instance_uuid"), body.get("connector"), mode)
        return json({"attachment": views.attachment(att, detail=True)})

    async def attachment_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        att = await run(attachments.show, svc, req.ctx, req.params["attachment_id"])
        return json({"attachment": views.attachment(att, detail=True)})

    async def attachment_update(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        body = _body(await req.json(), "attachment")
        connector = body.get("connector") if isinstance(body, dict) else None
        att = await run(attachments.update, svc, req.ctx, req.params["attachment_id"], connector)
        return json({"attachment": views.attachment(att, detail=True)})

    async def attachment_delete(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 27))
        status = await run(attachments.delete, svc, req.ctx, req.params["attachment_id"])
        return json({"attachments": [], "volume_status": status})

    async def attachment_action(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 44))
        data = await req.json()
        if not isinstance(data, dict) or "os-complete" not in data:
            raise BadRequest("There is no such action.")
        await run(attachments.complete, svc, req.ctx, req.params["attachment_id"])
        return empty(204)

    # ---- transfers ---------------------------------------------------------------------------
    async def transfer_create(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "transfer")
        tr, key = await run(transfers.create, svc, req.ctx, body)
        return json({"transfer": views.transfer(tr, base, detail=True, mv=mv, auth_key=key)}, 202)

    async def transfer_index(req: Req, mv: Mv) -> Response:
        rows = await run(transfers.list_transfers, svc, req.ctx, req.query)
        return json({"transfers": [views.transfer(t, base, detail=False, mv=mv) for t in rows]})

    async def transfer_detail(req: Req, mv: Mv) -> Response:
        rows = await run(transfers.list_transfers, svc, req.ctx, req.query)
        return json({"transfers": [views.transfer(t, base, detail=True, mv=mv) for t in rows]})

    async def transfer_show(req: Req, mv: Mv) -> Response:
        tr = await run(transfers.show, svc, req.ctx, req.params["transfer_id"])
        return json({"transfer": views.transfer(tr, base, detail=True, mv=mv)})

    async def transfer_delete(req: Req, mv: Mv) -> Response:
        await run(transfers.delete, svc, req.ctx, req.params["transfer_id"])
        return empty(202)

    async def transfer_accept(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "accept")
        tr = await run(transfers.accept, svc, req.ctx, req.params["transfer_id"], body)
        return json({"transfer": {"id": tr.id, "name": tr.name, "volume_id": tr.volume_id,
                                  "links": views.links(base, req.ctx.project_id or "",
                                                       "os-volume-transfer", tr.id)}}, 202)

    async def transfer_index_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_index(req, mv)

    async def transfer_detail_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_detail(req, mv)

    async def transfer_create_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_create(req, mv)

    async def transfer_show_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_show(req, mv)

    async def transfer_delete_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_delete(req, mv)

    async def transfer_accept_55(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 55))
        return await transfer_accept(req, mv)

    # ---- the table -----------------------------------------------------------------------
    V, S = "/volumes/{volume_id}", "/snapshots/{snapshot_id}"
    table: list[tuple[str, str, Handler]] = [
        ("GET", "/volumes", volume_index), ("POST", "/volumes", volume_create),
        ("GET", "/volumes/detail", volume_detail), ("GET", "/volumes/summary", volume_summary),
        ("GET", V, volume_show), ("PUT", V, volume_update), ("DELETE", V, volume_delete),
        ("POST", V + "/action", volume_action),
        *metadata_routes(svc, volumes, V, "volume_id"),
        ("GET", "/snapshots", snapshot_index), ("POST", "/snapshots", snapshot_create),
        ("GET", "/snapshots/detail", snapshot_detail),
        ("GET", S, snapshot_show), ("PUT", S, snapshot_update), ("DELETE", S, snapshot_delete),
        ("POST", S + "/action", snapshot_action),
        *metadata_routes(svc, snapshots, S, "snapshot_id"),
        ("GET", "/attachments", attachment_index), ("POST", "/attachments", attachment_create),
        ("GET", "/attachments/detail", attachment_detail),
        ("GET", "/attachments/{attachment_id}", attachment_show),
        ("PUT", "/attachments/{attachment_id}", attachment_update),
        ("DELETE", "/attachments/{attachment_id}", attachment_delete),
        ("POST", "/attachments/{attachment_id}/action", attachment_action),
        ("GET", "/os-volume-transfer", transfer_index),
        ("POST", "/os-volume-transfer", transfer_create),
        ("GET", "/os-volume-transfer/detail", transfer_detail),
        ("GET", "/os-volume-transfer/{transfer_id}", transfer_show),
        ("DELETE", "/os-volume-transfer/{transfer_id}", transfer_delete),
        ("POST", "/os-volume-transfer/{transfer_id}/accept", transfer_accept),
        ("GET", "/volume-transfers", transfer_index_55),
        ("POST", "/volume-transfers", transfer_create_55),
        ("GET", "/volume-transfers/detail", transfer_detail_55),
        ("GET", "/volume-transfers/{transfer_id}", transfer_show_55),
        ("DELETE", "/volume-transfers/{transfer_id}", transfer_delete_55),
        ("POST", "/volume-transfers/{transfer_id}/accept", transfer_accept_55),
    ]
    register_info(svc, add, base)
    register_qos(svc, add, base)
    register_backups(svc, add, base)
    register_groups(svc, add, base)
    register_types(svc, add, base)

    def project_exists(project_id: str) -> bool:
        ident = svc.cloud.services.get("identity")
        return ident is None or not hasattr(ident, "project_exists") or \
            ident.project_exists(project_id)

    default_types.register(svc, add, project_exists)
    for method, path, handler in table:
        add(method, path, handler)

    # A trailing slash after a collection ("DELETE /volumes/" with an empty id) is a missing
    # resource, as in Cinder, not a redirect.
    async def no_such_resource(req: Req) -> Response:
        raise NotFound("The resource could not be found.")

    r.add("/{rest:path}/", ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"], no_such_resource,
          auth=False, name="volume_trailing_slash")
