"""Heat v1 HTTP routes: parsing and rendering only; logic lives in service.py/engine."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, Forbidden
from pocketstack.services.orchestration import views
from pocketstack.services.orchestration.engine.template import (FUNCTION_DESCRIPTIONS,
                                                                 VERSIONS)
from pocketstack.services.orchestration.service import OrchestrationService, _bool

SUBPATHS = ("resources", "events", "template", "outputs", "environment", "files", "actions",
            "abandon", "export", "snapshots", "preview")


def register(svc: OrchestrationService, r: Routes) -> None:
    settings = svc.settings

    def root_url() -> str:
        return f"{settings.base_url}/orchestration"

    async def versions(req: Req) -> Response:
        return json({"versions": [{"status": "CURRENT", "id": "v1.0", "links": [
            {"href": f"{root_url()}/v1/", "rel": "self"}]}]}, 300)

    def tenant(req: Req) -> str:
        tid = req.params["tenant_id"]
        if req.ctx.project_id != tid and not req.ctx.is_admin:
            raise Forbidden("The tenant in the URL does not match the token's project.")
        if req.ctx.project_id != tid:
            raise Forbidden("The tenant in the URL does not match the token's project.")
        return tid

    async def body(req: Req) -> dict[str, Any]:
        data = await req.json()
        if not isinstance(data, dict):
            raise BadRequest("The request body must be a JSON object.")
        return data

    async def stack_of(req: Req) -> Any:
        tenant(req)
        return await run(svc.live, req.ctx, req.params["stack_name"], req.params["stack_id"])

    # -- stacks ---------------------------------------------------------------------------
    async def list_stacks(req: Req) -> Response:
        tenant(req)
        stacks = await run(svc.list_stacks, req.ctx, req.query)
        glob = _bool(req.query.get("global_tenant", False))
        out: dict[str, Any] = {"stacks": [views.stack_summary(settings, st, project=glob)
                                          for st in stacks]}
        if _bool(req.query.get("with_count", False)):
            out["count"] = len(stacks)
        return json(out)

    async def create_stack(req: Req) -> Response:
        tenant(req)
        st = await run(svc.create_stack, req.ctx, await body(req))
        url = views.stack_url(settings, st)
        return json({"stack": {"id": st.id, "links": [{"href": url, "rel": "self"}]}}, 201,
                    headers={"Location": url})

    async def preview_stack(req: Req) -> Response:
        tenant(req)
        res = await run(svc.preview_stack, req.ctx, await body(req))
        defn = res["defn"]
        desc = defn.description or "No description"
        name = defn.identity["stack_name"]
        base = views.base(settings, req.ctx.project_id)
        return json({"stack": {
            "id": "None", "stack_name": name, "description": desc,
            "template_description": desc, "parameters": defn.params.shown(),
            "disable_rollback": res["disable_rollback"], "timeout_mins": res["timeout_mins"],
            "capabilities": [], "notification_topics": [], "parent": None,
            "stack_owner": req.ctx.user_name, "stack_user_project_id": req.ctx.project_id,
            "tags": res["tags"], "creation_time": None, "updated_time": None,
            "deletion_time": None,
            "links": [{"href": f"{base}/stacks/{name}/None", "rel": "self"}],
            "resources": res["resources"]}})

    async def lookup(req: Req) -> Response:
        tenant(req)
        st = await run(svc.find, req.ctx, req.params["stack_name"])
        url = views.stack_url(settings, st)
        sub = req.params.get("path")
        if sub:
            url += "/" + sub
        if req.request.url.query:
            url += "?" + req.request.url.query
        return Response(status_code=302, headers={"Location": url})

    async def show_stack(req: Req) -> Response:
        tenant(req)
        st = await run(svc.find, req.ctx, req.params["stack_name"],
                       by_id=req.params["stack_id"])
        resolve = _bool(req.query.get("resolve_outputs", True))
        outputs = await run(svc.outputs, req.ctx, st) if resolve and st.deleted_at is None \
            else None
        params = await run(svc.shown_parameters, req.ctx, st)
        return json({"stack": views.stack_detail(settings, st, params, outputs)})

    async def update_stack(req: Req) -> Response:
        st = await stack_of(req)
        await run(svc.update_stack, req.ctx, st, await body(req),
                  req.request.method == "PATCH")
        return empty(202)

    async def preview_update(req: Req) -> Response:
        st = await stack_of(req)
        changes = await run(svc.preview_update, req.ctx, st, await body(req),
                            req.request.method == "PATCH")
        return json({"resource_changes": changes})

    async def delete_stack(req: Req) -> Response:
        st = await stack_of(req)
        await run(svc.delete_stack, req.ctx, st)
        return empty(204)

    async def abandon(req: Req) -> Response:
        await stack_of(req)
        raise BadRequest("Stack Abandon is not supported.", kind="NotSupported")

    async def template(req: Req) -> Response:
        st = await stack_of(req)
        return json(st.template)

    async def env(req: Req) -> Response:
        st = await stack_of(req)
        from pocketstack.services.orchestration.engine.environment import normalized

        return json(normalized(st.environment or {}))

    async def files(req: Req) -> Response:
        st = await stack_of(req)
        return json(st.files or {})

    async def outputs(req: Req) -> Response:
        st = await stack_of(req)
        outs = await run(svc.outputs, req.ctx, st, False)
        return json({"outputs": outs})

    async def output(req: Req) -> Response:
        st = await stack_of(req)
        key = req.params["output_key"]
        outs = await run(svc.outputs, req.ctx, st, True, key)
        if not outs:
            from pocketstack.errors import NotFound

            raise NotFound(f"Specified output key {key} not found.", kind="NotFound")
        return json({"output": outs[0]})

    async def actions(req: Req) -> Response:
        st = await stack_of(req)
        await run(svc.stack_action, req.ctx, st, await req.json())
        return empty(200)

    # -- resources ------------------------------------------------------------------------
    async def resources(req: Req) -> Response:
        st = await stack_of(req)
        depth = req.query.get("nested_depth", "0")
        try:
            depth = int(depth)
        except ValueError:
            raise BadRequest("nested_depth must be an integer") from None
        rows = await run(svc.resources, req.ctx, st, depth)
        with_detail = _bool(req.query.get("with_detail", False))
        filters = {k: req.query.getlist(k) for k in
                   ("name", "type", "status", "action", "id", "physical_resource_id")
                   if req.query.getlist(k)}
        stacks_by_id = {}
        for s, _, _ in rows:
            stacks_by_id[s.id] = s
        nested_ids = [row.nested_stack_id for _, row, _ in rows if row.nested_stack_id]
        nested = await run(_stacks, svc, nested_ids)
        out = []
        for s, row, level in rows:
            if "name" in filters and row.name not in filters["name"]:
                continue
            if "type" in filters and row.type not in filters["type"]:
                continue
            if "status" in filters and row.status not in filters["status"] and \
                    f"{row.action}_{row.status}" not in filters["status"]:
                continue
            if "action" in filters and row.action not in filters["action"]:
                continue
            if "physical_resource_id" in filters and \
                    row.physical_resource_id not in filters["physical_resource_id"]:
                continue
            required_by = sorted(r.name for s2, r, _ in rows
                                 if s2.id == s.id and row.name in r.requires)
            attrs = None
            if with_detail:
                attrs = await run(svc.resource_attributes, req.ctx, s, row, [])
            out.append(views.resource(settings, s, row, required_by, detail=with_detail,
                                      attributes=attrs,
                                      nested_stack=nested.get(row.nested_stack_id),
                                      parent_resource=s.parent_resource if level else None))
        return json({"resources": out})

    async def resource(req: Req) -> Response:
        st = await stack_of(req)
        row = await run(svc.resource, req.ctx, st, req.params["resource_name"])
        rows = await run(svc.resources, req.ctx, st, 0)
        required_by = sorted(r.name for _, r, _ in rows if row.name in r.requires)
        attrs = await run(svc.resource_attributes, req.ctx, st, row,
                          req.query.getlist("with_attr"))
        nested = await run(_stacks, svc, [row.nested_stack_id] if row.nested_stack_id else [])
        return json({"resource": views.resource(
            settings, st, row, required_by, detail=True, attributes=attrs,
            nested_stack=nested.get(row.nested_stack_id),
            parent_resource=st.parent_resource)})

    async def metadata(req: Req) -> Response:
        st = await stack_of(req)
        meta = await run(svc.resource_metadata, req.ctx, st, req.params["resource_name"])
        return json({"metadata": meta})

    async def mark_unhealthy(req: Req) -> Response:
        st = await stack_of(req)
        await run(svc.mark_unhealthy, req.ctx, st, req.params["resource_name"],
                  await req.json())
        return empty(200)

    async def signal(req: Req) -> Response:
        st = await stack_of(req)
        data = await req.json(required=False)
        await run(svc.signal, req.ctx, st, req.params["resource_name"], data)
        return empty(200)

    async def signal_secret(req: Req) -> Response:
        data = await req.json(required=False)
        await run(svc.signal_by_secret, req.params["secret"], data)
        return empty(200)

    # -- events ---------------------------------------------------------------------------
    async def events(req: Req) -> Response:
        st = await stack_of(req)
        evs = await run(svc.events, req.ctx, st, req.params.get("resource_name"), req.query)
        return json({"events": [views.event(settings, s, e) for s, e in evs]})

    async def event(req: Req) -> Response:
        st = await stack_of(req)
        e = await run(svc.event, req.ctx, st, req.params["resource_name"],
                      req.params["event_id"])
        return json({"event": views.event(settings, st, e, detail=True)})

    # -- templates, types -----------------------------------------------------------------
    async def validate(req: Req) -> Response:
        tenant(req)
        res = await run(svc.validate, req.ctx, await body(req),
                        _bool(req.query.get("show_nested", False)),
                        req.query.get("ignore_errors"))
        return json(res)

    async def template_versions(req: Req) -> Response:
        tenant(req)
        return json({"template_versions": [
            {"version": f"heat_template_version.{v}", "type": "hot",
             "aliases": [a for a, t in ALIASES_ITEMS if t == v]} for v in sorted(VERSIONS)]})

    async def template_functions(req: Req) -> Response:
        tenant(req)
        name = req.params["version"]
        prefix = "heat_template_version."
        v = name[len(prefix):] if name.startswith(prefix) else None
        from pocketstack.services.orchestration.engine.template import ALIASES

        v = ALIASES.get(v, v) if v else None
        if v not in VERSIONS:
            from pocketstack.errors import NotFound

            raise NotFound(f"No template version found for {name}", kind="NotFound")
        funcs = sorted(VERSIONS[v])
        if not _bool(req.query.get("with_condition_func", False)):
            pass
        return json({"template_functions": [
            {"functions": f, "description": FUNCTION_DESCRIPTIONS.get(f, "")} for f in funcs]})

    async def resource_types(req: Req) -> Response:
        tenant(req)
        return json({"resource_types": await run(svc.resource_types, req.ctx, req.query)})

    async def resource_type(req: Req) -> Response:
        tenant(req)
        return json(await run(svc.resource_schema, req.ctx, req.params["type_name"]))

    async def resource_type_template(req: Req) -> Response:
        tenant(req)
        return json(await run(svc.resource_template, req.ctx, req.params["type_name"],
                              req.query.get("template_type", "hot")))

    async def services(req: Req) -> Response:
        tenant(req)
        return json({"services": await run(svc.services, req.ctx)})

    async def build_info(req: Req) -> Response:
        tenant(req)
        from pocketstack import __version__

        return json({"api": {"revision": __version__}, "engine": {"revision": __version__}})

    # -- software configs -----------------------------------------------------------------
    async def sc_list(req: Req) -> Response:
        tenant(req)
        return json({"software_configs": await run(svc.software_configs, req.ctx)})

    async def sc_create(req: Req) -> Response:
        tenant(req)
        return json({"software_config": await run(svc.create_software_config, req.ctx,
                                                  await body(req))})

    async def sc_show(req: Req) -> Response:
        tenant(req)
        return json({"software_config": await run(svc.software_config, req.ctx,
                                                  req.params["config_id"])})

    async def sc_delete(req: Req) -> Response:
        tenant(req)
        await run(svc.delete_software_config, req.ctx, req.params["config_id"])
        return empty(204)

    async def sd_list(req: Req) -> Response:
        tenant(req)
        return json({"software_deployments": await run(svc.deployments, req.ctx,
                                                       req.query.get("server_id"))})

    async def sd_show(req: Req) -> Response:
        tenant(req)
        return json({"software_deployment": await run(svc.deployment, req.ctx,
                                                      req.params["deployment_id"])})

    async def sd_metadata(req: Req) -> Response:
        tenant(req)
        return json({"metadata": await run(svc.deployments_metadata, req.ctx,
                                           req.params["server_id"])})

    t = "/v1/{tenant_id}"
    s = t + "/stacks/{stack_name}/{stack_id}"
    r.get("/", versions, auth=False)
    r.post("/v1/signal/{secret}", signal_secret, auth=False)
    r.get(t + "/stacks", list_stacks)
    r.get(t + "/stacks/detail", list_stacks)
    r.post(t + "/stacks", create_stack)
    r.post(t + "/stacks/preview", preview_stack)
    for sub in SUBPATHS:
        r.add(t + "/stacks/{stack_name}/{path:path}".replace("{path:path}", sub) , [
            "GET", "POST", "PUT", "PATCH", "DELETE"], _lookup_sub(lookup, sub),
            name=f"lookup_{sub}")
        r.add(t + "/stacks/{stack_name}/" + sub + "/{rest:path}", [
            "GET", "POST", "PUT", "PATCH", "DELETE"], _lookup_sub(lookup, sub, True),
            name=f"lookup_{sub}_rest")
    r.add(t + "/stacks/{stack_name}", ["GET", "PUT", "PATCH", "DELETE", "HEAD"], lookup)
    r.get(s, show_stack)
    r.put(s, update_stack)
    r.patch(s, update_stack)
    r.delete(s, delete_stack)
    r.delete(s + "/abandon", abandon)
    r.put(s + "/preview", preview_update)
    r.patch(s + "/preview", preview_update)
    r.get(s + "/template", template)
    r.get(s + "/environment", env)
    r.get(s + "/files", files)
    r.get(s + "/outputs", outputs)
    r.get(s + "/outputs/{output_key}", output)
    r.post(s + "/actions", actions)
    r.get(s + "/resources", resources)
    r.get(s + "/resources/{resource_name}", resource)
    r.patch(s + "/resources/{resource_name}", mark_unhealthy)
    r.get(s + "/resources/{resource_name}/metadata", metadata)
    r.post(s + "/resources/{resource_name}/signal", signal)
    r.get(s + "/resources/{resource_name}/events", events)
    r.get(s + "/resources/{resource_name}/events/{event_id}", event)
    r.get(s + "/events", events)
    r.post(t + "/validate", validate)
    r.get(t + "/template_versions", template_versions)
    r.get(t + "/template_versions/{version}/functions", template_functions)
    r.get(t + "/resource_types", resource_types)
    r.get(t + "/resource_types/{type_name}", resource_type)
    r.get(t + "/resource_types/{type_name}/template", resource_type_template)
    r.get(t + "/build_info", build_info)
    r.get(t + "/services", services)
    r.get(t + "/software_configs", sc_list)
    r.post(t + "/software_configs", sc_create)
    r.get(t + "/software_configs/{config_id}", sc_show)
    r.delete(t + "/software_configs/{config_id}", sc_delete)
    r.get(t + "/software_deployments", sd_list)
    r.get(t + "/software_deployments/metadata/{server_id}", sd_metadata)
    r.get(t + "/software_deployments/{deployment_id}", sd_show)


from pocketstack.services.orchestration.engine.template import ALIASES as _ALIASES  # noqa: E402

ALIASES_ITEMS = list(_ALIASES.items())


def _lookup_sub(lookup: Any, sub: str, rest: bool = False) -> Any:
    async def handler(req: Req) -> Response:
        req.params["path"] = sub + ("/" + req.params["rest"] if rest else "")
        return await lookup(req)

    return handler


def _stacks(svc: OrchestrationService, ids: list[str]) -> dict[str, Any]:
    from sqlalchemy import select

    from pocketstack.services.orchestration.models import Stack

    if not ids:
        return {}
    with svc.db.read() as s:
        out = {}
        for st in s.scalars(select(Stack).where(Stack.id.in_(ids))).all():
            s.expunge(st)
            out[st.id] = st
        return out
