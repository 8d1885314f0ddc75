"""Routers and floating IPs (api-ref: layer-3-networking)."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import ipam
from pocketstack.services.network import models as m
from pocketstack.services.network import views
from pocketstack.services.network.common import bump
from pocketstack.services.network.networks import next_index
from pocketstack.services.network.resource import Resource, owner_for

INTERFACE = "network:router_interface"
GATEWAY = "network:router_gateway"


class Routers(Resource):
    singular, plural, model, keys = "router", "routers", m.Router, views.ROUTER_KEYS
    not_found_kind, label = "RouterNotFound", "Router"

    def render(self, s: Session, ctx: RequestContext, rows: list[m.Router]) -> list[dict]:
        gw_ports = [r.gw_port_id for r in rows if r.gw_port_id]
        ips = self.svc.ports.fixed_ips(s, gw_ports)
        return [views.router(r, ips.get(r.gw_port_id, []) if r.gw_port_id else [])
                for r in rows]

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_router", ctx.as_target())
        for key in ("distributed", "ha"):
            if key in attrs:
                policy.enforce(ctx, f"network:create_router:{key}", ctx.as_target())
        with self.db.write() as s:
            project = owner_for(ctx, attrs)
            self.svc.quotas.check(s, project, "router", 1)
            row = m.Router(project_id=project, name=attrs.get("name", ""),
                           description=attrs.get("description", ""),
                           admin_state_up=attrs.get("admin_state_up", True),
                           distributed=attrs.get("distributed", False),
                           ha=attrs.get("ha", False), routes=[],
                           availability_zone_hints=attrs.get("availability_zone_hints", []),
                           host_index=next_index(s, m.Router))
            s.add(row)
            s.flush()
            if attrs.get("external_gateway_info"):
                self.set_gateway(s, ctx, row, attrs["external_gateway_info"])
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def set_gateway(self, s: Session, ctx: RequestContext, row: m.Router,
                    info: dict[str, Any]) -> None:
        if "enable_snat" in info:
            policy.enforce(ctx, "network:update_router:external_gateway_info:enable_snat",
                           {"project_id": row.project_id})
        if info.get("external_fixed_ips"):
            policy.enforce(ctx, "network:update_router:external_gateway_info:external_fixed_ips",
                           {"project_id": row.project_id})
        net_id = info.get("network_id")
        if net_id is None:
            raise BadRequest("Invalid input for external_gateway_info. Reason: network_id "
                             "is required.", kind="HTTPBadRequest")
        net = s.get(m.Network, net_id)
        if net is None or not self.svc.networks.visible(s, ctx, net):
            raise NotFound(f"Network {net_id} could not be found.", kind="NetworkNotFound")
        if not net.external:
            raise BadRequest(f"Bad router request: Network {net_id} is not a valid external "
                             "network.", kind="BadRequest")
        if row.gw_network_id == net_id and row.gw_port_id and not info.get(
                "external_fixed_ips"):
            row.enable_snat = info.get("enable_snat", row.enable_snat)
            return
        if row.gw_port_id:
            self.clear_gateway(s, row, check=row.gw_network_id != net_id)
        port = self.svc.ports.create_in(s, RequestContext.internal(), {
            "network_id": net_id, "device_owner": GATEWAY, "device_id": row.id,
            "tenant_id": "", "fixed_ips": info.get("external_fixed_ips") or None,
            "port_security_enabled": False}, internal=True)
        port.project_id = ""
        # An external network with no subnet still takes the gateway, with no address
        # (Neutron's behaviour: external_fixed_ips is then empty and nothing is NATed).
        row.gw_network_id, row.gw_port_id = net_id, port.id
        row.enable_snat = info.get("enable_snat", True)
        self.check_overlaps(s, row)

    def clear_gateway(self, s: Session, row: m.Router, check: bool = True) -> None:
        if check and s.scalar(select(m.FloatingIP.id).where(m.FloatingIP.router_id == row.id)):
            raise Conflict(f"Gateway cannot be updated for router {row.id}, since a gateway to "
                           f"external network {row.gw_network_id} is required by one or more "
                           "floating IPs.", kind="RouterExternalGatewayInUseByFloatingIp")
        port = s.get(m.Port, row.gw_port_id) if row.gw_port_id else None
        if port is not None:
            self.svc.ports.delete_row(s, port)
        row.gw_network_id = row.gw_port_id = None

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        for key in ("distributed", "ha"):
            if key in attrs:
                policy.enforce(ctx, f"network:update_router:{key}", ctx.as_target())
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_router")
            if "external_gateway_info" in attrs:
                info = attrs["external_gateway_info"]
                if not info:
                    if row.gw_port_id:
                        self.clear_gateway(s, row)
                else:
                    self.set_gateway(s, ctx, row, info)
            if "routes" in attrs:
                self.check_routes(s, row, attrs["routes"])
                row.routes = attrs["routes"]
            for key in ("name", "description", "admin_state_up", "distributed", "ha"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            bump(row)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_router")
            if s.scalar(select(m.Port.id).where(m.Port.device_id == row.id,
                                                m.Port.device_owner == INTERFACE)):
                raise Conflict(f"Router {row.id} still has ports", kind="RouterInUse")
            for fip in s.scalars(select(m.FloatingIP).where(m.FloatingIP.router_id == row.id)):
                fip.router_id = fip.port_id = fip.fixed_ip_address = None
            if row.gw_port_id:
                self.clear_gateway(s, row, check=False)
            s.delete(row)
        self.svc.changed()

    # -- interfaces -----------------------------------------------------------------------
    def interface_ports(self, s: Session, router_id: str) -> list[m.Port]:
        return s.scalars(select(m.Port).where(m.Port.device_id == router_id,
                                              m.Port.device_owner == INTERFACE)).all()

    def connected_cidrs(self, s: Session, row: m.Router, *, gateway: bool = True
                        ) -> list[tuple[str, str]]:
        """(subnet_id, cidr) for every subnet the router has an address on."""
        port_ids = [p.id for p in self.interface_ports(s, row.id)]
        if gateway and row.gw_port_id:
            port_ids.append(row.gw_port_id)
        if not port_ids:
            return []
        return [(sub.id, sub.cidr) for sub in s.scalars(select(m.Subnet).join(
            m.IPAllocation, m.IPAllocation.subnet_id == m.Subnet.id).where(
            m.IPAllocation.port_id.in_(port_ids)))]

    def check_overlaps(self, s: Session, row: m.Router, new: list[m.Subnet] | None = None
                       ) -> None:
        seen = [(sid, ipaddress.ip_network(c)) for sid, c in self.connected_cidrs(s, row)]
        for sub in new or []:
            net = ipaddress.ip_network(sub.cidr)
            for sid, other in seen:
                if sid == sub.id:
                    raise BadRequest(f"Bad router request: Router already has a port on "
                                     f"subnet {sub.id}.", kind="BadRequest")
                if other.version == net.version and other.overlaps(net):
                    raise BadRequest(f"Bad router request: Cidr {sub.cidr} of subnet {sub.id} "
                                     f"overlaps with cidr {other} of subnet {sid}.",
                                     kind="BadRequest")
            seen.append((sub.id, net))
        if new is None:
            for i, (sid, a) in enumerate(seen):
                for sid2, b in seen[i + 1:]:
                    if a.version == b.version and a.overlaps(b):
                        raise BadRequest(f"Bad router request: Cidr {a} of subnet {sid} "
                                         f"overlaps with cidr {b} of subnet {sid2}.",
                                         kind="BadRequest")

    def add_interface(self, ctx: RequestContext, id_: str, body: Any) -> dict:
        info = _interface_body(body)
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "add_router_interface")
            if "port_id" in info:
                port = self.svc.ports.load(s, ctx, info["port_id"])
                if port.device_id or port.device_owner:
                    raise Conflict(f"Unable to complete operation on port {port.id} for network "
                                   f"{port.network_id}. Port already has an attached device "
                                   f"{port.device_id}.", kind="PortInUse")
                subnets = s.scalars(select(m.Subnet).join(
                    m.IPAllocation, m.IPAllocation.subnet_id == m.Subnet.id).where(
                    m.IPAllocation.port_id == port.id)).all()
                if not subnets:
                    raise BadRequest("Bad router request: Router port must have at least one "
                                     "fixed IP.", kind="BadRequest")
                self.check_overlaps(s, row, list(subnets))
                port.device_id, port.device_owner = row.id, INTERFACE
                port.status = "ACTIVE"
                port.security_groups = []
                bump(port)
            else:
                sub = self.svc.subnets.load(s, ctx, info["subnet_id"])
                if not sub.gateway_ip:
                    raise BadRequest(f"Bad router request: Subnet {sub.id} does not have a "
                                     "gateway IP.", kind="BadRequest")
                net = s.get(m.Network, sub.network_id)
                if net.external:
                    raise BadRequest(f"Bad router request: Subnet {sub.id} is on external "
                                     "network; use it as the router's gateway instead.",
                                     kind="BadRequest")
                self.check_overlaps(s, row, [sub])
                if s.get(m.IPAllocation, (sub.id, sub.gateway_ip)) is not None:
                    raise Conflict(f"IP address {sub.gateway_ip} already allocated in subnet "
                                   f"{sub.id}", kind="IpAddressAlreadyAllocated")
                port = self.svc.ports.create_in(s, RequestContext.internal(), {
                    "network_id": net.id, "device_owner": INTERFACE, "device_id": row.id,
                    "tenant_id": sub.project_id or row.project_id,
                    "fixed_ips": [{"subnet_id": sub.id, "ip_address": sub.gateway_ip}],
                    "port_security_enabled": False}, internal=True)
                subnets = [sub]
            bump(row)
            result = {"id": row.id, "tenant_id": row.project_id,
                      "project_id": row.project_id, "port_id": port.id,
                      "network_id": port.network_id, "subnet_id": subnets[0].id,
                      "subnet_ids": [x.id for x in subnets]}
        self.svc.changed()
        return result

    def remove_interface(self, ctx: RequestContext, id_: str, body: Any) -> dict:
        info = _interface_body(body, allow_both=True)
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "remove_router_interface")
            ports = self.interface_ports(s, row.id)
            port = None
            if "port_id" in info:
                port = next((p for p in ports if p.id == info["port_id"]), None)
                if port is None:
                    raise NotFound(f"Router {row.id} does not have an interface with id "
                                   f"{info['port_id']}", kind="RouterInterfaceNotFound")
            allocs = {}
            for p in ports:
                for a in s.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == p.id)):
                    allocs.setdefault(a.subnet_id, []).append(p)
            if "subnet_id" in info:
                candidates = allocs.get(info["subnet_id"], [])
                if port is not None and port not in candidates:
                    raise Conflict(f"Subnet {info['subnet_id']} is not associated with port "
                                   f"{port.id}.", kind="SubnetMismatchForPort")
                if not candidates:
                    self.svc.subnets.load(s, ctx, info["subnet_id"])
                    raise NotFound(f"Router {row.id} has no interface on subnet "
                                   f"{info['subnet_id']}", kind="RouterInterfaceNotFoundForSubnet")
                port = port or candidates[0]
            subnet_ids = [sid for sid, ps in allocs.items() if port in ps]
            self._check_in_use(s, row, port, subnet_ids)
            network_id = port.network_id
            self.svc.ports.delete_row(s, port)
            bump(row)
            result = {"id": row.id, "tenant_id": row.project_id,
                      "project_id": row.project_id, "port_id": port.id,
                      "network_id": network_id,
                      "subnet_id": subnet_ids[0] if subnet_ids else None,
                      "subnet_ids": subnet_ids}
        self.svc.changed()
        return result

    def _check_in_use(self, s: Session, row: m.Router, port: m.Port, subnet_ids: list[str]
                      ) -> None:
        cidrs = [ipaddress.ip_network(s.get(m.Subnet, sid).cidr) for sid in subnet_ids]
        for fip in s.scalars(select(m.FloatingIP).where(m.FloatingIP.router_id == row.id)):
            if fip.fixed_ip_address and any(
                    ipaddress.ip_address(fip.fixed_ip_address) in c for c in cidrs):
                raise Conflict(f"Router interface for subnet {subnet_ids[0]} on router {row.id} "
                               "cannot be deleted, as it is required by one or more floating "
                               "IPs.", kind="RouterInterfaceInUseByFloatingIP")
        for route in row.routes:
            nh = ipaddress.ip_address(route["nexthop"])
            if any(nh in c for c in cidrs):
                raise Conflict(f"Router interface for subnet {subnet_ids[0]} on router "
                               f"{row.id} cannot be deleted, as it is required by one or more "
                               "routes.", kind="RouterInterfaceInUseByRoute")

    def check_routes(self, s: Session, row: m.Router, routes: list[dict]) -> None:
        cidrs = [ipaddress.ip_network(c) for _, c in self.connected_cidrs(s, row)]
        own = set()
        for p in self.interface_ports(s, row.id):
            own |= {a.ip_address for a in s.scalars(select(m.IPAllocation).where(
                m.IPAllocation.port_id == p.id))}
        seen = []
        for route in routes:
            nh = ipaddress.ip_address(route["nexthop"])
            if not any(nh in c for c in cidrs):
                raise BadRequest(f"Invalid format for routes: {routes}, the nexthop "
                                 f"{route['nexthop']} is not connected with router",
                                 kind="InvalidRoutes")
            if route["nexthop"] in own:
                raise BadRequest(f"Invalid format for routes: {routes}, the nexthop is used by "
                                 "router", kind="InvalidRoutes")
            if route in seen:
                raise BadRequest(f"Invalid format for routes: {routes}, duplicate route",
                                 kind="InvalidRoutes")
            seen.append(route)

    def extra_routes(self, ctx: RequestContext, id_: str, body: Any, add: bool) -> dict:
        from pocketstack.services.network.schemas import ATTRIBUTES

        if not isinstance(body, dict) or not isinstance(body.get("router"), dict) or \
                "routes" not in body["router"]:
            raise BadRequest("Invalid input: expected {'router': {'routes': [...]}}",
                             kind="HTTPBadRequest")
        routes = ATTRIBUTES["router"]["routes"].validate("routes", body["router"]["routes"])
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_router")
            current = list(row.routes)
            if add:
                new = current + [r for r in routes if r not in current]
                self.check_routes(s, row, new)
            else:
                new = [r for r in current if r not in routes]
            row.routes = new
            bump(row)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body


def _interface_body(body: Any, allow_both: bool = False) -> dict[str, str]:
    from pocketstack.services.network.schemas import uuid

    if not isinstance(body, dict):
        raise BadRequest("Bad router request: body must be an object.", kind="BadRequest")
    keys = [k for k in ("subnet_id", "port_id") if body.get(k)]
    if not keys:
        raise BadRequest("Bad router request: Either subnet_id or port_id must be specified",
                         kind="BadRequest")
    if len(keys) == 2 and not allow_both:
        raise BadRequest("Bad router request: Cannot specify both subnet-id and port-id",
                         kind="BadRequest")
    return {k: uuid()(k, body[k]) for k in keys}


class FloatingIPs(Resource):
    singular, plural, model, keys = "floatingip", "floatingips", m.FloatingIP, views.FIP_KEYS
    not_found_kind, label = "FloatingIPNotFound", "Floating IP"

    def render(self, s: Session, ctx: RequestContext, rows: list[m.FloatingIP]) -> list[dict]:
        port_ids = [r.port_id for r in rows if r.port_id]
        ports = {p.id: p for p in s.scalars(select(m.Port).where(m.Port.id.in_(port_ids)))} \
            if port_ids else {}
        out = []
        for r in rows:
            p = ports.get(r.port_id) if r.port_id else None
            details = None if p is None else {
                "name": p.name, "network_id": p.network_id, "mac_address": p.mac_address,
                "admin_state_up": p.admin_state_up, "status": p.status,
                "device_id": p.device_id, "device_owner": p.device_owner}
            out.append(views.floating_ip(r, details))
        return out

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_floatingip", ctx.as_target())
        if "floating_ip_address" in attrs:
            policy.enforce(ctx, "network:create_floatingip:floating_ip_address",
                           ctx.as_target())
        with self.db.write() as s:
            project = owner_for(ctx, attrs)
            net = s.get(m.Network, attrs["floating_network_id"])
            if net is None or not self.svc.networks.visible(s, ctx, net):
                raise NotFound(f"Network {attrs['floating_network_id']} could not be found.",
                               kind="NetworkNotFound")
            if not net.external:
                raise BadRequest(f"Bad floatingip request: Network {net.id} is not a valid "
                                 "external network.", kind="BadRequest")
            self.svc.quotas.check(s, project, "floatingip", 1)
            fixed: dict[str, Any] = {}
            if attrs.get("subnet_id"):
                sub = s.get(m.Subnet, attrs["subnet_id"])
                if sub is None or sub.network_id != net.id:
                    raise BadRequest(f"Bad floatingip request: subnet {attrs['subnet_id']} is "
                                     f"not on network {net.id}.", kind="BadRequest")
                fixed["subnet_id"] = sub.id
            if attrs.get("floating_ip_address"):
                fixed["ip_address"] = attrs["floating_ip_address"]
            row = m.FloatingIP(project_id=project, floating_network_id=net.id,
                               description=attrs.get("description", ""),
                               dns_name=attrs.get("dns_name", ""),
                               dns_domain=attrs.get("dns_domain", ""),
                               floating_ip_address="", floating_port_id="")
            s.add(row)
            s.flush()
            ipv4 = [x for x in s.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id,
                                                                 m.Subnet.ip_version == 4))]
            if not ipv4:
                raise BadRequest(f"Bad floatingip request: Network {net.id} has no IPv4 "
                                 "subnet.", kind="BadRequest")
            if not fixed:
                fixed["subnet_id"] = next((x.id for x in ipv4 if ipam.next_free(s, x)),
                                          ipv4[0].id)
            port = self.svc.ports.create_in(s, RequestContext.internal(), {
                "network_id": net.id, "device_owner": "network:floatingip",
                "device_id": row.id, "tenant_id": "", "fixed_ips": [fixed],
                "port_security_enabled": False}, internal=True)
            port.project_id = ""
            row.floating_port_id = port.id
            row.floating_ip_address = s.scalar(select(m.IPAllocation.ip_address).where(
                m.IPAllocation.port_id == port.id))
            if attrs.get("port_id"):
                self.associate(s, ctx, row, attrs["port_id"], attrs.get("fixed_ip_address"))
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def associate(self, s: Session, ctx: RequestContext, row: m.FloatingIP, port_id: str,
                  fixed_ip: str | None) -> None:
        port = s.get(m.Port, port_id)
        if port is None or not (ctx.is_admin or port.project_id == row.project_id):
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        ips = [a.ip_address for a in s.scalars(select(m.IPAllocation).where(
            m.IPAllocation.port_id == port.id))]
        v4 = [ip for ip in ips if ipaddress.ip_address(ip).version == 4]
        if fixed_ip is not None:
            if fixed_ip not in ips:
                raise BadRequest(f"Bad floatingip request: Port {port.id} does not have fixed "
                                 f"ip {fixed_ip}.", kind="BadRequest")
            if ipaddress.ip_address(fixed_ip).version != 4:
                raise BadRequest(f"Bad floatingip request: Cannot process floating IP "
                                 f"association with {fixed_ip}, since that is not an IPv4 "
                                 "address.", kind="BadRequest")
        else:
            if not v4:
                raise BadRequest(f"Bad floatingip request: Cannot add floating IP to port "
                                 f"{port.id} that has no fixed IPv4 addresses.",
                                 kind="BadRequest")
            if len(v4) > 1:
                raise BadRequest(f"Bad floatingip request: Port {port.id} has multiple fixed "
                                 "IPv4 addresses.  Must provide a specific IPv4 address when "
                                 "assigning a floating IP.", kind="BadRequest")
            fixed_ip = v4[0]
        other = s.scalars(select(m.FloatingIP).where(m.FloatingIP.port_id == port.id,
                                                     m.FloatingIP.fixed_ip_address == fixed_ip,
                                                     m.FloatingIP.id != row.id)).first()
        if other is not None:
            raise Conflict(f"Cannot associate floating IP {row.floating_ip_address} ({row.id}) "
                           f"with port {port.id} using fixed IP {fixed_ip}, as that fixed IP "
                           f"already has a floating IP on external network "
                           f"{other.floating_network_id}.",
                           kind="FloatingIPPortAlreadyAssociated")
        row.router_id = self.find_router(s, row, port, fixed_ip)
        row.port_id, row.fixed_ip_address, row.status = port.id, fixed_ip, "ACTIVE"

    def find_router(self, s: Session, row: m.FloatingIP, port: m.Port, fixed_ip: str) -> str:
        addr = ipaddress.ip_address(fixed_ip)
        subnet = next((x for x in s.scalars(select(m.Subnet).where(
            m.Subnet.network_id == port.network_id)) if addr in ipaddress.ip_network(x.cidr)),
            None)
        routers = s.scalars(select(m.Router).where(
            m.Router.gw_network_id == row.floating_network_id)).all()
        for router in routers:
            for iface in self.svc.routers.interface_ports(s, router.id):
                if subnet is not None and s.scalar(select(m.IPAllocation.port_id).where(
                        m.IPAllocation.port_id == iface.id,
                        m.IPAllocation.subnet_id == subnet.id)):
                    return router.id
        raise NotFound(f"External network {row.floating_network_id} is not reachable from "
                       f"subnet {subnet.id if subnet else '?'}.  Therefore, cannot associate "
                       f"Port {port.id} with a Floating IP.",
                       kind="ExternalGatewayForFloatingIPNotFound")

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_floatingip")
            if "port_id" in attrs:
                if attrs["port_id"] is None:
                    row.port_id = row.fixed_ip_address = row.router_id = None
                    row.status = "DOWN"
                else:
                    self.associate(s, ctx, row, attrs["port_id"], attrs.get("fixed_ip_address"))
            elif attrs.get("fixed_ip_address") and row.port_id:
                self.associate(s, ctx, row, row.port_id, attrs["fixed_ip_address"])
            if "description" in attrs:
                row.description = attrs["description"]
            bump(row)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_floatingip")
            port = s.get(m.Port, row.floating_port_id)
            s.delete(row)
            s.flush()
            if port is not None:
                self.svc.ports.delete_row(s, port)
        self.svc.changed()
