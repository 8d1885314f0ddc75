"""A stack definition: a template checked against its version, parameters resolved from
the environment, conditions evaluated, resource types looked up in the registry and the
dependency graph built. Building one raises a 400 with the path (and line) of the first
problem; nothing is created.
"""

from __future__ import annotations

import graphlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pocketstack.services.orchestration.engine import functions, parameters, template
from pocketstack.services.orchestration.engine.environment import Registry, normalized
from pocketstack.services.orchestration.engine.errors import StackValidationFailed
from pocketstack.services.orchestration.engine.functions import FunctionError, Placeholder
from pocketstack.services.orchestration.engine.template import at

TEMPLATE_SUFFIXES = (".yaml", ".yml", ".template", ".json", ".hot")


@dataclass
class ResourceDef:
    name: str
    type: str  # as written in the template
    resolved_type: str  # after the registry
    plugin: Any  # Resource subclass
    raw: dict[str, Any]
    template_file: str | None = None  # provider template (a key of files)
    depends_on: list[str] = field(default_factory=list)
    requires: set[str] = field(default_factory=set)

    @property
    def properties(self) -> Any:
        return self.raw.get("properties") or {}

    @property
    def metadata(self) -> Any:
        return self.raw.get("metadata") or {}

    @property
    def deletion_policy(self) -> str:
        return str(self.raw.get("deletion_policy") or "Delete")


class StackDefinition:
    def __init__(self, tmpl: Any, *, files: dict[str, Any] | None, env: dict[str, Any],
                 identity: dict[str, str], plugins: dict[str, Any],
                 custom: parameters.CustomChecker | None = None,
                 validate_only: bool = False, strict_params: bool = True,
                 facade: dict[str, Any] | None = None) -> None:
        self.raw_input = tmpl
        self.tmpl, self.lines = template.parse(tmpl)
        self.version = template.version_of(self.tmpl)
        template.check_sections(self.tmpl, self.version, self.lines)
        self.files = files or {}
        self.env = normalized(env)
        self.identity = identity
        self.plugins = plugins
        self.facade_data = facade or {}
        self.description = self.tmpl.get("description")
        if self.description is not None and not isinstance(self.description, str):
            self.description = str(self.description)
        self.registry = Registry(self.env["resource_registry"])
        self.param_schemas = parameters.parse_schemas(self.tmpl.get("parameters"), self.lines)
        self._check_groups()
        self.params = parameters.build(
            self.param_schemas, self.env["parameters"], self.env["parameter_defaults"],
            identity, custom=custom, strict_unknown=strict_params,
            validate_only=validate_only)
        self._conditions_raw = self.tmpl.get("conditions") or {}
        self._conditions: dict[str, bool] = {}
        self.resources: dict[str, ResourceDef] = {}
        self._load_resources()
        self.outputs: dict[str, Any] = self.tmpl.get("outputs") or {}
        self._check_outputs()

    # -- sections -----------------------------------------------------------------------
    def _check_groups(self) -> None:
        for i, group in enumerate(self.tmpl.get("parameter_groups") or []):
            path = f"parameter_groups[{i}]"
            if not isinstance(group, dict) or not isinstance(group.get("parameters", []), list):
                raise StackValidationFailed(
                    f"Parameters must be provided for each Parameter Group.{at(self.lines, path)}")
            for name in group.get("parameters") or []:
                if name not in self.param_schemas:
                    raise StackValidationFailed(
                        f'The grouped parameter {name} does not reference a valid parameter.'
                        f'{at(self.lines, path)}')

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        if name not in self._conditions_raw:
            raise FunctionError(f'Invalid condition "{name}"')
        self._conditions[name] = False  # guards against a condition naming itself
        value = functions.resolve(self._conditions_raw[name], ConditionScope(self))
        if not isinstance(value, bool):
            value = bool(value)
        self._conditions[name] = value
        return value

    def _load_resources(self) -> None:
        section = self.tmpl.get("resources") or {}
        keys = template.RESOURCE_KEYS_2016 if self.version >= "2016-10-14" \
            else template.RESOURCE_KEYS
        names = set(section)
        for name, raw in section.items():
            path = f"resources.{name}"
            where = at(self.lines, path)
            if not isinstance(raw, dict):
                raise StackValidationFailed(f"Resource {name} is not a map{where}")
            for key in raw:
                if key not in keys:
                    raise StackValidationFailed(
                        f'"{key}" is not a valid keyword inside a resource definition'
                        f'{at(self.lines, f"{path}.{key}")}')
            rtype = raw.get("type")
            if not isinstance(rtype, str) or not rtype:
                raise StackValidationFailed(
                    f'Resource {name} is missing "type"{where}' if rtype is None else
                    f"Resource {name} type type must be string{where}")
            if "condition" in raw:
                cond = raw["condition"]
                try:
                    enabled = functions._condition(cond, ConditionScope(self))
                except FunctionError as exc:
                    raise StackValidationFailed(
                        f"{path}.condition: {exc}{at(self.lines, f'{path}.condition')}") from None
                if not enabled:
                    continue
            functions.check(raw, self.version, path, self.lines, resources=names)
            depends = raw.get("depends_on") or []
            if isinstance(depends, str):
                depends = [depends]
            if not isinstance(depends, list):
                raise StackValidationFailed(f"{path}.depends_on must be a name or a list{where}")
            for dep in depends:
                if dep not in names:
                    raise StackValidationFailed(
                        f'{path}.depends_on: The specified reference "{dep}" (in {name}) is '
                        f'incorrect.{at(self.lines, f"{path}.depends_on")}')
            resolved = self.registry.lookup(rtype, name)
            plugin, tfile = self._plugin_for(resolved, path, where)
            refs = functions.references({k: v for k, v in raw.items() if k != "depends_on"},
                                        self.version) & names
            self.resources[name] = ResourceDef(
                name=name, type=rtype, resolved_type=resolved, plugin=plugin, raw=raw,
                template_file=tfile, depends_on=list(depends), requires=set(depends) | refs)
        # Dependencies on disabled resources vanish (their references resolve to None).
        for rdef in self.resources.values():
            rdef.requires &= set(self.resources)
            rdef.requires.discard(rdef.name)
        try:
            self.order()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(str(n) for n in exc.args[1])
            raise StackValidationFailed(f"Circular Dependency Found: {cycle}") from None

    def _plugin_for(self, resolved: str, path: str, where: str) -> tuple[Any, str | None]:
        if resolved in self.plugins:
            return self.plugins[resolved], None
        if resolved in self.files or resolved.endswith(TEMPLATE_SUFFIXES) or \
                resolved.startswith(("http://", "https://", "file://")):
            if resolved not in self.files:
                raise StackValidationFailed(
                    f'{path}: Could not fetch remote template "{resolved}": the file was not '
                    f'supplied with the request (files){where}')
            return self.plugins["__template__"], resolved
        raise StackValidationFailed(
            f'{path}: The Resource Type ({resolved}) could not be found.{where}')

    def _check_outputs(self) -> None:
        if not isinstance(self.outputs, dict):
            raise StackValidationFailed("The template section \"outputs\" must be a map")
        for name, out in self.outputs.items():
            path = f"outputs.{name}"
            if not isinstance(out, dict) or "value" not in out:
                raise StackValidationFailed(
                    f'Each output definition must contain a value key.{at(self.lines, path)}')
            functions.check(out, self.version, path, self.lines, resources=None)

    # -- graph --------------------------------------------------------------------------
    def order(self) -> list[str]:
        ts = graphlib.TopologicalSorter({n: r.requires for n, r in self.resources.items()})
        return list(ts.static_order())

    def required_by(self, name: str) -> list[str]:
        return sorted(n for n, r in self.resources.items() if name in r.requires)

    # -- validation with placeholders ---------------------------------------------------
    def validate_properties(self, nested_check: Callable[[ResourceDef, dict[str, Any]], None]
                            | None = None) -> dict[str, dict[str, Any]]:
        """Resolve every resource's properties (unknowns as placeholders) and check them."""
        from pocketstack.services.orchestration.resources.base import PropertyError, validate

        scope = ValidationScope(self)
        out: dict[str, dict[str, Any]] = {}
        for name, rdef in self.resources.items():
            path = f"resources.{name}.properties"
            try:
                resolved = functions.resolve(rdef.properties, scope)
            except FunctionError as exc:
                raise StackValidationFailed(
                    f"Property error: : {self._prop_path(rdef, scope, path)}: : {exc}"
                    f"{at(self.lines, path)}") from None
            if not isinstance(resolved, dict):
                raise StackValidationFailed(f"Property error: : {path}: : Properties must be a "
                                            f"map{at(self.lines, path)}")
            plugin = rdef.plugin
            if rdef.template_file is None:
                try:
                    props = validate(plugin.properties_schema, resolved, path,
                                     strict=plugin.strict_properties)
                except PropertyError as exc:
                    raise StackValidationFailed(
                        f"Property error: : {exc.path}: : {exc.message}"
                        f"{at(self.lines, exc.path)}") from None
                if not plugin.strict_properties:
                    props = {**resolved, **props}
            else:
                props = resolved
            out[name] = props
            if nested_check is not None:
                nested_check(rdef, props)
        return out

    def _prop_path(self, rdef: ResourceDef, scope: "ValidationScope", base: str) -> str:
        # Find which property failed, for the error path Heat prints.
        for key, value in (rdef.properties or {}).items():
            try:
                functions.resolve(value, scope)
            except FunctionError:
                return f"{base}.{key}"
        return base

    def environment_view(self) -> dict[str, Any]:
        env = normalized(self.env)
        for rdef in self.resources.values():
            if rdef.template_file and rdef.type == rdef.template_file:
                env["resource_registry"].setdefault(rdef.type, rdef.type)
        return env


class _BaseScope:
    def __init__(self, defn: StackDefinition) -> None:
        self.defn = defn
        self.version = defn.version

    def param(self, name: str) -> Any:
        values = self.defn.params.values
        if name not in values:
            raise FunctionError(f"The Parameter ({name}) was not provided.")
        return values[name]

    def file(self, key: str) -> str:
        if key not in self.defn.files:
            raise FunctionError(f'Could not fetch remote template "{key}": the file was not '
                                "supplied with the request (files)")
        value = self.defn.files[key]
        return value if isinstance(value, str) else str(value)

    def condition(self, name: str) -> bool:
        return self.defn.condition(name)

    def facade(self, what: str) -> Any:
        return self.defn.facade_data.get(what)

    def resource_ref(self, name: str) -> Any:
        raise FunctionError(f"get_resource is not allowed here ({name})")

    def attribute(self, name: str, attr: str | None, path: list[Any]) -> Any:
        raise FunctionError(f"get_attr is not allowed here ({name})")


class ConditionScope(_BaseScope):
    pass


class ValidationScope(_BaseScope):
    """Resource references become placeholders; everything else resolves for real."""

    def resource_ref(self, name: str) -> Any:
        if name not in self.defn.resources:
            if name in (self.defn.tmpl.get("resources") or {}):
                return None  # disabled by a condition
            raise FunctionError(f'The specified reference "{name}" is incorrect.')
        return Placeholder(f"<{name}>")

    def attribute(self, name: str, attr: str | None, path: list[Any]) -> Any:
        if name not in self.defn.resources:
            if name in (self.defn.tmpl.get("resources") or {}):
                return None
            raise FunctionError(f'The specified reference "{name}" is incorrect.')
        return Placeholder(f"<{name}.{attr}>")
