"""Network IP availabilities (api-ref v2 "Network IP availability and usage stats") and
the service providers list: read-only views computed from the other tables.

Availability is computed in two queries whatever the number of networks: the subnets (with
their networks' names and owners), then the allocation counts grouped by subnet. As in
Neutron, ``total_ips`` is the size of the allocation pools and ``used_ips`` the addresses
handed out on the subnet.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import func, select
from starlette.datastructures import QueryParams

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.common import select as select_items

KEYS = {"network_id", "network_name", "tenant_id", "project_id", "total_ips", "used_ips",
        "subnet_ip_availability", "ip_version"}


def _no_paging(query: Any) -> QueryParams:
    """These collections have no ids to page by; Neutron ignores paging on them too."""
    return QueryParams([(k, v) for k, v in query.multi_items()
                        if k not in ("limit", "marker", "page_reverse")])


def _pool_size(pools: list[dict]) -> int:
    return sum(int(ipaddress.ip_address(p["end"])) - int(ipaddress.ip_address(p["start"])) + 1
               for p in pools)


class IPAvailabilities:
    def __init__(self, svc: Any) -> None:
        self.db = svc.db

    def _compute(self, network_ids: list[str] | None = None) -> list[dict]:
        with self.db.read() as s:
            q = select(m.Network.id, m.Network.name, m.Network.project_id, m.Subnet).outerjoin(
                m.Subnet, m.Subnet.network_id == m.Network.id)
            if network_ids is not None:
                q = q.where(m.Network.id.in_(network_ids))
            rows = s.execute(q.order_by(m.Network.created_at, m.Network.id,
                                        m.Subnet.created_at)).all()
            cq = select(m.IPAllocation.subnet_id, func.count()).group_by(
                m.IPAllocation.subnet_id)
            if network_ids is not None:
                cq = cq.where(m.IPAllocation.network_id.in_(network_ids))
            used = dict(s.execute(cq).all())
        nets: dict[str, dict] = {}
        for net_id, name, project, sub in rows:
            net = nets.setdefault(net_id, {
                "network_id": net_id, "network_name": name, "tenant_id": project,
                "project_id": project, "total_ips": 0, "used_ips": 0,
                "subnet_ip_availability": []})
            if sub is None:
                continue
            entry = {"subnet_id": sub.id, "subnet_name": sub.name, "ip_version": sub.ip_version,
                     "cidr": sub.cidr, "total_ips": _pool_size(sub.allocation_pools),
                     "used_ips": used.get(sub.id, 0)}
            net["subnet_ip_availability"].append(entry)
            net["total_ips"] += entry["total_ips"]
            net["used_ips"] += entry["used_ips"]
        return list(nets.values())

    def list(self, ctx: RequestContext, query: Any, url: str) -> dict:
        # Neutron's default policy: admins only; others get an empty list, not a 403.
        if not policy.check(ctx, "network:get_network_ip_availability", ctx.as_target()):
            return {"network_ip_availabilities": []}
        items = self._compute()
        versions = query.getlist("ip_version")
        if versions:  # a network qualifies when it has a subnet of that version
            items = [i for i in items if any(str(x["ip_version"]) in versions
                                             for x in i["subnet_ip_availability"])]
        return select_items(items, _no_paging(query), known=KEYS, url=url,
                            collection="network_ip_availabilities",
                            special={"ip_version": lambda i, w: True})

    def get(self, ctx: RequestContext, network_id: str) -> dict:
        items = self._compute([network_id]) if policy.check(
            ctx, "network:get_network_ip_availability", ctx.as_target()) else []
        if not items:
            raise NotFound(f"Network {network_id} could not be found.", kind="NetworkNotFound")
        return items[0]


# What GET /v2.0/service-providers lists: the service types this cloud implements in
# process, each with its one (default) provider.
SERVICE_PROVIDERS = [{"service_type": "L3_ROUTER_NAT", "name": "pocketstack", "default": True}]


def service_providers(ctx: RequestContext, query: Any, url: str) -> dict:
    policy.enforce(ctx, "network:get_service_provider", ctx.as_target())
    return select_items([dict(p) for p in SERVICE_PROVIDERS], _no_paging(query),
                        known={"service_type", "name", "default"}, url=url,
                        collection="service_providers")
