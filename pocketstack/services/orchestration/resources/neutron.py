"""OS::Neutron::* resources, created through the network slice's resource objects
(``svc.networks``, ``svc.subnets``, ``svc.ports``, ``svc.routers``, ``svc.floatingips``,
``svc.security_groups``, ``svc.security_group_rules``: create/get/update/delete taking
Neutron's attribute dicts), so Neutron's own validation, policy and quotas apply."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import NotFound
from pocketstack.services.orchestration.engine.errors import ResourceFailure
from pocketstack.services.orchestration.resources import lookups
from pocketstack.services.orchestration.resources.base import Prop, Resource

_COMMON_ATTRS = {"show": "Detailed information about resource."}


class NeutronResource(Resource):
    service = "network"
    collection = ""
    # property -> Neutron attribute, for values copied as they are
    direct: dict[str, str] = {}
    updatable: set[str] = set()
    always: set[str] = set()  # sent even when equal to the default (Neutron requires them)

    @property
    def api(self) -> Any:
        return getattr(self.svc, self.collection)

    def find(self, kind: str, value: Any, noun: str) -> str:
        return lookups.require(self.rt.cloud, self.rt.ctx, f"neutron.{kind}", value, noun)

    def attrs(self, props: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for prop, attr in self.direct.items():
            value = props.get(prop)
            # Values equal to the schema default are Neutron's defaults too; leaving them
            # out keeps admin-only attributes (shared, tenant_id...) out of member requests.
            if value is not None and (value != self.properties_schema[prop].default or
                                      prop in self.always):
                out[attr] = value
        out.update(props.get("value_specs") or {})
        return out

    def handle_create(self) -> None:
        attrs = self.attrs(self.props)
        if "name" in self.properties_schema and not attrs.get("name"):
            attrs["name"] = self.rt.physical_resource_name()
        obj = self.api.create(self.rt.ctx, attrs)
        self.rt.set_physical_id(obj["id"])

    def needs_replace(self, changed: set[str]) -> bool:
        return bool(changed - self.updatable)

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        body = {self.direct[k]: new_props.get(k) for k in changed if k in self.direct}
        if "name" in changed and not body.get("name"):
            body["name"] = self.rt.physical_resource_name()
        if body:
            self.api.update(self.rt.ctx, self.rt.physical_id, body)

    def handle_delete(self) -> None:
        if not self.rt.physical_id:
            return
        try:
            self.api.delete(self.rt.ctx, self.rt.physical_id)
        except NotFound:
            pass

    def show(self) -> Any:
        return self.api.get(self.rt.ctx, self.rt.physical_id)

    def handle_check(self) -> None:
        if self.rt.physical_id and self.collection and self.type_name not in (
                "OS::Neutron::RouterInterface", "OS::Neutron::FloatingIPAssociation"):
            self.show()  # NotFound fails the check with the real reason

    def get_attribute(self, name: str) -> Any:
        if not self.rt.physical_id:
            return None
        obj = self.show()
        if name == "show":
            return obj
        if name in obj:
            return obj[name]
        if name in self.attributes_schema:
            return None
        raise KeyError(name)


class Net(NeutronResource):
    type_name = "OS::Neutron::Net"
    description = "A resource for managing Neutron net."
    collection = "networks"
    properties_schema = {
        "name": Prop("string", "A string specifying a symbolic name for the network.",
                     update_allowed=True),
        "value_specs": Prop("map", "Extra parameters to include in the request.", default={},
                            update_allowed=True),
        "admin_state_up": Prop("boolean", "A boolean value specifying the administrative "
                               "status of the network.", default=True, update_allowed=True),
        "tenant_id": Prop("string", "The ID of the tenant which will own the network."),
        "shared": Prop("boolean", "Whether this network should be shared across all "
                       "tenants.", default=False, update_allowed=True),
        "port_security_enabled": Prop("boolean", "Flag to enable/disable port security on "
                                      "the network.", update_allowed=True),
        "dns_domain": Prop("string", "DNS domain associated with this network.",
                           update_allowed=True),
        "qos_policy": Prop("string", "The name or ID of QoS policy to attach to this "
                           "network.", update_allowed=True),
        "tags": Prop("list", "The tags to be added to the network.", update_allowed=True),
    }
    attributes_schema = {"status": "The status of the network.",
                         "name": "The name of the network.",
                         "subnets": "Subnets of this network.",
                         "admin_state_up": "The administrative status of the network.",
                         "tenant_id": "The tenant owning this network.",
                         "port_security_enabled": "Port security enabled of the network.",
                         "mtu": "The maximum transmission unit size(in bytes) for the "
                                "network.",
                         "qos_policy_id": "The QoS policy ID attached to this network.",
                         "l2_adjacency": "A boolean value for L2 adjacency."}
    direct = {"name": "name", "admin_state_up": "admin_state_up", "tenant_id": "tenant_id",
              "shared": "shared", "port_security_enabled": "port_security_enabled",
              "dns_domain": "dns_domain"}
    updatable = {"name", "value_specs", "admin_state_up", "shared", "port_security_enabled",
                 "dns_domain", "tags"}


class Subnet(NeutronResource):
    type_name = "OS::Neutron::Subnet"
    description = "A resource for managing Neutron subnets."
    collection = "subnets"
    properties_schema = {
        "network_id": Prop("string", "The ID of the attached network. Deprecated: use "
                           "network."),
        "network": Prop("string", "The ID or name of the attached network.",
                        constraints=[{"custom_constraint": "neutron.network"}]),
        "subnetpool": Prop("string", "The name or ID of the subnet pool."),
        "prefixlen": Prop("integer", "Prefix length for subnet allocation from subnet pool."),
        "cidr": Prop("string", "The CIDR.", constraints=[{"custom_constraint": "net_cidr"}]),
        "value_specs": Prop("map", "Extra parameters to include in the request.", default={},
                            update_allowed=True),
        "name": Prop("string", "The name of the subnet.", update_allowed=True),
        "ip_version": Prop("integer", "The IP version, which is 4 or 6.", default=4,
                           constraints=[{"allowed_values": [4, 6]}]),
        "dns_nameservers": Prop("list", "A specified set of DNS name servers to be used.",
                                default=[], update_allowed=True),
        "gateway_ip": Prop("string", "The gateway IP address. Set to null for no gateway.",
                           update_allowed=True),
        "enable_dhcp": Prop("boolean", "Set to true if DHCP is enabled and false if DHCP is "
                            "disabled.", default=True, update_allowed=True),
        "ipv6_ra_mode": Prop("string", "IPv6 RA (Router Advertisements) mode."),
        "ipv6_address_mode": Prop("string", "IPv6 address mode."),
        "allocation_pools": Prop("list", "The start and end addresses for the allocation "
                                 "pools.", update_allowed=True),
        "tenant_id": Prop("string", "The ID of the tenant who owns the network."),
        "host_routes": Prop("list", "A list of host route dictionaries for the subnet.",
                            update_allowed=True),
        "segment": Prop("string", "The name/ID of the segment to associate.",
                        update_allowed=True),
        "tags": Prop("list", "The tags to be added to the subnet.", update_allowed=True),
    }
    attributes_schema = {"name": "Friendly name of the subnet.",
                         "network_id": "Parent network of the subnet.",
                         "tenant_id": "Tenant owning the subnet.",
                         "allocation_pools": "Ip allocation pools and their ranges.",
                         "gateway_ip": "Ip of the subnet's gateway.",
                         "host_routes": "Additional routes for this subnet.",
                         "ip_version": "Ip version for the subnet.",
                         "cidr": "CIDR block notation for this subnet.",
                         "dns_nameservers": "List of dns nameservers.",
                         "enable_dhcp": "'true' if DHCP is enabled for this subnet; 'false' "
                                        "otherwise.",
                         "segment_id": "The ID of the segment this subnet belongs to."}
    direct = {"name": "name", "cidr": "cidr", "ip_version": "ip_version",
              "dns_nameservers": "dns_nameservers", "enable_dhcp": "enable_dhcp",
              "ipv6_ra_mode": "ipv6_ra_mode", "ipv6_address_mode": "ipv6_address_mode",
              "allocation_pools": "allocation_pools", "tenant_id": "tenant_id",
              "host_routes": "host_routes", "prefixlen": "prefixlen"}
    updatable = {"name", "value_specs", "dns_nameservers", "gateway_ip", "enable_dhcp",
                 "allocation_pools", "host_routes", "segment", "tags"}
    always = {"ip_version"}

    def attrs(self, props: dict[str, Any]) -> dict[str, Any]:
        out = super().attrs(props)
        net = props.get("network") or props.get("network_id")
        if net:
            out["network_id"] = self.find("network", net, "network")
        if "gateway_ip" in props and props["gateway_ip"] is not None:
            out["gateway_ip"] = None if props["gateway_ip"] in ("", "null") \
                else props["gateway_ip"]
        if props.get("subnetpool"):
            out["subnetpool_id"] = props["subnetpool"]
        return out

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        attrs = self.attrs(new_props)
        body = {k: attrs.get(k) for k in ("name", "dns_nameservers", "enable_dhcp",
                                          "allocation_pools", "host_routes", "gateway_ip")
                if k in changed and k in attrs}
        if body:
            self.api.update(self.rt.ctx, self.rt.physical_id, body)


def _fixed_ips(res: NeutronResource, items: list[Any] | None) -> list[dict[str, Any]]:
    out = []
    for item in items or []:
        entry: dict[str, Any] = {}
        sub = (item or {}).get("subnet") or (item or {}).get("subnet_id")
        if sub:
            entry["subnet_id"] = res.find("subnet", sub, "subnet")
        if (item or {}).get("ip_address"):
            entry["ip_address"] = item["ip_address"]
        out.append(entry)
    return out


class Port(NeutronResource):
    type_name = "OS::Neutron::Port"
    description = "A resource for managing Neutron ports."
    collection = "ports"
    properties_schema = {
        "network_id": Prop("string", "Network this port belongs to. Deprecated: use network."),
        "network": Prop("string", "Network this port belongs to.",
                        constraints=[{"custom_constraint": "neutron.network"}]),
        "name": Prop("string", "A symbolic name for this port.", update_allowed=True),
        "value_specs": Prop("map", "Extra parameters to include in the request.", default={},
                            update_allowed=True),
        "admin_state_up": Prop("boolean", "The administrative state of this port.",
                               default=True, update_allowed=True),
        "fixed_ips": Prop("list", "Desired IPs for this port.", update_allowed=True),
        "mac_address": Prop("string", "MAC address to give to this port.",
                            constraints=[{"custom_constraint": "mac_addr"}]),
        "device_id": Prop("string", "Device ID of this port.", update_allowed=True),
        "device_owner": Prop("string", "Name of the network owning the port.",
                             update_allowed=True),
        "security_groups": Prop("list", "Security group IDs to associate with this port.",
                                update_allowed=True),
        "allowed_address_pairs": Prop("list", "Additional MAC/IP address pairs allowed to "
                                      "pass through the port.", update_allowed=True),
        "binding:vnic_type": Prop("string", "The vnic type to be bound on the neutron port.",
                                  update_allowed=True),
        "port_security_enabled": Prop("boolean", "Flag to enable/disable port security on "
                                      "the port.", update_allowed=True),
        "replacement_policy": Prop("string", "Policy on how to respond to a stack-update for "
                                   "this resource.", default="AUTO", update_allowed=True),
        "qos_policy": Prop("string", "The name or ID of QoS policy to attach to this port.",
                           update_allowed=True),
        "dns_name": Prop("string", "DNS name associated with the port.", update_allowed=True),
        "tags": Prop("list", "The tags to be added to the port.", update_allowed=True),
    }
    attributes_schema = {"admin_state_up": "The administrative state of this port.",
                         "device_id": "Unique identifier for the device.",
                         "device_owner": "Name of the network owning the port.",
                         "fixed_ips": "Fixed IP addresses.",
                         "mac_address": "MAC address of the port.",
                         "name": "Friendly name of the port.",
                         "network_id": "Unique identifier for the network owning the port.",
                         "security_groups": "A list of security groups for the port.",
                         "status": "The status of the port.",
                         "tenant_id": "Tenant owning the port.",
                         "allowed_address_pairs": "Additional MAC/IP address pairs allowed "
                                                  "to pass through a port.",
                         "subnets": "Subnets of this port.",
                         "network": "The attributes of the network owning the port."}
    direct = {"name": "name", "admin_state_up": "admin_state_up",
              "mac_address": "mac_address", "device_id": "device_id",
              "device_owner": "device_owner", "allowed_address_pairs": "allowed_address_pairs",
              "binding:vnic_type": "binding:vnic_type",
              "port_security_enabled": "port_security_enabled", "dns_name": "dns_name"}
    updatable = {"name", "value_specs", "admin_state_up", "fixed_ips", "device_id",
                 "device_owner", "security_groups", "allowed_address_pairs",
                 "binding:vnic_type", "port_security_enabled", "replacement_policy",
                 "qos_policy", "dns_name", "tags"}

    def attrs(self, props: dict[str, Any]) -> dict[str, Any]:
        out = super().attrs(props)
        net = props.get("network") or props.get("network_id")
        if net:
            out["network_id"] = self.find("network", net, "network")
        if props.get("fixed_ips"):
            out["fixed_ips"] = _fixed_ips(self, props["fixed_ips"])
        if props.get("security_groups") is not None:
            out["security_groups"] = [self.find("security_group", g, "security group")
                                      for g in props["security_groups"]]
        return out

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        attrs = self.attrs(new_props)
        names = {"fixed_ips": "fixed_ips", "security_groups": "security_groups",
                 **self.direct}
        body = {names[k]: attrs.get(names[k]) for k in changed if k in names}
        if body:
            self.api.update(self.rt.ctx, self.rt.physical_id, body)

    def get_attribute(self, name: str) -> Any:
        if name == "subnets" and self.rt.physical_id:
            subnets = self.rt.cloud.services["network"].subnets
            return [subnets.get(self.rt.ctx, ip["subnet_id"])
                    for ip in self.show().get("fixed_ips", [])]
        if name == "network" and self.rt.physical_id:
            return self.svc.networks.get(self.rt.ctx, self.show()["network_id"])
        return super().get_attribute(name)


class Router(NeutronResource):
    type_name = "OS::Neutron::Router"
    description = "A resource that implements Neutron router."
    collection = "routers"
    properties_schema = {
        "name": Prop("string", "The name of the router.", update_allowed=True),
        "external_gateway_info": Prop("map", "External network gateway configuration for a "
                                      "router.", update_allowed=True, schema={
                                          "network": Prop("string", "ID or name of the "
                                                          "external network for the "
                                                          "gateway.", required=True),
                                          "enable_snat": Prop("boolean", "Enables Source NAT "
                                                              "on the router gateway."),
                                          "external_fixed_ips": Prop("list", "External fixed "
                                                                     "IP addresses for the "
                                                                     "gateway."),
                                      }),
        "value_specs": Prop("map", "Extra parameters to include in the creation request.",
                            default={}, update_allowed=True),
        "admin_state_up": Prop("boolean", "The administrative state of the router.",
                               default=True, update_allowed=True),
        "distributed": Prop("boolean", "Indicates whether or not to create a distributed "
                            "router."),
        "ha": Prop("boolean", "Indicates whether or not to create a highly available "
                   "router."),
        "tags": Prop("list", "The tags to be added to the router.", update_allowed=True),
    }
    attributes_schema = {"status": "The status of the router.",
                         "external_gateway_info": "Gateway network for the router.",
                         "name": "Friendly name of the router.",
                         "admin_state_up": "Administrative state of the router.",
                         "tenant_id": "Tenant owning the router."}
    direct = {"name": "name", "admin_state_up": "admin_state_up",
              "distributed": "distributed", "ha": "ha"}
    updatable = {"name", "external_gateway_info", "value_specs", "admin_state_up", "tags"}

    def attrs(self, props: dict[str, Any]) -> dict[str, Any]:
        out = super().attrs(props)
        gw = props.get("external_gateway_info")
        if gw:
            info: dict[str, Any] = {"network_id": self.find("network", gw["network"],
                                                            "network")}
            if gw.get("enable_snat") is not None:
                info["enable_snat"] = gw["enable_snat"]
            if gw.get("external_fixed_ips"):
                info["external_fixed_ips"] = _fixed_ips(self, gw["external_fixed_ips"])
            out["external_gateway_info"] = info
        return out

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        attrs = self.attrs(new_props)
        body = {k: attrs.get(k) for k in ("name", "admin_state_up") if k in changed}
        if "external_gateway_info" in changed:
            body["external_gateway_info"] = attrs.get("external_gateway_info") or {}
        if body:
            self.api.update(self.rt.ctx, self.rt.physical_id, body)

    def handle_delete(self) -> None:
        if not self.rt.physical_id:
            return
        try:
            self.api.update(self.rt.ctx, self.rt.physical_id, {"external_gateway_info": {}})
        except NotFound:
            return
        super().handle_delete()


class RouterInterface(NeutronResource):
    type_name = "OS::Neutron::RouterInterface"
    description = "A resource for managing Neutron router interfaces."
    collection = "routers"
    properties_schema = {
        "router": Prop("string", "The router.", constraints=[
            {"custom_constraint": "neutron.router"}]),
        "router_id": Prop("string", "ID of the router. Deprecated: use router."),
        "subnet": Prop("string", "The subnet, either subnet or port should be specified."),
        "subnet_id": Prop("string", "Deprecated: use subnet."),
        "port": Prop("string", "The port, either subnet or port should be specified."),
        "port_id": Prop("string", "Deprecated: use port."),
    }
    attributes_schema = {}

    def handle_create(self) -> None:
        router = self.find("router", self.props.get("router") or self.props.get("router_id"),
                           "router")
        body: dict[str, Any] = {}
        sub = self.props.get("subnet") or self.props.get("subnet_id")
        port = self.props.get("port") or self.props.get("port_id")
        if bool(sub) == bool(port):
            raise ResourceFailure(f"StackValidationFailed: resources.{self.rt.name}: "
                                  "Exactly one of subnet or port must be specified.")
        if sub:
            body["subnet_id"] = self.find("subnet", sub, "subnet")
        else:
            body["port_id"] = self.find("port", port, "port")
        self.api.add_interface(self.rt.ctx, router, body)
        key, value = next(iter(body.items()))
        self.rt.data_set("router_id", router)
        self.rt.data_set("body", body)
        self.rt.set_physical_id(f"{router}:{key}={value}")

    def needs_replace(self, changed: set[str]) -> bool:
        return bool(changed)

    def handle_delete(self) -> None:
        router, body = self.rt.data.get("router_id"), self.rt.data.get("body")
        if not router or not body:
            return
        try:
            self.api.remove_interface(self.rt.ctx, router, body)
        except NotFound:
            pass

    def get_attribute(self, name: str) -> Any:
        if name == "show":
            return None
        raise KeyError(name)


class FloatingIP(NeutronResource):
    type_name = "OS::Neutron::FloatingIP"
    description = "A resource for managing Neutron floating ips."
    collection = "floatingips"
    properties_schema = {
        "floating_network_id": Prop("string", "ID of network to allocate floating IP from. "
                                    "Deprecated: use floating_network."),
        "floating_network": Prop("string", "Network to allocate floating IP from.",
                                 constraints=[{"custom_constraint": "neutron.network"}]),
        "floating_subnet": Prop("string", "Subnet to allocate floating IP from."),
        "value_specs": Prop("map", "Extra parameters to include in the request.", default={}),
        "port_id": Prop("string", "ID of an existing port with at least one IP address to "
                        "associate with this floating IP.", update_allowed=True),
        "fixed_ip_address": Prop("string", "IP address to use if the port has multiple "
                                 "addresses.", update_allowed=True),
        "floating_ip_address": Prop("string", "IP address of the floating IP."),
        "dns_name": Prop("string", "DNS name associated with floating ip."),
        "dns_domain": Prop("string", "DNS domain associated with floating ip."),
    }
    attributes_schema = {"router_id": "ID of the router used as gateway.",
                         "tenant_id": "The tenant owning this floating IP.",
                         "floating_network_id": "ID of the network in which this IP is "
                                                "allocated.",
                         "fixed_ip_address": "IP address of the associated port, if "
                                             "specified.",
                         "floating_ip_address": "The allocated address of this IP.",
                         "port_id": "ID of the port associated with this IP."}
    direct = {"fixed_ip_address": "fixed_ip_address",
              "floating_ip_address": "floating_ip_address"}
    updatable = {"port_id", "fixed_ip_address"}

    def attrs(self, props: dict[str, Any]) -> dict[str, Any]:
        out = super().attrs(props)
        net = props.get("floating_network") or props.get("floating_network_id")
        if net:
            out["floating_network_id"] = self.find("network", net, "network")
        if props.get("floating_subnet"):
            out["subnet_id"] = self.find("subnet", props["floating_subnet"], "subnet")
        if props.get("port_id"):
            out["port_id"] = self.find("port", props["port_id"], "port")
        return out

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        port = new_props.get("port_id")
        body = {"port_id": self.find("port", port, "port") if port else None}
        if new_props.get("fixed_ip_address"):
            body["fixed_ip_address"] = new_props["fixed_ip_address"]
        self.api.update(self.rt.ctx, self.rt.physical_id, body)


class FloatingIPAssociation(NeutronResource):
    type_name = "OS::Neutron::FloatingIPAssociation"
    description = "A resource for associating floating ips and ports."
    collection = "floatingips"
    properties_schema = {
        "floatingip_id": Prop("string", "ID of the floating IP to associate.", required=True,
                              update_allowed=True),
        "port_id": Prop("string", "ID of an existing port with at least one IP address to "
                        "associate with this floating IP.", required=True,
                        update_allowed=True),
        "fixed_ip_address": Prop("string", "IP address to use if the port has multiple "
                                 "addresses.", update_allowed=True),
    }
    attributes_schema = {}

    def _associate(self, props: dict[str, Any]) -> None:
        body: dict[str, Any] = {"port_id": self.find("port", props["port_id"], "port")}
        if props.get("fixed_ip_address"):
            body["fixed_ip_address"] = props["fixed_ip_address"]
        self.api.update(self.rt.ctx, props["floatingip_id"], body)

    def handle_create(self) -> None:
        self._associate(self.props)
        self.rt.data_set("floatingip_id", self.props["floatingip_id"])
        self.rt.set_physical_id(self.rt.physical_resource_name())

    def needs_replace(self, changed: set[str]) -> bool:
        return False

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        if "floatingip_id" in changed and old_props.get("floatingip_id"):
            try:
                self.api.update(self.rt.ctx, old_props["floatingip_id"], {"port_id": None})
            except NotFound:
                pass
        self._associate(new_props)
        self.rt.data_set("floatingip_id", new_props["floatingip_id"])

    def handle_delete(self) -> None:
        fip = self.rt.data.get("floatingip_id")
        if not fip:
            return
        try:
            self.api.update(self.rt.ctx, fip, {"port_id": None})
        except NotFound:
            pass

    def get_attribute(self, name: str) -> Any:
        if name == "show":
            return None
        raise KeyError(name)


PLUGINS = [Net, Subnet, Port, Router, RouterInterface, FloatingIP, FloatingIPAssociation]
