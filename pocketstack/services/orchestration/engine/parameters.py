"""Template parameters: schema, type coercion, constraints, and how they are shown.

Types are HOT's (string, number, json, comma_delimited_list, boolean). Custom constraints
(nova.flavor, glance.image, ...) are checked by a callback the service supplies, so the
check runs against the same internal services the APIs use, in the caller's project.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pocketstack.services.orchestration.engine.errors import (StackValidationFailed,
                                                               UserParameterMissing)
from pocketstack.services.orchestration.engine.functions import Placeholder
from pocketstack.services.orchestration.engine.template import at

TYPES = {"string": "String", "number": "Number", "json": "Json",
         "comma_delimited_list": "CommaDelimitedList", "boolean": "Boolean"}
KEYS = {"type", "description", "default", "hidden", "label", "constraints", "immutable",
        "tags"}
CONSTRAINT_KEYS = {"allowed_values", "range", "length", "allowed_pattern",
                   "custom_constraint", "modulo"}
PSEUDO = ("OS::stack_name", "OS::stack_id", "OS::project_id")

# custom constraint name -> (ctx-bound) checker returning an error message or None
CustomChecker = Callable[[str, Any], "str | None"]


@dataclass
class ParamSchema:
    name: str
    type: str
    description: str = ""
    label: str | None = None
    hidden: bool = False
    has_default: bool = False
    default: Any = None
    constraints: list[dict[str, Any]] = field(default_factory=list)
    immutable: bool = False


def parse_schemas(section: dict[str, Any] | None, lines: dict[str, int]) -> dict[str, ParamSchema]:
    out: dict[str, ParamSchema] = {}
    for name, spec in (section or {}).items():
        path = f"parameters.{name}"
        if not isinstance(spec, dict):
            raise StackValidationFailed(f"Parameter {name} must be a map{at(lines, path)}")
        for key in spec:
            if key not in KEYS:
                raise StackValidationFailed(
                    f'Invalid key \'{key}\' for parameter ({name}){at(lines, f"{path}.{key}")}')
        ptype = spec.get("type")
        if ptype is None:
            raise StackValidationFailed(
                f'Missing parameter type for parameter: {name}{at(lines, path)}')
        if ptype not in TYPES:
            raise StackValidationFailed(
                f'Invalid type ({ptype}) for parameter ({name}){at(lines, f"{path}.type")}')
        constraints = spec.get("constraints") or []
        if not isinstance(constraints, list):
            raise StackValidationFailed(
                f"Invalid parameter constraints for parameter {name}, expected a list"
                f'{at(lines, f"{path}.constraints")}')
        for i, c in enumerate(constraints):
            cpath = f"{path}.constraints[{i}]"
            if not isinstance(c, dict) or not (set(c) - {"description"}) or \
                    not (set(c) - {"description"}) <= CONSTRAINT_KEYS:
                raise StackValidationFailed(
                    f"Invalid parameter constraints for parameter {name}: "
                    f"{json.dumps(c, default=str)}{at(lines, cpath)}")
            if "range" in c and not isinstance(c["range"], dict) or \
                    "length" in c and not isinstance(c["length"], dict):
                raise StackValidationFailed(
                    f"Invalid range/length constraint for parameter {name}: it must be a map "
                    f"with min and/or max{at(lines, cpath)}")
            if "allowed_values" in c and not isinstance(c["allowed_values"], list):
                raise StackValidationFailed(
                    f"allowed_values for parameter {name} must be a list{at(lines, cpath)}")
            if "allowed_pattern" in c:
                try:
                    re.compile(str(c["allowed_pattern"]))
                except re.error as exc:
                    raise StackValidationFailed(
                        f"Invalid allowed_pattern for parameter {name}: {exc}"
                        f"{at(lines, cpath)}") from None
        schema = ParamSchema(
            name=name, type=ptype, description=str(spec.get("description", "") or ""),
            label=spec.get("label"), hidden=_truthy(spec.get("hidden", False)),
            has_default="default" in spec, default=spec.get("default"),
            constraints=constraints, immutable=_truthy(spec.get("immutable", False)))
        if schema.has_default and schema.default is not None:
            try:
                value = coerce(schema, schema.default)
                check_constraints(schema, value, None)
            except StackValidationFailed as exc:
                raise StackValidationFailed(
                    f"Invalid default for parameter {name}: {exc.message}"
                    f'{at(lines, f"{path}.default")}') from None
        out[name] = schema
    return out


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.lower() in ("true", "yes", "on", "1")
    return bool(v)


def coerce(schema: ParamSchema, value: Any) -> Any:
    name, t = schema.name, schema.type
    bad = f"Parameter '{name}' is invalid: "
    if t == "string":
        if isinstance(value, (dict, list)):
            raise StackValidationFailed(bad + f"Value must be a string; got {json.dumps(value)}")
        if isinstance(value, bool):
            return "true" if value else "false"
        return "" if value is None else str(value)
    if t == "number":
        if isinstance(value, bool) or isinstance(value, (dict, list)):
            raise StackValidationFailed(bad + f"Value '{value}' is not a number")
        if isinstance(value, (int, float)):
            return value
        try:
            text = str(value).strip()
            return int(text) if re.fullmatch(r"[-+]?\d+", text) else float(text)
        except ValueError:
            raise StackValidationFailed(bad + f"Value '{value}' is not a number") from None
    if t == "json":
        if isinstance(value, (dict, list)):
            return value
        if value in (None, ""):
            return {}
        try:
            parsed = json.loads(value)
        except (TypeError, ValueError):
            raise StackValidationFailed(bad + f"Value must be valid JSON: {value}") from None
        if not isinstance(parsed, (dict, list)):
            raise StackValidationFailed(bad + "Value must be a JSON map or list")
        return parsed
    if t == "comma_delimited_list":
        if isinstance(value, list):
            return [str(x) if not isinstance(x, str) else x for x in value]
        if value in (None, ""):
            return []
        if not isinstance(value, str):
            raise StackValidationFailed(bad + f"Value '{value}' is not a list")
        return [x.strip() for x in value.split(",")]
    if t == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in ("true", "t", "yes", "y", "on", "1"):
            return True
        if text in ("false", "f", "no", "n", "off", "0"):
            return False
        raise StackValidationFailed(bad + f"Unrecognized value '{value}', acceptable values "
                                          "are: '0', '1', 'f', 'false', 'n', 'no', 'off', "
                                          "'on', 't', 'true', 'y', 'yes'")
    raise StackValidationFailed(bad + f"unknown type {t}")


def check_constraints(schema: ParamSchema, value: Any, custom: CustomChecker | None) -> None:
    for c in schema.constraints:
        msg = _violation(schema, c, value, custom)
        if msg:
            desc = c.get("description")
            raise StackValidationFailed(f"Parameter '{schema.name}' is invalid: "
                                        f"{desc if desc else msg}")


def _violation(schema: ParamSchema, c: dict[str, Any], value: Any,
               custom: CustomChecker | None) -> str | None:
    values = value if isinstance(value, list) and schema.type == "comma_delimited_list" \
        else [value]
    if "allowed_values" in c:
        allowed = c["allowed_values"]
        for v in values:
            if v not in allowed and str(v) not in [str(a) for a in allowed]:
                return f'"{v}" is not an allowed value [{", ".join(str(a) for a in allowed)}]'
    if "range" in c:
        lo, hi = c["range"].get("min"), c["range"].get("max")
        if schema.type != "number":
            return None
        if lo is not None and value < lo or hi is not None and value > hi:
            return f"{value} is out of range (min: {lo}, max: {hi})"
    if "length" in c:
        lo, hi = c["length"].get("min"), c["length"].get("max")
        n = len(value) if value is not None else 0
        if lo is not None and n < lo or hi is not None and n > hi:
            return f'length ({n}) is out of range (min: {lo}, max: {hi})'
    if "modulo" in c and schema.type == "number":
        step, offset = c["modulo"].get("step", 1), c["modulo"].get("offset", 0)
        if step and (value - offset) % step:
            return f"{value} is not a multiple of {step} with an offset of {offset}"
    if "allowed_pattern" in c:
        pattern = str(c["allowed_pattern"])
        for v in values:
            if not re.fullmatch(pattern, str(v)):
                return f'"{v}" does not match pattern "{pattern}"'
    if "custom_constraint" in c:
        name = c["custom_constraint"]
        local = LOCAL_CONSTRAINTS.get(name)
        for v in values:
            if local is not None:
                msg = local(v)
            elif custom is None:
                msg = None  # checked later, when the stack has a caller to check with
            else:
                msg = custom(name, v)
            if msg:
                return msg
    return None


def _ip(v: Any) -> str | None:
    try:
        ipaddress.ip_address(str(v))
    except ValueError:
        return f"Error validating value '{v}': Invalid IP address"
    return None


def _cidr(v: Any) -> str | None:
    try:
        ipaddress.ip_network(str(v), strict=False)
    except ValueError:
        return f"Error validating value '{v}': Invalid net cidr"
    return None


def _mac(v: Any) -> str | None:
    if re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", str(v)):
        return None
    return f"Error validating value '{v}': Invalid MAC address"


LOCAL_CONSTRAINTS: dict[str, Callable[[Any], str | None]] = {
    "ip_addr": _ip, "net_cidr": _cidr, "mac_addr": _mac,
}


class ParameterSet:
    """Resolved parameter values of one stack (plus Heat's pseudo parameters)."""

    def __init__(self, schemas: dict[str, ParamSchema], values: dict[str, Any],
                 given: dict[str, Any]) -> None:
        self.schemas = schemas
        self.values = values
        self.given = given

    def shown(self) -> dict[str, str]:
        """Parameters as stack show prints them: strings, hidden ones masked."""
        out: dict[str, str] = {}
        for name, value in self.values.items():
            schema = self.schemas.get(name)
            if schema is not None and schema.hidden:
                out[name] = "******"
            elif isinstance(value, (dict,)) or (schema and schema.type == "json"):
                out[name] = json.dumps(value)
            elif isinstance(value, list):
                out[name] = ",".join(str(x) for x in value)
            elif isinstance(value, bool):
                out[name] = str(value)
            else:
                out[name] = "" if value is None else str(value)
        return out


def build(schemas: dict[str, ParamSchema], params: dict[str, Any],
          defaults: dict[str, Any], identity: dict[str, str], *,
          custom: CustomChecker | None, strict_unknown: bool = True,
          validate_only: bool = False) -> ParameterSet:
    """Resolve values: given parameters, then parameter_defaults, then template defaults."""
    if strict_unknown:
        for name in params:
            if name not in schemas:
                raise StackValidationFailed(
                    f"The Parameter ({name}) was not defined in template.")
    values: dict[str, Any] = {}
    for name, schema in schemas.items():
        if name in params:
            raw = params[name]
        elif name in defaults:
            raw = defaults[name]
        elif schema.has_default:
            raw = schema.default
        else:
            if validate_only:  # validate: a value given at create time
                values[name] = Placeholder(f"<{name}>")
                continue
            raise UserParameterMissing(f"The Parameter ({name}) was not provided.")
        if isinstance(raw, Placeholder):  # validation of a nested stack: known at run time
            values[name] = raw
            continue
        value = coerce(schema, raw)
        check_constraints(schema, value, custom)
        values[name] = value
    values.update({"OS::stack_name": identity.get("stack_name", ""),
                   "OS::stack_id": identity.get("stack_id", "None"),
                   "OS::project_id": identity.get("project_id", "")})
    return ParameterSet(schemas, values, dict(params))


def validate_view(schemas: dict[str, ParamSchema], given: dict[str, Any]) -> dict[str, Any]:
    """The "Parameters" section of POST /validate."""
    out: dict[str, Any] = {}
    for name, s in schemas.items():
        item: dict[str, Any] = {"Type": TYPES[s.type], "Description": s.description,
                                "Label": s.label or name,
                                "NoEcho": "true" if s.hidden else "false"}
        if s.has_default:
            item["Default"] = s.default
        if name in given:
            item["Value"] = given[name]
        for c in s.constraints:
            if "allowed_values" in c:
                item["AllowedValues"] = c["allowed_values"]
            if "allowed_pattern" in c:
                item["AllowedPattern"] = c["allowed_pattern"]
            if "range" in c:
                if "min" in c["range"]:
                    item["MinValue"] = c["range"]["min"]
                if "max" in c["range"]:
                    item["MaxValue"] = c["range"]["max"]
            if "length" in c:
                if "min" in c["length"]:
                    item["MinLength"] = c["length"]["min"]
                if "max" in c["length"]:
                    item["MaxLength"] = c["length"]["max"]
            if "custom_constraint" in c:
                item["CustomConstraint"] = c["custom_constraint"]
            if c.get("description"):
                item["ConstraintDescription"] = c["description"]
        if s.immutable:
            item["Immutable"] = True
        out[name] = item
    return out
