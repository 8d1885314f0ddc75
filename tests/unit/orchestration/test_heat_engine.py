"""Engine units: template parsing, intrinsic functions, parameters, definitions."""

from __future__ import annotations

import pytest

from pocketstack.services.orchestration.engine import functions, parameters, template
from pocketstack.services.orchestration.engine.definition import StackDefinition
from pocketstack.services.orchestration.engine.errors import (InvalidTemplate,
                                                               StackValidationFailed,
                                                               TemplateParseError,
                                                               UserParameterMissing)
from pocketstack.services.orchestration.resources import registry

PLUGINS = registry()
IDENT = {"stack_name": "s", "stack_id": "id-1", "project_id": "p"}


def defn(text: str, params: dict | None = None, files: dict | None = None) -> StackDefinition:
    return StackDefinition(text, files=files or {}, env={"parameters": params or {}},
                           identity=IDENT, plugins=PLUGINS)


class Scope:
    version = "2021-04-16"

    def __init__(self, params=None, refs=None, attrs=None, conds=None):
        self.params, self.refs = params or {}, refs or {}
        self.attrs, self.conds = attrs or {}, conds or {}

    def param(self, name):
        if name not in self.params:
            raise functions.FunctionError(f"The Parameter ({name}) was not provided.")
        return self.params[name]

    def resource_ref(self, name):
        return self.refs[name]

    def attribute(self, name, attr, path):
        value = self.attrs[(name, attr)]
        for key in path:
            value = functions._index(value, key)
        return value

    def file(self, key):
        return {"f.txt": "content"}[key]

    def condition(self, name):
        return self.conds[name]

    def facade(self, what):
        return None


def test_versions_and_aliases():
    assert template.version_of({"heat_template_version": "2013-05-23"}) == "2013-05-23"
    assert template.version_of({"heat_template_version": "wallaby"}) == "2021-04-16"
    with pytest.raises(InvalidTemplate, match="The template version is invalid"):
        template.version_of({"heat_template_version": "2012-01-01"})


def test_yaml_errors_and_lines():
    with pytest.raises(TemplateParseError, match="line 2"):
        template.parse("a: 1\n b: [\n")
    data, lines = template.parse("heat_template_version: 2015-04-30\nresources:\n  r:\n"
                                 "    type: X\n")
    assert data["heat_template_version"] == "2015-04-30"  # a string, not a date
    assert lines["resources.r.type"] == 4


def test_functions():
    s = Scope(params={"p": "x", "lst": ["a", "b"], "m": {"k": [1, 2]}},
              refs={"r": "rid"}, attrs={("r", "out"): {"a": [10, 20]}}, conds={"c": True})
    r = functions.resolve
    assert r({"get_param": "p"}, s) == "x"
    assert r({"get_param": ["m", "k", 1]}, s) == 2
    assert r({"get_resource": "r"}, s) == "rid"
    assert r({"get_attr": ["r", "out", "a", 1]}, s) == 20
    assert r({"list_join": [",", ["a", "b"], ["c"]]}, s) == "a,b,c"
    assert r({"str_replace": {"template": "x $a $ab", "params": {"$a": 1, "$ab": 2}}}, s) \
        == "x 1 2"
    assert r({"str_split": [",", "a,b,c", 1]}, s) == "b"
    assert r({"repeat": {"for_each": {"%x%": {"get_param": "lst"}}, "template": "v-%x%"}},
             s) == ["v-a", "v-b"]
    assert r({"map_merge": [{"a": 1}, {"b": 2}, {"a": 3}]}, s) == {"a": 3, "b": 2}
    assert r({"if": ["c", "yes", "no"]}, s) == "yes"
    assert r({"if": [{"equals": [{"get_param": "p"}, "y"]}, "yes", "no"]}, s) == "no"
    assert r({"and": [True, {"not": False}]}, s) is True
    assert r({"get_file": "f.txt"}, s) == "content"
    assert r({"digest": ["sha256", "x"]}, s).startswith("2d711642")
    assert r({"list_concat_unique": [[1, 2], [2, 3]]}, s) == [1, 2, 3]
    assert r({"contains": ["a", ["a"]]}, s) is True
    assert r({"make_url": {"host": "h", "port": 80, "path": "/p"}}, s) == "http://h:80/p"
    with pytest.raises(functions.FunctionError, match=r"The Parameter \(nope\)"):
        r({"get_param": "nope"}, s)


def test_parameters_types_and_constraints():
    schemas = parameters.parse_schemas({
        "n": {"type": "number", "constraints": [{"range": {"min": 1, "max": 5},
                                                  "description": "one to five"}]},
        "l": {"type": "comma_delimited_list", "default": "a,b"},
        "b": {"type": "boolean", "default": "yes"},
        "j": {"type": "json", "default": '{"k": 1}'},
        "s": {"type": "string", "hidden": True, "constraints": [
            {"allowed_pattern": "[a-z]+"}, {"length": {"max": 3}}]},
    }, {})
    ps = parameters.build(schemas, {"n": "3", "s": "abc"}, {}, IDENT, custom=None)
    assert ps.values["n"] == 3 and ps.values["l"] == ["a", "b"]
    assert ps.values["b"] is True and ps.values["j"] == {"k": 1}
    assert ps.shown()["s"] == "******"
    with pytest.raises(StackValidationFailed, match="one to five"):
        parameters.build(schemas, {"n": 9, "s": "a"}, {}, IDENT, custom=None)
    with pytest.raises(StackValidationFailed, match="is not a number"):
        parameters.build(schemas, {"n": "x", "s": "a"}, {}, IDENT, custom=None)
    with pytest.raises(StackValidationFailed, match="does not match pattern"):
        parameters.build(schemas, {"n": 1, "s": "A"}, {}, IDENT, custom=None)
    with pytest.raises(UserParameterMissing, match=r"The Parameter \(s\) was not provided"):
        parameters.build(schemas, {"n": 1}, {}, IDENT, custom=None)
    with pytest.raises(StackValidationFailed, match="was not defined in template"):
        parameters.build(schemas, {"n": 1, "s": "a", "zz": 1}, {}, IDENT, custom=None)
    # parameter_defaults fill in, and custom constraints call the checker
    ps = parameters.build(schemas, {"n": 1}, {"s": "ab"}, IDENT, custom=None)
    assert ps.values["s"] == "ab"
    custom = parameters.parse_schemas({"f": {"type": "string", "constraints": [
        {"custom_constraint": "nova.flavor"}]}}, {})
    with pytest.raises(StackValidationFailed, match="nope"):
        parameters.build(custom, {"f": "x"}, {}, IDENT, custom=lambda n, v: "nope")


def test_definition_dependencies_and_errors():
    d = defn("""
heat_template_version: 2016-10-14
parameters:
  flag: {type: boolean, default: false}
conditions:
  enabled: {get_param: flag}
resources:
  a: {type: OS::Heat::RandomString}
  b:
    type: OS::Heat::Value
    properties: {value: {get_attr: [a, value]}}
  c:
    type: OS::Heat::None
    depends_on: [b]
  skipped:
    type: OS::Heat::None
    condition: enabled
""")
    assert set(d.resources) == {"a", "b", "c"}
    assert d.resources["b"].requires == {"a"} and d.resources["c"].requires == {"b"}
    assert d.order().index("a") < d.order().index("b") < d.order().index("c")
    assert d.required_by("a") == ["b"]
    with pytest.raises(StackValidationFailed, match="Circular Dependency"):
        defn("heat_template_version: 2015-04-30\nresources:\n  a:\n    type: OS::Heat::None\n"
             "    properties: {x: {get_resource: b}}\n  b:\n    type: OS::Heat::None\n"
             "    properties: {x: {get_resource: a}}\n")
    with pytest.raises(StackValidationFailed, match=r'"depends_on".*\(line 4\)|depends_on'):
        defn("heat_template_version: 2015-04-30\nresources:\n  a:\n    type: OS::Heat::None\n"
             "    depends_on: zz\n")
    with pytest.raises(StackValidationFailed, match=r'Unknown function "get_attribute".*line 5'):
        defn("heat_template_version: 2015-04-30\nresources:\n  a:\n    type: OS::Heat::None\n"
             "    properties: {x: {get_attribute: [b, c]}}\n")
    with pytest.raises(StackValidationFailed, match='"repeat" is invalid in this context'):
        defn("heat_template_version: 2014-10-16\nresources:\n  a:\n    type: OS::Heat::None\n"
             "    properties: {x: {repeat: {for_each: {}, template: 1}}}\n")
    with pytest.raises(StackValidationFailed, match="could not be found"):
        defn("heat_template_version: 2015-04-30\nresources:\n  a:\n    type: My::Type\n")


def test_property_validation_paths():
    d = defn("heat_template_version: 2015-04-30\nresources:\n  r:\n"
             "    type: OS::Heat::RandomString\n    properties:\n      length: 0\n")
    with pytest.raises(StackValidationFailed,
                       match=r"resources.r.properties.length: : 0 is out of range"):
        d.validate_properties()
    d = defn("heat_template_version: 2015-04-30\nresources:\n  r:\n"
             "    type: OS::Heat::RandomString\n    properties:\n      lenght: 3\n")
    with pytest.raises(StackValidationFailed, match="Unknown Property lenght"):
        d.validate_properties()


def test_provider_template_registry_and_environment_view():
    files = {"n.yaml": "heat_template_version: 2015-04-30\nparameters:\n  x: {type: string}\n"}
    d = defn("heat_template_version: 2015-04-30\nresources:\n  r:\n    type: n.yaml\n"
             "    properties: {x: 1}\n", files=files)
    assert d.resources["r"].template_file == "n.yaml"
    assert d.environment_view()["resource_registry"] == {"n.yaml": "n.yaml", "resources": {}}
    with pytest.raises(StackValidationFailed, match="Could not fetch remote template"):
        defn("heat_template_version: 2015-04-30\nresources:\n  r:\n    type: other.yaml\n")
