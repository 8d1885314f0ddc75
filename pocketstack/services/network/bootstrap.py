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
    public_cidr = ipaddress.ip_network(svc.settings_net.public_cidr)
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
