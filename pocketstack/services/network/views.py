"""Render rows as Neutron v2.0 bodies (api-ref/network/v2)."""

from __future__ import annotations

from typing import Any

from pocketstack.context import RequestContext
from pocketstack.services.network import models as m
from pocketstack.services.network.common import standard

AZ = "nova"


def network(row: m.Network, subnet_ids: list[str], ctx: RequestContext) -> dict[str, Any]:
    body = {
        "id": row.id, "name": row.name, "admin_state_up": row.admin_state_up,
        "status": row.status, "subnets": subnet_ids, "shared": row.shared,
        "router:external": row.external, "mtu": row.mtu,
        "port_security_enabled": row.port_security_enabled,
        "availability_zone_hints": list(row.availability_zone_hints or []),
        "availability_zones": [AZ], "ipv4_address_scope": None, "ipv6_address_scope": None,
        "is_default": row.is_default, "l2_adjacency": True, "dns_domain": row.dns_domain,
        "qos_policy_id": row.qos_policy_id, **standard(row),
    }
    if ctx.is_admin:  # provider attributes are admin-only in Neutron's policy
        body["provider:network_type"] = row.network_type
        body["provider:physical_network"] = row.physical_network
        body["provider:segmentation_id"] = row.segmentation_id
    return body


NETWORK_KEYS = {"id", "name", "admin_state_up", "status", "subnets", "shared", "router:external",
                "mtu", "port_security_enabled", "availability_zone_hints",
                "availability_zones", "ipv4_address_scope", "ipv6_address_scope", "is_default",
                "l2_adjacency", "dns_domain", "qos_policy_id", "tenant_id", "project_id",
                "description", "tags", "created_at", "updated_at", "revision_number",
                "provider:network_type", "provider:physical_network",
                "provider:segmentation_id"}


def subnet(row: m.Subnet) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "network_id": row.network_id,
        "ip_version": row.ip_version, "cidr": row.cidr, "gateway_ip": row.gateway_ip,
        "enable_dhcp": row.enable_dhcp, "allocation_pools": list(row.allocation_pools),
        "dns_nameservers": list(row.dns_nameservers), "host_routes": list(row.host_routes),
        "ipv6_ra_mode": row.ipv6_ra_mode, "ipv6_address_mode": row.ipv6_address_mode,
        "subnetpool_id": row.subnetpool_id, "service_types": list(row.service_types or []),
        "segment_id": None, "dns_publish_fixed_ip": row.dns_publish_fixed_ip,
        **standard(row),
    }


SUBNET_KEYS = {"id", "name", "network_id", "ip_version", "cidr", "gateway_ip", "enable_dhcp",
               "allocation_pools", "dns_nameservers", "host_routes", "ipv6_ra_mode",
               "ipv6_address_mode", "subnetpool_id", "service_types", "segment_id",
               "dns_publish_fixed_ip", "tenant_id", "project_id", "description", "tags",
               "created_at", "updated_at", "revision_number", "router:external"}


def port(row: m.Port, fixed_ips: list[dict], ctx: RequestContext) -> dict[str, Any]:
    body = {
        "id": row.id, "name": row.name, "network_id": row.network_id,
        "admin_state_up": row.admin_state_up, "status": row.status,
        "mac_address": row.mac_address, "fixed_ips": fixed_ips, "device_id": row.device_id,
        "device_owner": row.device_owner, "security_groups": list(row.security_groups),
        "allowed_address_pairs": list(row.allowed_address_pairs),
        "extra_dhcp_opts": list(row.extra_dhcp_opts or []),
        "port_security_enabled": row.port_security_enabled,
        "binding:vnic_type": row.binding_vnic_type, "dns_name": row.dns_name,
        "dns_assignment": [], "qos_policy_id": row.qos_policy_id,
        "qos_network_policy_id": None,  # Ports.render fills it in
        "propagate_uplink_status": False, "ip_allocation": "immediate",
        **standard(row),
    }
    if ctx.is_admin:
        body["binding:host_id"] = row.binding_host_id
        body["binding:profile"] = dict(row.binding_profile or {})
        body["binding:vif_type"] = row.binding_vif_type
        body["binding:vif_details"] = ({"port_filter": True, "connectivity": "l2"}
                                       if row.binding_vif_type != "unbound" else {})
    return body


PORT_KEYS = {"id", "name", "network_id", "admin_state_up", "status", "mac_address",
             "fixed_ips", "device_id", "device_owner", "security_groups",
             "allowed_address_pairs", "extra_dhcp_opts", "port_security_enabled",
             "binding:vnic_type", "binding:host_id", "binding:profile", "binding:vif_type",
             "binding:vif_details", "dns_name", "dns_assignment", "qos_policy_id",
             "qos_network_policy_id", "propagate_uplink_status", "ip_allocation",
             "tenant_id", "project_id", "description", "tags", "created_at", "updated_at",
             "revision_number", "trunk_details"}


def router(row: m.Router, gw_ips: list[dict], interfaces: list[dict] | None = None
           ) -> dict[str, Any]:
    gw = None
    if row.gw_network_id:
        gw = {"network_id": row.gw_network_id, "enable_snat": row.enable_snat,
              "external_fixed_ips": gw_ips}
    return {
        "id": row.id, "name": row.name, "admin_state_up": row.admin_state_up,
        "status": row.status, "external_gateway_info": gw, "routes": list(row.routes),
        "distributed": row.distributed, "ha": row.ha,
        "availability_zone_hints": list(row.availability_zone_hints or []),
        "availability_zones": [AZ], "flavor_id": None, "enable_ndp_proxy": False,
        **standard(row),
    }


ROUTER_KEYS = {"id", "name", "admin_state_up", "status", "external_gateway_info", "routes",
               "distributed", "ha", "availability_zone_hints", "availability_zones",
               "flavor_id", "enable_ndp_proxy", "tenant_id", "project_id", "description",
               "tags", "created_at", "updated_at", "revision_number"}


def floating_ip(row: m.FloatingIP, port_details: dict | None) -> dict[str, Any]:
    return {
        "id": row.id, "floating_network_id": row.floating_network_id,
        "floating_ip_address": row.floating_ip_address, "port_id": row.port_id,
        "fixed_ip_address": row.fixed_ip_address, "router_id": row.router_id,
        "status": row.status, "dns_name": row.dns_name, "dns_domain": row.dns_domain,
        "port_details": port_details, "port_forwardings": [], "qos_policy_id": None,
        **standard(row),
    }


FIP_KEYS = {"id", "floating_network_id", "floating_ip_address", "port_id", "fixed_ip_address",
            "router_id", "status", "dns_name", "dns_domain", "port_details",
            "port_forwardings", "qos_policy_id", "tenant_id", "project_id", "description",
            "tags", "created_at", "updated_at", "revision_number"}


def security_group_rule(row: m.SecurityGroupRule) -> dict[str, Any]:
    return {
        "id": row.id, "security_group_id": row.security_group_id, "direction": row.direction,
        "ethertype": row.ethertype, "protocol": row.protocol,
        "port_range_min": row.port_range_min, "port_range_max": row.port_range_max,
        "remote_ip_prefix": row.remote_ip_prefix, "remote_group_id": row.remote_group_id,
        "remote_address_group_id": row.remote_address_group_id,
        "normalized_cidr": row.remote_ip_prefix, "belongs_to_default_sg": None,
        **standard(row),
    }


RULE_KEYS = {"id", "security_group_id", "direction", "ethertype", "protocol",
             "port_range_min", "port_range_max", "remote_ip_prefix", "remote_group_id",
             "remote_address_group_id", "normalized_cidr", "belongs_to_default_sg",
             "tenant_id", "project_id", "description", "tags", "created_at", "updated_at",
             "revision_number"}


def security_group(row: m.SecurityGroup, rules: list[dict]) -> dict[str, Any]:
    for r in rules:
        r["belongs_to_default_sg"] = row.default_for is not None
    return {"id": row.id, "name": row.name, "stateful": row.stateful, "shared": False,
            "security_group_rules": rules, **standard(row)}


SG_KEYS = {"id", "name", "stateful", "shared", "security_group_rules", "tenant_id",
           "project_id", "description", "tags", "created_at", "updated_at",
           "revision_number"}


def rbac_policy(row: m.RBACPolicy) -> dict[str, Any]:
    return {"id": row.id, "object_type": row.object_type, "object_id": row.object_id,
            "action": row.action, "target_tenant": row.target_tenant,
            "tenant_id": row.project_id,
            "project_id": row.project_id}


RBAC_KEYS = {"id", "object_type", "object_id", "action", "target_tenant", "target_project",
             "tenant_id", "project_id"}


def metering_label(row: m.MeteringLabel) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "shared": row.shared, "tenant_id": row.project_id, "project_id": row.project_id}


LABEL_KEYS = {"id", "name", "description", "shared", "tenant_id", "project_id"}


def metering_label_rule(row: m.MeteringLabelRule) -> dict[str, Any]:
    return {"id": row.id, "metering_label_id": row.metering_label_id,
            "direction": row.direction, "excluded": row.excluded,
            "remote_ip_prefix": row.remote_ip_prefix,
            "source_ip_prefix": row.source_ip_prefix,
            "destination_ip_prefix": row.destination_ip_prefix,
            "tenant_id": row.project_id, "project_id": row.project_id}


LABEL_RULE_KEYS = {"id", "metering_label_id", "direction", "excluded", "remote_ip_prefix",
                   "source_ip_prefix", "destination_ip_prefix", "tenant_id", "project_id"}


def subnetpool(row: m.SubnetPool) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "ip_version": row.ip_version,
            "prefixes": list(row.prefixes), "default_prefixlen": row.default_prefixlen,
            "min_prefixlen": row.min_prefixlen, "max_prefixlen": row.max_prefixlen,
            "shared": row.shared, "is_default": row.is_default,
            "default_quota": row.default_quota, "address_scope_id": row.address_scope_id,
            **standard(row)}


SUBNETPOOL_KEYS = {"id", "name", "ip_version", "prefixes", "default_prefixlen",
                   "min_prefixlen", "max_prefixlen", "shared", "is_default", "default_quota",
                   "address_scope_id", "tenant_id", "project_id", "description", "tags",
                   "created_at", "updated_at", "revision_number"}
