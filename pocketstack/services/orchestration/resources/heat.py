"""OS::Heat::* resources that need no other service: test, random, value, groups,
nested stacks (OS::Heat::Stack and provider templates), wait conditions, configs."""

from __future__ import annotations

import copy
import json
import secrets
import string
import time
from typing import Any

from pocketstack.services.orchestration.engine import template as tmpl_mod
from pocketstack.services.orchestration.engine.errors import ResourceFailure
from pocketstack.services.orchestration.engine import functions
from pocketstack.services.orchestration.engine.functions import FunctionError
from pocketstack.services.orchestration.resources.base import Prop, Resource


def _sleep(rt: Any, secs: float) -> None:
    deadline = time.monotonic() + max(0.0, float(secs or 0))
    while time.monotonic() < deadline:
        rt.check_cancelled()
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


class TestResource(Resource):
    type_name = "OS::Heat::TestResource"
    description = "A resource which stores the string value that was provided."
    properties_schema = {
        "value": Prop("string", "The input string to be stored.", default="test_string",
                      update_allowed=True),
        "update_replace": Prop("boolean", "Value which can be set to trigger update replace "
                               "for the particular resource.", default=False,
                               update_allowed=True),
        "update_replace_value": Prop("string", "Some value that can be stored but can not be "
                                     "updated."),
        "fail": Prop("boolean", "Value which can be set to fail the resource operation to "
                     "test failure scenarios.", default=False, update_allowed=True),
        "client_name": Prop("string", "Client to poll.", default="", update_allowed=True),
        "entity_name": Prop("string", "Client entity to poll.", default="",
                            update_allowed=True),
        "wait_secs": Prop("number", "Seconds to wait after an action (-1 is infinite).",
                          default=0, update_allowed=True),
        "action_wait_secs": Prop("map", "Options for simulating waiting.", update_allowed=True,
                                 schema={k: Prop("number", f"Seconds to wait after a {k}.",
                                                 update_allowed=True)
                                         for k in ("create", "update", "delete")}),
        "attr_wait_secs": Prop("number", "Number value for timeout during resolving output "
                               "value.", default=0, update_allowed=True),
        "constraint_prop_secs": Prop("number", "Number value for delay during resolve "
                                     "constraint.", default=0, update_allowed=True),
    }
    attributes_schema = {"output": "The string that was stored. This value is also available "
                                   "by referencing the resource."}

    def _wait(self, action: str) -> None:
        secs = None
        per = self.props.get("action_wait_secs") or {}
        if per.get(action) is not None:
            secs = per[action]
        if secs is None:
            secs = self.props.get("wait_secs") or 0
        if secs and secs < 0:
            secs = 3600 * 24
        _sleep(self.rt, secs)

    def handle_create(self) -> None:
        if self.props.get("fail"):
            raise ResourceFailure(f"ValueError: resources.{self.rt.name}: Test Resource failed "
                                  f"{self.rt.name}")
        self.rt.data_set("value", self.props.get("value"))
        self.rt.set_physical_id(self.rt.physical_resource_name())
        self._wait("create")

    def needs_replace(self, changed: set[str]) -> bool:
        return bool(self.props.get("update_replace")) or "update_replace_value" in changed

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        if new_props.get("fail"):
            raise ResourceFailure(f"ValueError: resources.{self.rt.name}: Test Resource failed "
                                  f"{self.rt.name}")
        self.rt.data_set("value", new_props.get("value"))
        self._wait("update")

    def handle_delete(self) -> None:
        self._wait("delete")

    def get_attribute(self, name: str) -> Any:
        if name == "output":
            _sleep(self.rt, self.props.get("attr_wait_secs") or 0)
            return self.rt.data.get("value")
        return super().get_attribute(name)


class RandomString(Resource):
    type_name = "OS::Heat::RandomString"
    description = "A resource which generates a random string."
    properties_schema = {
        "length": Prop("integer", "Length of the string to generate.", default=32,
                       constraints=[{"range": {"min": 1, "max": 512}}]),
        "sequence": Prop("string", "Sequence of characters to build the random string from.",
                         constraints=[{"allowed_values": [
                             "lettersdigits", "letters", "lowercase", "uppercase", "digits",
                             "hexdigits", "octdigits"]}]),
        "character_classes": Prop("list", "A list of character class and their constraints "
                                  "to generate the random string from."),
        "character_sequences": Prop("list", "A list of character sequences and their "
                                    "constraints to generate the random string from."),
        "salt": Prop("string", "Value which can be set or changed on stack update to trigger "
                     "the resource for replacement with a new random string."),
    }
    attributes_schema = {"value": "The random string generated by this resource. This value "
                                  "is also available by referencing the resource."}
    SEQUENCES = {"lettersdigits": string.ascii_letters + string.digits,
                 "letters": string.ascii_letters, "lowercase": string.ascii_lowercase,
                 "uppercase": string.ascii_uppercase, "digits": string.digits,
                 "hexdigits": string.digits + "ABCDEF", "octdigits": string.octdigits}

    def handle_create(self) -> None:
        length = self.props.get("length") or 32
        chars: list[str] = []
        pool = ""
        for cls in self.props.get("character_classes") or []:
            seq = self.SEQUENCES.get((cls or {}).get("class", "lettersdigits"), "")
            pool += seq
            chars += [secrets.choice(seq) for _ in range(int((cls or {}).get("min", 1)))]
        for cs in self.props.get("character_sequences") or []:
            seq = str((cs or {}).get("sequence", ""))
            if seq:
                pool += seq
                chars += [secrets.choice(seq) for _ in range(int((cs or {}).get("min", 1)))]
        if not pool:
            pool = self.SEQUENCES[self.props.get("sequence") or "lettersdigits"]
        if len(chars) > length:
            raise ResourceFailure(f"StackValidationFailed: resources.{self.rt.name}: Length "
                                  "is too short for the requested character minimums")
        chars += [secrets.choice(pool) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        self.rt.data_set("value", "".join(chars))
        self.rt.set_physical_id(self.rt.physical_resource_name())

    def get_attribute(self, name: str) -> Any:
        if name == "value":
            return self.rt.data.get("value")
        return super().get_attribute(name)

    def ref_id(self) -> Any:
        return self.rt.physical_id or self.rt.name


class Value(Resource):
    type_name = "OS::Heat::Value"
    description = "A resource which exposes its value property as an attribute."
    properties_schema = {
        "value": Prop("any", "The expression to generate the \"value\" attribute.",
                      required=True, update_allowed=True),
        "type": Prop("string", "The type of the value property.", update_allowed=True,
                     constraints=[{"allowed_values": ["string", "number",
                                                      "comma_delimited_list", "json",
                                                      "boolean"]}]),
    }
    attributes_schema = {"value": "The value generated by this resource's properties "
                                  "\"value\" expression, with type determined from the "
                                  "properties \"type\"."}

    def handle_create(self) -> None:
        self.rt.set_physical_id(self.rt.physical_resource_name())

    def needs_replace(self, changed: set[str]) -> bool:
        return False

    def get_attribute(self, name: str) -> Any:
        if name == "value":
            return self.props.get("value")
        return super().get_attribute(name)


def _load_template(rt: Any, key: str) -> dict[str, Any]:
    files = rt.run.files
    if key not in files:
        raise ResourceFailure(f'StackValidationFailed: resources.{rt.name}: Could not fetch '
                              f'remote template "{key}"')
    data, _ = tmpl_mod.parse(files[key])
    return data


class NestedStackMixin(Resource):
    """Common behaviour of resources backed by a nested stack."""

    def handle_delete(self) -> None:
        self.rt.delete_nested()

    def ref_id(self) -> Any:
        return self.rt.nested_stack_id or self.rt.physical_id or self.rt.name

    def nested_output(self, key: str) -> Any:
        run = self.rt.nested_run()
        if run is None:
            return None
        outputs = run.defn.outputs
        if key not in outputs:
            raise KeyError(key)
        from pocketstack.services.orchestration.engine import functions

        try:
            return functions.resolve(outputs[key].get("value"), run.scope())
        except FunctionError as exc:
            raise FunctionError(f"Error in {self.rt.name} output {key}: {exc}") from None

    def nested_outputs(self) -> dict[str, Any]:
        run = self.rt.nested_run()
        if run is None:
            return {}
        out = {}
        for key in run.defn.outputs:
            try:
                out[key] = self.nested_output(key)
            except FunctionError:
                out[key] = None
        return out

    def handle_suspend(self) -> None:
        run = self.rt.nested_run()
        if run is not None:
            run.engine.simple_action(run, "SUSPEND")

    def handle_resume(self) -> None:
        run = self.rt.nested_run()
        if run is not None:
            run.engine.simple_action(run, "RESUME")


class TemplateResource(NestedStackMixin):
    """A resource whose type is a template file (a provider template)."""

    type_name = "__template__"
    strict_properties = False

    def _template(self) -> dict[str, Any]:
        key = self.rt.data.get("_template_file") or self.rt.row.type
        return _load_template(self.rt, key)

    def _params(self) -> dict[str, Any]:
        return {k: v for k, v in (self.props or {}).items() if v is not None}

    def handle_create(self) -> None:
        self.rt.create_nested(self._template(), self._params())

    def needs_replace(self, changed: set[str]) -> bool:
        return False

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        self.rt.update_nested(self._template(), self._params())

    def ref_id(self) -> Any:
        try:
            return self.nested_output("OS::stack_id")
        except KeyError:
            return super().ref_id()

    def get_attribute(self, name: str) -> Any:
        if name == "OS::stack_id":
            return self.rt.nested_stack_id
        if name == "show":
            return self.nested_outputs()
        return self.nested_output(name)

    def all_attributes(self) -> dict[str, Any]:
        return self.nested_outputs()

    def nested_definition(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return self._template(), self._params()


class HeatStack(NestedStackMixin):
    type_name = "OS::Heat::Stack"
    description = "A resource for managing a nested stack in this cloud."
    properties_schema = {
        "context": Prop("map", "Context for this stack."),
        "template": Prop("any", "Template that specifies the stack to be created as a "
                         "resource.", required=True, update_allowed=True),
        "timeout": Prop("integer", "Number of minutes to wait for this stack creation.",
                        update_allowed=True),
        "parameters": Prop("map", "Set of parameters passed to this stack.", default={},
                           update_allowed=True),
    }
    attributes_schema = {"stack_name": "Name of the stack.",
                         "outputs": "A dict of key-value pairs output from the stack."}

    def _template(self) -> dict[str, Any]:
        t = self.props.get("template")
        data, _ = tmpl_mod.parse(t)
        return data

    def handle_create(self) -> None:
        self.rt.create_nested(self._template(), dict(self.props.get("parameters") or {}))

    def needs_replace(self, changed: set[str]) -> bool:
        return "context" in changed

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        self.rt.update_nested(self._template(), dict(new_props.get("parameters") or {}))

    def get_attribute(self, name: str) -> Any:
        if name == "outputs":
            return self.nested_outputs()
        if name == "stack_name":
            run = self.rt.nested_run()
            return run.stack_name if run else None
        return super().get_attribute(name)

    def nested_definition(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return self._template(), dict(self.props.get("parameters") or {})


class ResourceGroup(NestedStackMixin):
    type_name = "OS::Heat::ResourceGroup"
    description = "Creates one or more identically configured nested resources."
    properties_schema = {
        "count": Prop("integer", "The number of resources to create.", default=1,
                      update_allowed=True, constraints=[{"range": {"min": 0}}]),
        "index_var": Prop("string", "A variable that this resource will use to replace with "
                          "the current index of a given resource in the group.",
                          default="%index%"),
        "resource_def": Prop("map", "Resource definition for the resources in the group.",
                             required=True, update_allowed=True, schema={
                                 "type": Prop("string", "The type of the resources in the "
                                              "group.", required=True),
                                 "properties": Prop("map", "Property values for the "
                                                    "resources in the group."),
                                 "metadata": Prop("map", "Supplied metadata for the "
                                                  "resources in the group."),
                             }),
        "removal_policies": Prop("list", "Policies for removal of resources on update.",
                                 default=[], update_allowed=True),
        "removal_policies_mode": Prop("string", "How to handle changes to removal_policies "
                                      "on update.", default="append", update_allowed=True),
    }
    attributes_schema = {
        "refs": "A list of resource IDs for the resources in the group.",
        "refs_map": "A map of resource names to IDs for the resources in the group.",
        "attributes": "A map of resource names to the specified attribute of each individual "
                      "resource.",
        "removed_rsrc_list": "A list of removed resource names.",
    }

    def _template(self, props: dict[str, Any] | None = None) -> dict[str, Any]:
        props = props or self.props
        index_var = props.get("index_var") or "%index%"
        rdef = props.get("resource_def") or {}
        blacklist = set()
        for pol in props.get("removal_policies") or []:
            for item in (pol or {}).get("resource_list", []) or []:
                blacklist.add(str(item))
        resources: dict[str, Any] = {}
        i = 0
        while len(resources) < (props.get("count") or 0):
            if str(i) not in blacklist:
                d = {"type": rdef.get("type")}
                if rdef.get("properties") is not None:
                    d["properties"] = _replace_index(copy.deepcopy(rdef["properties"]),
                                                     index_var, str(i))
                if rdef.get("metadata") is not None:
                    d["metadata"] = rdef["metadata"]
                resources[str(i)] = d
            i += 1
        return {"heat_template_version": "2015-04-30", "resources": resources}

    def handle_create(self) -> None:
        self.rt.create_nested(self._template(), {})

    def needs_replace(self, changed: set[str]) -> bool:
        return "index_var" in changed

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        self.rt.update_nested(self._template(new_props), {})

    def _members(self) -> list[tuple[str, Any]]:
        run = self.rt.nested_run()
        if run is None:
            return []
        names = sorted(run.rows, key=lambda n: int(n) if n.isdigit() else 1 << 30)
        return [(n, run) for n in names]

    def _member_attr(self, run: Any, name: str, attr: str, path: list[Any]) -> Any:
        return run.scope().attribute(name, attr, path)

    def get_attribute(self, name: str) -> Any:
        return self.get_attribute_path(name, [])

    def get_attribute_path(self, name: str, path: list[Any]) -> Any:
        """``get_attr: [group, name, *path]`` as Heat's ResourceGroup.get_attribute: the
        path selects inside each member's attribute (``attributes``: path[0] names the
        member attribute, the map is member name -> value), inside the list for refs."""
        members = self._members()
        if name in ("refs", "refs_map", "removed_rsrc_list", "show"):
            value: Any = ([run.scope().resource_ref(n) for n, run in members]
                          if name == "refs" else
                          {n: run.scope().resource_ref(n) for n, run in members}
                          if name == "refs_map" else [] if name == "removed_rsrc_list"
                          else None)
            for key in path:
                value = functions._index(value, key)
            return value
        if name == "attributes":
            if not path:
                raise FunctionError(f"The Referenced Attribute ({self.rt.name} attributes) "
                                    "is incorrect.")
            return {n: self._member_attr(run, n, str(path[0]), list(path[1:]))
                    for n, run in members}
        if name.startswith("resource."):
            parts = name.split(".", 2)
            idx = parts[1]
            for n, run in members:
                if n == idx:
                    if len(parts) == 3:
                        return self._member_attr(run, n, parts[2], list(path))
                    value = run.scope().resource_ref(n)
                    for key in path:
                        value = functions._index(value, key)
                    return value
            raise FunctionError(f"Member '{idx}' not found in group resource "
                                f"'{self.rt.name}'.")
        return [self._member_attr(run, n, name, list(path)) for n, run in members]

    def nested_definition(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        return self._template(), {}


def _replace_index(value: Any, var: str, idx: str) -> Any:
    if isinstance(value, str):
        return value.replace(var, idx)
    if isinstance(value, dict):
        return {k: _replace_index(v, var, idx) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_index(v, var, idx) for v in value]
    return value


class WaitConditionHandle(Resource):
    type_name = "OS::Heat::WaitConditionHandle"
    description = "Resource for handling signals received by WaitCondition."
    signal_supported = True
    attributes_schema = {
        "token": "Secret that authorises a signal to this handle.",
        "endpoint": "Endpoint/url which can be used for signalling handle.",
        "curl_cli": "Convenience attribute, provides curl CLI command prefix, which can be "
                    "used for signalling handle completion or failure.",
        "signal": "JSON serialized map that includes the endpoint, token and/or other "
                  "attributes the client must use for signalling this handle.",
    }

    def handle_create(self) -> None:
        self.rt.data_set("secret", secrets.token_urlsafe(24))
        self.rt.data_set("signals", {})
        self.rt.set_physical_id(self.rt.physical_resource_name())

    def _endpoint(self) -> str:
        base = self.rt.cloud.settings.base_url
        return f"{base}/orchestration/v1/signal/{self.rt.data.get('secret')}"

    def get_attribute(self, name: str) -> Any:
        if name == "token":
            return self.rt.data.get("secret")
        if name == "endpoint":
            return self._endpoint()
        if name == "curl_cli":
            return ("curl -i -X POST -H 'Content-Type: application/json' "
                    f"-H 'Accept: application/json' {self._endpoint()}")
        if name == "signal":
            return json.dumps({"alarm_url": self._endpoint()})
        return super().get_attribute(name)

    def handle_signal(self, data: Any) -> None:
        if not isinstance(data, dict):
            data = {"data": data}
        status = str(data.get("status", "SUCCESS")).upper()
        if status not in ("SUCCESS", "FAILURE"):
            raise ResourceFailure(f"Metadata format invalid: status {status} is not "
                                  "SUCCESS or FAILURE")
        signals = dict(self.rt.data.get("signals") or {})
        sid = str(data.get("id") or len(signals) + 1)
        signals[sid] = {"status": status, "reason": data.get("reason", "Signal " + sid +
                                                             " received"),
                        "data": data.get("data")}
        self.rt.data_set("signals", signals)


class WaitCondition(Resource):
    type_name = "OS::Heat::WaitCondition"
    description = "Resource for handling signals received by WaitConditionHandle."
    properties_schema = {
        "handle": Prop("string", "A reference to the wait condition handle used to signal "
                       "this wait condition.", required=True),
        "timeout": Prop("number", "The number of seconds to wait for the correct number of "
                        "signals to arrive.", required=True,
                        constraints=[{"range": {"min": 1, "max": 43200}}]),
        "count": Prop("integer", "The number of success signals that must be received before "
                      "the stack creation process continues.", default=1, update_allowed=True,
                      constraints=[{"range": {"min": 1}}]),
    }
    attributes_schema = {"data": "JSON string containing data associated with wait condition "
                                 "signals sent to the handle."}

    def _handle_signals(self) -> dict[str, Any]:
        run = self.rt.run
        run.load_rows()
        for row in run.rows.values():
            if row.physical_resource_id == self.props.get("handle"):
                return row.data.get("signals") or {}
        raise ResourceFailure(f"StackValidationFailed: resources.{self.rt.name}: handle "
                              f"{self.props.get('handle')} is not a WaitConditionHandle of "
                              "this stack")

    def handle_create(self) -> None:
        self.rt.set_physical_id(self.rt.physical_resource_name())
        deadline = time.monotonic() + float(self.props.get("timeout") or 1)
        count = self.props.get("count") or 1
        while True:
            signals = self._handle_signals()
            failures = [s for s in signals.values() if s.get("status") == "FAILURE"]
            if failures:
                raise ResourceFailure(f"WaitConditionFailure: resources.{self.rt.name}: "
                                      f"{failures[0].get('reason')}")
            if sum(1 for s in signals.values() if s.get("status") == "SUCCESS") >= count:
                return
            if time.monotonic() > deadline:
                raise ResourceFailure(f"WaitConditionTimeout: resources.{self.rt.name}: "
                                      f"{len(signals)} of {count} received")
            self.rt.check_cancelled()
            time.sleep(0.2)

    def get_attribute(self, name: str) -> Any:
        if name == "data":
            try:
                signals = self._handle_signals()
            except ResourceFailure:
                return None
            return json.dumps({k: v.get("data") for k, v in signals.items()})
        return super().get_attribute(name)


class SoftwareConfig(Resource):
    type_name = "OS::Heat::SoftwareConfig"
    description = "A resource for describing and storing software configuration."
    properties_schema = {
        "group": Prop("string", "Namespace to group this software config by when delivered "
                      "to a server.", default="Heat::Ungrouped"),
        "config": Prop("string", "Configuration script or manifest which specifies what "
                       "actual configuration is performed."),
        "options": Prop("map", "Map containing options specific to the configuration "
                        "management tool used by this resource."),
        "inputs": Prop("list", "Schema representing the inputs that this software config is "
                       "expecting."),
        "outputs": Prop("list", "Schema representing the outputs that this software config "
                        "will produce."),
    }
    attributes_schema = {"config": "The config value of the software config."}

    def handle_create(self) -> None:
        svc = self.rt.run.engine.service
        cfg = svc.create_software_config(self.rt.ctx, {
            "name": self.rt.physical_resource_name(), "group": self.props.get("group"),
            "config": self.props.get("config") or "", "options": self.props.get("options"),
            "inputs": self.props.get("inputs") or [], "outputs": self.props.get("outputs") or []})
        self.rt.set_physical_id(cfg["id"])

    def handle_delete(self) -> None:
        if self.rt.physical_id:
            self.rt.run.engine.service.delete_software_config(self.rt.ctx, self.rt.physical_id,
                                                               missing_ok=True)

    def get_attribute(self, name: str) -> Any:
        if name == "config":
            return self.props.get("config")
        return super().get_attribute(name)


PLUGINS = [TestResource, RandomString, Value, TemplateResource, HeatStack, ResourceGroup,
           WaitConditionHandle, WaitCondition, SoftwareConfig]


