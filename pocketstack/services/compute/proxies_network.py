"""Nova's deprecated network proxies (gone at 2.36; the floating IP server actions at 2.44):
os-floating-ips, os-floating-ip-pools, os-networks, os-tenant-networks and the
addFloatingIp/removeFloatingIp server actions. They call the network slice in-process, as
Nova's nova/network/neutron.py calls Neutron, and answer Nova's bodies and status codes
(nova/api/openstack/compute/{floating_ips,floating_ip_pools,networks,tenant_networks}.py)."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.context import RequestContext
from pocketstack.errors import (BadRequest, Conflict, Forbidden, Gone, NotFound, OverQuota,
                                PocketError)
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.proxies import uuid_like

# Nova's [neutron] default_floating_pool, as DevStack sets it: the pool used when a
# create body names none.
DEFAULT_POOL = "public"


class FloatingIPProxy:
    """The floating IP logic shared by the routes and the server actions."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    def network(self) -> Any:
        net = self.svc.cloud.services.get("network")
        if net is None:
            raise NotFound("Floating IPs need the network service.")
        return net

    # -- views ------------------------------------------------------------------------
    def _nets(self) -> dict[str, dict]:
        rows = self.network().networks.list(RequestContext.internal(), QueryParams(),
                                            "")["networks"]
        return {n["id"]: n for n in rows}

    def _port_device(self, port_id: str | None) -> str | None:
        if not port_id:
            return None
        try:
            return self.network().ports.get(RequestContext.internal(), port_id).get("device_id") \
                or None
        except NotFound:
            return None

    def view(self, fip: dict[str, Any], nets: dict[str, dict] | None = None) -> dict[str, Any]:
        nets = self._nets() if nets is None else nets
        net = nets.get(fip["floating_network_id"], {})
        details = fip.get("port_details")
        instance = details.get("device_id") if isinstance(details, dict) else \
            self._port_device(fip.get("port_id"))
        return {"fixed_ip": fip.get("fixed_ip_address"), "id": fip["id"],
                "instance_id": instance or None, "ip": fip["floating_ip_address"],
                "pool": net.get("name") or fip["floating_network_id"]}

    # -- floating IPs -----------------------------------------------------------------
    def list_(self, ctx: RequestContext) -> list[dict]:
        rows = self.network().floatingips.list(ctx, QueryParams(), "")["floatingips"]
        nets = self._nets()
        return [self.view(f, nets) for f in rows
                if (f.get("project_id") or f.get("tenant_id")) == ctx.project_id]

    def get(self, ctx: RequestContext, fip_id: str) -> dict:
        try:
            return self.network().floatingips.get(ctx, fip_id)
        except NotFound:
            raise NotFound(f"Floating IP not found for ID {fip_id}") from None

    def by_address(self, ctx: RequestContext, address: str) -> dict:
        rows = [f for f in self.network().floatingips.list(ctx, QueryParams(), "")["floatingips"]
                if f["floating_ip_address"] == address]
        if not rows:
            raise NotFound(f"Floating IP not found for address {address}.")
        if len(rows) > 1:
            raise Conflict(f"Multiple floating IPs are found for address {address}.")
        return rows[0]

    def pools(self, ctx: RequestContext) -> list[dict]:
        rows = self.network().networks.list(ctx, QueryParams(), "")["networks"]
        return [{"name": n.get("name") or n["id"]} for n in rows if n.get("router:external")]

    def _pool_id(self, ctx: RequestContext, name_or_id: str) -> str:
        key = "id" if uuid_like(name_or_id) else "name"
        rows = [n for n in self.network().networks.list(ctx, QueryParams(), "")["networks"]
                if n.get("router:external") and n.get(key) == name_or_id]
        if not rows:
            raise NotFound("Floating IP pool not found.")
        if len(rows) > 1:
            raise Conflict(f"Multiple floating IP pools matches found for name '{name_or_id}'")
        return rows[0]["id"]

    def create(self, ctx: RequestContext, body: Any) -> dict:
        if body is not None and not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute body: not an object")
        pool = (body or {}).get("pool")
        if pool is not None and not isinstance(pool, str):
            raise BadRequest(f"Invalid input for field/attribute pool. Value: {pool}. "
                             f"{pool!r} is not of type 'string', 'null'")
        net_id = self._pool_id(ctx, pool or DEFAULT_POOL)
        try:
            fip = self.network().floatingips.create(ctx, {"floating_network_id": net_id})
        except PocketError as exc:  # Nova's mapping of Neutron's allocation failures
            if isinstance(exc, OverQuota) or exc.kind == "OverQuota":
                raise Forbidden(f"IP allocation over quota in pool {pool}." if pool else
                                "IP allocation over quota.") from None
            if exc.kind == "IpAddressGenerationFailure":
                raise NotFound(f"No more floating IPs in pool {pool}." if pool else
                               "No more floating IPs available.") from None
            if isinstance(exc, BadRequest):
                raise BadRequest(exc.message) from None
            raise
        return self.view(fip)

    def delete(self, ctx: RequestContext, fip_id: str) -> None:
        self.get(ctx, fip_id)
        self.network().floatingips.delete(ctx, fip_id)

    # -- server actions ---------------------------------------------------------------
    def _server_ports(self, ctx: RequestContext, server_id: str) -> list[dict]:
        self.svc.servers.get(ctx, server_id)  # 404 for a server the caller cannot see
        return self.network().ports.list(RequestContext.internal(),
                                         QueryParams({"device_id": server_id}), "")["ports"]

    def _address(self, arg: Any, action: str, key: str = "address",
                 required: bool = True) -> str | None:
        if not isinstance(arg, dict):
            raise BadRequest(f"Invalid input for field/attribute {action}. Value: {arg}. "
                             f"{arg!r} is not of type 'object'")
        extra = set(arg) - {"address", "fixed_address"} if action == "addFloatingIp" \
            else set(arg) - {"address"}
        if extra:
            raise BadRequest(f"Invalid input for field/attribute {action}. Additional "
                             f"properties are not allowed ({', '.join(sorted(extra))} "
                             "were unexpected)")
        value = arg.get(key)
        if value is None and not required:
            return None
        try:
            if not isinstance(value, str):
                raise ValueError
            ipaddress.ip_address(value)
        except ValueError:
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                             f"{value!r} is not a 'ip-address'") from None
        return value

    def add_to_server(self, ctx: RequestContext, server_id: str, arg: Any) -> None:
        address = self._address(arg, "addFloatingIp")
        fixed = self._address(arg, "addFloatingIp", "fixed_address", required=False)
        ports = self._server_ports(ctx, server_id)
        if not ports:
            raise BadRequest("Instance network is not ready yet")
        fixed_ips = [(p, ip["ip_address"]) for p in ports for ip in p.get("fixed_ips", [])]
        if not fixed_ips:
            raise BadRequest("No fixed IPs associated to instance")
        if fixed is not None:
            chosen = next(((p, a) for p, a in fixed_ips if a == fixed), None)
            if chosen is None:
                raise BadRequest("Specified fixed address not assigned to instance")
        else:
            chosen = next(((p, a) for p, a in fixed_ips
                           if ipaddress.ip_address(a).version == 4), None)
            if chosen is None:
                raise BadRequest(f"Unable to associate floating IP {address} to any fixed IPs "
                                 f"for instance {server_id}. Instance has no fixed IPv4 "
                                 "addresses to associate.")
        try:
            fip = self.by_address(ctx, address)
        except NotFound:
            raise NotFound("floating IP not found") from None
        try:
            self.network().floatingips.update(ctx, fip["id"], {
                "port_id": chosen[0]["id"], "fixed_ip_address": chosen[1]})
        except (Conflict, NotFound, BadRequest) as exc:
            # Nova: a Neutron conflict is FloatingIpAssociateFailed, anything else a
            # generic "Unable to associate" - both 400
            raise BadRequest(f"Unable to associate floating IP {address} to fixed IP "
                             f"{chosen[1]} for instance {server_id}. Error: "
                             f"{exc.message}") from None
        except Forbidden:
            raise
        except PocketError as exc:
            raise BadRequest(exc.message) from None

    def remove_from_server(self, ctx: RequestContext, server_id: str, arg: Any) -> None:
        address = self._address(arg, "removeFloatingIp")
        fip = self.by_address(ctx, address)  # 404 / 409 as Nova's instance lookup
        instance = self._port_device(fip.get("port_id"))
        if instance:
            self.svc.servers.get(ctx, instance)
        if instance and fip.get("port_id") and instance == server_id:
            self.network().floatingips.update(ctx, fip["id"], {"port_id": None})
            return
        raise Conflict(f"Floating IP {address} is not associated with instance {server_id}.")


def _network_view(ctx: RequestContext, net: dict[str, Any]) -> dict[str, Any]:
    """nova/api/openstack/compute/networks.py network_dict: with Neutron, two real fields."""
    fields = ["id", "cidr", "netmask", "gateway", "broadcast", "dns1", "dns2", "cidr_v6",
              "gateway_v6", "label", "netmask_v6"]
    if ctx.is_admin:
        fields += ["created_at", "updated_at", "deleted_at", "deleted", "injected", "bridge",
                   "vlan", "vpn_public_address", "vpn_public_port", "vpn_private_address",
                   "dhcp_start", "project_id", "host", "bridge_interface", "multi_host",
                   "priority", "rxtx_base", "mtu", "dhcp_server", "enable_dhcp",
                   "share_address"]
    body: dict[str, Any] = dict.fromkeys(fields)
    body["id"], body["label"] = net["id"], net.get("name")
    return body


def register(svc: Any, add: Any) -> None:  # noqa: C901 - a table of small handlers
    V = "/v2.1"
    fips = FloatingIPProxy(svc)
    svc.floating_ip_proxy = fips  # the server actions call it

    def no_proxy(ver: APIVersion) -> None:
        if ver.at_least(2, 36):
            raise NotFound("The resource could not be found.")

    async def fip_list(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"floating_ips": await run(fips.list_, req.ctx)})

    async def fip_show(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        fip = await run(fips.get, req.ctx, req.params["fip_id"])
        return json({"floating_ip": await run(fips.view, fip)})

    async def fip_create(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        body = await req.json() if await req.body() else None
        return json({"floating_ip": await run(fips.create, req.ctx, body)})

    async def fip_delete(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        await run(fips.delete, req.ctx, req.params["fip_id"])
        return empty(202)

    async def fip_pools(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"floating_ip_pools": await run(fips.pools, req.ctx)})

    add("get", V + "/os-floating-ips", fip_list)
    add("post", V + "/os-floating-ips", fip_create)
    add("get", V + "/os-floating-ips/{fip_id}", fip_show)
    add("delete", V + "/os-floating-ips/{fip_id}", fip_delete)
    add("get", V + "/os-floating-ip-pools", fip_pools)

    # -- os-networks / os-tenant-networks ------------------------------------------------
    def _networks(ctx: RequestContext) -> list[dict]:
        return fips.network().networks.list(ctx, QueryParams(), "")["networks"]

    def _network(ctx: RequestContext, net_id: str) -> dict:
        try:
            return fips.network().networks.get(ctx, net_id)
        except NotFound:
            raise NotFound("Network not found") from None

    async def networks_list(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        rows = await run(_networks, req.ctx)
        return json({"networks": [_network_view(req.ctx, n) for n in rows]})

    async def network_show(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        net = await run(_network, req.ctx, req.params["net_id"])
        return json({"network": _network_view(req.ctx, net)})

    def _tenant_view(net: dict[str, Any]) -> dict[str, Any]:
        # "cidr": "None" is what Nova has answered with Neutron ever since (sic)
        return {"id": net["id"], "cidr": str(None), "label": net.get("name")}

    async def tenant_networks_list(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        rows = await run(_networks, req.ctx)
        return json({"networks": [_tenant_view(n) for n in rows]})

    async def tenant_network_show(req: Req, ver: APIVersion) -> Response:
        no_proxy(ver)
        return json({"network": _tenant_view(await run(_network, req.ctx,
                                                       req.params["net_id"]))})

    async def gone(req: Req, ver: APIVersion) -> Response:
        raise Gone("This API only works with nova-network, which was removed in the 21.0.0 "
                   "(Ussuri) release.")

    add("get", V + "/os-networks", networks_list)
    add("get", V + "/os-networks/{net_id}", network_show)
    add("post", V + "/os-networks", gone)
    add("post", V + "/os-networks/add", gone)
    add("delete", V + "/os-networks/{net_id}", gone)
    add("post", V + "/os-networks/{net_id}/action", gone)
    add("get", V + "/os-tenant-networks", tenant_networks_list)
    add("get", V + "/os-tenant-networks/{net_id}", tenant_network_show)
    add("post", V + "/os-tenant-networks", gone)
    add("delete", V + "/os-tenant-networks/{net_id}", gone)
