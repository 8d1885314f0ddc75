"""Heat's logic: stacks, resources, events, outputs, validation and resource types.

Stack operations are asynchronous: the request validates the definition, records the
intent (stack row, resource rows INIT_COMPLETE, an IN_PROGRESS event) and returns; the
engine's thread does the work. Every lookup is scoped to the caller's project.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db import Database
from pocketstack.db.base import new_uuid, utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound, PocketError
from pocketstack.services.orchestration.common import MAX_NESTING, _bool, _tags
from pocketstack.services.orchestration.engine import environment, functions, parameters
from pocketstack.services.orchestration.engine import template as tmpl_mod
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.errors import (ActionInProgress, StackNotFound,
                                                              StackValidationFailed)
from pocketstack.services.orchestration.engine.functions import FunctionError, Placeholder
from pocketstack.services.orchestration.engine.stack import Engine, StackRun, context_data
from pocketstack.services.orchestration.models import Stack
from pocketstack.services.orchestration.preview import StackPreviewMixin
from pocketstack.services.orchestration.resource_types import ResourceTypesMixin
from pocketstack.services.orchestration.resources import registry
from pocketstack.services.orchestration.resources.constraints import check_custom
from pocketstack.services.orchestration.software import SoftwareMixin
from pocketstack.services.orchestration.stack_resources import StackResourcesMixin

log = logging.getLogger("pocketstack.orchestration")
HIDDEN_TAGS = ("data-processing-cluster",)


class OrchestrationService(StackPreviewMixin, StackResourcesMixin, ResourceTypesMixin,
                           SoftwareMixin):
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
