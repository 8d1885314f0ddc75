"""Environments: parameters, parameter_defaults and the resource registry (with hooks).

The registry maps a type name to another type or to a template file (a provider
template); ``resource_registry.resources.<name>`` holds per-resource overrides and
breakpoint hooks, and a nested map there is passed down to that resource's nested stack.
"""

from __future__ import annotations

import copy
import fnmatch
from typing import Any

from pocketstack.services.orchestration.engine.errors import StackValidationFailed
from pocketstack.services.orchestration.engine.template import parse

SECTIONS = ("parameters", "parameter_defaults", "resource_registry", "event_sinks",
            "encrypted_param_names", "parameter_merge_strategies")
HOOK_TYPES = ("pre-create", "pre-update", "pre-delete", "post-create", "post-update",
              "post-delete")


def load(raw: Any) -> dict[str, Any]:
    """Validate an environment given as an object or YAML text; return its dict form."""
    if raw in (None, "", {}):
        env: dict[str, Any] = {}
    else:
        env, _ = parse(raw, "environment")
    for key in env:
        if key not in SECTIONS:
            raise StackValidationFailed(f"environment has wrong section \"{key}\"")
    for key in ("parameters", "parameter_defaults", "resource_registry"):
        if env.get(key) is not None and not isinstance(env[key], dict):
            raise StackValidationFailed(f'environment section "{key}" must be a map')
    return env


def normalized(env: dict[str, Any]) -> dict[str, Any]:
    """The environment as Heat shows it (every section present)."""
    registry = copy.deepcopy(env.get("resource_registry") or {})
    registry.setdefault("resources", {})
    return {"parameters": dict(env.get("parameters") or {}),
            "parameter_defaults": dict(env.get("parameter_defaults") or {}),
            "resource_registry": registry,
            "event_sinks": list(env.get("event_sinks") or [])}


def merge(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """PATCH semantics: the new environment's entries override the stored ones."""
    out = normalized(base)
    n = normalized(new)
    out["parameters"].update(n["parameters"])
    out["parameter_defaults"].update(n["parameter_defaults"])
    res = out["resource_registry"].pop("resources", {})
    nres = n["resource_registry"].pop("resources", {})
    out["resource_registry"].update(n["resource_registry"])
    res.update(nres)
    out["resource_registry"]["resources"] = res
    out["event_sinks"] = n["event_sinks"] or out["event_sinks"]
    return out


class Registry:
    def __init__(self, registry: dict[str, Any] | None) -> None:
        registry = registry or {}
        self.global_map = {k: v for k, v in registry.items() if k != "resources"}
        self.resources = registry.get("resources") or {}

    def _resource_entry(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for pattern, entry in self.resources.items():
            if isinstance(entry, dict) and (pattern == name or fnmatch.fnmatchcase(name, pattern)):
                out.update(entry)
        return out

    def lookup(self, type_name: str, resource_name: str | None = None) -> str:
        """Map a type through the per-resource then global registry (following chains)."""
        seen = set()
        current = type_name
        if resource_name is not None:
            entry = self._resource_entry(resource_name)
            target = entry.get(current)
            if isinstance(target, str):
                current = target
        while current not in seen:
            seen.add(current)
            target = self.global_map.get(current)
            if target is None:
                for pattern, tgt in self.global_map.items():
                    if "*" in pattern and fnmatch.fnmatchcase(current, pattern) and \
                            isinstance(tgt, str):
                        target = tgt.replace("*", current[len(pattern.rstrip("*")):]) \
                            if tgt.endswith("*") else tgt
                        break
            if not isinstance(target, str) or target == current:
                break
            current = target
        return current

    def hooks(self, resource_name: str) -> set[str]:
        hooks = self._resource_entry(resource_name).get("hooks") or []
        if isinstance(hooks, str):
            hooks = [hooks]
        return {h for h in hooks if h in HOOK_TYPES}

    def nested_for(self, resource_name: str) -> dict[str, Any]:
        """The registry part handed to this resource's nested stack."""
        entry = self.resources.get(resource_name)
        nested: dict[str, Any] = {}
        if isinstance(entry, dict):
            for k, v in entry.items():
                if isinstance(v, dict):
                    nested[k] = v
        out = dict(self.global_map)
        out["resources"] = nested
        return out
