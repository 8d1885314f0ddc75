"""HOT intrinsic functions: static checks, dependency discovery and resolution.

A function call is a one-key mapping whose key is a function name allowed by the
template's version. ``resolve`` evaluates a value tree against a ``Scope`` (parameters,
resources, files, conditions) that the stack supplies; during validation the scope
answers resource references with placeholders.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from pocketstack.services.orchestration.engine.errors import StackValidationFailed
from pocketstack.services.orchestration.engine.template import ALL_FUNCTIONS, VERSIONS, at


class FunctionError(Exception):
    """A function could not be evaluated; the caller adds where it happened."""


class Scope(Protocol):
    version: str

    def param(self, name: str) -> Any: ...
    def resource_ref(self, name: str) -> Any: ...
    def attribute(self, name: str, attr: str | None, path: list[Any]) -> Any: ...
    def file(self, key: str) -> str: ...
    def condition(self, name: str) -> bool: ...
    def facade(self, what: str) -> Any: ...


class Placeholder(str):
    """Stands for a value only known at run time (a resource id or attribute)."""


def function_of(value: Any, version: str) -> tuple[str, Any] | None:
    if isinstance(value, dict) and len(value) == 1:
        (key, arg), = value.items()
        if key in VERSIONS[version]:
            return key, arg
    return None


def _looks_like_function(key: Any) -> bool:
    return isinstance(key, str) and (key in ALL_FUNCTIONS or key.startswith(("Fn::", "get_")))


def check(value: Any, version: str, path: str, lines: dict[str, int], *,
          params: set[str] | None = None, resources: set[str] | None = None,
          allow_resources: bool = True) -> None:
    """Reject unknown or removed functions and references to what does not exist."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key not in VERSIONS[version] and _looks_like_function(key):
                if key in ALL_FUNCTIONS:
                    raise StackValidationFailed(
                        f'{path}: The function "{key}" is invalid in this context or is not '
                        f'supported in heat_template_version {version}{at(lines, path)}')
                raise StackValidationFailed(
                    f'{path}: Unknown function "{key}"{at(lines, path)}')
            if key in VERSIONS[version]:
                _check_call(key, arg, version, path, lines, params, resources,
                            allow_resources)
        for k, v in value.items():
            check(v, version, f"{path}.{k}", lines, params=params, resources=resources,
                  allow_resources=allow_resources)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check(v, version, f"{path}[{i}]", lines, params=params, resources=resources,
                  allow_resources=allow_resources)


def _check_call(key: str, arg: Any, version: str, path: str, lines: dict[str, int],
                params: set[str] | None, resources: set[str] | None,
                allow_resources: bool) -> None:
    where = at(lines, path)
    if key in ("get_resource", "get_attr") and not allow_resources:
        raise StackValidationFailed(f'{path}: "{key}" is not allowed here{where}')
    if key == "get_resource":
        if not isinstance(arg, str):
            raise StackValidationFailed(f"{path}: get_resource takes a resource name{where}")
        if resources is not None and arg not in resources:
            raise StackValidationFailed(
                f'{path}: The specified reference "{arg}" (in unknown) is incorrect.{where}')
    elif key == "get_attr":
        if not isinstance(arg, list) or not arg or (version < "2015-10-15" and len(arg) < 2):
            raise StackValidationFailed(
                f'{path}: Arguments to "get_attr" must be of the form '
                f"[resource_name, attribute, (path), ...]{where}")
        if isinstance(arg[0], str) and resources is not None and arg[0] not in resources:
            raise StackValidationFailed(
                f'{path}: The specified reference "{arg[0]}" (in unknown) is incorrect.{where}')
    elif key == "get_param":
        name = arg[0] if isinstance(arg, list) and arg else arg
        if isinstance(name, str) and params is not None and name not in params \
                and not name.startswith("OS::"):
            raise StackValidationFailed(f"{path}: The Parameter ({name}) was not defined in "
                                        f"template.{where}")
    elif key == "Ref":
        if isinstance(arg, str) and params is not None and resources is not None and \
                arg not in params and arg not in resources and not arg.startswith("OS::"):
            raise StackValidationFailed(
                f'{path}: The specified reference "{arg}" (in unknown) is incorrect.{where}')


def references(value: Any, version: str) -> set[str]:
    """Resource names a value depends on (get_resource, get_attr, Ref)."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        call = function_of(v, version)
        if call:
            key, arg = call
            if key == "get_resource" and isinstance(arg, str):
                found.add(arg)
            elif key == "get_attr" and isinstance(arg, list) and arg and isinstance(arg[0], str):
                found.add(arg[0])
            elif key == "Ref" and isinstance(arg, str):
                found.add(arg)  # filtered against resource names by the caller
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(value)
    return found


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _index(value: Any, key: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        try:
            return value[int(key)]
        except (ValueError, TypeError, IndexError):
            raise FunctionError(f"index {key!r} is not valid for a list of "
                                f"{len(value)}") from None
    if isinstance(value, dict):
        if key not in value:
            raise FunctionError(f"key {key!r} not found")
        return value[key]
    if isinstance(value, Placeholder):
        return value
    raise FunctionError(f"cannot look up {key!r} in a {type(value).__name__}")


def resolve(value: Any, scope: Scope) -> Any:
    version = scope.version
    call = function_of(value, version)
    if call is None:
        if isinstance(value, dict):
            return {k: resolve(v, scope) for k, v in value.items()
                    if not _is_deleted_if(v, scope)}
        if isinstance(value, list):
            return [resolve(v, scope) for v in value if not _is_deleted_if(v, scope)]
        return value
    key, arg = call
    fn = _FUNCTIONS.get(key)
    if fn is None:
        raise FunctionError(f'The function "{key}" is not supported by this server')
    return fn(arg, scope)


def _is_deleted_if(v: Any, scope: Scope) -> bool:
    # 2021-04-16: an "if" with only a true branch removes the item when false.
    call = function_of(v, scope.version)
    if call and call[0] == "if" and scope.version >= "2021-04-16":
        arg = call[1]
        if isinstance(arg, list) and len(arg) == 2 and not _condition(arg[0], scope):
            return True
    return False


def _get_param(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if isinstance(arg, str):
        return scope.param(arg)
    if not isinstance(arg, list) or not arg or not isinstance(arg[0], str):
        raise FunctionError("Arguments to get_param must be a parameter name or a list "
                            "[name, path...]")
    value = scope.param(arg[0])
    for key in arg[1:]:
        value = _index(value, key)
    return value


def _get_resource(arg: Any, scope: Scope) -> Any:
    return scope.resource_ref(resolve(arg, scope))


def _get_attr(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or not arg:
        raise FunctionError('Arguments to "get_attr" must be of the form '
                            "[resource_name, attribute, (path), ...]")
    name = arg[0]
    attr = arg[1] if len(arg) > 1 else None
    return scope.attribute(name, attr, list(arg[2:]))


def _get_file(arg: Any, scope: Scope) -> Any:
    return scope.file(resolve(arg, scope))


def _list_join(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) < 2 or not isinstance(arg[0], str):
        raise FunctionError("Arguments to list_join must be [delimiter, list, ...]")
    items: list[str] = []
    for lst in arg[1:]:
        if isinstance(lst, Placeholder):
            return Placeholder("list_join")
        if not isinstance(lst, list):
            raise FunctionError("list_join: the items to join must be lists")
        items.extend(_to_str(x) for x in lst)
    return arg[0].join(items)


def _str_replace(arg: Any, scope: Scope, strict: bool = False) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, dict) or "template" not in arg or "params" not in arg:
        raise FunctionError('Arguments to "str_replace" must be a map with "template" and '
                            '"params"')
    template, params = arg["template"], arg["params"]
    if isinstance(template, Placeholder):
        return template
    if not isinstance(template, str) or not isinstance(params, dict):
        raise FunctionError('"str_replace": "template" must be a string and "params" a map')
    for key in sorted(params, key=lambda k: -len(str(k))):
        if strict and str(key) not in template:
            raise FunctionError(f'"str_replace_strict": the key "{key}" was not found in '
                                "the template")
        template = template.replace(str(key), _to_str(params[key]))
    return template


def _str_split(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) not in (2, 3):
        raise FunctionError("Arguments to str_split must be [delimiter, string, (index)]")
    if isinstance(arg[1], Placeholder):
        return arg[1]
    if not isinstance(arg[1], str):
        raise FunctionError("str_split: the value to split must be a string")
    parts = arg[1].split(arg[0])
    return _index(parts, arg[2]) if len(arg) == 3 else parts


def _repeat(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, dict) or "for_each" not in arg or "template" not in arg:
        raise FunctionError('Arguments to "repeat" must be a map with "for_each" and '
                            '"template"')
    loops = arg["for_each"]
    if not isinstance(loops, dict):
        raise FunctionError('"repeat": "for_each" must be a map')
    keys = list(loops)
    lists = []
    for k in keys:
        v = loops[k]
        if isinstance(v, dict):
            v = list(v)
        if not isinstance(v, list):
            raise FunctionError(f'"repeat": the value of "{k}" must be a list')
        lists.append(v)
    import itertools

    if arg.get("permutations", True):
        combos = list(itertools.product(*lists))
    else:
        if len({len(x) for x in lists}) > 1:
            raise FunctionError('"repeat": lists must be of the same length when '
                                "permutations is false")
        combos = list(zip(*lists))

    def subst(t: Any, mapping: dict[str, Any]) -> Any:
        if isinstance(t, str):
            for k, v in mapping.items():
                t = t.replace(k, _to_str(v))
            return t
        if isinstance(t, dict):
            return {subst(k, mapping): subst(v, mapping) for k, v in t.items()}
        if isinstance(t, list):
            return [subst(x, mapping) for x in t]
        return t

    return [subst(arg["template"], dict(zip(keys, combo))) for combo in combos]


def _digest(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2:
        raise FunctionError("Arguments to digest must be [algorithm, value]")
    try:
        h = hashlib.new(str(arg[0]))
    except ValueError:
        raise FunctionError(f"digest: unknown algorithm {arg[0]}") from None
    h.update(_to_str(arg[1]).encode())
    return h.hexdigest()


def _map_merge(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list):
        raise FunctionError("Arguments to map_merge must be a list of maps")
    out: dict[str, Any] = {}
    for m in arg:
        if m is None:
            continue
        if not isinstance(m, dict):
            raise FunctionError("map_merge: every item must be a map")
        out.update(m)
    return out


def _map_replace(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[0], dict):
        raise FunctionError("Arguments to map_replace must be [map, {keys:, values:}]")
    spec = arg[1] or {}
    keys, values = spec.get("keys", {}) or {}, spec.get("values", {}) or {}
    out = {}
    for k, v in arg[0].items():
        nk = keys.get(k, k)
        if nk in out:
            raise FunctionError(f"map_replace: key collision on {nk}")
        out[nk] = values.get(v, v) if isinstance(v, (str, int, float)) else v
    return out


def _condition(arg: Any, scope: Scope) -> bool:
    if isinstance(arg, bool):
        return arg
    if isinstance(arg, str):
        return scope.condition(arg)
    return bool(resolve(arg, scope))


def _if(arg: Any, scope: Scope) -> Any:
    if not isinstance(arg, list) or len(arg) not in (2, 3) or \
            (len(arg) == 2 and scope.version < "2021-04-16"):
        raise FunctionError('Arguments to "if" must be [condition, value_if_true, '
                            "value_if_false]")
    if _condition(arg[0], scope):
        return resolve(arg[1], scope)
    return resolve(arg[2], scope) if len(arg) == 3 else None


def _equals(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2:
        raise FunctionError('Arguments to "equals" must be [value1, value2]')
    return arg[0] == arg[1]


def _not(arg: Any, scope: Scope) -> Any:
    return not _condition(arg, scope)


def _and(arg: Any, scope: Scope) -> Any:
    if not isinstance(arg, list) or len(arg) < 2:
        raise FunctionError('Arguments to "and" must be a list of at least two conditions')
    return all(_condition(a, scope) for a in arg)


def _or(arg: Any, scope: Scope) -> Any:
    if not isinstance(arg, list) or len(arg) < 2:
        raise FunctionError('Arguments to "or" must be a list of at least two conditions')
    return any(_condition(a, scope) for a in arg)


def _filter(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], list):
        raise FunctionError("Arguments to filter must be [values_to_remove, list]")
    drop = arg[0] if isinstance(arg[0], list) else [arg[0]]
    return [x for x in arg[1] if x not in drop]


def _make_url(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, dict) or "host" not in arg:
        raise FunctionError('Arguments to "make_url" must be a map with at least "host"')
    scheme = arg.get("scheme", "http")
    host = str(arg["host"])
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = f":{arg['port']}" if arg.get("port") not in (None, "") else ""
    path = quote(str(arg.get("path", "")))
    if path and not path.startswith("/"):
        path = "/" + path
    query = f"?{urlencode(arg['query'])}" if arg.get("query") else ""
    frag = f"#{quote(str(arg['fragment']))}" if arg.get("fragment") else ""
    return f"{scheme}://{host}{port}{path}{query}{frag}"


def _list_concat(arg: Any, scope: Scope, unique: bool = False) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list):
        raise FunctionError("Arguments to list_concat must be a list of lists")
    out: list[Any] = []
    for lst in arg:
        if lst is None:
            continue
        if not isinstance(lst, list):
            raise FunctionError("list_concat: every item must be a list")
        for x in lst:
            if not unique or x not in out:
                out.append(x)
    return out


def _contains(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], (list, str)):
        raise FunctionError('Arguments to "contains" must be [value, sequence]')
    return arg[0] in arg[1]


def _select(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2:
        raise FunctionError('Arguments to "Fn::Select" must be [index, collection]')
    try:
        return _index(arg[1], arg[0])
    except FunctionError:
        return ""


def _facade(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if arg not in ("metadata", "deletion_policy", "update_policy"):
        raise FunctionError('Argument to "resource_facade" must be one of metadata, '
                            "deletion_policy, update_policy")
    return scope.facade(arg)


def _ref(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    try:
        return scope.param(arg)
    except FunctionError:
        return scope.resource_ref(arg)


def _join(arg: Any, scope: Scope) -> Any:
    arg = resolve(arg, scope)
    if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], list):
        raise FunctionError('Arguments to "Fn::Join" must be [delimiter, list]')
    return str(arg[0]).join(_to_str(x) for x in arg[1])


def _yaql(arg: Any, scope: Scope) -> Any:
    raise FunctionError('The function "yaql" is not available on this server (no yaql '
                        "engine installed)")


_FUNCTIONS = {
    "get_param": _get_param, "get_resource": _get_resource, "get_attr": _get_attr,
    "get_file": _get_file, "list_join": _list_join, "str_replace": _str_replace,
    "str_replace_strict": lambda a, s: _str_replace(a, s, strict=True),
    "str_replace_vstrict": lambda a, s: _str_replace(a, s, strict=True),
    "str_split": _str_split, "repeat": _repeat, "digest": _digest, "map_merge": _map_merge,
    "map_replace": _map_replace, "if": _if, "equals": _equals, "not": _not, "and": _and,
    "or": _or, "filter": _filter, "make_url": _make_url, "list_concat": _list_concat,
    "list_concat_unique": lambda a, s: _list_concat(a, s, unique=True),
    "contains": _contains, "Fn::Select": _select, "resource_facade": _facade,
    "Fn::ResourceFacade": _facade, "Ref": _ref, "Fn::Join": _join, "yaql": _yaql,
    "Fn::Split": lambda a, s: _str_split(resolve(a, s), s),
    "Fn::Replace": lambda a, s: _str_replace(
        {"template": resolve(a, s)[1], "params": resolve(a, s)[0]}, s),
    "Fn::Base64": lambda a, s: resolve(a, s),
    "Fn::GetAZs": lambda a, s: ["nova"],
    "Fn::MemberListToMap": lambda a, s: {},
}
