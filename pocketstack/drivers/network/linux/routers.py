"""Layer 3: network namespaces for routers (and DHCP servers), their interfaces, and NAT.

A router is a namespace with forwarding on; each interface is a veth pair whose host end
(``<p>i<port>``) is on the network's bridge and whose namespace end (``<p>q<port>``) carries
the port's MAC and addresses. NAT lives in an nftables table in the namespace: SNAT of the
internal subnets to the gateway address, and 1:1 DNAT/SNAT for each floating IP (the
floating addresses sit on the gateway interface as /32 so the router answers ARP for them).
"""

from __future__ import annotations

import ipaddress

from pocketstack.drivers.network.base import RouterInterfaceSpec, RouterSpec
from pocketstack.drivers.network.linux.cmd import (
    addresses, ip, ip_batch, links, netns_list, run)

NAT_TABLE = "psnat"


def host_end(device: str, prefix: str) -> str:
    return f"{prefix}i{device[len(prefix) + 1:]}"


def ensure_ns(ns: str, known: set[str], forwarding: bool) -> None:
    if ns in known:
        return
    run(["ip", "netns", "add", ns])
    ip("link", "set", "lo", "up", ns=ns)
    if forwarding:
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
    known.add(ns)


def delete_ns(ns: str) -> None:
    run(["ip", "netns", "del", ns], check=False)


def ensure_iface(prefix: str, ns: str, iface: RouterInterfaceSpec, ns_links: dict[str, dict],
                 root_links: dict[str, dict], mtu: int, extra: list[str] | None = None) -> None:
    host = host_end(iface.device, prefix)
    dev = iface.device
    if dev not in ns_links or host not in root_links:
        ip("link", "del", host, check=False)
        ip("link", "del", dev, ns=ns, check=False)
        ip_batch([f"link add {host} mtu {mtu} type veth peer name {dev} netns {ns}",
                  f"link set {host} master {iface.bridge}", f"link set {host} up"])
        ip_batch([f"link set {dev} address {iface.mac}", f"link set {dev} mtu {mtu}",
                  f"link set {dev} up"], ns=ns)
    elif root_links[host].get("master") != iface.bridge:
        ip("link", "set", host, "master", iface.bridge)
    wanted = set(iface.ips) | set(extra or [])
    have = addresses(dev, ns=ns)
    for stale in have - wanted:
        ip("addr", "del", stale, "dev", dev, ns=ns, check=False)
    for addr in wanted - have:
        ip("addr", "add", addr, "dev", dev, ns=ns)


def prune_ifaces(ns: str, wanted: set[str], prefix: str, ns_links: dict[str, dict]) -> None:
    for name in ns_links:
        if name.startswith(prefix) and name not in wanted:
            ip("link", "del", name, ns=ns, check=False)


def ensure_router(prefix: str, spec: RouterSpec, known_ns: set[str],
                  root_links: dict[str, dict], mtus: dict[str, int]) -> None:
    ns = spec.namespace
    ensure_ns(ns, known_ns, forwarding=True)
    ns_links = links(ns)
    wanted = set()
    for iface in spec.interfaces:
        ensure_iface(prefix, ns, iface, ns_links, root_links, mtus.get(iface.bridge, 1500))
        wanted.add(iface.device)
    if spec.gateway is not None:
        fips = [f"{f.floating_ip}/32" for f in spec.floating_ips]
        ensure_iface(prefix, ns, spec.gateway, ns_links, root_links,
                     mtus.get(spec.gateway.bridge, 1500), extra=fips)
        wanted.add(spec.gateway.device)
        if spec.gateway_nexthop:
            ip("route", "replace", "default", "via", spec.gateway_nexthop, "dev",
               spec.gateway.device, ns=ns, check=False)
    prune_ifaces(ns, wanted, prefix, ns_links)
    for route in spec.routes:
        ip("route", "replace", route["destination"], "via", route["nexthop"], ns=ns,
           check=False)
    apply_nat(ns, spec)


def nat_ruleset(spec: RouterSpec) -> str:
    lines = [f"table ip {NAT_TABLE} {{}}", f"delete table ip {NAT_TABLE}",
             f"table ip {NAT_TABLE} {{",
             "  chain psnatpre { type nat hook prerouting priority -100; policy accept;"]
    for f in spec.floating_ips:
        lines.append(f"    ip daddr {f.floating_ip} dnat to {f.fixed_ip}")
    lines.append("  }")
    lines.append("  chain psnatout { type nat hook output priority -100; policy accept;")
    for f in spec.floating_ips:
        lines.append(f"    ip daddr {f.floating_ip} dnat to {f.fixed_ip}")
    lines.append("  }")
    lines.append("  chain psnatpost { type nat hook postrouting priority 100; policy accept;")
    if spec.gateway is not None:
        gw_dev = spec.gateway.device
        for f in spec.floating_ips:
            lines.append(f"    oifname \"{gw_dev}\" ip saddr {f.fixed_ip} snat to {f.floating_ip}")
        gw_ip = next((a.split("/")[0] for a in spec.gateway.ips
                      if ipaddress.ip_interface(a).version == 4), None)
        internal = [a for i in spec.interfaces for a in i.ips
                    if ipaddress.ip_interface(a).version == 4]
        if spec.enable_snat and gw_ip and internal:
            nets = ", ".join(sorted({str(ipaddress.ip_interface(a).network) for a in internal}))
            lines.append(f"    oifname \"{gw_dev}\" ip saddr {{ {nets} }} snat to {gw_ip}")
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def apply_nat(ns: str, spec: RouterSpec) -> None:
    run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=nat_ruleset(spec))


def all_namespaces() -> set[str]:
    return netns_list()
