"""Template parsing and the HOT version table.

Templates arrive as a JSON object or as YAML/JSON text. For text we keep a map from each
mapping key's path ("resources.server.properties.image") to its line number, so a
validation error can say where in the file the problem is.
"""

from __future__ import annotations

from typing import Any

import yaml

from pocketstack.services.orchestration.engine.errors import (InvalidTemplate,
                                                               StackValidationFailed,
                                                               TemplateParseError)

# Version -> functions allowed (cumulative, as in heat/engine/hot/template.py).
_F_2013 = {"get_attr", "get_file", "get_param", "get_resource", "list_join",
           "resource_facade", "str_replace", "Fn::Select", "Fn::Join", "Fn::Split",
           "Fn::Replace", "Fn::Base64", "Fn::MemberListToMap", "Fn::ResourceFacade",
           "Fn::GetAZs", "Ref"}
_F_2014 = {"get_attr", "get_file", "get_param", "get_resource", "list_join",
           "resource_facade", "str_replace", "Fn::Select"}
_F_2015_04 = _F_2014 | {"repeat", "digest"}
_F_2015_10 = (_F_2015_04 - {"Fn::Select"}) | {"str_split"}
_F_2016_04 = _F_2015_10 | {"map_merge"}
_F_2016_10 = _F_2016_04 | {"yaql", "map_replace", "if", "equals", "not", "and", "or"}
_F_2017_02 = _F_2016_10 | {"filter", "str_replace_strict"}
_F_2017_09 = _F_2017_02 | {"make_url", "list_concat", "str_replace_vstrict",
                           "list_concat_unique", "contains"}

VERSIONS: dict[str, frozenset[str]] = {
    "2013-05-23": frozenset(_F_2013),
    "2014-10-16": frozenset(_F_2014),
    "2015-04-30": frozenset(_F_2015_04),
    "2015-10-15": frozenset(_F_2015_10),
    "2016-04-08": frozenset(_F_2016_04),
    "2016-10-14": frozenset(_F_2016_10),
    "2017-02-24": frozenset(_F_2017_02),
    "2017-09-01": frozenset(_F_2017_09),
    "2018-03-02": frozenset(_F_2017_09),
    "2018-08-31": frozenset(_F_2017_09),
    "2021-04-16": frozenset(_F_2017_09),
}
ALIASES = {"newton": "2016-10-14", "ocata": "2017-02-24", "pike": "2017-09-01",
           "queens": "2018-03-02", "rocky": "2018-08-31", "wallaby": "2021-04-16"}
CONDITION_FUNCTIONS_2016 = frozenset({"get_param", "equals", "not", "and", "or"})
CONDITION_FUNCTIONS_2017 = CONDITION_FUNCTIONS_2016 | {"yaql", "contains"}
ALL_FUNCTIONS = frozenset().union(*VERSIONS.values())

FUNCTION_DESCRIPTIONS = {
    "get_attr": "A function for resolving resource attributes.",
    "get_file": "A function for including a file inline.",
    "get_param": "A function for resolving parameter references.",
    "get_resource": "A function for resolving resource references.",
    "list_join": "A function for joining one or more lists of strings.",
    "resource_facade": "A function for retrieving data in a parent provider template.",
    "str_replace": "A function for performing string substitutions.",
    "repeat": "A function for iterating over a list of items.",
    "digest": "A function for performing digest operations.",
    "str_split": "A function for splitting delimited strings into a list.",
    "map_merge": "A function for merging maps.",
    "map_replace": "A function for performing substitutions on maps.",
    "yaql": "A function for executing a yaql expression.",
    "if": "A function to return corresponding value based on condition evaluation.",
    "equals": "A function for comparing whether two values are equal.",
    "not": "A function that acts as a NOT operator on a condition.",
    "and": "A function that acts as an AND operator on conditions.",
    "or": "A function that acts as an OR operator on conditions.",
    "filter": "A function for filtering out values from lists.",
    "str_replace_strict": "A function for performing string substitutions.",
    "str_replace_vstrict": "A function for performing string substitutions.",
    "make_url": "A function for performing substitutions on maps.",
    "list_concat": "A function for extending lists.",
    "list_concat_unique": "A function for extending lists with unique items.",
    "contains": "A function for checking whether specific value is in sequence.",
    "Fn::Select": "A function for selecting an item from a list or map.",
    "Fn::Join": "A function for joining strings.",
    "Fn::Split": "A function for splitting strings.",
    "Fn::Replace": "A function for performing string substitutions.",
    "Fn::Base64": "A placeholder function for converting to base64.",
    "Fn::MemberListToMap": "A function to convert lists with enumerated keys and values to "
                           "mapping.",
    "Fn::ResourceFacade": "A function for retrieving data in a parent provider template.",
    "Fn::GetAZs": "A function for retrieving the availability zones.",
    "Ref": "A function for resolving parameters or resource references.",
}

SECTIONS = {"heat_template_version", "description", "parameter_groups", "parameters",
            "resources", "outputs"}
SECTIONS_2016 = SECTIONS | {"conditions"}
RESOURCE_KEYS = {"type", "properties", "metadata", "depends_on", "update_policy",
                 "deletion_policy"}
RESOURCE_KEYS_2016 = RESOURCE_KEYS | {"external_id", "condition"}


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that records the line of every mapping key by its dotted path."""


def _timestamps_as_strings(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return loader.construct_scalar(node)


# "2015-04-30" must stay a string, as in Heat's own loader.
_LineLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamps_as_strings)


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = str(key.value)
            p = f"{path}.{k}" if path else k
            out.setdefault(p, key.start_mark.line + 1)
            _lines(value, p, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            p = f"{path}[{i}]"
            out.setdefault(p, item.start_mark.line + 1)
            _lines(item, p, out)


def parse(text: Any, what: str = "template") -> tuple[dict[str, Any], dict[str, int]]:
    """Parse a template (or environment) given as an object or as YAML/JSON text."""
    if isinstance(text, dict):
        return text, {}
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not isinstance(text, str):
        raise TemplateParseError(f"The {what} must be a JSON object or YAML text.")
    if len(text) > 512 * 1024:
        raise TemplateParseError(f"The {what} is larger than 524288 bytes.")
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateParseError(f"Error parsing {what}{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TemplateParseError(f"The {what} is not a JSON object or YAML mapping.")
    lines: dict[str, int] = {}
    if node is not None:
        _lines(node, "", lines)
    return data, lines


def version_of(tmpl: dict[str, Any]) -> str:
    raw = tmpl.get("heat_template_version")
    if raw is None:
        if "AWSTemplateFormatVersion" in tmpl or "HeatTemplateFormatVersion" in tmpl:
            raise InvalidTemplate("The template version is invalid: CFN templates "
                                  "(AWSTemplateFormatVersion) are not supported by this "
                                  "server; use heat_template_version.")
        raise InvalidTemplate("The template version is invalid: Template format version not "
                              'found. "heat_template_version: 2013-05-23" should be used.')
    raw = str(raw)
    version = ALIASES.get(raw, raw)
    if version not in VERSIONS:
        valid = ", ".join(f'"heat_template_version: {v}"' for v in sorted(VERSIONS))
        raise InvalidTemplate(f"The template version is invalid: "
                              f"heat_template_version: {raw}. Should be one of: {valid}")
    return version


def check_sections(tmpl: dict[str, Any], version: str, lines: dict[str, int]) -> None:
    allowed = SECTIONS_2016 if version >= "2016-10-14" else SECTIONS
    for key in tmpl:
        if key not in allowed:
            raise StackValidationFailed(
                f'The template section is invalid: {key}{at(lines, key)}')
    for section in ("parameters", "resources", "outputs", "conditions"):
        value = tmpl.get(section)
        if value is not None and not isinstance(value, dict):
            raise StackValidationFailed(
                f'The template section "{section}" must be a map{at(lines, section)}')
    groups = tmpl.get("parameter_groups")
    if groups is not None and not isinstance(groups, list):
        raise StackValidationFailed(
            f'The template section "parameter_groups" must be a list'
            f'{at(lines, "parameter_groups")}')


def at(lines: dict[str, int], path: str) -> str:
    """" (line N)" for a path when the template came as text, else ""."""
    while path:
        if path in lines:
            return f" (line {lines[path]})"
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            break
        path = path[:cut]
    if path in lines:
        return f" (line {lines[path]})"
    return ""
