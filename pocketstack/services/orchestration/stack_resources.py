"""A stack's resources and events: listing (with nested stacks), attributes, marking
unhealthy, signals, and the event log. Every lookup is scoped to the stack's project.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.orchestration.engine import environment
from pocketstack.services.orchestration.engine.errors import ActionInProgress, ResourceNotFound
from pocketstack.services.orchestration.engine.stack import RowState, StackRun
from pocketstack.services.orchestration.models import Stack, StackEvent, StackResource


class StackResourcesMixin:
    """Part of OrchestrationService (see service.py); relies on its db, engine and
    lookup helpers."""

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
