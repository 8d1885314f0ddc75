"""Neutron's tables. Desired state only: the data plane is derived from these rows.

Invariants the database itself enforces (so concurrent API replicas cannot break them):
- an address is handed out once per subnet: ``network_ip_allocations`` is keyed by
  (subnet_id, ip_address);
- a MAC is unique on its network;
- a provider segment (flat physnet, vlan physnet+id, vxlan vni) belongs to one network
  (``segment_key`` is unique);
- a project has at most one default security group (``default_for`` is unique).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import Base, JSONText, created_at_column, new_uuid, updated_at_column

UUID = String(36)
PROJECT = String(64)


class _Standard:
    """Neutron's standard attributes: description, tags, revision, timestamps."""

    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True, default="")
    description: Mapped[str] = mapped_column(String(255), default="")
    tags: Mapped[list] = mapped_column(JSONText, default=list)
    revision_number: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class Network(_Standard, Base):
    __tablename__ = "network_networks"
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    network_type: Mapped[str] = mapped_column(String(16), default="vxlan")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    segment_key: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True)
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    dns_domain: Mapped[str] = mapped_column(String(255), default="")
    availability_zone_hints: Mapped[list] = mapped_column(JSONText, default=list)
    qos_policy_id: Mapped[str | None] = mapped_column(UUID, nullable=True, index=True)
    # Short per-cloud index used to name the bridge (IFNAMSIZ leaves no room for a UUID).
    host_index: Mapped[int] = mapped_column(Integer, unique=True)


class Subnet(_Standard, Base):
    __tablename__ = "network_subnets"
    network_id: Mapped[str] = mapped_column(ForeignKey("network_networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    allocation_pools: Mapped[list] = mapped_column(JSONText, default=list)
    dns_nameservers: Mapped[list] = mapped_column(JSONText, default=list)
    host_routes: Mapped[list] = mapped_column(JSONText, default=list)
    ipv6_ra_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    ipv6_address_mode: Mapped[str | None] = mapped_column(String(32), nullable=True)
    subnetpool_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    service_types: Mapped[list] = mapped_column(JSONText, default=list)
    dns_publish_fixed_ip: Mapped[bool] = mapped_column(Boolean, default=False)


class Port(_Standard, Base):
    __tablename__ = "network_ports"
    __table_args__ = (UniqueConstraint("network_id", "mac_address"),)
    network_id: Mapped[str] = mapped_column(ForeignKey("network_networks.id"), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    mac_address: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[str] = mapped_column(String(255), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(255), default="", index=True)
    port_security_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    security_groups: Mapped[list] = mapped_column(JSONText, default=list)
    allowed_address_pairs: Mapped[list] = mapped_column(JSONText, default=list)
    extra_dhcp_opts: Mapped[list] = mapped_column(JSONText, default=list)
    binding_host_id: Mapped[str] = mapped_column(String(255), default="")
    binding_profile: Mapped[dict] = mapped_column(JSONText, default=dict)
    binding_vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    binding_vif_type: Mapped[str] = mapped_column(String(32), default="unbound")
    dns_name: Mapped[str] = mapped_column(String(255), default="")
    # True when allocate_for_server created the port (deallocate deletes it; otherwise unbinds).
    created_for_server: Mapped[bool] = mapped_column(Boolean, default=False)
    qos_policy_id: Mapped[str | None] = mapped_column(UUID, nullable=True, index=True)
    host_index: Mapped[int] = mapped_column(Integer, unique=True)


class IPAllocation(Base):
    """One address handed out on a subnet; the primary key makes double allocation impossible."""

    __tablename__ = "network_ip_allocations"
    subnet_id: Mapped[str] = mapped_column(ForeignKey("network_subnets.id", ondelete="CASCADE"),
                                           primary_key=True)
    ip_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("network_ports.id", ondelete="CASCADE"),
                                         index=True)
    network_id: Mapped[str] = mapped_column(UUID, index=True)


class Router(_Standard, Base):
    __tablename__ = "network_routers"
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    gw_network_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    gw_port_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    enable_snat: Mapped[bool] = mapped_column(Boolean, default=True)
    routes: Mapped[list] = mapped_column(JSONText, default=list)
    distributed: Mapped[bool] = mapped_column(Boolean, default=False)
    ha: Mapped[bool] = mapped_column(Boolean, default=False)
    availability_zone_hints: Mapped[list] = mapped_column(JSONText, default=list)
    host_index: Mapped[int] = mapped_column(Integer, unique=True)


class FloatingIP(_Standard, Base):
    __tablename__ = "network_floating_ips"
    floating_network_id: Mapped[str] = mapped_column(UUID, index=True)
    floating_ip_address: Mapped[str] = mapped_column(String(64))
    floating_port_id: Mapped[str] = mapped_column(UUID)
    port_id: Mapped[str | None] = mapped_column(UUID, nullable=True, index=True)
    fixed_ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    router_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    dns_name: Mapped[str] = mapped_column(String(255), default="")
    dns_domain: Mapped[str] = mapped_column(String(255), default="")


class SecurityGroup(_Standard, Base):
    __tablename__ = "network_security_groups"
    name: Mapped[str] = mapped_column(String(255), default="")
    stateful: Mapped[bool] = mapped_column(Boolean, default=True)
    default_for: Mapped[str | None] = mapped_column(PROJECT, nullable=True, unique=True)


class SecurityGroupRule(_Standard, Base):
    __tablename__ = "network_security_group_rules"
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("network_security_groups.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    ethertype: Mapped[str] = mapped_column(String(8), default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(40), nullable=True)
    port_range_min: Mapped[int | None] = mapped_column(Integer, nullable=True)
    port_range_max: Mapped[int | None] = mapped_column(Integer, nullable=True)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    remote_group_id: Mapped[str | None] = mapped_column(UUID, nullable=True)
    remote_address_group_id: Mapped[str | None] = mapped_column(UUID, nullable=True)


class Quota(Base):
    __tablename__ = "network_quotas"
    project_id: Mapped[str] = mapped_column(PROJECT, primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class RBACPolicy(Base):
    __tablename__ = "network_rbac_policies"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(UUID, index=True)
    action: Mapped[str] = mapped_column(String(32))
    target_tenant: Mapped[str] = mapped_column(PROJECT)
    __table_args__ = (UniqueConstraint("object_type", "object_id", "action", "target_tenant"),)


class MeteringLabel(Base):
    __tablename__ = "network_metering_labels"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(1024), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class MeteringLabelRule(Base):
    __tablename__ = "network_metering_label_rules"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True)
    metering_label_id: Mapped[str] = mapped_column(
        ForeignKey("network_metering_labels.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(8))
    excluded: Mapped[bool] = mapped_column(Boolean, default=False)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    source_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    destination_ip_prefix: Mapped[str | None] = mapped_column(String(64), nullable=True)


class SubnetPool(_Standard, Base):
    __tablename__ = "network_subnetpools"
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    prefixes: Mapped[list] = mapped_column(JSONText, default=list)
    default_prefixlen: Mapped[int] = mapped_column(Integer)
    min_prefixlen: Mapped[int] = mapped_column(Integer)
    max_prefixlen: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    default_quota: Mapped[int | None] = mapped_column(Integer, nullable=True)
    address_scope_id: Mapped[str | None] = mapped_column(UUID, nullable=True)


class AddressScope(Base):
    """No standard attributes in Neutron (no description, tags or timestamps)."""

    __tablename__ = "network_address_scopes"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(PROJECT, index=True, default="")
    name: Mapped[str] = mapped_column(String(255), default="")
    ip_version: Mapped[int] = mapped_column(Integer)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)


class Trunk(_Standard, Base):
    __tablename__ = "network_trunks"
    name: Mapped[str] = mapped_column(String(255), default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    # a port is the parent of one trunk at most
    port_id: Mapped[str] = mapped_column(ForeignKey("network_ports.id"), unique=True)


class SubPort(Base):
    """A port is a subport of one trunk at most (the primary key); a (type, id) pair is
    used once per trunk."""

    __tablename__ = "network_trunk_subports"
    __table_args__ = (UniqueConstraint("trunk_id", "segmentation_type", "segmentation_id"),)
    port_id: Mapped[str] = mapped_column(ForeignKey("network_ports.id"), primary_key=True)
    trunk_id: Mapped[str] = mapped_column(ForeignKey("network_trunks.id", ondelete="CASCADE"),
                                          index=True)
    segmentation_type: Mapped[str] = mapped_column(String(32))
    segmentation_id: Mapped[int] = mapped_column(Integer)


class QosPolicy(_Standard, Base):
    __tablename__ = "network_qos_policies"
    name: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # one default policy per project (NULL for the others)
    default_for: Mapped[str | None] = mapped_column(PROJECT, nullable=True, unique=True)


class QosRule(Base):
    """bandwidth_limit (max_kbps, max_burst_kbps, direction), dscp_marking (dscp_mark),
    minimum_bandwidth (min_kbps, direction) in one table, told apart by rule_type."""

    __tablename__ = "network_qos_rules"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    qos_policy_id: Mapped[str] = mapped_column(
        ForeignKey("network_qos_policies.id", ondelete="CASCADE"), index=True)
    rule_type: Mapped[str] = mapped_column(String(32))
    direction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    max_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_burst_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    min_kbps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    dscp_mark: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class NetworkFlavor(Base):
    __tablename__ = "network_flavors"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), default="")
    description: Mapped[str] = mapped_column(String(1024), default="")
    service_type: Mapped[str] = mapped_column(String(36))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)


class ServiceProfile(Base):
    __tablename__ = "network_service_profiles"
    id: Mapped[str] = mapped_column(UUID, primary_key=True, default=new_uuid)
    description: Mapped[str] = mapped_column(String(1024), default="")
    driver: Mapped[str] = mapped_column(String(1024), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    metainfo: Mapped[str] = mapped_column(String(4096), default="")


class FlavorProfileBinding(Base):
    __tablename__ = "network_flavor_profile_bindings"
    flavor_id: Mapped[str] = mapped_column(ForeignKey("network_flavors.id", ondelete="CASCADE"),
                                           primary_key=True)
    service_profile_id: Mapped[str] = mapped_column(
        ForeignKey("network_service_profiles.id", ondelete="CASCADE"), primary_key=True)


class HostCounter(Base):
    """Monotonic counters for short host-side names (bridge/netns/veth indexes)."""

    __tablename__ = "network_host_counters"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


__all__ = ["Network", "Subnet", "Port", "IPAllocation", "Router", "FloatingIP", "SecurityGroup",
           "SecurityGroupRule", "Quota", "RBACPolicy", "MeteringLabel", "MeteringLabelRule",
           "SubnetPool", "AddressScope", "Trunk", "SubPort", "QosPolicy", "QosRule",
           "NetworkFlavor", "ServiceProfile", "FlavorProfileBinding", "HostCounter", "Text"]
