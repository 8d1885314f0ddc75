"""The network driver contract.

The network service owns desired state (the database) and hands the driver a complete
``Topology`` — every bridge, router, DHCP server, plugged port and security group rule
this cloud should have on this host. ``sync`` converges the host to it: it creates what is
missing, fixes what differs and removes whatever this cloud created that the topology no
longer lists. It never touches an object that does not carry this cloud's name prefix,
except the host interfaces ``physnet_mappings`` names (which it only attaches/detaches,
never re-addresses).

Names: every host object is ``<prefix><kind><index>`` where ``prefix`` is "ps" plus a
short hash of the cloud's data dir (several clouds can run side by side) and the whole
name fits IFNAMSIZ (15 characters).

All methods are synchronous, idempotent and safe to retry; on failure they clean up what
they half-made and raise ``DriverError`` with the real reason.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field


class DriverError(Exception):
    """A host operation failed; the message says which command and why."""


@dataclass(frozen=True)
class Capabilities:
    real_dataplane: bool  # packets actually flow (False for the fake)
    dhcp: bool
    security_groups: bool
    floating_ips: bool
    metadata: bool
    vlan: bool
    vxlan: bool


@dataclass
class SubnetSpec:
    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    enable_dhcp: bool
    dns_nameservers: list[str] = field(default_factory=list)
    host_routes: list[dict] = field(default_factory=list)
    ipv6_address_mode: str | None = None


@dataclass
class NetworkSpec:
    id: str
    bridge: str  # host bridge name
    network_type: str  # flat | vlan | vxlan | local
    physical_network: str | None
    segmentation_id: int | None
    mtu: int
    external: bool
    subnets: list[SubnetSpec] = field(default_factory=list)
    # For the host bridge of an external network: the host's own address on it (CIDR form),
    # so floating IPs are reachable from the host (DevStack's br-ex 172.24.4.1/24).
    host_address: str | None = None


@dataclass
class SecurityRule:
    direction: str  # ingress | egress
    ethertype: str  # IPv4 | IPv6
    protocol: str | None  # tcp/udp/icmp/ipv6-icmp/number or None (any)
    port_min: int | None
    port_max: int | None
    remote_prefixes: list[str] | None  # None = anywhere; [] = nobody (empty remote group)
    remote_group: str | None = None  # the group whose members remote_prefixes lists


@dataclass
class PortSpec:
    id: str
    network_id: str
    bridge: str
    mac: str
    ips: list[str]  # "addr/prefixlen"
    gateway: str | None  # IPv4 default gateway for the port's first subnet
    veth: str  # host end name; the guest end is renamed eth0 inside the netns
    port_security: bool
    allowed_address_pairs: list[dict] = field(default_factory=list)
    rules: list[SecurityRule] = field(default_factory=list)
    mtu: int = 1500
    admin_state_up: bool = True  # False: the port passes no traffic (its host end is down)


@dataclass
class RouterInterfaceSpec:
    port_id: str
    bridge: str
    mac: str
    ips: list[str]  # "addr/prefixlen"
    device: str  # name of the interface inside the router namespace


@dataclass
class FloatingIPSpec:
    floating_ip: str
    fixed_ip: str


@dataclass
class RouterSpec:
    id: str
    namespace: str
    gateway: RouterInterfaceSpec | None
    gateway_nexthop: str | None
    enable_snat: bool
    interfaces: list[RouterInterfaceSpec] = field(default_factory=list)
    floating_ips: list[FloatingIPSpec] = field(default_factory=list)
    routes: list[dict] = field(default_factory=list)


@dataclass
class DhcpHost:
    mac: str
    ip: str
    hostname: str


@dataclass
class DhcpSpec:
    network_id: str
    namespace: str
    bridge: str
    device: str
    mac: str
    ips: list[str]  # the DHCP port's own addresses ("addr/prefixlen")
    subnets: list[SubnetSpec]
    hosts: list[DhcpHost]
    mtu: int = 1500
    metadata: bool = True  # serve 169.254.169.254 from this namespace


@dataclass
class Topology:
    networks: list[NetworkSpec] = field(default_factory=list)
    routers: list[RouterSpec] = field(default_factory=list)
    dhcp: list[DhcpSpec] = field(default_factory=list)
    ports: list[PortSpec] = field(default_factory=list)
    # security group id -> addresses of its members (for remote-group rules)
    group_members: dict[str, list[str]] = field(default_factory=dict)
    built_at: float = 0.0  # time.monotonic() when read from the database


class NetworkDriver(abc.ABC):
    """One host's data plane."""

    capabilities: Capabilities

    @abc.abstractmethod
    def sync(self, topology: Topology) -> list[str]:
        """Converge the host to ``topology`` (create, fix, remove); return problems found.

        Must be idempotent and cheap when nothing changed. Removes only objects carrying
        this cloud's prefix. A failure on one object must not stop the others: it is
        reported in the returned list and retried on the next sync.
        """

    def has_network(self, bridge: str) -> bool:
        """Is the network's bridge in place (cheap; no full sync needed to plug a port)?"""
        return False

    @abc.abstractmethod
    def plug_vif(self, port: PortSpec, netns_pid: int) -> str:
        """Give the process ``netns_pid``'s network namespace an interface on ``port``;
        return its name there.

        A veth pair: the host end (``port.veth``) on ``port.bridge``, the other end moved
        into the namespace with ``port.mac`` and named like a cloud guest's NICs: the
        lowest free ``ethN`` (so a server's ports, plugged in order, are eth0, eth1, ...),
        except that a port plugged again (into a restarted server's new namespace) keeps
        the name it had. The port's security rules are applied. Idempotent: plugging a
        plugged port re-checks and fixes it.
        """

    @abc.abstractmethod
    def unplug_vif(self, port: PortSpec) -> None:
        """Remove the port's veth pair and rules; a no-op if they are already gone."""

    @abc.abstractmethod
    def apply_security(self, ports: list[PortSpec]) -> None:
        """Replace the firewall rules of these (plugged) ports atomically."""

    @abc.abstractmethod
    def purge(self) -> None:
        """Remove everything this cloud created on the host (``down --purge``)."""

    def start(self) -> None:
        """Long-lived helpers (metadata proxy); called once at service start."""

    def stop(self) -> None:
        """Stop what ``start`` started; host objects stay (a restart re-adopts them)."""
