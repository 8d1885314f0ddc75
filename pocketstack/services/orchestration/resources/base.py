"""The resource plugin contract and property schemas.

A plugin drives one kind of real thing through the runtime ``rt`` it is given:
``rt.properties`` (validated), ``rt.data`` (what it stored), ``rt.physical_id``,
``rt.ctx`` (the caller's RequestContext) and ``rt.cloud`` (in-process services). Plugins
create through the same service objects the APIs use, so policy and quotas apply; they
raise ``ResourceFailure`` (or any PocketError) with the real reason when something fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pocketstack.services.orchestration.engine.errors import ResourceFailure
from pocketstack.services.orchestration.engine.functions import Placeholder

if TYPE_CHECKING:
    from pocketstack.services.orchestration.engine.stack import ResourceRuntime

_MISSING = object()
TYPES = ("string", "integer", "number", "boolean", "map", "list")


@dataclass
class Prop:
    type: str
    description: str = ""
    required: bool = False
    default: Any = _MISSING
    update_allowed: bool = False
    immutable: bool = False
    constraints: list[dict[str, Any]] = field(default_factory=list)
    schema: Any = None  # map: dict[str, Prop]; list: Prop for each item

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "description": self.description,
                               "required": self.required,
                               "update_allowed": self.update_allowed,
                               "immutable": self.immutable}
        if self.default is not _MISSING:
            out["default"] = self.default
        if self.constraints:
            out["constraints"] = self.constraints
        if isinstance(self.schema, dict):
            out["schema"] = {k: v.view() for k, v in self.schema.items()}
        elif isinstance(self.schema, Prop):
            out["schema"] = {"*": self.schema.view()}
        return out


class PropertyError(Exception):
    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


def _coerce(p: Prop, value: Any, path: str) -> Any:
    if isinstance(value, Placeholder):
        return value
    t = p.type
    if value is None:
        return None
    if t == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if not isinstance(value, str):
            raise PropertyError(path, f"Value must be a string; got {type(value).__name__}")
        return value
    if t in ("integer", "number"):
        if isinstance(value, bool):
            raise PropertyError(path, f"Value '{value}' is not an integer")
        if isinstance(value, str):
            try:
                value = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
            except ValueError:
                raise PropertyError(path, f"Value '{value}' is not an integer"
                                    if t == "integer" else
                                    f"Value '{value}' is not a number") from None
        if not isinstance(value, (int, float)):
            raise PropertyError(path, f"Value '{value}' is not a number")
        if t == "integer":
            if isinstance(value, float) and not value.is_integer():
                raise PropertyError(path, f"Value '{value}' is not an integer")
            value = int(value)
        return value
    if t == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "yes", "on", "1", "t", "y"):
            return True
        if text in ("false", "no", "off", "0", "f", "n"):
            return False
        raise PropertyError(path, f'Unrecognized value "{value}", acceptable values are: '
                                  "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', "
                                  "'true', 'y', 'yes'")
    if t == "map":
        if not isinstance(value, dict):
            raise PropertyError(path, f'"{value}" is not a map')
        if isinstance(p.schema, dict):
            return validate(p.schema, value, path, strict=True)
        return value
    if t == "list":
        if isinstance(value, str) and p.schema is None:
            return [x.strip() for x in value.split(",")] if value else []
        if not isinstance(value, list):
            raise PropertyError(path, f'"{value}" is not a list')
        if isinstance(p.schema, Prop):
            return [_check(p.schema, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return value
    return value


def _check(p: Prop, value: Any, path: str) -> Any:
    value = _coerce(p, value, path)
    if value is None or isinstance(value, Placeholder):
        return value
    for c in p.constraints:
        if "allowed_values" in c and value not in c["allowed_values"]:
            raise PropertyError(path, f'"{value}" is not an allowed value '
                                      f'[{", ".join(str(v) for v in c["allowed_values"])}]')
        if "range" in c:
            lo, hi = c["range"].get("min"), c["range"].get("max")
            if lo is not None and value < lo or hi is not None and value > hi:
                raise PropertyError(path, f"{value} is out of range (min: {lo}, max: {hi})")
        if "length" in c:
            lo, hi = c["length"].get("min"), c["length"].get("max")
            if lo is not None and len(value) < lo or hi is not None and len(value) > hi:
                raise PropertyError(path, f"length ({len(value)}) is out of range "
                                          f"(min: {lo}, max: {hi})")
    return value


def validate(schema: dict[str, Prop], values: dict[str, Any] | None, path: str, *,
             strict: bool = True) -> dict[str, Any]:
    """Check and coerce properties; fill defaults. ``path`` like resources.x.properties."""
    values = values or {}
    if not isinstance(values, dict):
        raise PropertyError(path, "Properties must be a map")
    out: dict[str, Any] = {}
    if strict:
        for key in values:
            if key not in schema:
                raise PropertyError(f"{path}", f'Unknown Property {key}')
    for key, p in schema.items():
        if key in values and values[key] is not None:
            out[key] = _check(p, values[key], f"{path}.{key}")
        elif p.default is not _MISSING:
            out[key] = p.default
        elif p.required:
            raise PropertyError(f"{path}", f'Property {key} not assigned')
        else:
            out[key] = None
    return out


class Resource:
    """Base plugin. Subclasses set type_name and schemas and override the handle_* hooks."""

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    support_status: ClassVar[str] = "SUPPORTED"
    properties_schema: ClassVar[dict[str, Prop]] = {}
    attributes_schema: ClassVar[dict[str, str]] = {}
    # The in-process service this type needs ("compute", "network", ...); checked first.
    service: ClassVar[str | None] = None
    strict_properties: ClassVar[bool] = True
    signal_supported: ClassVar[bool] = False
    poll_interval: ClassVar[float] = 0.2

    def __init__(self, rt: "ResourceRuntime") -> None:
        self.rt = rt

    # -- helpers ------------------------------------------------------------------------
    @property
    def props(self) -> dict[str, Any]:
        return self.rt.properties

    @property
    def svc(self) -> Any:
        if self.service is None:
            return None
        svc = self.rt.cloud.services.get(self.service)
        if svc is None:
            raise ResourceFailure(
                f"{self.type_name} needs the {self.service} service, which is not enabled in "
                "this cloud")
        return svc

    def wait_until(self, check: Any, what: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            self.rt.check_cancelled()
            if time.monotonic() > deadline:
                raise ResourceFailure(f"Timed out waiting for {what}")
            time.sleep(self.poll_interval)

    # -- the contract -------------------------------------------------------------------
    def handle_create(self) -> None:
        """Create the real thing; call rt.set_physical_id. Must clean up on failure."""

    def check_create_complete(self) -> bool:
        return True

    def needs_replace(self, changed: set[str]) -> bool:
        """True when a change to these properties cannot be applied in place."""
        return any(not self.properties_schema[k].update_allowed
                   for k in changed if k in self.properties_schema) or \
            any(k not in self.properties_schema for k in changed)

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        """Apply an in-place update (rt.properties already holds new_props)."""

    def handle_delete(self) -> None:
        """Delete the real thing; a thing already gone is success (idempotent)."""

    def check_delete_complete(self) -> bool:
        return True

    def handle_signal(self, data: Any) -> None:
        raise ResourceFailure(f"Signal resource during {self.rt.action} is not supported.")

    def handle_suspend(self) -> None:
        pass

    def handle_resume(self) -> None:
        pass

    def handle_check(self) -> None:
        pass

    def ref_id(self) -> Any:
        return self.rt.physical_id if self.rt.physical_id else self.rt.name

    def get_attribute(self, name: str) -> Any:
        if name == "show":
            return self.show()
        raise KeyError(name)

    def show(self) -> Any:
        return None

    def all_attributes(self) -> dict[str, Any]:
        out = {}
        for name in self.attributes_schema:
            try:
                out[name] = self.get_attribute(name)
            except Exception:  # noqa: BLE001 - one failing attribute must not hide others
                out[name] = None
        return out

    # Nested-stack resources (template resources, OS::Heat::Stack, groups) override these.
    def nested_definition(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(template, parameters) of the nested stack this resource would create."""
        return None


class NoneResource(Resource):
    type_name = "OS::Heat::None"
    description = "Enables easily disabling certain resources via the resource_registry."
    strict_properties = False

    def handle_create(self) -> None:
        self.rt.set_physical_id(self.rt.physical_resource_name())

    def needs_replace(self, changed: set[str]) -> bool:
        return False

    def get_attribute(self, name: str) -> Any:
        return None
