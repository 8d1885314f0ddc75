"""Whole-stack operations of the engine: create, update, rollback, delete, suspend/resume/
check, and nested stacks. Each one walks the dependency graph and drives the per-resource
steps (create_resource, update_resource, delete_resource) that ``stack.Engine`` defines,
recording the stack's state with ``set_stack``. They are a mixin apart from ``stack`` because
they are the layer above those steps: ``Engine`` keeps persistence, threads, hooks and the
per-resource work, and gets these methods by inheriting ``StackOperations``."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from sqlalchemy import delete as sql_delete

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import PocketError
from pocketstack.services.orchestration.engine.errors import Cancelled, ResourceFailure
from pocketstack.services.orchestration.engine.run import (Operation, ResourceRuntime,
                                                            StackRun, context_data,
                                                            failure_reason)
from pocketstack.services.orchestration.models import Stack, StackResource

log = logging.getLogger("pocketstack.orchestration")


class StackOperations:
    """Mixin for ``stack.Engine``; every method relies on the Engine's own attributes."""

    # -- stack operations ---------------------------------------------------------------------
    def do_create(self, run: StackRun, *, rollback: bool | None = None) -> bool:
        """Create every resource; returns True on success. Runs in the calling thread."""
        defn = run.defn
        graph = {n: set(r.requires) for n, r in defn.resources.items()}
        failed = self.run_graph(graph, lambda n: self.create_resource(run, n))
        if not failed:
            self.set_stack(run.stack_id, "CREATE", "COMPLETE",
                           "Stack CREATE completed successfully", updated_at=None)
            return True
        name, exc = failed[0]
        if isinstance(exc, Cancelled):
            reason = f"Stack CREATE cancelled" if str(exc) != "Timed out" else "Timed out"
            do_rollback = run.op.rollback_on_cancel and str(exc) == "Timed out"
        else:
            reason = f"Resource CREATE failed: {failure_reason(name, exc)}"
            do_rollback = True
        self.set_stack(run.stack_id, "CREATE", "FAILED", reason)
        if rollback is None:
            rollback = not run.disable_rollback
        if rollback and do_rollback:
            self.set_stack(run.stack_id, "ROLLBACK", "IN_PROGRESS", reason)
            run.op.cancel.clear()
            run.op.deadline = None
            if self.delete_all(run):
                self.set_stack(run.stack_id, "ROLLBACK", "COMPLETE",
                               "Stack ROLLBACK completed successfully")
            else:
                self.set_stack(run.stack_id, "ROLLBACK", "FAILED",
                               f"Rollback failed: {self._first_failure(run)}")
        return False

    def _first_failure(self, run: StackRun) -> str:
        for row in run.rows.values():
            if row.status == "FAILED":
                return row.status_reason
        return "unknown"

    def delete_all(self, run: StackRun) -> bool:
        """Delete every resource in reverse dependency order; True if all are gone."""
        names = set(run.rows)
        graph: dict[str, set[str]] = {n: set() for n in names}
        for n, row in run.rows.items():
            for dep in row.requires:
                if dep in names:
                    graph[dep].add(n)  # delete dependants first
        failed = self.run_graph(graph, lambda n: self.delete_resource(run, n))
        return not failed

    def do_update(self, run: StackRun, action: str = "UPDATE", hooks: bool = True) -> bool:
        defn = run.defn
        new_names = set(defn.resources)
        graph = {n: set(r.requires) for n, r in defn.resources.items()}
        failed = self.run_graph(graph, lambda n: self.update_resource(run, n, hooks=hooks))
        if not failed:
            removed = {n: row for n, row in run.rows.items() if n not in new_names}
            if removed:
                sub = StackRun.__new__(StackRun)
                sub.__dict__.update(run.__dict__)
                sub.rows = removed
                sub._defn = None
                if not self.delete_all(sub):
                    failed = [(n, ResourceFailure(r.status_reason)) for n, r in removed.items()
                              if r.status == "FAILED"][:1] or \
                        [("?", ResourceFailure("delete failed"))]
                else:
                    with self.db.write() as s:
                        s.execute(sql_delete(StackResource).where(
                            StackResource.id.in_([r.id for r in removed.values()])))
                    for n in removed:
                        run.rows.pop(n, None)
        if not failed:
            self.set_stack(run.stack_id, action, "COMPLETE",
                           f"Stack {action} completed successfully", updated_at=utcnow(),
                           previous=None)
            return True
        name, exc = failed[0]
        if isinstance(exc, Cancelled):
            reason = f"Stack {action} cancelled" if str(exc) != "Timed out" else "Timed out"
        else:
            reason = f"Resource {action} failed: {failure_reason(name, exc)}"
        self.set_stack(run.stack_id, action, "FAILED", reason, updated_at=utcnow())
        return False

    def rollback_update(self, run: StackRun, previous: dict[str, Any]) -> None:
        self.set_stack(run.stack_id, "ROLLBACK", "IN_PROGRESS", "Stack ROLLBACK started",
                       template=previous["template"], files=previous["files"],
                       environment=previous["environment"], tags=previous.get("tags"))
        run.template = previous["template"]
        run.files = previous["files"]
        run.environment = previous["environment"]
        run._defn = None
        run.op.cancel.clear()
        run.op.deadline = None
        run.load_rows()
        try:
            ok = self.do_update(run, "ROLLBACK", hooks=False)
        except Exception as exc:  # noqa: BLE001
            log.exception("rollback of %s failed", run.stack_id)
            self.set_stack(run.stack_id, "ROLLBACK", "FAILED", f"Rollback failed: {exc}")
            return
        if not ok:
            return

    def delete_stack_sync(self, stack_id: str, ctx: RequestContext,
                          op: Operation | None = None, action: str = "DELETE",
                          announce: bool = True) -> bool:
        run = self.load_run(stack_id, ctx, op or Operation())
        run.op.cancel.clear()
        if announce:
            self.set_stack(stack_id, action, "IN_PROGRESS", f"Stack {action} started")
        try:
            run.defn  # noqa: B018 - deletion policies; not needed if the template broke
        except Exception:  # noqa: BLE001
            run._defn = None
        if self.delete_all(run):
            with self.db.write() as s:
                s.execute(sql_delete(StackResource).where(StackResource.stack_id == stack_id))
            self.set_stack(stack_id, action, "COMPLETE", f"Stack {action} completed successfully",
                           deleted_at=utcnow())
            return True
        self.set_stack(stack_id, action, "FAILED",
                       f"Resource {action} failed: {self._first_failure(run)}")
        return False

    def simple_action(self, run: StackRun, action: str) -> bool:
        """SUSPEND, RESUME and CHECK: each resource in (reverse for suspend) order."""
        names = set(run.rows)
        graph: dict[str, set[str]] = {n: set() for n in names}
        for n, row in run.rows.items():
            for dep in row.requires:
                if dep in names:
                    if action == "SUSPEND":
                        graph[dep].add(n)
                    else:
                        graph[n].add(dep)

        def one(name: str) -> None:
            row = run.rows[name]
            if row.action == "INIT" or row.action == "DELETE":
                return
            self.set_row(run, row, action, "IN_PROGRESS", "state changed")
            try:
                plugin = run.plugin(name)
                {"SUSPEND": plugin.handle_suspend, "RESUME": plugin.handle_resume,
                 "CHECK": plugin.handle_check}[action]()
            except Exception as exc:  # noqa: BLE001
                reason = failure_reason(name, exc)
                self.set_row(run, row, action, "FAILED", reason)
                raise ResourceFailure(reason) from None
            self.set_row(run, row, action, "COMPLETE", "state changed")

        failed = self.run_graph(graph, one)
        if failed:
            name, exc = failed[0]
            self.set_stack(run.stack_id, action, "FAILED",
                           f"Resource {action} failed: {failure_reason(name, exc)}")
            return False
        self.set_stack(run.stack_id, action, "COMPLETE", f"Stack {action} completed successfully")
        return True

    # -- nested stacks ------------------------------------------------------------------------
    def create_nested(self, rt: ResourceRuntime, template: dict[str, Any],
                      params: dict[str, Any], files: dict[str, Any]) -> str:
        parent = rt.run
        registry = parent.defn.registry.nested_for(rt.name)
        env = {"parameters": params, "resource_registry": registry,
               "parameter_defaults": parent.defn.env.get("parameter_defaults") or {}}
        stack_id = self.service.new_stack_id()
        name = f"{parent.stack_name}-{rt.name}-{secrets.token_hex(6)}"[:255]
        identity = {"stack_name": name, "stack_id": stack_id, "project_id": parent.project_id}
        try:
            self.definition(template, files, env, identity, parent.ctx, strict_params=False)
        except PocketError as exc:
            raise ResourceFailure(f"{exc.kind}: resources.{rt.name}: {exc.message}") from None
        with self.db.write() as s:
            st = Stack(id=stack_id, name=name, project_id=parent.project_id,
                       user_id=parent.ctx.user_id, username=parent.ctx.user_name,
                       owner_id=parent.stack_id, parent_resource=rt.name, action="CREATE",
                       status="IN_PROGRESS", status_reason="Stack CREATE started",
                       template=template, files=files, environment=env,
                       disable_rollback=True, context=context_data(parent.ctx),
                       created_at=utcnow())
            s.add(st)
            self.event(s, stack_id, name, "OS::Heat::Stack", stack_id, "CREATE",
                       "IN_PROGRESS", "Stack CREATE started")
        rt.row.nested_stack_id = stack_id
        rt.row.physical_resource_id = stack_id
        self.save_row(rt.row, nested_stack_id=stack_id, physical_resource_id=stack_id)
        run = self.load_run(stack_id, parent.ctx, parent.op)
        self.add_rows(run, list(run.defn.resources))
        if not self.do_create(run, rollback=False):
            with self.db.read() as s:
                reason = s.get(Stack, stack_id).status_reason
            raise ResourceFailure(f"Error: resources.{rt.name}: {reason}")
        return stack_id

    def update_nested(self, rt: ResourceRuntime, template: dict[str, Any],
                      params: dict[str, Any]) -> None:
        stack_id = rt.row.nested_stack_id
        if stack_id is None:
            rt.create_nested(template, params)
            return
        parent = rt.run
        with self.db.read() as s:
            st = s.get(Stack, stack_id)
            env = dict(st.environment or {})
        env["parameters"] = params
        env["resource_registry"] = parent.defn.registry.nested_for(rt.name)
        with self.db.write() as s:
            st = s.get(Stack, stack_id)
            st.template, st.environment, st.files = template, env, parent.files
        self.set_stack(stack_id, "UPDATE", "IN_PROGRESS", "Stack UPDATE started")
        run = self.load_run(stack_id, parent.ctx, parent.op)
        if not self.do_update(run):
            with self.db.read() as s:
                reason = s.get(Stack, stack_id).status_reason
            raise ResourceFailure(f"Error: resources.{rt.name}: {reason}")
