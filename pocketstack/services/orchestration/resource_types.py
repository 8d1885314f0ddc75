"""Template validation and the resource-type catalogue (types, schemas, generated
templates) plus the heat-engine service list.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.orchestration.common import _bool
from pocketstack.services.orchestration.engine import parameters


class ResourceTypesMixin:
    """Part of OrchestrationService (see service.py); relies on its db, engine and
    lookup helpers."""

    # -- validate, types, versions ------------------------------------------------------
    def validate(self, ctx: RequestContext, body: dict[str, Any], show_nested: bool,
                 ignore_errors: str | None) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:stacks:validate_template",
                       {"project_id": ctx.project_id})
        template = self._template_of(body)
        files = self._files(body)
        env = self._body_env(body)
        identity = {"stack_name": "validate", "stack_id": "None", "project_id": ctx.project_id}
        defn = self.engine.definition(template, files, env, identity, ctx, validate_only=True)
        props = defn.validate_properties()
        nested = self.check_nested(ctx, defn, 0, props)
        given = dict(defn.env["parameters"])
        out: dict[str, Any] = {"Description": defn.description or "No description",
                               "Parameters": parameters.validate_view(defn.param_schemas,
                                                                      given)}
        if defn.tmpl.get("parameter_groups"):
            out["ParameterGroups"] = defn.tmpl["parameter_groups"]
        out["Environment"] = defn.environment_view()
        if show_nested and nested:
            out["NestedParameters"] = nested
        return out

    def resource_types(self, ctx: RequestContext, query: Any) -> list[Any]:
        policy.enforce(ctx, "orchestration:resource_types:index", {})
        names = sorted(n for n in self.plugins if not n.startswith("__"))
        for key in ("type_name", "name"):
            # Heat matches the name filter as a regular expression (search).
            pattern = query.get(key)
            if pattern:
                try:
                    rx = re.compile(pattern)
                except re.error:
                    raise BadRequest(f"Invalid resource type name filter: {pattern}") from None
                names = [n for n in names if rx.search(n) or fnmatch.fnmatchcase(n, pattern)]
        if query.get("support_status"):
            names = [n for n in names
                     if self.plugins[n].support_status == query["support_status"]]
        if _bool(query.get("with_description", False)):
            return [{"resource_type": n, "description": self.plugins[n].description}
                    for n in names]
        return names

    def services(self, ctx: RequestContext) -> list[dict[str, Any]]:
        """heat-engine services (GET /services): this process's engine."""
        import socket

        from pocketstack.db.base import isotime

        policy.enforce(ctx, "orchestration:services:index", {})
        host = socket.gethostname()
        now = isotime(utcnow())
        return [{"id": self.engine_id, "engine_id": self.engine_id, "host": host,
                 "hostname": host, "binary": "heat-engine", "topic": "engine",
                 "report_interval": 60, "status": "up", "created_at": self.started_at,
                 "updated_at": now, "deleted_at": None}]

    def plugin_of(self, type_name: str) -> Any:
        plugin = self.plugins.get(type_name)
        if plugin is None or type_name.startswith("__"):
            raise NotFound(f"The Resource Type ({type_name}) could not be found.",
                           kind="EntityNotFound")
        return plugin

    def resource_schema(self, ctx: RequestContext, type_name: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:resource_types:show", {})
        plugin = self.plugin_of(type_name)
        return {"resource_type": type_name,
                "properties": {k: p.view() for k, p in plugin.properties_schema.items()},
                "attributes": {**{k: {"description": v, "type": "string"}
                                  for k, v in plugin.attributes_schema.items()},
                               "show": {"description": "Detailed information about "
                                                       "resource.", "type": "map"}},
                "support_status": {"status": plugin.support_status, "version": None,
                                   "message": None, "previous_status": None},
                "description": plugin.description}

    def resource_template(self, ctx: RequestContext, type_name: str,
                          template_type: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:resource_types:template", {})
        plugin = self.plugin_of(type_name)
        if template_type not in ("hot", "cfn"):
            raise BadRequest(f"Template type is not supported: {template_type}")
        ptypes = {"string": "string", "integer": "number", "number": "number",
                  "boolean": "boolean", "map": "json", "list": "comma_delimited_list",
                  "any": "json"}
        params = {}
        for k, p in plugin.properties_schema.items():
            spec: dict[str, Any] = {"type": ptypes.get(p.type, "string"),
                                    "description": p.description}
            if p.default is not None and p.view().get("default") is not None:
                spec["default"] = p.view()["default"]
            params[k] = spec
        short = type_name.split("::")[-1]
        return {"heat_template_version": "2016-10-14",
                "description": f"Initial template of {short}",
                "parameters": params,
                "resources": {short: {"type": type_name, "properties": {
                    k: {"get_param": k} for k in plugin.properties_schema}}},
                "outputs": {k: {"description": v, "value": {"get_attr": [short, k]}}
                            for k, v in plugin.attributes_schema.items()}}
