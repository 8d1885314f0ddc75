"""Stack previews (POST /stacks/preview, PUT/PATCH .../preview): what a create or
update would do, computed from the definition without touching anything.
"""

from __future__ import annotations

from typing import Any

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest
from pocketstack.services.orchestration.common import MAX_NESTING, _bool, _tags
from pocketstack.services.orchestration.engine import environment, functions
from pocketstack.services.orchestration.engine import template as tmpl_mod
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.functions import Placeholder
from pocketstack.services.orchestration.models import Stack


class StackPreviewMixin:
    """Part of OrchestrationService (see service.py); relies on its db, engine and
    lookup helpers."""

    def preview_stack(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:stacks:preview", {"project_id": ctx.project_id})
        name = body.get("stack_name")
        if not isinstance(name, str) or not name:
            raise BadRequest("No stack name specified")
        template = self._template_of(body)
        files = self._files(body)
        env = self._body_env(body)
        identity = {"stack_name": name, "stack_id": "None", "project_id": ctx.project_id}
        defn = self.definition(ctx, template, files, env, identity)
        return {"defn": defn, "resources": self._preview_resources(ctx, defn, name, None, 0),
                "disable_rollback": _bool(body.get("disable_rollback", True)),
                "timeout_mins": body.get("timeout_mins"), "tags": _tags(body.get("tags"))}

    def _preview_resources(self, ctx: RequestContext, defn: StackDefinition, stack_name: str,
                           parent_resource: str | None, depth: int) -> list[Any]:
        props_all = defn.validate_properties()
        out: list[Any] = []
        for name, rdef in defn.resources.items():
            props = props_all.get(name) or {}
            nested = None
            if rdef.template_file is not None or rdef.resolved_type in (
                    "OS::Heat::ResourceGroup", "OS::Heat::Stack"):
                nested = self._preview_nested(ctx, defn, rdef, props, stack_name, depth)
            if nested is not None:
                out.append(nested)
                continue
            plugin = rdef.plugin
            out.append({
                "resource_name": name, "resource_type": rdef.type,
                "resource_action": "INIT", "resource_status": "COMPLETE",
                "resource_status_reason": "", "physical_resource_id": "",
                "description": "", "creation_time": None, "updated_time": None,
                "required_by": defn.required_by(name),
                "properties": {k: (None if isinstance(v, Placeholder) else v)
                               for k, v in props.items()},
                "attributes": {a: None for a in plugin.attributes_schema},
                "metadata": {},
                "stack_name": stack_name,
                "resource_identity": {"stack_name": stack_name, "stack_id": "None",
                                      "tenant": ctx.project_id, "path": f"/resources/{name}"},
                "stack_identity": {"stack_name": stack_name, "stack_id": "None",
                                   "tenant": ctx.project_id, "path": ""},
                **({"parent_resource": parent_resource} if parent_resource else {}),
            })
        return out

    def _preview_nested(self, ctx: RequestContext, defn: StackDefinition, rdef: Any,
                        props: dict[str, Any], stack_name: str, depth: int) -> list[Any] | None:
        if depth > MAX_NESTING:
            return None
        if rdef.template_file is not None:
            tmpl, _ = tmpl_mod.parse(defn.files[rdef.template_file])
            params = {k: v for k, v in props.items() if v is not None}
        elif rdef.resolved_type == "OS::Heat::Stack":
            tmpl, _ = tmpl_mod.parse(props.get("template") or {})
            params = props.get("parameters") or {}
        else:
            from pocketstack.services.orchestration.resources.heat import ResourceGroup

            tmpl = ResourceGroup._template(None, props)  # type: ignore[arg-type]
            params = {}
        env = {"parameters": params, "resource_registry": defn.registry.nested_for(rdef.name)}
        nested_name = f"{stack_name}-{rdef.name}"
        nested = StackDefinition(
            tmpl, files=defn.files, env=env,
            identity={"stack_name": nested_name, "stack_id": "None",
                      "project_id": ctx.project_id or ""},
            plugins=self.plugins, custom=self.constraint_checker(ctx), strict_params=False,
            validate_only=True)
        return self._preview_resources(ctx, nested, nested_name, rdef.name, depth + 1)

    def preview_update(self, ctx: RequestContext, stack: Stack, body: dict[str, Any],
                       patch: bool) -> dict[str, list[dict[str, Any]]]:
        """What an update would do to each resource (PUT/PATCH .../preview)."""
        policy.enforce(ctx, "orchestration:stacks:preview_update",
                       {"project_id": stack.project_id})
        files = dict(stack.files or {}) if patch else {}
        files.update(self._files(body))
        if patch:
            template = body.get("template") or stack.template
            env = environment.merge(stack.environment or {}, self._body_env(body))
        else:
            template = self._template_of(body)
            env = self._body_env(body)
        identity = {"stack_name": stack.name, "stack_id": stack.id,
                    "project_id": stack.project_id}
        defn = self.definition(ctx, template, files, env, identity)
        run = self.run_for(ctx, stack)
        run._defn = defn
        changes: dict[str, list[dict[str, Any]]] = {
            "added": [], "deleted": [], "replaced": [], "updated": [], "unchanged": []}
        scope = run.scope()
        for name, rdef in defn.resources.items():
            row = run.rows.get(name)
            item = {"resource_name": name, "resource_type": rdef.type,
                    "resource_action": row.action if row else "INIT",
                    "resource_status": row.status if row else "COMPLETE",
                    "physical_resource_id": (row.physical_resource_id or "") if row else "",
                    "resource_identity": {"stack_name": stack.name, "stack_id": stack.id,
                                          "tenant": stack.project_id,
                                          "path": f"/resources/{name}"}}
            if row is None or row.action == "INIT":
                changes["added"].append(item)
                continue
            try:
                props = functions.resolve(rdef.properties, scope)
                if rdef.template_file is None:
                    from pocketstack.services.orchestration.resources.base import validate

                    props = {**(props if not rdef.plugin.strict_properties else {}),
                             **validate(rdef.plugin.properties_schema, props,
                                        f"resources.{name}.properties",
                                        strict=rdef.plugin.strict_properties)}
            except Exception:  # noqa: BLE001 - unknown until run time: assume a change
                changes["updated"].append(item)
                continue
            old = row.properties_data or {}
            plugin_name = rdef.resolved_type if rdef.template_file is None else "__template__"
            if row.type != rdef.type or row.data.get("_plugin") != plugin_name or \
                    row.status == "FAILED":
                changes["replaced"].append(item)
            elif props == old:
                changes["unchanged"].append(item)
            else:
                changed = {k for k in set(props) | set(old) if props.get(k) != old.get(k)}
                plugin = rdef.plugin.__new__(rdef.plugin)
                from pocketstack.services.orchestration.engine.stack import ResourceRuntime

                plugin.rt = ResourceRuntime(run, row, props, "UPDATE")
                key = "replaced" if plugin.needs_replace(changed) else "updated"
                changes[key].append(item)
        for name, row in run.rows.items():
            if name not in defn.resources:
                changes["deleted"].append({"resource_name": name, "resource_type": row.type,
                                           "physical_resource_id":
                                               row.physical_resource_id or ""})
        return changes
