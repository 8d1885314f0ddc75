"""OS::Neutron::SecurityGroup and SecurityGroupRule, through the network slice's
``svc.security_groups`` / ``svc.security_group_rules`` (see neutron.py for the shared base)."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import Conflict, NotFound
from pocketstack.services.orchestration.resources.base import Prop
from pocketstack.services.orchestration.resources.neutron import NeutronResource


_RULE = {
    "direction": Prop("string", "The direction in which the security group rule is applied.",
                      default="ingress", constraints=[{"allowed_values": ["ingress",
                                                                          "egress"]}]),
    "ethertype": Prop("string", "Ethertype of the traffic.", default="IPv4",
                      constraints=[{"allowed_values": ["IPv4", "IPv6"]}]),
    "port_range_min": Prop("integer", "The minimum port number in the range."),
    "port_range_max": Prop("integer", "The maximum port number in the range."),
    "protocol": Prop("string", "The protocol that is matched by the security group rule."),
    "remote_mode": Prop("string", "Whether to specify a remote group or a remote IP prefix.",
                        default="remote_ip_prefix", constraints=[
                            {"allowed_values": ["remote_ip_prefix", "remote_group_id"]}]),
    "remote_group_id": Prop("string", "The remote group ID to be associated with this "
                            "security group rule."),
    "remote_ip_prefix": Prop("string", "The remote IP prefix (CIDR) to be associated with "
                             "this security group rule."),
}


def _rule_body(res: NeutronResource, rule: dict[str, Any], sg_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"security_group_id": sg_id,
                            "direction": rule.get("direction") or "ingress",
                            "ethertype": rule.get("ethertype") or "IPv4"}
    for key in ("port_range_min", "port_range_max", "protocol", "remote_ip_prefix",
                "description"):
        if rule.get(key) is not None:
            body[key] = rule[key]
    group = rule.get("remote_group_id") or rule.get("remote_group")
    if group:
        body["remote_group_id"] = sg_id if group == "self" else \
            res.find("security_group", group, "security group")
        body.pop("remote_ip_prefix", None)
    return body


class SecurityGroup(NeutronResource):
    type_name = "OS::Neutron::SecurityGroup"
    description = "A resource for managing Neutron security groups."
    collection = "security_groups"
    properties_schema = {
        "name": Prop("string", "A string specifying a symbolic name for the security group.",
                     update_allowed=True),
        "description": Prop("string", "Description of the security group.",
                            update_allowed=True),
        "rules": Prop("list", "List of security group rules.", default=[],
                      update_allowed=True, schema=Prop("map", "A security group rule.",
                                                       schema=dict(_RULE))),
    }
    attributes_schema = {}
    direct = {"name": "name", "description": "description"}
    updatable = {"name", "description", "rules"}

    def _add_rules(self, rules: list[dict[str, Any]]) -> None:
        api = self.svc.security_group_rules
        for rule in rules:
            try:
                api.create(self.rt.ctx, _rule_body(self, rule, self.rt.physical_id))
            except Conflict:
                pass  # an identical rule exists already (e.g. the default egress ones)

    def handle_create(self) -> None:
        super().handle_create()
        if self.props.get("rules"):
            self._remove_rules(egress_only=True)
            self._add_rules(self.props["rules"])

    def _remove_rules(self, egress_only: bool = False) -> None:
        sg = self.show()
        for rule in sg.get("security_group_rules", []):
            if egress_only and rule.get("direction") != "egress":
                continue
            try:
                self.svc.security_group_rules.delete(self.rt.ctx, rule["id"])
            except NotFound:
                pass

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        super().handle_update(new_props, old_props, changed - {"rules"})
        if "rules" in changed:
            self._remove_rules()
            self._add_rules(new_props.get("rules") or [])


class SecurityGroupRule(NeutronResource):
    type_name = "OS::Neutron::SecurityGroupRule"
    description = "A resource for managing Neutron security group rules."
    collection = "security_group_rules"
    properties_schema = {
        "security_group": Prop("string", "Security group name or ID to add rule.",
                               required=True),
        "description": Prop("string", "Description of the security group rule."),
        "remote_group": Prop("string", "The remote group name or ID to be associated with "
                             "this security group rule."),
        **{k: v for k, v in _RULE.items() if k not in ("remote_mode", "remote_group_id")},
    }
    attributes_schema = {}

    def handle_create(self) -> None:
        sg = self.find("security_group", self.props["security_group"], "security group")
        obj = self.api.create(self.rt.ctx, _rule_body(self, self.props, sg))
        self.rt.set_physical_id(obj["id"])


PLUGINS = [SecurityGroup, SecurityGroupRule]
