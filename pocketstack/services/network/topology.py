"""Desired host state, derived from the database: what the driver must build.

Host names carry the cloud's prefix and a per-cloud index (``host_index``) so they fit
IFNAMSIZ: bridge ``<p>n<net>``, server veth ``<p>v<port>``, router namespace ``<p>r<router>``,
DHCP namespace ``<p>d<net>``, router/DHCP interface veths ``<p>i<port>``/``<p>q<port>``.
"""

from __future__ import annotations

import ipaddress
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import select

from pocketstack.drivers.network.base import (
    DhcpHost, DhcpSpec, FloatingIPSpec, NetworkSpec, PortSpec, RouterInterfaceSpec,
    RouterSpec, SecurityRule, SubnetSpec, Topology)
from pocketstack.services.network import models as m


class TopologyBuilder:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.p = svc.prefix

    def build(self) -> Topology:
        with self.svc.db.read() as s:
            nets = s.scalars(select(m.Network)).all()
            subnets = s.scalars(select(m.Subnet).order_by(m.Subnet.created_at)).all()
            ports = s.scalars(select(m.Port)).all()
            allocs = s.scalars(select(m.IPAllocation)).all()
            routers = s.scalars(select(m.Router)).all()
            fips = s.scalars(select(m.FloatingIP).where(m.FloatingIP.router_id.is_not(None))
                             ).all()
            groups = s.scalars(select(m.SecurityGroup)).all()
            rules = s.scalars(select(m.SecurityGroupRule)).all()
        return self._assemble(nets, subnets, ports, allocs, routers, fips, groups, rules)

    def port_spec(self, port_id: str) -> PortSpec | None:
        """One port's spec without reading the whole topology (the plug path is hot)."""
        from sqlalchemy import String, cast, or_

        with self.svc.db.read() as s:
            port = s.get(m.Port, port_id)
            if port is None:
                return None
            net = s.get(m.Network, port.network_id)
            subnets = s.scalars(select(m.Subnet).where(
                m.Subnet.network_id == port.network_id)).all()
            groups = list(port.security_groups or [])
            rules = s.scalars(select(m.SecurityGroupRule).where(
                m.SecurityGroupRule.security_group_id.in_(groups))).all() if groups else []
            remote = {r.remote_group_id for r in rules if r.remote_group_id}
            members = []
            if remote:
                col = cast(m.Port.security_groups, String)
                members = s.scalars(select(m.Port).where(
                    or_(*[col.like(f'%"{g}"%') for g in remote]))).all()
            ports = {port.id: port, **{x.id: x for x in members}}
            allocs = s.scalars(select(m.IPAllocation).where(
                m.IPAllocation.port_id.in_(list(ports)))).all()
            sgs = s.scalars(select(m.SecurityGroup).where(
                m.SecurityGroup.id.in_(groups))).all() if groups else []
        topo = self._assemble([net] if net else [], subnets, list(ports.values()), allocs, [],
                              [], sgs, rules, only={port_id})
        return next((p for p in topo.ports if p.id == port_id), None)

    def _assemble(self, nets: list, subnets: list, ports: list, allocs: list, routers: list,
                  fips: list, groups: list, rules: list, only: set[str] | None = None
                  ) -> Topology:
        p = self.p
        mappings = self.svc.settings_net.mappings()
        subnet_by_id = {x.id: x for x in subnets}
        subs_by_net: dict[str, list] = defaultdict(list)
        for x in subnets:
            subs_by_net[x.network_id].append(x)
        ips_by_port: dict[str, list] = defaultdict(list)
        for a in allocs:
            ips_by_port[a.port_id].append(a)
        net_by_id = {n.id: n for n in nets}
        bridge = {n.id: f"{p}n{n.host_index}" for n in nets}

        def cidr_ips(port: m.Port) -> list[str]:
            out = []
            for a in ips_by_port[port.id]:
                sub = subnet_by_id.get(a.subnet_id)
                if sub is not None:
                    out.append(f"{a.ip_address}/{ipaddress.ip_network(sub.cidr).prefixlen}")
            return out

        def subnet_spec(x: m.Subnet) -> SubnetSpec:
            return SubnetSpec(id=x.id, cidr=x.cidr, ip_version=x.ip_version,
                              gateway_ip=x.gateway_ip, enable_dhcp=x.enable_dhcp,
                              dns_nameservers=list(x.dns_nameservers),
                              host_routes=list(x.host_routes),
                              ipv6_address_mode=x.ipv6_address_mode)

        topo = Topology(built_at=time.monotonic())
        for n in nets:
            host_address = None
            if n.external and not mappings.get(n.physical_network or ""):
                v4 = next((x for x in subs_by_net[n.id] if x.ip_version == 4 and x.gateway_ip),
                          None)
                if v4 is not None:
                    host_address = f"{v4.gateway_ip}/{ipaddress.ip_network(v4.cidr).prefixlen}"
            topo.networks.append(NetworkSpec(
                id=n.id, bridge=bridge[n.id], network_type=n.network_type,
                physical_network=n.physical_network, segmentation_id=n.segmentation_id,
                mtu=n.mtu, external=n.external,
                subnets=[subnet_spec(x) for x in subs_by_net[n.id]], host_address=host_address))

        # security groups: member addresses per group, rules per group
        members: dict[str, list[str]] = defaultdict(list)
        for port in ports:
            for sg in port.security_groups or []:
                members[sg] += [a.ip_address for a in ips_by_port[port.id]]
                members[sg] += [pair["ip_address"] for pair in port.allowed_address_pairs or []]
        rules_by_group: dict[str, list] = defaultdict(list)
        for r in rules:
            rules_by_group[r.security_group_id].append(r)

        by_version: dict[tuple[str, int], list[str]] = {}
        for group, addrs in members.items():
            for a in addrs:
                v = 6 if ":" in a else 4
                by_version.setdefault((group, v), []).append(a)

        def port_rules(port: m.Port) -> list[SecurityRule]:
            out = []
            for sg in port.security_groups or []:
                for r in rules_by_group.get(sg, []):
                    if r.remote_group_id:
                        version = 4 if r.ethertype == "IPv4" else 6
                        remote = by_version.get((r.remote_group_id, version), [])
                    elif r.remote_ip_prefix:
                        remote = [r.remote_ip_prefix]
                    else:
                        remote = None
                    out.append(SecurityRule(direction=r.direction, ethertype=r.ethertype,
                                            protocol=r.protocol, port_min=r.port_range_min,
                                            port_max=r.port_range_max, remote_prefixes=remote,
                                            remote_group=r.remote_group_id))
            return out

        topo.group_members = {k: list(dict.fromkeys(v)) for k, v in members.items()}
        routers_by_id = {r.id: r for r in routers}
        ifaces: dict[str, list] = defaultdict(list)
        dhcp_ports: dict[str, m.Port] = {}
        for port in ports:
            net = net_by_id.get(port.network_id)
            if net is None:
                continue
            if port.device_owner == "network:router_interface" and \
                    port.device_id in routers_by_id:
                ifaces[port.device_id].append(port)
            elif port.device_owner == "network:dhcp":
                dhcp_ports[port.network_id] = port
            elif port.device_owner.startswith("compute:") and (only is None or port.id in only):
                v4 = next((subnet_by_id[a.subnet_id] for a in ips_by_port[port.id]
                           if subnet_by_id.get(a.subnet_id) and
                           subnet_by_id[a.subnet_id].ip_version == 4), None)
                topo.ports.append(PortSpec(
                    id=port.id, network_id=net.id, bridge=bridge[net.id],
                    mac=port.mac_address, ips=cidr_ips(port),
                    gateway=v4.gateway_ip if v4 is not None else None,
                    veth=f"{p}v{port.host_index}",
                    port_security=port.port_security_enabled,
                    allowed_address_pairs=list(port.allowed_address_pairs or []),
                    rules=port_rules(port) if port.port_security_enabled else [],
                    mtu=net.mtu, admin_state_up=port.admin_state_up))

        port_by_id = {x.id: x for x in ports}
        fips_by_router: dict[str, list] = defaultdict(list)
        for f in fips:
            if f.fixed_ip_address:
                fips_by_router[f.router_id].append(f)
        for r in routers:
            if not r.admin_state_up:
                continue  # as Neutron's L3 agent: a router set down has no namespace at all
            gw = None
            nexthop = None
            gw_port = port_by_id.get(r.gw_port_id) if r.gw_port_id else None
            if gw_port is not None:
                gw = self._iface(gw_port, bridge, cidr_ips(gw_port))
                for a in ips_by_port[gw_port.id]:
                    sub = subnet_by_id.get(a.subnet_id)
                    if sub is not None and sub.ip_version == 4 and sub.gateway_ip:
                        nexthop = sub.gateway_ip
                        break
            topo.routers.append(RouterSpec(
                id=r.id, namespace=f"{p}r{r.host_index}", gateway=gw, gateway_nexthop=nexthop,
                enable_snat=r.enable_snat and r.admin_state_up,
                interfaces=[self._iface(x, bridge, cidr_ips(x)) for x in ifaces[r.id]],
                floating_ips=[FloatingIPSpec(f.floating_ip_address, f.fixed_ip_address)
                              for f in fips_by_router[r.id]],
                routes=list(r.routes)))

        for net_id, port in dhcp_ports.items():
            net = net_by_id[net_id]
            dhcp_subnets = [x for x in subs_by_net[net_id] if x.enable_dhcp and x.ip_version == 4]
            if not dhcp_subnets:
                continue
            dhcp_ids = {x.id for x in dhcp_subnets}
            hosts = []
            for other in ports:
                if other.network_id != net_id or other.id == port.id:
                    continue
                for a in ips_by_port[other.id]:
                    if a.subnet_id in dhcp_ids:
                        hosts.append(DhcpHost(mac=other.mac_address, ip=a.ip_address,
                                              hostname="host-" + a.ip_address.replace(".", "-")))
            topo.dhcp.append(DhcpSpec(
                network_id=net_id, namespace=f"{p}d{net.host_index}", bridge=bridge[net_id],
                device=f"{p}q{port.host_index}", mac=port.mac_address, ips=cidr_ips(port),
                subnets=[subnet_spec(x) for x in dhcp_subnets], hosts=hosts, mtu=net.mtu))
        return topo

    def _iface(self, port: m.Port, bridge: dict[str, str], ips: list[str]
               ) -> RouterInterfaceSpec:
        return RouterInterfaceSpec(port_id=port.id, bridge=bridge[port.network_id],
                                   mac=port.mac_address, ips=ips,
                                   device=f"{self.p}q{port.host_index}")
