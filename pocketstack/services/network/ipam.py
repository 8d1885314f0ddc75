"""IP address management: subnet validation, allocation pools, handing out addresses.

An address is never handed out twice: every allocation is a row keyed by
(subnet_id, ip_address), so even concurrent API replicas collide in the database instead of
on the wire. Automatic (SLAAC / DHCPv6-stateless) IPv6 subnets derive the address from the
MAC (EUI-64) as Neutron does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.errors import BadRequest, Conflict
from pocketstack.services.network import models as m

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_DNS = 5
MAX_ROUTES = 20
AUTO_MODES = ("slaac", "dhcpv6-stateless")
ROUTER_OWNERS = ("network:router_interface", "network:router_interface_distributed",
                 "network:ha_router_replicated_interface")


def bad(msg: str, kind: str = "InvalidInput") -> BadRequest:
    return BadRequest(f"Invalid input for operation: {msg}", kind=kind)


def is_auto(subnet: m.Subnet) -> bool:
    return subnet.ip_version == 6 and subnet.ipv6_address_mode in AUTO_MODES


def eui64(cidr: str, mac: str) -> str:
    net = ipaddress.ip_network(cidr)
    octets = [int(x, 16) for x in mac.split(":")]
    octets[0] ^= 0x02
    iid = octets[:3] + [0xFF, 0xFE] + octets[3:]
    value = int.from_bytes(bytes(iid), "big")
    return str(ipaddress.IPv6Address(int(net.network_address) | value))


def default_pools(net: IPNet, gateway: str | None) -> list[dict[str, str]]:
    if net.version == 4:
        first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
        if net.prefixlen >= 31:
            first, last = int(net.network_address), int(net.broadcast_address)
    else:
        first, last = int(net.network_address) + 1, int(net.broadcast_address)
    ranges = [(first, last)]
    if gateway:
        g = int(ipaddress.ip_address(gateway))
        out = []
        for a, b in ranges:
            if a <= g <= b:
                if a <= g - 1:
                    out.append((a, g - 1))
                if g + 1 <= b:
                    out.append((g + 1, b))
            else:
                out.append((a, b))
        ranges = out
    cls = ipaddress.IPv4Address if net.version == 4 else ipaddress.IPv6Address
    return [{"start": str(cls(a)), "end": str(cls(b))} for a, b in ranges if a <= b]


def validate_pools(net: IPNet, pools: list[dict[str, str]], gateway: str | None) -> list[dict]:
    ranges = []
    for pool in pools:
        start, end = ipaddress.ip_address(pool["start"]), ipaddress.ip_address(pool["end"])
        if start.version != net.version or end.version != net.version:
            raise bad(f"The allocation pool {pool['start']}-{pool['end']} does not match the "
                      f"IP version of the subnet.", "InvalidAllocationPool")
        if start not in net or end not in net:
            raise BadRequest(f"The allocation pool {start}-{end} spans beyond the subnet cidr "
                             f"{net}.", kind="OutOfBoundsAllocationPool")
        if start > end:
            raise BadRequest(f"The allocation pool {start}-{end} is not valid.",
                             kind="InvalidAllocationPool")
        if net.version == 4 and net.prefixlen < 31 and (
                start == net.network_address or end == net.broadcast_address):
            raise BadRequest(f"The allocation pool {start}-{end} is not valid: it includes "
                             "the network or broadcast address.", kind="InvalidAllocationPool")
        ranges.append((int(start), int(end), pool))
    ranges.sort()
    for (a1, b1, p1), (a2, b2, p2) in zip(ranges, ranges[1:]):
        if a2 <= b1:
            raise BadRequest(f"Found overlapping allocation pools: {p1['start']}-{p1['end']} "
                             f"and {p2['start']}-{p2['end']}.",
                             kind="OverlappingAllocationPools")
    if gateway:
        g = int(ipaddress.ip_address(gateway))
        for a, b, p in ranges:
            if a <= g <= b:
                raise Conflict(f"Gateway ip {gateway} conflicts with allocation pool "
                               f"{p['start']}-{p['end']}.",
                               kind="GatewayConflictWithAllocationPools")
    return [{"start": p["start"], "end": p["end"]} for _, _, p in ranges]


def check_gateway(net: IPNet, gateway: str | None) -> None:
    if gateway is None:
        return
    ip = ipaddress.ip_address(gateway)
    if ip.version != net.version:
        raise bad("Gateway IP version inconsistent with allocation pool version")
    if ip == net.network_address and net.version == 4 and net.prefixlen < 31 or (
            net.version == 4 and net.prefixlen < 31 and ip == net.broadcast_address):
        raise bad("Gateway is not valid on subnet")


def check_dns_routes(net: IPNet, dns: list[str], routes: list[dict]) -> None:
    if len(dns) > MAX_DNS:
        raise BadRequest(f"Number of DNS nameservers exceeds the limit {MAX_DNS}.",
                         kind="DNSNameServersExhausted")
    if len(routes) > MAX_ROUTES:
        raise BadRequest(f"Unable to complete operation for {net}. The number of host routes "
                         f"exceeds the limit {MAX_ROUTES}.", kind="HostRoutesExhausted")
    for ns in dns:
        if ipaddress.ip_address(ns).version != net.version:
            raise bad(f"DNS nameserver {ns} is not an IPv{net.version} address")
    for route in routes:
        if ipaddress.ip_network(route["destination"]).version != net.version or \
                ipaddress.ip_address(route["nexthop"]).version != net.version:
            raise bad(f"Host route {route} does not match the subnet's IP version")


def check_overlap(net: IPNet, others: Iterable[m.Subnet], network_id: str) -> None:
    for other in others:
        onet = ipaddress.ip_network(other.cidr)
        if onet.version == net.version and onet.overlaps(net):
            raise bad(f"Requested subnet with cidr: {net} for network: {network_id} overlaps "
                      "with another subnet.")


def check_modes(ip_version: int, ra: str | None, addr: str | None, enable_dhcp: bool) -> None:
    if ip_version == 4 and (ra or addr):
        raise bad("ipv6_ra_mode or ipv6_address_mode cannot be set when ip_version is 4")
    if ra and addr and ra != addr:
        raise bad(f"ipv6_ra_mode set to '{ra}' with ipv6_address_mode set to '{addr}' is not "
                  "valid. If both attributes are set, they must be the same value")
    if not enable_dhcp and (ra or addr):
        raise bad("ipv6_ra_mode or ipv6_address_mode cannot be set when enable_dhcp is set "
                  "to False")


def _pool_ranges(subnet: m.Subnet) -> list[tuple[int, int]]:
    return [(int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"])))
            for p in subnet.allocation_pools]


def in_pools(subnet: m.Subnet, ip: str) -> bool:
    v = int(ipaddress.ip_address(ip))
    return any(a <= v <= b for a, b in _pool_ranges(subnet))


def allocated(session: Session, subnet_id: str) -> set[str]:
    return set(session.scalars(select(m.IPAllocation.ip_address)
                               .where(m.IPAllocation.subnet_id == subnet_id)))


_HINTS: dict[str, int] = {}  # subnet -> last address handed out by this process (a guess)


def _try_hint(session: Session, subnet: m.Subnet) -> str | None:
    """Fast path: the address after the last one we handed out, checked by primary key."""
    last = _HINTS.get(subnet.id)
    if last is None:
        return None
    cls = ipaddress.IPv4Address if subnet.ip_version == 4 else ipaddress.IPv6Address
    for a, b in _pool_ranges(subnet):
        for v in range(max(a, last + 1), min(b, last + 16) + 1):
            if session.get(m.IPAllocation, (subnet.id, str(cls(v)))) is None:
                return str(cls(v))
    return None


def next_free(session: Session, subnet: m.Subnet, taken: set[str] | None = None) -> str | None:
    if taken is None and (hint := _try_hint(session, subnet)) is not None:
        return hint
    taken = allocated(session, subnet.id) if taken is None else taken
    cls = ipaddress.IPv4Address if subnet.ip_version == 4 else ipaddress.IPv6Address
    taken_int = {int(ipaddress.ip_address(t)) for t in taken}
    for a, b in _pool_ranges(subnet):
        v = a
        while v <= b:
            if v not in taken_int:
                return str(cls(v))
            v += 1
    return None


def allocate(session: Session, subnet: m.Subnet, port: m.Port, ip: str | None,
             *, explicit: bool) -> str:
    """Record one address for ``port`` on ``subnet`` (next free one when ``ip`` is None)."""
    net = ipaddress.ip_network(subnet.cidr)
    router_port = port.device_owner in ROUTER_OWNERS
    if ip is None and is_auto(subnet) and not router_port:
        ip = eui64(subnet.cidr, port.mac_address)
    elif ip is not None:
        addr = ipaddress.ip_address(ip)
        if addr.version != net.version or addr not in net:
            raise bad(f"IP address {ip} is not a valid IP for the specified subnet.",
                      "InvalidIpForSubnet")
        if is_auto(subnet) and not router_port and explicit and ip != eui64(
                subnet.cidr, port.mac_address):
            raise bad(f"IPv6 address {ip} cannot be directly assigned to a port on subnet "
                      f"{subnet.id} as the subnet is configured for automatic addresses")
        if net.version == 4 and net.prefixlen < 31 and addr in (net.network_address,
                                                                net.broadcast_address):
            raise bad(f"IP address {ip} is not a valid IP for the specified subnet.",
                      "InvalidIpForSubnet")
        if ip == subnet.gateway_ip and not router_port and port.device_owner != \
                "network:router_gateway":
            raise Conflict(f"IP address {ip} already allocated in subnet {subnet.id}",
                           kind="IpAddressInUse")
    else:
        ip = next_free(session, subnet)
        if ip is None:
            raise Conflict(f"No more IP addresses available on network {subnet.network_id}.",
                           kind="IpAddressGenerationFailure")
    if session.get(m.IPAllocation, (subnet.id, ip)) is not None:
        raise Conflict(f"IP address {ip} already allocated in subnet {subnet.id}",
                       kind="IpAddressAlreadyAllocated")
    session.add(m.IPAllocation(subnet_id=subnet.id, ip_address=ip, port_id=port.id,
                               network_id=subnet.network_id))
    session.flush()
    if not explicit:
        _HINTS[subnet.id] = int(ipaddress.ip_address(ip))
    return ip


def prefixlen(cidr: str) -> int:
    return ipaddress.ip_network(cidr).prefixlen


def parse(value: Any) -> Any:
    return ipaddress.ip_address(value)
