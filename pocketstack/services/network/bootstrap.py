"""First start: what DevStack creates — a ``public`` external flat network on a host bridge
(floating IPs reachable from the host, which sits at the subnet's .1) and, for the demo
project, ``private`` + ``private-subnet`` + ``router1`` gatewayed to public.

Runs at every ``up`` but acts once (a marker row); ``[network] create_default_networks =
false`` turns it off.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.services.network import models as m

MARKER = "bootstrap-defaults"


def _project_id(svc: Any, name: str) -> str | None:
    try:
        from pocketstack.services.identity.models import Project
    except ImportError:  # identity slice absent (unit tests): nothing to attach to
        return None
    with svc.db.read() as s:
        return s.scalar(select(Project.id).where(Project.name == name,
                                                 Project.domain_id == "default"))


DEFAULT_PUBLIC_CIDR = "172.24.4.0/24"


def _host_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this host has an address in or a route to (all tables)."""
    import json
    import subprocess

    nets = []
    for cmd in (["ip", "-j", "-4", "addr", "show"], ["ip", "-j", "-4", "route", "show", "table", "all"]):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout
            data = json.loads(out or "[]")
        except (OSError, ValueError, subprocess.SubprocessError):
            continue
        for item in data:
            for a in item.get("addr_info", []):
                nets.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
            dst = item.get("dst")
            if dst and dst != "default" and item.get("type", "unicast") == "unicast":
                try:
                    nets.append(ipaddress.ip_network(dst, strict=False))
                except ValueError:
                    pass
    return [n for n in nets if n.prefixlen > 0 and not n.is_loopback]


def public_cidr_for(svc: Any) -> str:
    """The public network's range: as configured, else DevStack's, else (with a data plane
    on this host's own interfaces) the first 172.24.N.0/24 the host does not use — two
    clouds side by side must not both put their floating IPs in one range."""
    if svc.settings_net.public_cidr:
        return svc.settings_net.public_cidr
    if not svc.driver.capabilities.real_dataplane:  # nothing on the host to collide with
        return DEFAULT_PUBLIC_CIDR
    used = _host_networks()
    for n in range(4, 255):
        cand = ipaddress.ip_network(f"172.24.{n}.0/24")
        if not any(cand.overlaps(u) for u in used):
            return str(cand)
    raise ValueError("no free 172.24.N.0/24 for the public network on this host: set "
                     "[network] public_cidr (POCKETSTACK_NETWORK__PUBLIC_CIDR) to a free range")


def create_defaults(svc: Any) -> None:
    if not svc.settings_net.create_default_networks:
        return
    with svc.db.read() as s:
        if s.get(m.HostCounter, MARKER) is not None:
            return
    admin_id = _project_id(svc, "admin")
    if admin_id is None:
        return
    admin = RequestContext.internal(project_id=admin_id)
    public_cidr = ipaddress.ip_network(public_cidr_for(svc))
    hosts = list(public_cidr.hosts())
    public = svc.networks.create(admin, {
        "name": "public", "router:external": True, "provider:network_type": "flat",
        "provider:physical_network": "public", "is_default": True, "tenant_id": admin_id})
    public_subnet = svc.subnets.create(admin, {
        "name": "public-subnet", "network_id": public["id"], "ip_version": 4,
        "cidr": str(public_cidr), "gateway_ip": str(hosts[0]), "enable_dhcp": False,
        "allocation_pools": [{"start": str(hosts[1]), "end": str(hosts[-1])}],
        "tenant_id": admin_id})
    demo_id = _project_id(svc, "demo")
    if demo_id is not None:
        demo = RequestContext.internal(project_id=demo_id)
        dns = [d.strip() for d in svc.settings_net.dns_nameservers.split(",") if d.strip()]
        private = svc.networks.create(demo, {"name": "private", "tenant_id": demo_id})
        subnet = svc.subnets.create(demo, {
            "name": "private-subnet", "network_id": private["id"], "ip_version": 4,
            "cidr": svc.settings_net.private_cidr, "dns_nameservers": dns,
            "tenant_id": demo_id})
        router = svc.routers.create(demo, {
            "name": "router1", "tenant_id": demo_id,
            "external_gateway_info": {"network_id": public["id"]}})
        svc.routers.add_interface(demo, router["id"], {"subnet_id": subnet["id"]})
    del public_subnet
    with svc.db.write() as s:
        s.add(m.HostCounter(name=MARKER, value=1))
