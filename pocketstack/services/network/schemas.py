"""Request bodies, declared as Neutron declares them: an attribute map per resource.

Neutron validates bodies against ``RESOURCE_ATTRIBUTE_MAP`` (allow_post / allow_put /
validator / default); the clients and Tempest depend on its exact behaviour (unknown
attributes are a 400 "Unrecognized attribute(s)", read-only ones a 400 on PUT), so we keep
that shape instead of pydantic models. ``parse_body`` returns a plain dict of validated,
converted values; defaults are applied by the service (they depend on context).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pocketstack.errors import BadRequest

Validator = Callable[[str, Any], Any]

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}\Z")
MAC_RE = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\Z")


def invalid(name: str, reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for {name}. Reason: {reason}.", kind="HTTPBadRequest")


# -- validators: (name, value) -> converted value, or raise ------------------------------

def string(max_len: int = 255, *, nullable: bool = False) -> Validator:
    def v(name: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            raise invalid(name, f"'{value}' is not a valid string")
        if len(value) > max_len:
            raise invalid(name, f"'{value}' exceeds maximum length of {max_len}")
        return value
    return v


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise invalid(name, f"'{value}' cannot be converted to boolean")


def integer(lo: int | None = None, hi: int | None = None, *, nullable: bool = False) -> Validator:
    def v(name: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool):
            raise invalid(name, f"'{value}' is not an integer")
        try:
            num = int(value)
        except (TypeError, ValueError):
            raise invalid(name, f"'{value}' is not an integer") from None
        if isinstance(value, float) and num != value:
            raise invalid(name, f"'{value}' is not an integer")
        if lo is not None and num < lo:
            raise invalid(name, f"'{num}' is too small - must be at least '{lo}'")
        if hi is not None and num > hi:
            raise invalid(name, f"'{num}' is too large - must be no larger than '{hi}'")
        return num
    return v


def uuid(*, nullable: bool = False) -> Validator:
    def v(name: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not UUID_RE.match(value):
            raise invalid(name, f"'{value}' is not a valid UUID")
        return value
    return v


def uuid_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise invalid(name, f"'{value}' is not a list")
    out = []
    for item in value:
        uuid()(name, item)
        if item not in out:
            out.append(item)
    return out


def ip_address(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid(name, f"'{value}' is not a valid IP address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid(name, f"'{value}' is not a valid IP address") from None


def ip_or_none(name: str, value: Any) -> str | None:
    return None if value is None else ip_address(name, value)


def cidr(name: str, value: Any) -> str:
    """neutron-lib's validate_subnet: a prefix is required, host bits are fine
    ('10.99.99.0/16'); Neutron then stores the network ('10.99.0.0/16'), and so do we."""
    if not isinstance(value, str) or "/" not in value:
        raise invalid(name, f"'{value}' is not a valid IP subnet")
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        raise invalid(name, f"'{value}' is not a valid IP subnet") from None
    # netaddr's str() must give the input back for IPv4 (no '010.0.0.0/8', no '/08')
    if iface.version == 4 and f"{iface.ip}/{iface.network.prefixlen}" != value:
        raise invalid(name, f"'{value}' is not a valid IP subnet")
    return str(iface.network)


def route_cidr(name: str, value: Any) -> str:
    """neutron-lib's validate_route_cidr (host routes): no host bits, not loopback."""
    if not isinstance(value, str) or "/" not in value:
        raise invalid(name, f"'{value}' is not a valid CIDR")
    try:
        net = ipaddress.ip_network(value)
    except ValueError:
        raise invalid(name, f"'{value}' is not a valid CIDR") from None
    if net.is_loopback:
        raise invalid(name, f"'{value}' is not a routable CIDR")
    return str(net)


def cidr_or_none(name: str, value: Any) -> str | None:
    return None if value is None else cidr(name, value)


def ip_or_cidr(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(name, f"'{value}' is not a valid IP prefix")
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise invalid(name, f"'{value}' is not a valid IP prefix") from None


def ip_or_cidr_as_given(name: str, value: Any) -> str:
    ip_or_cidr(name, value)
    if value is None:
        raise invalid(name, "'None' is not a valid IP address")
    return value


def mac(name: str, value: Any) -> str:
    """neutron-lib's validate_mac_address: all-zero and broadcast are refused; a multicast
    bit is refused on port create only (Ports.create_in), as Neutron does."""
    if not isinstance(value, str) or not MAC_RE.match(value):
        raise invalid(name, f"'{value}' is not a valid MAC address")
    value = value.lower().replace("-", ":")
    if value in ("00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff"):
        raise invalid(name, f"'{value}' is not a valid MAC address")
    return value


def is_multicast_mac(value: str) -> bool:
    return bool(int(value[:2], 16) & 1)


def one_of(*choices: Any, nullable: bool = False) -> Validator:
    def v(name: str, value: Any) -> Any:
        if value is None and nullable:
            return None
        if value not in choices:
            raise invalid(name, f"'{value}' is not in {list(choices)}")
        return value
    return v


def list_of(item: Validator, *, max_items: int | None = None, unique: bool = False) -> Validator:
    def v(name: str, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise invalid(name, f"'{value}' is not a list")
        out = [item(name, x) for x in value]
        if unique and len({repr(x) for x in out}) != len(out):
            raise invalid(name, f"Duplicate items in the list: '{', '.join(map(str, value))}'")
        if max_items is not None and len(out) > max_items:
            raise invalid(name, f"'{value}' exceeds the maximum number of items {max_items}")
        return out
    return v


def dict_of(fields: dict[str, Validator], required: tuple[str, ...] = ()) -> Validator:
    def v(name: str, value: Any) -> Any:
        if not isinstance(value, dict):
            raise invalid(name, f"'{value}' is not a dictionary")
        extra = set(value) - set(fields)
        if extra:
            raise invalid(name, f"Unexpected keys supplied: {', '.join(sorted(extra))}")
        for key in required:
            if key not in value:
                raise invalid(name, f"Validation of dictionary's keys failed. Expected keys: "
                                    f"{set(required)} Provided keys: {set(value)}")
        return {k: fields[k](name, x) for k, x in value.items()}
    return v


def subports(name: str, value: Any) -> list[dict]:
    """neutron-lib's validate_subports, before any lookup: a port UUID each, a segmentation
    type and id each (unless the type is 'inherit'), no segmentation id twice."""
    if not isinstance(value, list):
        raise invalid(name, f"'{value}' is not a list")
    out, seen = [], set()
    for item in value:
        if not isinstance(item, dict):
            raise invalid(name, f"Invalid data format for subport: '{item}'")
        if "port_id" not in item:
            raise invalid(name, f"A valid port UUID must be specified for subport '{item}'")
        extra = set(item) - {"port_id", "segmentation_type", "segmentation_id"}
        if extra:
            raise invalid(name, f"Unexpected keys supplied: {', '.join(sorted(extra))}")
        sub = {"port_id": uuid()(name, item["port_id"])}
        if item.get("segmentation_type") == "inherit":
            sub["segmentation_type"] = "inherit"
            if item.get("segmentation_id") is not None:
                sub["segmentation_id"] = integer(1, 4094)(name, item["segmentation_id"])
        else:
            if "segmentation_type" not in item or "segmentation_id" not in item:
                raise invalid(name, f"A segmentation type and a segmentation ID must be "
                                    f"specified for subport '{item}'")
            sub["segmentation_type"] = one_of("vlan", "inherit")(name,
                                                                 item["segmentation_type"])
            sub["segmentation_id"] = integer(1, 4094)(name, item["segmentation_id"])
            if sub["segmentation_id"] in seen:
                raise invalid(name, f"Segmentation ID '{sub['segmentation_id']}' for "
                                    f"'{item['port_id']}' is not unique")
            seen.add(sub["segmentation_id"])
        out.append(sub)
    return out


def anything(name: str, value: Any) -> Any:
    return value


def dict_any(name: str, value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(name, f"'{value}' is not a dictionary")
    return value


def none_only(name: str, value: Any) -> Any:
    if value is not None:
        raise invalid(name, "segments are not supported; only null is accepted")
    return None


@dataclass(frozen=True)
class Attr:
    validate: Validator = anything
    post: bool = True
    put: bool = True
    required: bool = False


NAME = Attr(string(255))
DESC = Attr(string(255))
PROJECT = Attr(string(255), put=False)
BOOL = Attr(boolean)

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")

ATTRIBUTES: dict[str, dict[str, Attr]] = {
    "network": {
        "name": NAME, "description": DESC, "admin_state_up": BOOL, "shared": BOOL,
        "router:external": BOOL, "tenant_id": PROJECT, "project_id": PROJECT,
        "provider:network_type": Attr(one_of("flat", "vlan", "vxlan", "local", "geneve"),
                                      put=False),
        "provider:physical_network": Attr(string(64, nullable=True), put=False),
        "provider:segmentation_id": Attr(integer(nullable=True), put=False),
        "mtu": Attr(integer(68, 9000)), "port_security_enabled": BOOL,
        "availability_zone_hints": Attr(list_of(string(255)), put=False),
        "dns_domain": Attr(string(255)), "is_default": BOOL,
        "qos_policy_id": Attr(uuid(nullable=True)),
    },
    "subnet": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "network_id": Attr(uuid(), put=False, required=True),
        "ip_version": Attr(one_of(4, 6), put=False),
        "cidr": Attr(cidr, put=False), "subnetpool_id": Attr(uuid(nullable=True), put=False),
        "prefixlen": Attr(integer(0, 128), put=False),
        "use_default_subnetpool": Attr(boolean, put=False),
        "gateway_ip": Attr(ip_or_none),
        "allocation_pools": Attr(list_of(dict_of({"start": ip_address, "end": ip_address},
                                                 ("start", "end")))),
        "dns_nameservers": Attr(list_of(ip_address, unique=True)),
        "host_routes": Attr(list_of(dict_of({"destination": route_cidr,
                                             "nexthop": ip_address},
                                            ("destination", "nexthop")))),
        "enable_dhcp": BOOL,
        "ipv6_ra_mode": Attr(one_of(*IPV6_MODES, nullable=True), put=False),
        "ipv6_address_mode": Attr(one_of(*IPV6_MODES, nullable=True), put=False),
        "service_types": Attr(list_of(string(255))), "segment_id": Attr(none_only),
        "dns_publish_fixed_ip": BOOL,
    },
    "port": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "network_id": Attr(uuid(), put=False, required=True), "admin_state_up": BOOL,
        "mac_address": Attr(mac),
        "fixed_ips": Attr(list_of(dict_of({"subnet_id": uuid(), "ip_address": ip_address}))),
        "device_id": Attr(string(255)), "device_owner": Attr(string(255)),
        "security_groups": Attr(lambda n, v: uuid_list(n, v or [])),
        "allowed_address_pairs": Attr(list_of(dict_of(
            {"ip_address": ip_or_cidr_as_given, "mac_address": mac}, ("ip_address",)))),
        "port_security_enabled": BOOL,
        "binding:host_id": Attr(string(255)), "binding:profile": Attr(dict_any),
        "binding:vnic_type": Attr(one_of("normal", "direct", "macvtap", "baremetal",
                                         "direct-physical", "virtio-forwarder", "smart-nic",
                                         "remote-managed", "vdpa")),
        "extra_dhcp_opts": Attr(list_of(dict_any)), "dns_name": Attr(string(255)),
        "qos_policy_id": Attr(uuid(nullable=True)),
        "propagate_uplink_status": BOOL,
    },
    "router": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "admin_state_up": BOOL,
        "external_gateway_info": Attr(lambda n, v: None if v is None else dict_of({
            "network_id": uuid(), "enable_snat": boolean,
            "external_fixed_ips": list_of(dict_of({"subnet_id": uuid(),
                                                   "ip_address": ip_address})),
            "qos_policy_id": uuid(nullable=True)})(n, v)),
        "routes": Attr(list_of(dict_of({"destination": route_cidr, "nexthop": ip_address},
                                       ("destination", "nexthop"))), post=False),
        "distributed": BOOL, "ha": BOOL,
        "availability_zone_hints": Attr(list_of(string(255)), put=False),
        "enable_ndp_proxy": BOOL,
    },
    "floatingip": {
        "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "floating_network_id": Attr(uuid(), put=False, required=True),
        "floating_ip_address": Attr(ip_address, put=False),
        "subnet_id": Attr(uuid(nullable=True), put=False),
        "port_id": Attr(uuid(nullable=True)), "fixed_ip_address": Attr(ip_or_none),
        "dns_name": Attr(string(255), put=False), "dns_domain": Attr(string(255), put=False),
        "qos_policy_id": Attr(uuid(nullable=True)),
    },
    "security_group": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "stateful": BOOL,
    },
    "security_group_rule": {
        "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "security_group_id": Attr(uuid(), put=False, required=True),
        "direction": Attr(one_of("ingress", "egress"), put=False, required=True),
        "ethertype": Attr(one_of("IPv4", "IPv6"), put=False),
        "protocol": Attr(anything, put=False),
        "port_range_min": Attr(integer(nullable=True), put=False),
        "port_range_max": Attr(integer(nullable=True), put=False),
        "remote_ip_prefix": Attr(ip_or_cidr, put=False),
        "remote_group_id": Attr(string(255, nullable=True), put=False),
        "remote_address_group_id": Attr(uuid(nullable=True), put=False),
    },
    "rbac_policy": {
        "tenant_id": PROJECT, "project_id": PROJECT,
        "object_type": Attr(one_of("network", "qos_policy", "security_group",
                                   "address_scope", "subnetpool", "address_group",
                                   "bgpvpn"), put=False, required=True),
        "object_id": Attr(uuid(), put=False, required=True),
        "action": Attr(one_of("access_as_shared", "access_as_external"), put=False,
                       required=True),
        "target_tenant": Attr(string(255), required=True),
        "target_project": Attr(string(255)),
    },
    "metering_label": {
        "name": NAME, "description": Attr(string(1024)), "tenant_id": PROJECT,
        "project_id": PROJECT, "shared": Attr(boolean, put=False),
    },
    "metering_label_rule": {
        "tenant_id": PROJECT, "project_id": PROJECT,
        "metering_label_id": Attr(uuid(), put=False, required=True),
        "direction": Attr(one_of("ingress", "egress"), put=False),
        "excluded": Attr(boolean, put=False),
        "remote_ip_prefix": Attr(cidr_or_none, put=False),
        "source_ip_prefix": Attr(cidr_or_none, put=False),
        "destination_ip_prefix": Attr(cidr_or_none, put=False),
    },
    "subnetpool": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "prefixes": Attr(list_of(cidr)), "default_prefixlen": Attr(integer(0, 128)),
        "min_prefixlen": Attr(integer(0, 128)), "max_prefixlen": Attr(integer(0, 128)),
        "shared": Attr(boolean, put=False), "is_default": BOOL,
        "default_quota": Attr(integer(0, nullable=True)),
        "address_scope_id": Attr(uuid(nullable=True)),
    },
    "address_scope": {
        "name": NAME, "tenant_id": PROJECT, "project_id": PROJECT,
        "ip_version": Attr(one_of(4, 6), put=False, required=True), "shared": BOOL,
    },
    "qos_policy": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "shared": BOOL, "is_default": BOOL,
    },
    "bandwidth_limit_rule": {
        "max_kbps": Attr(integer(0, 2 ** 31 - 1), required=True),
        "max_burst_kbps": Attr(integer(0, 2 ** 31 - 1)),
        "direction": Attr(one_of("ingress", "egress")),
    },
    "dscp_marking_rule": {
        "dscp_mark": Attr(one_of(0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36,
                                 38, 40, 46, 48, 56), required=True),
    },
    "minimum_bandwidth_rule": {
        "min_kbps": Attr(integer(0, 2 ** 31 - 1), required=True),
        "direction": Attr(one_of("ingress", "egress")),
    },
    "packet_rate_limit_rule": {
        "max_kpps": Attr(integer(0, 2 ** 31 - 1), required=True),
        "max_burst_kpps": Attr(integer(0, 2 ** 31 - 1)),
        "direction": Attr(one_of("ingress", "egress")),
    },
    "minimum_packet_rate_rule": {
        "min_kpps": Attr(integer(0, 2 ** 31 - 1), required=True),
        "direction": Attr(one_of("any", "ingress", "egress")),
    },
    "trunk": {
        "name": NAME, "description": DESC, "tenant_id": PROJECT, "project_id": PROJECT,
        "admin_state_up": BOOL, "port_id": Attr(uuid(), put=False, required=True),
        "sub_ports": Attr(subports, put=False),
    },
    # remove_subports: the port is what counts; Neutron takes whole subport dicts too
    "subport_ref": {"port_id": Attr(uuid(), required=True),
                    "segmentation_type": Attr(anything), "segmentation_id": Attr(anything)},
    "flavor": {
        "name": NAME, "description": Attr(string(1024)),
        "service_type": Attr(string(36), put=False, required=True), "enabled": BOOL,
        "service_profiles": Attr(lambda n, v: uuid_list(n, v or [])),
        "tenant_id": PROJECT, "project_id": PROJECT,
    },
    "service_profile": {
        "description": Attr(string(1024)), "driver": Attr(string(1024)), "enabled": BOOL,
        "metainfo": Attr(string(4096)), "tenant_id": PROJECT, "project_id": PROJECT,
    },
}


def parse_body(resource: str, data: Any, *, update: bool = False) -> dict[str, Any]:
    """Validate one resource's attributes the way Neutron's API layer does."""
    if not isinstance(data, dict):
        raise BadRequest(f"Body contains invalid data: {resource} must be an object.",
                         kind="HTTPBadRequest")
    attrs = ATTRIBUTES[resource]
    unknown = [k for k in data if k not in attrs]
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'",
                         kind="HTTPBadRequest")
    out: dict[str, Any] = {}
    for key, value in data.items():
        attr = attrs[key]
        if update and not attr.put:
            raise BadRequest(f"Cannot update read-only attribute {key}", kind="HTTPBadRequest")
        if not update and not attr.post:
            raise BadRequest(f"Attribute '{key}' not allowed in POST", kind="HTTPBadRequest")
        out[key] = attr.validate(key, value)
    if not update:
        for key, attr in attrs.items():
            if attr.required and key not in out:
                raise BadRequest(f"Failed to parse request. Required attribute '{key}' not "
                                 "specified", kind="HTTPBadRequest")
    if "tenant_id" in out and "project_id" in out and out["tenant_id"] != out["project_id"]:
        raise BadRequest("'project_id' and 'tenant_id' do not match", kind="HTTPBadRequest")
    if "project_id" in out:
        out["tenant_id"] = out.pop("project_id")
    return out
