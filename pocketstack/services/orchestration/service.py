"""Heat's logic: stacks, resources, events, outputs, validation and resource types.

Stack operations are asynchronous: the request validates the definition, records the
intent (stack row, resource rows INIT_COMPLETE, an IN_PROGRESS event) and returns; the
engine's thread does the work. Every lookup is scoped to the caller's project.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db import Database
from pocketstack.db.base import new_uuid, utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound, PocketError
from pocketstack.services.orchestration.engine import environment, functions, parameters
from pocketstack.services.orchestration.engine import template as tmpl_mod
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.errors import (ActionInProgress,
                                                               ResourceNotFound,
                                                               StackNotFound,
                                                               StackValidationFailed)
from pocketstack.services.orchestration.engine.functions import FunctionError, Placeholder
from pocketstack.services.orchestration.engine.stack import (Engine, RowState, StackRun,
                                                              context_data)
from pocketstack.services.orchestration.models import (SoftwareConfig, Stack, StackEvent,
                                                       StackResource)
from pocketstack.services.orchestration.resources import registry
from pocketstack.services.orchestration.resources.constraints import check_custom

log = logging.getLogger("pocketstack.orchestration")
HIDDEN_TAGS = ("data-processing-cluster",)
MAX_NESTING = 5


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on", "t", "y")


def _tags(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadRequest(f"Invalid tags, not a list: {value}")
    for t in value:
        if len(t) > 80:
            raise BadRequest(f'Invalid tag, "{t}" is longer than 80 characters')
    return [t.strip() for t in value]


class OrchestrationService:
    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.db: Database = cloud.db
        self.settings = cloud.settings
        self.plugins = registry()
        self.engine = Engine(self)
        self.engine_id = new_uuid()
        from pocketstack.db.base import isotime

        self.started_at = isotime(utcnow())

    def new_stack_id(self) -> str:
        return new_uuid()

    async def start(self) -> None:
        n = self.engine.recover()
        if n:
            log.warning("marked %d stacks left in progress by a previous process FAILED", n)

    def constraint_checker(self, ctx: RequestContext) -> parameters.CustomChecker:
        return lambda name, value: check_custom(self.cloud, ctx, name, value)

    # -- lookups ------------------------------------------------------------------------
    def find(self, ctx: RequestContext, name_or_id: str, *, by_id: str | None = None,
             deleted_ok: bool = True) -> Stack:
        with self.db.read() as s:
            q = select(Stack).where(Stack.project_id == ctx.project_id)
            if by_id is not None:
                stack = s.scalars(q.where(Stack.id == by_id)).first()
                if stack is not None and stack.name != name_or_id and stack.id != name_or_id:
                    stack = None
            else:
                stack = s.scalars(q.where(Stack.id == name_or_id)).first()
                if stack is None:
                    stack = s.scalars(q.where(Stack.name == name_or_id,
                                              Stack.deleted_at.is_(None))).first()
            if stack is None or (stack.deleted_at is not None and not deleted_ok):
                raise StackNotFound(f"The Stack ({name_or_id}) could not be found.")
            s.expunge(stack)
        policy.enforce(ctx, "orchestration:stacks:show", {"project_id": stack.project_id})
        return stack

    def live(self, ctx: RequestContext, name: str, stack_id: str) -> Stack:
        stack = self.find(ctx, name, by_id=stack_id)
        if stack.deleted_at is not None:
            raise StackNotFound(f"The Stack ({name}) could not be found.")
        return stack

    def _busy(self, stack: Stack) -> None:
        if stack.status == "IN_PROGRESS" and stack.id in self.engine.ops:
            raise ActionInProgress(f"Stack {stack.name} already has an action "
                                   f"({stack.action}) in progress.")

    # -- definitions ----------------------------------------------------------------------
    def _body_env(self, body: dict[str, Any]) -> dict[str, Any]:
        env = environment.load(body.get("environment"))
        params = body.get("parameters") or {}
        if not isinstance(params, dict):
            raise BadRequest("The parameters must be a map.")
        if params:
            env.setdefault("parameters", {})
            env["parameters"] = {**(env.get("parameters") or {}), **params}
        return env

    @staticmethod
    def _files(body: dict[str, Any]) -> dict[str, str]:
        files = body.get("files") or {}
        if not isinstance(files, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
            raise BadRequest("files must be a map of file names to their contents (strings)")
        return files

    def _template_of(self, body: dict[str, Any]) -> Any:
        if "template" in body and body["template"] is not None:
            return body["template"]
        if body.get("template_url"):
            raise BadRequest("template_url is not supported by this server (it fetches no "
                             "remote URLs); send the template inline.")
        raise BadRequest("No Template provided.")

    def definition(self, ctx: RequestContext, template: Any, files: dict[str, Any],
                   env: dict[str, Any], identity: dict[str, str], *,
                   validate_only: bool = False) -> StackDefinition:
        defn = self.engine.definition(template, files, env, identity, ctx,
                                      validate_only=validate_only)
        self.check_nested(ctx, defn, 0)
        if not validate_only:
            defn.validate_properties()
        return defn

    def check_nested(self, ctx: RequestContext, defn: StackDefinition, depth: int,
                     props_of: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """Validate provider templates recursively; returns NestedParameters data."""
        out: dict[str, Any] = {}
        if depth > MAX_NESTING:
            raise StackValidationFailed(f"Recursion depth exceeds {MAX_NESTING}.")
        props_all = props_of if props_of is not None else defn.validate_properties()
        for name, rdef in defn.resources.items():
            props = props_all.get(name) or {}
            if rdef.template_file is None:
                self._check_inline_nested(ctx, defn, rdef, props, depth)
                continue
            nested_tmpl, _ = tmpl_mod.parse(defn.files[rdef.template_file])
            env = {"parameters": {k: v for k, v in props.items() if v is not None},
                   "resource_registry": defn.registry.nested_for(name)}
            try:
                nested = StackDefinition(
                    nested_tmpl, files=defn.files, env=env,
                    identity={"stack_name": f"{defn.identity['stack_name']}-{name}",
                              "stack_id": "None", "project_id": ctx.project_id or ""},
                    plugins=self.plugins, custom=self.constraint_checker(ctx),
                    strict_params=False, validate_only=True)
                nested_props = nested.validate_properties()
                sub = self.check_nested(ctx, nested, depth + 1, nested_props)
            except PocketError as exc:
                raise StackValidationFailed(
                    f"Failed to validate: resources.{name}: {exc.message}") from None
            given = {k: v for k, v in props.items()
                     if v is not None and not isinstance(v, Placeholder)}
            item: dict[str, Any] = {"Description": nested.description or "No description",
                                    "Parameters": parameters.validate_view(
                                        nested.param_schemas, given),
                                    "Type": rdef.type}
            if sub:
                item["NestedParameters"] = sub
            out[name] = item
        return out

    def _check_inline_nested(self, ctx: RequestContext, defn: StackDefinition, rdef: Any,
                             props: dict[str, Any], depth: int) -> None:
        """Groups and OS::Heat::Stack: validate the nested definition they will create."""
        if rdef.resolved_type == "OS::Heat::ResourceGroup":
            member = props.get("resource_def") or {}
            if isinstance(member.get("type"), Placeholder) or not member.get("type"):
                return
            from pocketstack.services.orchestration.resources.heat import ResourceGroup

            nested_tmpl = ResourceGroup._template(  # type: ignore[arg-type]
                None, {**props, "count": 1, "removal_policies": []})
            params: dict[str, Any] = {}
        elif rdef.resolved_type == "OS::Heat::Stack":
            if isinstance(props.get("template"), Placeholder):
                return
            nested_tmpl, _ = tmpl_mod.parse(props.get("template") or {})
            params = {k: v for k, v in (props.get("parameters") or {}).items()
                      if v is not None}
        else:
            return
        try:
            nested = StackDefinition(
                nested_tmpl, files=defn.files,
                env={"parameters": params,
                     "resource_registry": defn.registry.nested_for(rdef.name)},
                identity={"stack_name": f"{defn.identity['stack_name']}-{rdef.name}",
                          "stack_id": "None", "project_id": ctx.project_id or ""},
                plugins=self.plugins, custom=self.constraint_checker(ctx),
                strict_params=False, validate_only=True)
            self.check_nested(ctx, nested, depth + 1, nested.validate_properties())
        except PocketError as exc:
            raise StackValidationFailed(
                f"Failed to validate: resources.{rdef.name}: {exc.message}") from None

    # -- stacks ---------------------------------------------------------------------------
    def create_stack(self, ctx: RequestContext, body: dict[str, Any]) -> Stack:
        policy.enforce(ctx, "orchestration:stacks:create", {"project_id": ctx.project_id})
        name = body.get("stack_name")
        if not isinstance(name, str) or not name:
            raise BadRequest("No stack name specified")
        if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_.-]{0,254}", name):
            raise BadRequest(f'Invalid stack name {name} must contain only alphanumeric or '
                             '"_-." characters, must start with alpha and must be 255 '
                             'characters or less.')
        if body.get("adopt_stack_data"):
            raise BadRequest("Stack Adopt is not supported.")
        template = self._template_of(body)
        files = self._files(body)
        env = self._body_env(body)
        tags = _tags(body.get("tags"))
        timeout = body.get("timeout_mins")
        if timeout not in (None, ""):
            try:
                timeout = int(timeout)
                if timeout <= 0:
                    raise ValueError
            except (TypeError, ValueError):
                raise BadRequest(f"Invalid timeout value {body.get('timeout_mins')}") from None
        else:
            timeout = None
        disable_rollback = _bool(body.get("disable_rollback", True))
        stack_id = new_uuid()
        identity = {"stack_name": name, "stack_id": stack_id, "project_id": ctx.project_id}
        defn = self.definition(ctx, template, files, env, identity)
        with self.db.write() as s:
            exists = s.scalars(select(Stack.id).where(
                Stack.project_id == ctx.project_id, Stack.name == name,
                Stack.deleted_at.is_(None))).first()
            if exists:
                raise Conflict(f"The Stack ({name}) already exists.", kind="StackExists")
            stack = Stack(id=stack_id, name=name, project_id=ctx.project_id,
                          user_id=ctx.user_id, username=ctx.user_name, action="CREATE",
                          status="IN_PROGRESS", status_reason="Stack CREATE started",
                          template=defn.tmpl, files=files, environment=defn.env, tags=tags,
                          disable_rollback=disable_rollback, timeout_mins=timeout,
                          context=context_data(ctx), created_at=utcnow())
            s.add(stack)
            self.engine.event(s, stack_id, name, "OS::Heat::Stack", stack_id, "CREATE",
                              "IN_PROGRESS", "Stack CREATE started")
            s.flush()
            s.expunge(stack)

        # Rows first, then the thread: a reader right after 201 sees INIT_COMPLETE rows.
        run0 = StackRun(self.engine, stack, ctx)
        run0._defn = defn
        self.engine.add_rows(run0, list(defn.resources))

        def work2(op: Any) -> None:
            run = StackRun(self.engine, stack, ctx, op)
            run._defn = defn
            run.load_rows()
            self.engine.do_create(run)

        self.engine.spawn(stack_id, work2, timeout)
        return stack

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

    def list_stacks(self, ctx: RequestContext, query: Any) -> list[Stack]:
        policy.enforce(ctx, "orchestration:stacks:index", {"project_id": ctx.project_id})
        global_tenant = _bool(query.get("global_tenant", False))
        if global_tenant:
            policy.enforce(ctx, "orchestration:stacks:global_index", {})
        with self.db.read() as s:
            q = select(Stack)
            if not global_tenant:
                q = q.where(Stack.project_id == ctx.project_id)
            if not _bool(query.get("show_deleted", False)):
                q = q.where(Stack.deleted_at.is_(None))
            if not _bool(query.get("show_nested", False)):
                q = q.where(Stack.owner_id.is_(None))
            stacks = list(s.scalars(q.order_by(Stack.created_at.desc(), Stack.id)).all())
            for st in stacks:
                s.expunge(st)
        # filters
        for key, attr in (("name", "name"), ("id", "id"), ("owner_id", "owner_id"),
                          ("username", "username"), ("tenant", "project_id")):
            vals = query.getlist(key) if hasattr(query, "getlist") else []
            if key == "name":
                vals += query.getlist("stack_name") if hasattr(query, "getlist") else []
            if vals:
                stacks = [st for st in stacks if getattr(st, attr) in vals]
        statuses = query.getlist("status") + query.getlist("stack_status") \
            if hasattr(query, "getlist") else []
        if statuses:
            stacks = [st for st in stacks if st.status in statuses or
                      f"{st.action}_{st.status}" in statuses]
        actions = query.getlist("action") if hasattr(query, "getlist") else []
        if actions:
            stacks = [st for st in stacks if st.action in actions]
        if not _bool(query.get("show_hidden", False)):
            stacks = [st for st in stacks if not set(st.tags or ()) & set(HIDDEN_TAGS)]
        for key, mode in (("tags", all), ("tags_any", any)):
            if query.get(key):
                want = [t for t in query[key].split(",") if t]
                stacks = [st for st in stacks if mode(t in (st.tags or []) for t in want)]
        for key, mode in (("not_tags", all), ("not_tags_any", any)):
            if query.get(key):
                want = [t for t in query[key].split(",") if t]
                stacks = [st for st in stacks if not mode(t in (st.tags or []) for t in want)]
        sort_keys = query.getlist("sort_keys") if hasattr(query, "getlist") else []
        sort_dir = query.get("sort_dir", "desc")
        if sort_dir not in ("asc", "desc"):
            raise BadRequest(f"Unknown sort direction, must be one of: asc, desc")
        keymap = {"stack_name": "name", "creation_time": "created_at",
                  "updated_time": "updated_at", "stack_status": "status", "name": "name",
                  "created_at": "created_at", "updated_at": "updated_at", "status": "status"}
        for key in reversed(sort_keys or ["creation_time"]):
            attr = keymap.get(key)
            if attr is None:
                raise BadRequest(f"Sort key {key} is not supported")
            stacks.sort(key=lambda st: (getattr(st, attr) is None, getattr(st, attr) or 0),
                        reverse=sort_dir == "desc")
        marker = query.get("marker")
        if marker:
            ids = [st.id for st in stacks]
            if marker not in ids:
                raise NotFound(f"The Stack ({marker}) could not be found.")
            stacks = stacks[ids.index(marker) + 1:]
        limit = query.get("limit")
        if limit:
            try:
                n = int(limit)
                if n < 0:
                    raise ValueError
            except ValueError:
                raise BadRequest("Invalid limit: it must be a non-negative integer") from None
            stacks = stacks[:n]
        return stacks

    def run_for(self, ctx: RequestContext, stack: Stack) -> StackRun:
        run = StackRun(self.engine, stack, ctx, validate_constraints=False)
        run.load_rows()
        return run

    def outputs(self, ctx: RequestContext, stack: Stack, resolve: bool = True,
                key: str | None = None) -> list[dict[str, Any]]:
        run = self.run_for(ctx, stack)
        try:
            defn = run.defn
        except PocketError as exc:
            return [{"output_key": k, "description": "No description given",
                     "output_error": exc.message, "output_value": None}
                    for k in (stack.template.get("outputs") or {})]
        out = []
        for name, spec in defn.outputs.items():
            if key is not None and name != key:
                continue
            item: dict[str, Any] = {"output_key": name,
                                    "description": spec.get("description",
                                                            "No description given")}
            if "condition" in spec:
                try:
                    if not functions._condition(spec["condition"], run.scope()):
                        if resolve:
                            item["output_value"] = None
                        out.append(item)
                        continue
                except FunctionError:
                    pass
            if resolve:
                value = None
                try:
                    value = functions.resolve(spec.get("value"), run.scope())
                except (FunctionError, PocketError) as exc:
                    item["output_error"] = getattr(exc, "message", None) or str(exc)
                except Exception as exc:  # noqa: BLE001 - an output must not break show
                    item["output_error"] = str(exc)
                item["output_value"] = value
            out.append(item)
        return out

    def shown_parameters(self, ctx: RequestContext, stack: Stack) -> dict[str, str]:
        try:
            run = self.run_for(ctx, stack)
            return run.defn.params.shown()
        except PocketError:
            return {}

    def update_stack(self, ctx: RequestContext, stack: Stack, body: dict[str, Any],
                     patch: bool) -> None:
        policy.enforce(ctx, "orchestration:stacks:update", {"project_id": stack.project_id})
        self._busy(stack)
        if stack.action == "DELETE" or stack.status == "IN_PROGRESS" and \
                stack.id in self.engine.ops:
            raise ActionInProgress(f"Stack {stack.name} already has an action "
                                   f"({stack.action}) in progress.")
        files = dict(stack.files or {}) if patch else {}
        files.update(self._files(body))
        if patch:
            template = body.get("template") or stack.template
            env = environment.merge(stack.environment or {}, self._body_env(body))
            for key in body.get("clear_parameters") or []:
                env["parameters"].pop(key, None)
            tags = _tags(body["tags"]) if "tags" in body else stack.tags
            disable_rollback = _bool(body.get("disable_rollback", stack.disable_rollback))
        else:
            template = self._template_of(body)
            env = self._body_env(body)
            tags = _tags(body.get("tags"))
            disable_rollback = _bool(body.get("disable_rollback", True))
        timeout = body.get("timeout_mins") or stack.timeout_mins
        identity = {"stack_name": stack.name, "stack_id": stack.id,
                    "project_id": stack.project_id}
        defn = self.definition(ctx, template, files, env, identity)
        # Immutable parameters may not change.
        old_run = self.run_for(ctx, stack)
        try:
            old_params = old_run.defn.params.values
        except PocketError:
            old_params = {}
        for pname, schema in defn.param_schemas.items():
            if schema.immutable and pname in old_params and \
                    defn.params.values.get(pname) != old_params[pname]:
                raise StackValidationFailed(
                    f"The following parameters are immutable and may not be updated: {pname}")
        previous = {"template": stack.template, "files": stack.files,
                    "environment": stack.environment, "tags": stack.tags}
        with self.db.write() as s:
            st = s.get(Stack, stack.id)
            st.template, st.files, st.environment = defn.tmpl, files, defn.env
            st.tags, st.disable_rollback, st.previous = tags, disable_rollback, previous
            st.action, st.status, st.status_reason = "UPDATE", "IN_PROGRESS", \
                "Stack UPDATE started"
            st.updated_at = utcnow()
            st.context = context_data(ctx)
            self.engine.event(s, st.id, st.name, "OS::Heat::Stack", st.id, "UPDATE",
                              "IN_PROGRESS", "Stack UPDATE started")
            s.flush()
            s.expunge(st)
            fresh = st

        def work(op: Any) -> None:
            run = StackRun(self.engine, fresh, ctx, op)
            run._defn = defn
            run.load_rows()
            ok = self.engine.do_update(run)
            if not ok and not disable_rollback and not (
                    op.cancel.is_set() and not op.rollback_on_cancel):
                self.engine.rollback_update(run, previous)

        self.engine.spawn(stack.id, work, timeout)

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

    def delete_stack(self, ctx: RequestContext, stack: Stack) -> None:
        policy.enforce(ctx, "orchestration:stacks:delete", {"project_id": stack.project_id})
        if stack.deleted_at is not None:
            raise StackNotFound(f"The Stack ({stack.name}) could not be found.")
        if stack.action == "DELETE" and stack.status == "IN_PROGRESS" and \
                stack.id in self.engine.ops:
            return  # already being deleted
        self.engine.set_stack(stack.id, "DELETE", "IN_PROGRESS", "Stack DELETE started")

        import threading

        other = self.engine.ops.get(stack.id)
        if other is not None:
            other.cancel_reason = "stack deleted"
            other.rollback_on_cancel = False
            other.cancel.set()
            with self.engine.hooks_cv:
                self.engine.hooks_cv.notify_all()

            def waiter() -> None:
                if other.thread is not None:
                    other.thread.join(300)
                self.engine.spawn(stack.id, lambda op: self.engine.delete_stack_sync(
                    stack.id, ctx, op, announce=False))

            threading.Thread(target=waiter, daemon=True).start()
            return
        self.engine.spawn(stack.id, lambda op: self.engine.delete_stack_sync(
            stack.id, ctx, op, announce=False))

    def stack_action(self, ctx: RequestContext, stack: Stack, body: Any) -> None:
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Multiple actions specified" if isinstance(body, dict) and body
                             else "No action specified")
        (action, _), = body.items()
        actions = {"suspend", "resume", "check", "cancel_update", "cancel_without_rollback"}
        if action not in actions:
            raise BadRequest(f"Invalid action {action} specified")
        policy.enforce(ctx, f"orchestration:actions:{action}", {"project_id": stack.project_id})
        if action in ("cancel_update", "cancel_without_rollback"):
            if not (stack.action == "UPDATE" and stack.status == "IN_PROGRESS"):
                raise BadRequest(f"Cancelling update when stack is "
                                 f"{stack.action}_{stack.status}", kind="NotSupported")
            rollback = action == "cancel_update"
            op = self.engine.ops.get(stack.id)
            if op is not None:
                op.cancel_reason = "cancelled"
                op.rollback_on_cancel = rollback
                op.cancel.set()
                with self.engine.hooks_cv:
                    self.engine.hooks_cv.notify_all()
            return
        self._busy(stack)
        verb = action.upper()
        self.engine.set_stack(stack.id, verb, "IN_PROGRESS", f"Stack {verb} started")
        self.engine.spawn(stack.id, lambda op: self.engine.simple_action(
            self.engine.load_run(stack.id, ctx, op), verb))

    # -- resources ----------------------------------------------------------------------
    def resources(self, ctx: RequestContext, stack: Stack, nested_depth: int = 0
                  ) -> list[tuple[Stack, RowState, int]]:
        policy.enforce(ctx, "orchestration:resource:index", {"project_id": stack.project_id})
        out: list[tuple[Stack, RowState, int]] = []
        self._collect(stack, out, nested_depth, 0)
        return out

    def _collect(self, stack: Stack, out: list[Any], depth: int, level: int) -> None:
        with self.db.read() as s:
            rows = s.scalars(select(StackResource).where(
                StackResource.stack_id == stack.id).order_by(StackResource.name)).all()
            states = [RowState.of(r) for r in rows]
            nested = {}
            if depth > level:
                ids = [r.nested_stack_id for r in states if r.nested_stack_id]
                if ids:
                    for st in s.scalars(select(Stack).where(Stack.id.in_(ids))).all():
                        s.expunge(st)
                        nested[st.id] = st
        for r in states:
            out.append((stack, r, level))
            if r.nested_stack_id in nested:
                self._collect(nested[r.nested_stack_id], out, depth, level + 1)

    def resource(self, ctx: RequestContext, stack: Stack, name: str) -> RowState:
        policy.enforce(ctx, "orchestration:resource:show", {"project_id": stack.project_id})
        with self.db.read() as s:
            r = s.scalars(select(StackResource).where(StackResource.stack_id == stack.id,
                                                      StackResource.name == name)).first()
            if r is None:
                raise ResourceNotFound(f"The Resource ({name}) could not be found in Stack "
                                       f"{stack.name}.")
            return RowState.of(r)

    def resource_attributes(self, ctx: RequestContext, stack: Stack, row: RowState,
                            with_attr: list[str]) -> dict[str, Any]:
        run = self.run_for(ctx, stack)
        if row.name not in run.rows or row.action == "INIT":
            return {}
        plugin = run.plugin(row.name)
        attrs = {}
        names = list(plugin.attributes_schema) + [a for a in with_attr
                                                  if a not in plugin.attributes_schema]
        for a in names:
            try:
                attrs[a] = plugin.get_attribute(a)
            except Exception:  # noqa: BLE001
                attrs[a] = None
        return attrs

    def mark_unhealthy(self, ctx: RequestContext, stack: Stack, name: str,
                       body: Any) -> None:
        policy.enforce(ctx, "orchestration:resource:mark_unhealthy",
                       {"project_id": stack.project_id})
        if not isinstance(body, dict) or "mark_unhealthy" not in body:
            raise BadRequest("mark_unhealthy is required")
        unknown = set(body) - {"mark_unhealthy", "resource_status_reason"}
        if unknown:
            raise BadRequest(f"Invalid parameter {sorted(unknown)[0]}")
        mark = body["mark_unhealthy"]
        if not isinstance(mark, bool):
            raise BadRequest("mark_unhealthy must be a boolean")
        reason = body.get("resource_status_reason") or ""
        row = self.resource(ctx, stack, name)
        if row.status == "IN_PROGRESS":
            raise ActionInProgress(f"Resource {name} has an action in progress.")
        run = self.run_for(ctx, stack)
        if mark:
            self.engine.set_row(run, run.rows[name], "CHECK", "FAILED", reason)
        elif row.action == "CHECK" and row.status == "FAILED":
            self.engine.set_row(run, run.rows[name], "CHECK", "COMPLETE", reason)

    def signal(self, ctx: RequestContext, stack: Stack, name: str, data: Any) -> None:
        policy.enforce(ctx, "orchestration:resource:signal", {"project_id": stack.project_id})
        row = self.resource(ctx, stack, name)
        if isinstance(data, dict) and "unset_hook" in data:
            hook = data["unset_hook"]
            if hook not in environment.HOOK_TYPES:
                raise BadRequest(f'Invalid hook type "{hook}" for resource breakpoint, '
                                 f'acceptable hook types are: {list(environment.HOOK_TYPES)}')
            if not self.engine.clear_hook(stack.id, row, hook):
                raise BadRequest(f'The "{hook}" hook is not defined on {row.type} "{name}"')
            return
        run = self.run_for(ctx, stack)
        plugin_cls = run.plugin_class(row)
        if not plugin_cls.signal_supported:
            raise BadRequest(f"Resource {name} is a {row.type}, which does not support "
                             "signals.", kind="ResourceActionNotSupported")
        if row.action == "INIT" or row.status == "FAILED" and row.action == "DELETE":
            raise BadRequest(f"Signal resource during {row.action} is not supported.",
                             kind="NotSupported")
        plugin = run.plugin(name)
        try:
            plugin.handle_signal(data)
        except Exception as exc:  # noqa: BLE001
            raise BadRequest(getattr(exc, "message", None) or str(exc)) from None
        with self.db.write() as s:
            self.engine.event(s, stack.id, name, row.type, row.physical_resource_id,
                              "SIGNAL", "COMPLETE", "Signal: " + str(data)[:200])

    def signal_by_secret(self, secret: str, data: Any) -> None:
        """Unauthenticated signal to a wait condition handle, authorised by its secret."""
        with self.db.read() as s:
            rows = s.scalars(select(StackResource).where(StackResource.type.in_(
                ("OS::Heat::WaitConditionHandle", "OS::Heat::SoftwareDeployment")))).all()
            row = next((r for r in rows if (r.data or {}).get("secret") == secret), None)
            if row is None:
                raise NotFound("No resource has this signal URL.")
            stack = s.get(Stack, row.stack_id)
            s.expunge(stack)
            state = RowState.of(row)
        from pocketstack.services.orchestration.engine.stack import context_from

        ctx = context_from(stack.context or {})
        run = StackRun(self.engine, stack, ctx)
        run.load_rows()
        plugin = run.plugin(state.name)
        try:
            plugin.handle_signal(data)
        except Exception as exc:  # noqa: BLE001
            raise BadRequest(getattr(exc, "message", None) or str(exc)) from None

    # -- events -------------------------------------------------------------------------
    def events(self, ctx: RequestContext, stack: Stack, resource_name: str | None,
               query: Any) -> list[tuple[Stack, StackEvent]]:
        policy.enforce(ctx, "orchestration:events:index", {"project_id": stack.project_id})
        stacks = [stack]
        depth = query.get("nested_depth")
        if depth:
            try:
                depth = int(depth)
            except ValueError:
                raise BadRequest("nested_depth must be an integer") from None
            frontier = [stack]
            for _ in range(depth):
                with self.db.read() as s:
                    kids = s.scalars(select(Stack).where(
                        Stack.owner_id.in_([x.id for x in frontier]))).all()
                    for k in kids:
                        s.expunge(k)
                stacks += kids
                frontier = kids
        by_id = {st.id: st for st in stacks}
        with self.db.read() as s:
            q = select(StackEvent).where(StackEvent.stack_id.in_(list(by_id)))
            if resource_name is not None:
                q = q.where(StackEvent.resource_name == resource_name)
            events = list(s.scalars(q.order_by(StackEvent.seq)).all())
            for e in events:
                s.expunge(e)
        if resource_name is not None and not events:
            raise ResourceNotFound(f"The Resource ({resource_name}) could not be found in "
                                   f"Stack {stack.name}.")
        for key, attr in (("resource_action", "action"), ("resource_status", "status"),
                          ("resource_name", "resource_name"),
                          ("resource_type", "resource_type")):
            vals = query.getlist(key)
            if vals:
                events = [e for e in events if getattr(e, attr) in vals]
        if query.get("sort_dir", "asc") == "desc":
            events.reverse()
        marker = query.get("marker")
        if marker:
            ids = [e.id for e in events]
            if marker in ids:
                events = events[ids.index(marker) + 1:]
        limit = query.get("limit")
        if limit:
            try:
                events = events[:int(limit)]
            except ValueError:
                raise BadRequest("limit must be an integer") from None
        return [(by_id[e.stack_id], e) for e in events]

    def event(self, ctx: RequestContext, stack: Stack, resource_name: str,
              event_id: str) -> StackEvent:
        policy.enforce(ctx, "orchestration:events:show", {"project_id": stack.project_id})
        with self.db.read() as s:
            e = s.scalars(select(StackEvent).where(StackEvent.stack_id == stack.id,
                                                   StackEvent.id == event_id)).first()
            if e is None or e.resource_name != resource_name:
                raise NotFound(f"The Event ({event_id}) could not be found.",
                               kind="EntityNotFound")
            s.expunge(e)
            return e

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

    # -- software configs ---------------------------------------------------------------
    def create_software_config(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_configs:create",
                       {"project_id": ctx.project_id})
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        cfg = {"config": body.get("config") or "", "options": body.get("options") or {},
               "inputs": body.get("inputs") or [], "outputs": body.get("outputs") or []}
        with self.db.write() as s:
            row = SoftwareConfig(project_id=ctx.project_id, name=str(body.get("name") or ""),
                                 group=str(body.get("group") or "Heat::Ungrouped"), config=cfg)
            s.add(row)
            s.flush()
            return self._config_view(row)

    @staticmethod
    def _config_view(row: SoftwareConfig) -> dict[str, Any]:
        from pocketstack.db.base import isotime

        return {"id": row.id, "name": row.name, "group": row.group,
                "config": row.config.get("config"), "options": row.config.get("options"),
                "inputs": row.config.get("inputs"), "outputs": row.config.get("outputs"),
                "creation_time": isotime(row.created_at), "project": row.project_id}

    def software_configs(self, ctx: RequestContext) -> list[dict[str, Any]]:
        policy.enforce(ctx, "orchestration:software_configs:index",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            rows = s.scalars(select(SoftwareConfig).where(
                SoftwareConfig.project_id == ctx.project_id)).all()
            return [self._config_view(r) for r in rows]

    def software_config(self, ctx: RequestContext, config_id: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_configs:show",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            row = s.get(SoftwareConfig, config_id)
            if row is None or row.project_id != ctx.project_id:
                raise NotFound(f"Software config with id {config_id} not found",
                               kind="NotFound")
            return self._config_view(row)

    def delete_software_config(self, ctx: RequestContext, config_id: str,
                               missing_ok: bool = False) -> None:
        policy.enforce(ctx, "orchestration:software_configs:delete",
                       {"project_id": ctx.project_id})
        with self.db.write() as s:
            row = s.get(SoftwareConfig, config_id)
            if row is None or row.project_id != ctx.project_id:
                if missing_ok:
                    return
                raise NotFound(f"Software config with id {config_id} not found",
                               kind="NotFound")
            s.delete(row)



    # -- software deployments -----------------------------------------------------------
    def create_deployment(self, ctx: RequestContext, spec: dict[str, Any]) -> dict[str, Any]:
        """A deployment and its derived config (config inputs + deploy_* inputs)."""
        from pocketstack.services.orchestration.models import SoftwareDeployment

        base: dict[str, Any] = {"config": "", "options": {}, "inputs": [], "outputs": [],
                                "group": "Heat::Ungrouped"}
        if spec.get("config_id"):
            base = self.software_config(ctx, spec["config_id"])
        values = spec.get("input_values") or {}
        inputs = []
        for item in base.get("inputs") or []:
            item = dict(item)
            if item.get("name") in values:
                item["value"] = values[item["name"]]
            else:
                item.setdefault("value", item.get("default"))
            inputs.append(item)
        known = {i.get("name") for i in inputs}
        for name, value in values.items():
            if name not in known:
                inputs.append({"name": name, "type": "String", "value": value})
        descriptions = {"deploy_server_id": "ID of the server being deployed to",
                        "deploy_action": "Name of the current action being deployed",
                        "deploy_stack_id": "ID of the stack this deployment belongs to",
                        "deploy_resource_name": "Name of this deployment resource in the "
                                                "stack",
                        "deploy_signal_transport": "How the server should signal to heat "
                                                   "with the deployment output values.",
                        "deploy_signal_id": "ID of signal to use for signaling output values",
                        "deploy_signal_verb": "HTTP verb to use for signaling output values"}
        for name, value in (spec.get("extra") or {}).items():
            inputs.append({"name": name, "type": "String", "value": value,
                           "description": descriptions.get(name, "")})
        with self.db.write() as s:
            derived = SoftwareConfig(project_id=ctx.project_id, name=spec.get("name") or "",
                                     group=base.get("group") or "Heat::Ungrouped",
                                     config={"config": base.get("config") or "",
                                             "options": base.get("options") or {},
                                             "inputs": inputs,
                                             "outputs": base.get("outputs") or []})
            s.add(derived)
            s.flush()
            dep = SoftwareDeployment(project_id=ctx.project_id, config_id=derived.id,
                                     server_id=spec["server_id"], input_values=values,
                                     output_values={}, action=spec.get("action", "CREATE"),
                                     status=spec.get("status", "IN_PROGRESS"),
                                     status_reason=spec.get("status_reason", ""))
            s.add(dep)
            s.flush()
            return self._deployment_view(dep)

    @staticmethod
    def _deployment_view(d: Any) -> dict[str, Any]:
        from pocketstack.db.base import isotime

        return {"id": d.id, "config_id": d.config_id, "server_id": d.server_id,
                "input_values": d.input_values or {}, "output_values": d.output_values or {},
                "action": d.action, "status": d.status, "status_reason": d.status_reason,
                "creation_time": isotime(d.created_at), "updated_time": isotime(d.updated_at)}

    def _load_deployment(self, s: Any, ctx: RequestContext, deployment_id: str) -> Any:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        d = s.get(SoftwareDeployment, deployment_id)
        if d is None or (d.project_id != ctx.project_id and not ctx.is_admin):
            raise NotFound(f"Deployment with id {deployment_id} not found", kind="NotFound")
        return d

    def deployment(self, ctx: RequestContext, deployment_id: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_deployments:show",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            return self._deployment_view(self._load_deployment(s, ctx, deployment_id))

    def deployments(self, ctx: RequestContext, server_id: str | None) -> list[dict[str, Any]]:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        policy.enforce(ctx, "orchestration:software_deployments:index",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            q = select(SoftwareDeployment).where(
                SoftwareDeployment.project_id == ctx.project_id)
            if server_id:
                q = q.where(SoftwareDeployment.server_id == server_id)
            rows = s.scalars(q.order_by(SoftwareDeployment.created_at)).all()
            return [self._deployment_view(d) for d in rows]

    def set_deployment_status(self, deployment_id: str, status: str, reason: str,
                              outputs: dict[str, Any] | None = None) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is None:
                return
            d.status, d.status_reason, d.updated_at = status, reason, utcnow()
            if outputs is not None:
                d.output_values = outputs

    def update_deployment_inputs(self, deployment_id: str, values: dict[str, Any],
                                 config_id: str) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is not None:
                d.input_values, d.updated_at = values, utcnow()

    def delete_deployment(self, ctx: RequestContext, deployment_id: str) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is None:
                return
            derived = s.get(SoftwareConfig, d.config_id)
            s.delete(d)
            if derived is not None:
                s.delete(derived)

    def deployments_metadata(self, ctx: RequestContext, server_id: str) -> list[dict[str, Any]]:
        """What os-collect-config reads for a server: each deployment's derived config."""
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.read() as s:
            deps = s.scalars(select(SoftwareDeployment).where(
                SoftwareDeployment.server_id == server_id,
                SoftwareDeployment.project_id == ctx.project_id).order_by(
                SoftwareDeployment.created_at)).all()
            ids = [d.config_id for d in deps]
            configs = {c.id: c for c in s.scalars(select(SoftwareConfig).where(
                SoftwareConfig.id.in_(ids))).all()} if ids else {}
            out = []
            for d in deps:
                c = configs.get(d.config_id)
                if c is None:
                    continue
                item = self._config_view(c)
                item.pop("project", None)
                out.append(item)
            return out

    def resource_metadata(self, ctx: RequestContext, stack: Stack, name: str) -> dict[str, Any]:
        row = self.resource(ctx, stack, name)
        meta = dict(row.metadata or {})
        if row.data.get("_plugin") == "OS::Nova::Server" and row.physical_resource_id:
            meta["deployments"] = self.deployments_metadata(ctx, row.physical_resource_id)
        return meta
