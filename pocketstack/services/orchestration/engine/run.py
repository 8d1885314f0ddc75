"""The state one stack operation works on: resource rows, the running StackRun, the
runtime a resource plugin sees (ResourceRuntime) and the scope intrinsic functions resolve
against (RuntimeScope). The Engine (stack.py) drives these."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.services.orchestration.engine import functions
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.errors import Cancelled, ResourceFailure
from pocketstack.services.orchestration.engine.functions import FunctionError
from pocketstack.services.orchestration.models import Stack, StackResource

if TYPE_CHECKING:
    from pocketstack.services.orchestration.engine.stack import Engine


@dataclass
class RowState:
    """A resource row as the engine sees it (plain data, safe across threads)."""

    id: str
    name: str
    type: str
    action: str
    status: str
    status_reason: str
    physical_resource_id: str | None
    properties_data: dict[str, Any] | None
    data: dict[str, Any]
    metadata: dict[str, Any]
    requires: list[str]
    nested_stack_id: str | None
    created_at: Any = None
    updated_at: Any = None

    @classmethod
    def of(cls, r: StackResource) -> "RowState":
        return cls(r.id, r.name, r.type, r.action, r.status, r.status_reason or "",
                   r.physical_resource_id, r.properties_data, dict(r.data or {}),
                   dict(r.rsrc_metadata or {}), list(r.requires or []), r.nested_stack_id,
                   r.created_at, r.updated_at)


def context_from(data: dict[str, Any]) -> RequestContext:
    return RequestContext(
        user_id=data.get("user_id"), user_name=data.get("user_name"),
        project_id=data.get("project_id"), project_name=data.get("project_name"),
        project_domain_id=data.get("project_domain_id"),
        user_domain_id=data.get("user_domain_id"),
        roles=frozenset(data.get("roles") or ()), system_scope=data.get("system_scope"))


def context_data(ctx: RequestContext) -> dict[str, Any]:
    return {"user_id": ctx.user_id, "user_name": ctx.user_name, "project_id": ctx.project_id,
            "project_name": ctx.project_name, "project_domain_id": ctx.project_domain_id,
            "user_domain_id": ctx.user_domain_id, "roles": sorted(ctx.roles),
            "system_scope": ctx.system_scope}


def failure_reason(name: str, exc: BaseException) -> str:
    if isinstance(exc, ResourceFailure):
        return exc.message
    kind = getattr(exc, "kind", None) or type(exc).__name__
    msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{kind}: resources.{name}: {msg}"


@dataclass
class Operation:
    """One running operation on one stack (cancel flag shared with nested stacks)."""

    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "cancelled"
    deadline: float | None = None
    thread: threading.Thread | None = None
    rollback_on_cancel: bool = True

    def check(self) -> None:
        if self.cancel.is_set():
            raise Cancelled(self.cancel_reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise Cancelled("Timed out")


class ResourceRuntime:
    """What a plugin sees of its resource, its stack and the cloud."""

    def __init__(self, run: "StackRun", row: RowState, properties: dict[str, Any],
                 action: str) -> None:
        self.run = run
        self.row = row
        self.name = row.name
        self.properties = properties
        self.action = action

    # identity and environment
    @property
    def ctx(self) -> RequestContext:
        return self.run.ctx

    @property
    def cloud(self) -> Any:
        return self.run.engine.service.cloud

    @property
    def stack_name(self) -> str:
        return self.run.stack_name

    @property
    def stack_id(self) -> str:
        return self.run.stack_id

    @property
    def physical_id(self) -> str | None:
        return self.row.physical_resource_id

    @property
    def data(self) -> dict[str, Any]:
        return self.row.data

    @property
    def metadata(self) -> dict[str, Any]:
        return self.row.metadata

    def physical_resource_name(self) -> str:
        return f"{self.run.stack_name}-{self.name}-{secrets.token_hex(6)}"[:255]

    def check_cancelled(self) -> None:
        self.run.op.check()

    # persistence
    def set_physical_id(self, pid: str | None) -> None:
        self.row.physical_resource_id = pid
        self.run.engine.save_row(self.row, physical_resource_id=pid)

    def data_set(self, key: str, value: Any) -> None:
        self.row.data[key] = value
        self.run.engine.save_row(self.row, data=dict(self.row.data))

    def metadata_set(self, metadata: dict[str, Any]) -> None:
        self.row.metadata = metadata
        self.run.engine.save_row(self.row, rsrc_metadata=metadata)

    # nested stacks
    @property
    def nested_stack_id(self) -> str | None:
        return self.row.nested_stack_id

    def create_nested(self, template: dict[str, Any], params: dict[str, Any],
                      files: dict[str, Any] | None = None) -> str:
        return self.run.engine.create_nested(self, template, params,
                                             self.run.files if files is None else files)

    def update_nested(self, template: dict[str, Any], params: dict[str, Any]) -> None:
        self.run.engine.update_nested(self, template, params)

    def delete_nested(self) -> None:
        if self.row.nested_stack_id:
            self.run.engine.delete_stack_sync(self.row.nested_stack_id, self.run.ctx,
                                              self.run.op)

    def nested_run(self) -> "StackRun | None":
        if not self.row.nested_stack_id:
            return None
        return self.run.engine.load_run(self.row.nested_stack_id, self.run.ctx, self.run.op)


class StackRun:
    """One stack as an operation (or a read such as outputs) sees it."""

    def __init__(self, engine: "Engine", stack: Stack, ctx: RequestContext,
                 op: Operation | None = None, *, validate_constraints: bool = False) -> None:
        self.engine = engine
        self.ctx = ctx
        self.op = op or Operation()
        self.stack_id = stack.id
        self.stack_name = stack.name
        self.project_id = stack.project_id
        self.owner_id = stack.owner_id
        self.parent_resource = stack.parent_resource
        self.template = stack.template
        self.files = stack.files or {}
        self.environment = stack.environment or {}
        self.disable_rollback = stack.disable_rollback
        self.validate_constraints = validate_constraints
        self._defn: StackDefinition | None = None
        self.rows: dict[str, RowState] = {}
        self.lock = threading.Lock()

    @property
    def defn(self) -> StackDefinition:
        if self._defn is None:
            self._defn = self.engine.definition(
                self.template, self.files, self.environment, self.identity(), self.ctx,
                custom=self.validate_constraints, strict_params=self.owner_id is None)
        return self._defn

    def identity(self) -> dict[str, str]:
        return {"stack_name": self.stack_name, "stack_id": self.stack_id,
                "project_id": self.project_id}

    def load_rows(self) -> None:
        with self.engine.db.read() as s:
            rows = s.scalars(select(StackResource).where(
                StackResource.stack_id == self.stack_id)).all()
            self.rows = {r.name: RowState.of(r) for r in rows}

    # -- plugins and scope ----------------------------------------------------------------
    def plugin_class(self, row: RowState) -> Any:
        name = row.data.get("_plugin") or row.type
        return self.engine.plugins.get(name) or self.engine.plugins["OS::Heat::None"]

    def plugin(self, name: str) -> Any:
        row = self.rows[name]
        return self.plugin_class(row)(ResourceRuntime(self, row, row.properties_data or {},
                                                      row.action))

    def scope(self) -> "RuntimeScope":
        return RuntimeScope(self)


class RuntimeScope:
    def __init__(self, run: StackRun) -> None:
        self.run = run
        self.defn = run.defn
        self.version = self.defn.version

    def param(self, name: str) -> Any:
        values = self.defn.params.values
        if name not in values:
            raise FunctionError(f"The Parameter ({name}) was not provided.")
        return values[name]

    def file(self, key: str) -> str:
        if key not in self.defn.files:
            raise FunctionError(f'Could not fetch remote template "{key}"')
        return self.defn.files[key]

    def condition(self, name: str) -> bool:
        return self.defn.condition(name)

    def facade(self, what: str) -> Any:
        return self.run.engine.facade(self.run, what)

    def _live(self, name: str) -> RowState | None:
        row = self.run.rows.get(name)
        if row is None:
            if name in (self.defn.tmpl.get("resources") or {}):
                return None
            raise FunctionError(f'The specified reference "{name}" is incorrect.')
        return row

    def resource_ref(self, name: str) -> Any:
        row = self._live(name)
        if row is None:
            return None
        if row.physical_resource_id is None and row.nested_stack_id is None:
            return name
        return self.run.plugin(name).ref_id()

    def attribute(self, name: str, attr: str | None, path: list[Any]) -> Any:
        row = self._live(name)
        if row is None or row.action in ("INIT",) or (row.action, row.status) == \
                ("DELETE", "COMPLETE"):
            return None
        plugin = self.run.plugin(name)
        if attr is None:
            return plugin.all_attributes()
        # A group's attributes take the path themselves (applied per member, as Heat).
        by_path = getattr(plugin, "get_attribute_path", None)
        try:
            if by_path is not None:
                return by_path(attr, list(path))
            value = plugin.get_attribute(attr)
        except KeyError:
            raise FunctionError(f'The Referenced Attribute ({name} {attr}) is '
                                "incorrect.") from None
        for key in path:
            value = functions._index(value, key)
        return value
