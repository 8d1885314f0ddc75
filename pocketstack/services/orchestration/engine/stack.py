"""The orchestration engine: persistence, threads, hooks and per-resource actions.

Each stack operation runs in a background thread (the API has already answered 201/202).
The order comes from the template's dependency graph (stdlib graphlib); every resource whose
dependencies are done starts at once in a thread pool (``run_graph``), so independent
resources are created in parallel. Every state change is written to the database with an
event, so stack show and event list tell the real reason of a failure, and a restart can
mark work that was in flight as FAILED instead of leaving it IN_PROGRESS forever. This
module holds that machinery and the per-resource steps (create, update, replace, delete one
resource); the whole-stack operations built on them (create, update, rollback, delete,
suspend/resume/check, nested stacks) are the ``StackOperations`` mixin in ``stack_ops``.
"""

from __future__ import annotations

import graphlib
import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import PocketError
from pocketstack.services.orchestration.engine import functions
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.errors import (Cancelled, ResourceFailure,
                                                               UpdateReplace)
from pocketstack.services.orchestration.engine.functions import FunctionError
from pocketstack.services.orchestration.engine.run import (  # noqa: F401 (re-exported)
    Operation, ResourceRuntime, RowState, StackRun, context_data, context_from, failure_reason)
from pocketstack.services.orchestration.engine.stack_ops import StackOperations
from pocketstack.services.orchestration.models import Stack, StackEvent, StackResource

if TYPE_CHECKING:
    from pocketstack.services.orchestration.service import OrchestrationService

log = logging.getLogger("pocketstack.orchestration")
MAX_PARALLEL = 16


class Engine(StackOperations):
    def __init__(self, service: "OrchestrationService") -> None:
        self.service = service
        self.db = service.db
        self.plugins = service.plugins
        self.ops: dict[str, Operation] = {}
        self.ops_lock = threading.Lock()
        self.hooks: dict[tuple[str, str], set[str]] = {}
        self.hooks_cv = threading.Condition()

    # -- definitions ------------------------------------------------------------------------
    def definition(self, template: Any, files: dict[str, Any], env: dict[str, Any],
                   identity: dict[str, str], ctx: RequestContext, *, custom: bool = True,
                   strict_params: bool = True, validate_only: bool = False) -> StackDefinition:
        checker = self.service.constraint_checker(ctx) if custom else None
        return StackDefinition(template, files=files, env=env, identity=identity,
                               plugins=self.plugins, custom=checker,
                               strict_params=strict_params, validate_only=validate_only)

    def load_run(self, stack_id: str, ctx: RequestContext, op: Operation | None = None,
                 **kw: Any) -> StackRun:
        with self.db.read() as s:
            stack = s.get(Stack, stack_id)
            if stack is None:
                raise ResourceFailure(f"Stack {stack_id} not found")
            s.expunge(stack)
        run = StackRun(self, stack, ctx, op, **kw)
        run.load_rows()
        return run

    def facade(self, run: StackRun, what: str) -> Any:
        if not run.owner_id or not run.parent_resource:
            return None
        parent = self.load_run(run.owner_id, run.ctx)
        raw = (parent.template.get("resources") or {}).get(run.parent_resource) or {}
        return raw.get(what)

    # -- persistence --------------------------------------------------------------------------
    def event(self, s: Any, stack_id: str, name: str, rtype: str, phys: str | None,
              action: str, status: str, reason: str,
              props: dict[str, Any] | None = None) -> None:
        s.add(StackEvent(stack_id=stack_id, resource_name=name, resource_type=rtype,
                         physical_resource_id=phys, action=action, status=status,
                         reason=reason, properties=props, created_at=utcnow()))

    def set_stack(self, stack_id: str, action: str, status: str, reason: str, **fields: Any) -> None:
        with self.db.write() as s:
            stack = s.get(Stack, stack_id)
            if stack is None:
                return
            stack.action, stack.status, stack.status_reason = action, status, reason
            for k, v in fields.items():
                setattr(stack, k, v)
            self.event(s, stack_id, stack.name, "OS::Heat::Stack", stack.id, action, status,
                       reason)

    def save_row(self, row: RowState, **fields: Any) -> None:
        with self.db.write() as s:
            r = s.get(StackResource, row.id)
            if r is not None:
                for k, v in fields.items():
                    setattr(r, k, v)

    def set_row(self, run: StackRun, row: RowState, action: str, status: str, reason: str,
                **fields: Any) -> None:
        now = utcnow()
        row.action, row.status, row.status_reason = action, status, reason
        with self.db.write() as s:
            r = s.get(StackResource, row.id)
            if r is None:
                return
            r.action, r.status, r.status_reason = action, status, reason
            if action == "CREATE" and status == "IN_PROGRESS":
                r.created_at = now
                row.created_at = now
            elif status == "COMPLETE" or action != "CREATE":
                r.updated_at = now
                row.updated_at = now
            for k, v in fields.items():
                setattr(r, k, v)
                if k == "rsrc_metadata":
                    row.metadata = v
                elif hasattr(row, k):
                    setattr(row, k, v)
            self.event(s, run.stack_id, row.name, row.type, r.physical_resource_id, action,
                       status, reason, fields.get("properties_data"))

    def add_rows(self, run: StackRun, names: list[str]) -> None:
        defn = run.defn
        with self.db.write() as s:
            for name in names:
                rdef = defn.resources[name]
                r = StackResource(stack_id=run.stack_id, name=name, type=rdef.type,
                                  action="INIT", status="COMPLETE", status_reason="",
                                  requires=sorted(rdef.requires),
                                  rsrc_metadata={},
                                  data={"_plugin": rdef.resolved_type
                                        if rdef.template_file is None else "__template__",
                                        "_template_file": rdef.template_file})
                s.add(r)
                s.flush()
                run.rows[name] = RowState.of(r)

    # -- threads ------------------------------------------------------------------------------
    def spawn(self, stack_id: str, fn: Callable[[Operation], None],
              timeout_mins: int | None = None) -> Operation:
        op = Operation()
        if timeout_mins:
            op.deadline = time.monotonic() + timeout_mins * 60

        def main() -> None:
            try:
                fn(op)
            except Exception:  # noqa: BLE001 - never let a worker die silently
                log.exception("stack operation on %s crashed", stack_id)
                try:
                    with self.db.read() as s:
                        st = s.get(Stack, stack_id)
                        action = st.action if st else "CREATE"
                    self.set_stack(stack_id, action, "FAILED",
                                   "Internal error in the orchestration engine; see the log")
                except Exception:  # noqa: BLE001
                    log.exception("could not record the failure of %s", stack_id)
            finally:
                with self.ops_lock:
                    if self.ops.get(stack_id) is op:
                        del self.ops[stack_id]

        with self.ops_lock:
            self.ops[stack_id] = op
        op.thread = threading.Thread(target=main, name=f"heat-{stack_id[:8]}", daemon=True)
        op.thread.start()
        return op

    def cancel(self, stack_id: str, reason: str, rollback: bool = True,
               wait_secs: float = 120) -> None:
        with self.ops_lock:
            op = self.ops.get(stack_id)
        if op is None:
            return
        op.cancel_reason = reason
        op.rollback_on_cancel = rollback
        op.cancel.set()
        with self.hooks_cv:
            self.hooks_cv.notify_all()
        if op.thread is not None and op.thread is not threading.current_thread():
            op.thread.join(wait_secs)

    def run_graph(self, graph: dict[str, set[str]], fn: Callable[[str], None]) -> list[tuple[str, BaseException]]:
        ts = graphlib.TopologicalSorter(graph)
        ts.prepare()
        failed: list[tuple[str, BaseException]] = []
        if not graph:
            return failed
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(graph)),
                                thread_name_prefix="heat-res") as pool:
            futures: dict[Any, str] = {}
            while True:
                if not failed:
                    for name in ts.get_ready():
                        futures[pool.submit(fn, name)] = name
                if not futures:
                    break
                done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for f in done:
                    name = futures.pop(f)
                    exc = f.exception()
                    if exc is not None:
                        failed.append((name, exc))
                    else:
                        ts.done(name)
        return failed

    # -- hooks --------------------------------------------------------------------------------
    def wait_hook(self, run: StackRun, row: RowState, hook: str, action: str) -> None:
        key = (run.stack_id, row.name)
        with self.hooks_cv:
            self.hooks.setdefault(key, set()).add(hook)
        with self.db.write() as s:
            self.event(s, run.stack_id, row.name, row.type, row.physical_resource_id,
                       row.action, row.status, f"{action} paused until Hook {hook} is cleared")
        with self.hooks_cv:
            while hook in self.hooks.get(key, set()):
                if run.op.cancel.is_set():
                    self.hooks.get(key, set()).discard(hook)
                    break
                self.hooks_cv.wait(0.5)
        run.op.check()

    def clear_hook(self, stack_id: str, row: RowState, hook: str) -> bool:
        key = (stack_id, row.name)
        with self.hooks_cv:
            pending = self.hooks.get(key, set())
            if hook not in pending:
                return False
        with self.db.write() as s:
            self.event(s, stack_id, row.name, row.type, row.physical_resource_id,
                       row.action, row.status, f"Hook {hook} is cleared")
        with self.hooks_cv:
            pending.discard(hook)
            self.hooks_cv.notify_all()
        return True

    # -- resource actions ---------------------------------------------------------------------
    def resolve_properties(self, run: StackRun, name: str) -> dict[str, Any]:
        from pocketstack.services.orchestration.resources.base import PropertyError, validate

        rdef = run.defn.resources[name]
        path = f"resources.{name}.properties"
        with run.lock:
            scope = run.scope()
        try:
            resolved = functions.resolve(rdef.properties, scope)
        except FunctionError as exc:
            raise ResourceFailure(f"StackValidationFailed: {path}: {exc}") from None
        if rdef.template_file is not None:
            return resolved or {}
        plugin = rdef.plugin
        try:
            props = validate(plugin.properties_schema, resolved, path,
                             strict=plugin.strict_properties)
        except PropertyError as exc:
            raise ResourceFailure(f"StackValidationFailed: resources.{name}: Property error: "
                                  f"{exc.path}: {exc.message}") from None
        if not plugin.strict_properties:
            props = {**resolved, **props}
        return props

    def _resolved_metadata(self, run: StackRun, name: str) -> dict[str, Any]:
        rdef = run.defn.resources[name]
        try:
            meta = functions.resolve(rdef.metadata, run.scope())
        except FunctionError as exc:
            raise ResourceFailure(f"StackValidationFailed: resources.{name}.metadata: {exc}") \
                from None
        return meta if isinstance(meta, dict) else {}

    def create_resource(self, run: StackRun, name: str, *, hooks: bool = True) -> None:
        row = run.rows[name]
        rdef = run.defn.resources[name]
        if hooks and "pre-create" in run.defn.registry.hooks(name):
            self.wait_hook(run, row, "pre-create", "CREATE")
        run.op.check()
        row.data["_plugin"] = rdef.resolved_type if rdef.template_file is None \
            else "__template__"
        row.data["_template_file"] = rdef.template_file
        # One write: the state change carries the plugin bookkeeping too.
        self.set_row(run, row, "CREATE", "IN_PROGRESS", "state changed",
                     data=dict(row.data), type=rdef.type, requires=sorted(rdef.requires))
        try:
            props = self.resolve_properties(run, name)
            meta = self._resolved_metadata(run, name)
            if meta:
                row.metadata = meta
                self.save_row(row, rsrc_metadata=meta)
            plugin_cls = rdef.plugin
            plugin = plugin_cls(ResourceRuntime(run, row, props, "CREATE"))
            plugin.handle_create()
            while not plugin.check_create_complete():
                run.op.check()
                time.sleep(plugin.poll_interval)
        except Cancelled:
            self.set_row(run, row, "CREATE", "FAILED", f"CREATE aborted ({run.op.cancel_reason})")
            raise
        except Exception as exc:  # noqa: BLE001 - any failure becomes the resource's reason
            reason = failure_reason(name, exc)
            if not isinstance(exc, (ResourceFailure, PocketError)):
                log.exception("resource %s failed", name)
            self.set_row(run, row, "CREATE", "FAILED", reason)
            raise ResourceFailure(reason) from None
        self.set_row(run, row, "CREATE", "COMPLETE", "state changed", properties_data=props)

    def delete_resource(self, run: StackRun, name: str, action: str = "DELETE") -> None:
        row = run.rows[name]
        if row.action == "INIT" or (row.action == "DELETE" and row.status == "COMPLETE") or \
                (row.physical_resource_id is None and row.nested_stack_id is None and
                 row.action == "CREATE" and row.status == "FAILED" and
                 not row.data.get("_cleanup")):
            if row.action == "INIT":
                return
            self.set_row(run, row, "DELETE", "COMPLETE", "state changed")
            return
        self.set_row(run, row, "DELETE", "IN_PROGRESS", "state changed")
        try:
            policy = "Delete"
            rdef = run._defn.resources.get(name) if run._defn is not None else None
            if rdef is not None:
                policy = rdef.deletion_policy
            if policy not in ("Retain",):
                plugin = run.plugin(name)
                plugin.handle_delete()
                deadline = time.monotonic() + 600
                while not plugin.check_delete_complete():
                    if time.monotonic() > deadline:
                        raise ResourceFailure(f"Timed out deleting resources.{name}")
                    time.sleep(plugin.poll_interval)
        except Exception as exc:  # noqa: BLE001
            reason = failure_reason(name, exc)
            if not isinstance(exc, (ResourceFailure, PocketError)):
                log.exception("resource %s delete failed", name)
            self.set_row(run, row, "DELETE", "FAILED", reason)
            raise ResourceFailure(reason) from None
        self.set_row(run, row, "DELETE", "COMPLETE", "state changed",
                     physical_resource_id=None)

    def update_resource(self, run: StackRun, name: str, *, hooks: bool = True) -> None:
        row = run.rows.get(name)
        rdef = run.defn.resources[name]
        if row is None:
            self.add_rows(run, [name])
            row = run.rows[name]
        if row.action == "INIT" or (row.action == "DELETE" and row.status == "COMPLETE") or \
                (row.action == "CREATE" and row.status == "FAILED" and
                 row.physical_resource_id is None and row.nested_stack_id is None):
            self.create_resource(run, name, hooks=hooks)
            return
        if hooks and "pre-update" in run.defn.registry.hooks(name):
            self.wait_hook(run, row, "pre-update", "UPDATE")
        run.op.check()
        try:
            props = self.resolve_properties(run, name)
        except ResourceFailure as exc:
            self.set_row(run, row, "UPDATE", "FAILED", exc.message)
            raise
        old = row.properties_data or {}
        new_plugin_name = rdef.resolved_type if rdef.template_file is None else "__template__"
        type_changed = row.type != rdef.type or row.data.get("_plugin") != new_plugin_name
        unhealthy = row.status == "FAILED"
        if not type_changed and not unhealthy and props == old:
            if row.requires != sorted(rdef.requires):
                row.requires = sorted(rdef.requires)
                self.save_row(row, requires=row.requires)
            return
        changed = {k for k in set(props) | set(old) if props.get(k) != old.get(k)}
        plugin = rdef.plugin(ResourceRuntime(run, row, props, "UPDATE"))
        if type_changed or unhealthy or plugin.needs_replace(changed):
            self.replace_resource(run, name, hooks=False)
            return
        self.set_row(run, row, "UPDATE", "IN_PROGRESS", "state changed")
        try:
            plugin.handle_update(props, old, changed)
        except UpdateReplace:
            self.replace_resource(run, name, hooks=False)
            return
        except Cancelled:
            self.set_row(run, row, "UPDATE", "FAILED", f"UPDATE aborted ({run.op.cancel_reason})")
            raise
        except Exception as exc:  # noqa: BLE001
            reason = failure_reason(name, exc)
            if not isinstance(exc, (ResourceFailure, PocketError)):
                log.exception("resource %s update failed", name)
            self.set_row(run, row, "UPDATE", "FAILED", reason)
            raise ResourceFailure(reason) from None
        self.set_row(run, row, "UPDATE", "COMPLETE", "state changed", properties_data=props,
                     requires=sorted(rdef.requires))

    def replace_resource(self, run: StackRun, name: str, *, hooks: bool) -> None:
        """Replace: delete the old physical resource, then create the new one."""
        self.delete_resource(run, name)
        row = run.rows[name]
        row.data = {}
        row.nested_stack_id = None
        self.save_row(row, data={}, nested_stack_id=None, physical_resource_id=None)
        self.create_resource(run, name, hooks=hooks)

    # -- restart --------------------------------------------------------------------------------
    def recover(self) -> int:
        """Fail every stack and resource a previous process left IN_PROGRESS."""
        count = 0
        with self.db.write() as s:
            stacks = s.scalars(select(Stack).where(Stack.status == "IN_PROGRESS",
                                                   Stack.deleted_at.is_(None))).all()
            for st in stacks:
                reason = f"Engine went down during stack {st.action}"
                st.status, st.status_reason = "FAILED", reason
                self.event(s, st.id, st.name, "OS::Heat::Stack", st.id, st.action, "FAILED",
                           reason)
                count += 1
            rows = s.scalars(select(StackResource).where(
                StackResource.status == "IN_PROGRESS")).all()
            for r in rows:
                reason = f"Engine went down during resource {r.action}"
                r.status, r.status_reason = "FAILED", reason
                self.event(s, r.stack_id, r.name, r.type, r.physical_resource_id, r.action,
                           "FAILED", reason)
        return count
