"""Security groups in nftables.

Stateful filtering needs conntrack. Where the host passes bridged IPv4/IPv6 through the IP
hooks (br_netfilter, ``net.bridge.bridge-nf-call-iptables = 1``, as Neutron's linuxbridge
agent requires), every port's rules live in ONE ``inet`` table on the host ("host mode"):
a forward-hook chain dispatches on (address, bridge) through verdict maps to a chain per
port, remote groups are named sets (a membership change rewrites a set, not N rulesets),
and the whole table is replaced atomically by one ``nft -f``. Egress and ingress are two
base chains (priorities 0 and 10) so traffic between two ports passes both ports' rules.

Otherwise ("namespace mode") the same rules go into an ``inet`` table inside each server's
network namespace. In both modes:
- anti-spoofing on the host, stateless, in one ``bridge`` table for the whole cloud: a
  frame from a port must carry the port's MAC and one of its addresses (or an allowed
  address pair), and may not answer DHCP;
- the security group rules themselves, stateful, in an ``inet`` table inside the
  server's network namespace (input/output hooks, conntrack: replies to allowed traffic
  pass, everything else is dropped). The table belongs to the host; a server without
  CAP_NET_ADMIN cannot change it.
Ports with port security off get neither.
"""

from __future__ import annotations

import ipaddress

from pocketstack.drivers.network.base import PortSpec, SecurityRule
from pocketstack.drivers.network.linux.cmd import run

NAMED = {"tcp", "udp", "sctp", "dccp", "udplite"}
NUMBERS = {"6": "tcp", "17": "udp", "132": "sctp", "33": "dccp", "136": "udplite",
           "1": "icmp", "58": "ipv6-icmp"}


def spoof_ruleset(table: str, ports: list[PortSpec]) -> str:
    lines = [f"table bridge {table} {{}}", f"delete table bridge {table}",
             f"table bridge {table} {{",
             "  chain psfwd { type filter hook forward priority -10; policy accept;"]
    for p in ports:
        if p.port_security:
            lines.append(f"    iifname \"{p.veth}\" jump spoof_{p.veth}")
    lines.append("  }")
    lines.append("  chain psinp { type filter hook input priority -10; policy accept;")
    for p in ports:
        if p.port_security:
            lines.append(f"    iifname \"{p.veth}\" jump spoof_{p.veth}")
    lines.append("  }")
    for p in ports:
        if not p.port_security:
            continue
        macs = {p.mac} | {pair.get("mac_address") or p.mac for pair in p.allowed_address_pairs}
        v4 = {"0.0.0.0"}
        v6 = {"::", "fe80::/10"}
        for addr in [a.split("/")[0] for a in p.ips] + [x["ip_address"] for x in
                                                        p.allowed_address_pairs]:
            net = ipaddress.ip_network(addr, strict=False)
            (v4 if net.version == 4 else v6).add(str(net) if net.num_addresses > 1
                                                 else str(net.network_address))
        lines += [f"  chain spoof_{p.veth} {{",
                  f"    ether saddr != {{ {', '.join(sorted(macs))} }} drop",
                  f"    ether type arp arp saddr ip != {{ {', '.join(sorted(v4))} }} drop",
                  f"    ether type ip ip saddr != {{ {', '.join(sorted(v4))} }} drop",
                  f"    ether type ip6 ip6 saddr != {{ {', '.join(sorted(v6))} }} drop",
                  "    ether type ip udp sport 67 udp dport 68 drop",
                  "  }"]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _match(rule: SecurityRule) -> str | None:
    family = "ipv4" if rule.ethertype == "IPv4" else "ipv6"
    parts = [f"meta nfproto {family}"]
    addr = "ip" if family == "ipv4" else "ip6"
    if rule.remote_prefixes is not None:
        if not rule.remote_prefixes:
            return None  # a remote group with no members: matches nobody
        direction = "saddr" if rule.direction == "ingress" else "daddr"
        parts.append(f"{addr} {direction} {{ {', '.join(sorted(set(rule.remote_prefixes)))} }}")
    proto = rule.protocol
    if proto is not None:
        proto = NUMBERS.get(proto, proto)
        if proto in ("icmp", "icmpv6", "ipv6-icmp"):
            proto = "icmp" if family == "ipv4" else "ipv6-icmp"
            kw = "icmp" if family == "ipv4" else "icmpv6"
            parts.append(f"meta l4proto {proto}")
            if rule.port_min is not None:
                parts.append(f"{kw} type {rule.port_min}")
                if rule.port_max is not None:
                    parts.append(f"{kw} code {rule.port_max}")
        elif proto in NAMED:
            parts.append(f"meta l4proto {proto}")
            if rule.port_min is not None:
                hi = rule.port_max if rule.port_max is not None else rule.port_min
                ports = str(rule.port_min) if hi == rule.port_min else f"{rule.port_min}-{hi}"
                parts.append(f"{proto} dport {ports}")
        else:
            parts.append(f"meta l4proto {proto}")
    return " ".join(parts) + " accept"


def port_ruleset(table: str, port: PortSpec, ifname: str = "eth0") -> str:
    """The port's rules inside the server's namespace (no br_netfilter on the host).

    One table per interface (``<table>_<ifname>``): a server with several ports has one
    table each, and each passes what is not on its own interface, because a packet must
    be accepted by every base chain of its hook."""
    name = f"{table}_{ifname}"
    # (the first two lines drop the single table that releases before multi-NIC used)
    lines = [f"table inet {table} {{}}", f"delete table inet {table}",
             f"table inet {name} {{}}", f"delete table inet {name}"]
    if not port.port_security:
        return "\n".join(lines) + "\n"
    lines += [f"table inet {name} {{",
              "  chain psin { type filter hook input priority 0; policy drop;",
              f"    iifname != \"{ifname}\" accept", "    ct state established,related accept",
              "    ct state invalid drop", "    udp sport 67 udp dport 68 accept",
              "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert, "
              "mld-listener-query } accept"]
    for rule in port.rules:
        if rule.direction == "ingress" and (m := _match(rule)):
            lines.append(f"    {m}")
    lines += ["  }", "  chain psout { type filter hook output priority 0; policy drop;",
              f"    oifname != \"{ifname}\" accept", "    ct state established,related accept",
              "    ct state invalid drop", "    udp sport 68 udp dport 67 accept",
              "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, "
              "mld2-listener-report } accept"]
    for rule in port.rules:
        if rule.direction == "egress" and (m := _match(rule)):
            lines.append(f"    {m}")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def apply_host(table: str, ports: list[PortSpec]) -> None:
    run(["nft", "-f", "-"], input=spoof_ruleset(table, ports))


def apply_port(table: str, port: PortSpec, pid: int, ifname: str = "eth0") -> None:
    run(["nsenter", f"--net=/proc/{pid}/ns/net", "nft", "-f", "-"],
        input=port_ruleset(table, port, ifname))


def delete_host(table: str) -> None:
    run(["nft", "delete", "table", "bridge", table], check=False)


def host_mode_available() -> bool:
    try:
        with open("/proc/sys/net/bridge/bridge-nf-call-iptables") as fh:
            return fh.read().strip() == "1"
    except OSError:
        return False


def _set_name(group: str, version: int) -> str:
    return f"m{version}_{group.replace('-', '')[:16]}"


def _host_match(rule: SecurityRule) -> str | None:
    if rule.remote_group:
        version = 4 if rule.ethertype == "IPv4" else 6
        plain = SecurityRule(rule.direction, rule.ethertype, rule.protocol, rule.port_min,
                             rule.port_max, None)
        base = _match(plain)
        if base is None:
            return None
        addr = "ip" if version == 4 else "ip6"
        direction = "saddr" if rule.direction == "ingress" else "daddr"
        return base.replace(" accept", "").replace(
            f"meta nfproto ipv{version}",
            f"meta nfproto ipv{version} {addr} {direction} @{_set_name(rule.remote_group, version)}"
        ) + " accept"
    return _match(rule)


def host_ruleset(table: str, ports: list[PortSpec], members: dict[str, list[str]]) -> str:
    lines = [f"table inet {table} {{}}", f"delete table inet {table}", f"table inet {table} {{"]
    used_groups = {r.remote_group for p in ports if p.port_security for r in p.rules
                   if r.remote_group}
    for group in sorted(used_groups):
        addrs = members.get(group, [])
        for version, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
            elems = sorted({a.split("/")[0] if "/" not in a or a.endswith(("/32", "/128"))
                            else a for a in addrs
                            if ipaddress.ip_network(a, strict=False).version == version})
            lines.append(f"  set {_set_name(group, version)} {{ type {typ}; flags interval;"
                         + (f" elements = {{ {', '.join(elems)} }};" if elems else "") + " }")
    maps: dict[str, list[str]] = {"in4": [], "out4": [], "in6": [], "out6": []}
    chains = []
    for p in ports:
        if not p.port_security:
            continue
        addrs = [a.split("/")[0] for a in p.ips] + [
            x["ip_address"].split("/")[0] for x in p.allowed_address_pairs]
        for addr in dict.fromkeys(addrs):
            v = ipaddress.ip_address(addr).version
            maps[f"in{v}"].append(f"{addr} . \"{p.bridge}\" : jump i_{p.veth}")
            maps[f"out{v}"].append(f"{addr} . \"{p.bridge}\" : jump o_{p.veth}")
        ingress = [m for r in p.rules if r.direction == "ingress" and (m := _host_match(r))]
        egress = [m for r in p.rules if r.direction == "egress" and (m := _host_match(r))]
        chains += [f"  chain i_{p.veth} {{", "    ct state established,related accept",
                   "    ct state invalid drop", "    udp sport 67 udp dport 68 accept",
                   "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, "
                   "nd-router-advert, mld-listener-query } accept",
                   *[f"    {m}" for m in ingress], "    drop", "  }"]
        chains += [f"  chain o_{p.veth} {{", "    ct state established,related accept",
                   "    ct state invalid drop", "    udp sport 68 udp dport 67 accept",
                   *[f"    {m}" for m in egress], "    drop", "  }"]
    for name, entries in maps.items():
        typ = "ipv4_addr" if name.endswith("4") else "ipv6_addr"
        lines.append(f"  map {name} {{ type {typ} . ifname : verdict;"
                     + (f" elements = {{ {', '.join(entries)} }};" if entries else "") + " }")
    lines += chains
    lines += ["  chain egress_ports { type filter hook forward priority 0; policy accept;",
              "    ip saddr . iifname vmap @out4", "    ip6 saddr . iifname vmap @out6", "  }",
              "  chain ingress_ports { type filter hook forward priority 10; policy accept;",
              "    ip daddr . oifname vmap @in4", "    ip6 daddr . oifname vmap @in6", "  }",
              "}"]
    return "\n".join(lines) + "\n"


def apply_host_rules(table: str, ports: list[PortSpec], members: dict[str, list[str]]) -> str:
    text = host_ruleset(table, ports, members)
    run(["nft", "-f", "-"], input=text)
    return text


def delete_host_rules(table: str) -> None:
    run(["nft", "delete", "table", "inet", table], check=False)
