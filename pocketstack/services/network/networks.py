"""Networks and subnets (api-ref: networks, subnets), provider segments and the DHCP port."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict
from pocketstack.services.network import ipam
from pocketstack.services.network import models as m
from pocketstack.services.network import views
from pocketstack.services.network.common import bump
from pocketstack.services.network.resource import Resource, admin_only, owner_for

PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
VLAN_RANGE = (1, 4094)
VXLAN_RANGE = (1, 2 ** 24 - 1)


def next_index(s: Session, model: Any) -> int:
    return (s.scalar(select(func.max(model.host_index))) or 0) + 1


class Networks(Resource):
    singular, plural, model, keys = "network", "networks", m.Network, views.NETWORK_KEYS
    not_found_kind, label = "NetworkNotFound", "Network"

    def visible_clause(self, s: Session, ctx: RequestContext) -> Any:
        targets = [ctx.project_id or "", "*"]
        shared_ids = select(m.RBACPolicy.object_id).where(
            m.RBACPolicy.object_type == "network", m.RBACPolicy.target_tenant.in_(targets))
        return or_(m.Network.project_id == ctx.project_id, m.Network.shared.is_(True),
                   m.Network.external.is_(True), m.Network.id.in_(shared_ids))

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[m.Network]:
        stmt = s.query(m.Network)
        if not ctx.is_admin:
            stmt = stmt.filter(self.visible_clause(s, ctx))
        return stmt.order_by(m.Network.created_at, m.Network.id).all()

    def visible(self, s: Session, ctx: RequestContext, row: m.Network) -> bool:
        if ctx.is_admin or row.project_id == ctx.project_id or row.shared or row.external:
            return True
        return s.scalar(select(m.RBACPolicy.id).where(
            m.RBACPolicy.object_type == "network", m.RBACPolicy.object_id == row.id,
            m.RBACPolicy.target_tenant.in_([ctx.project_id or "", "*"]))) is not None

    def render(self, s: Session, ctx: RequestContext, rows: list[m.Network]) -> list[dict]:
        ids = [r.id for r in rows]
        subnets: dict[str, list[str]] = {i: [] for i in ids}
        if ids:
            q = select(m.Subnet.network_id, m.Subnet.id).where(m.Subnet.network_id.in_(ids)) \
                .order_by(m.Subnet.created_at) if len(ids) < 500 else \
                select(m.Subnet.network_id, m.Subnet.id).order_by(m.Subnet.created_at)
            for net_id, sub_id in s.execute(q):
                if net_id in subnets:
                    subnets[net_id].append(sub_id)
        scopes = self.svc.address_scopes.scopes_of_networks(s, ids)
        out = [views.network(r, subnets[r.id], ctx) for r in rows]
        for body in out:
            got = scopes.get(body["id"], {})
            body["ipv4_address_scope"], body["ipv6_address_scope"] = got.get(4), got.get(6)
        return out

    # -- create ---------------------------------------------------------------------------
    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> m.Network:
        policy.enforce(ctx, "network:create_network", ctx.as_target())
        admin_only(ctx, attrs, ("shared", "router:external", "is_default", *PROVIDER),
                   "create_network")
        project = owner_for(ctx, attrs)
        self.svc.quotas.check(s, project, "network", 1)
        net_type, physnet, seg_id, seg_key, mtu = self.segment(s, attrs)
        row = m.Network(
            project_id=project, name=attrs.get("name", ""),
            description=attrs.get("description", ""),
            admin_state_up=attrs.get("admin_state_up", True),
            shared=attrs.get("shared", False), external=attrs.get("router:external", False),
            is_default=attrs.get("is_default", False), network_type=net_type,
            physical_network=physnet, segmentation_id=seg_id, segment_key=seg_key,
            mtu=attrs.get("mtu", mtu),
            port_security_enabled=attrs.get("port_security_enabled", True),
            dns_domain=attrs.get("dns_domain", ""),
            availability_zone_hints=attrs.get("availability_zone_hints", []),
            host_index=next_index(s, m.Network))
        # qos-default: a network made without a policy gets its project's default one
        if "qos_policy_id" in attrs:
            self.svc.qos_policies.check_usable(s, ctx, attrs["qos_policy_id"])
            row.qos_policy_id = attrs["qos_policy_id"]
        else:
            row.qos_policy_id = self.svc.qos_policies.default_for(s, project)
        if row.mtu > mtu:
            raise BadRequest(f"Requested MTU is too big, maximum is {mtu}",
                             kind="InvalidInput")
        if row.is_default and not row.external:
            raise BadRequest("Invalid input for operation: is_default requires "
                             "router:external.", kind="InvalidInput")
        s.add(row)
        s.flush()
        if row.shared:
            s.add(m.RBACPolicy(project_id=project, object_type="network", object_id=row.id,
                               action="access_as_shared", target_tenant="*"))
        if row.external:
            s.add(m.RBACPolicy(project_id=project, object_type="network", object_id=row.id,
                               action="access_as_external", target_tenant="*"))
        return row

    def segment(self, s: Session, attrs: dict[str, Any]
                ) -> tuple[str, str | None, int | None, str | None, int]:
        """Validate/allocate the provider segment; ML2's type drivers' rules."""
        given = any(attrs.get(k) is not None for k in PROVIDER)
        net_type = attrs.get("provider:network_type") or (
            "vxlan" if not given else None)
        physnet = attrs.get("provider:physical_network")
        seg_id = attrs.get("provider:segmentation_id")
        if net_type is None:
            raise BadRequest("Invalid input for operation: network_type required.",
                             kind="InvalidInput")
        if net_type in ("flat", "vlan"):
            if not physnet:
                raise BadRequest(f"Invalid input for operation: physical_network required for "
                                 f"{net_type} provider network.", kind="InvalidInput")
            known = self.svc.settings_net.physnets()
            if known and physnet not in known:
                raise BadRequest(f"Invalid input for operation: physical_network '{physnet}' "
                                 f"unknown for {net_type} provider network.",
                                 kind="InvalidInput")
        elif physnet:
            raise BadRequest(f"Invalid input for operation: {net_type} provider networks do "
                             "not take a physical_network.", kind="InvalidInput")
        if net_type in ("flat", "local") and seg_id is not None:
            raise BadRequest(f"Invalid input for operation: segmentation_id specified for "
                             f"{net_type} network.", kind="InvalidInput")
        mtu = 1500
        if net_type == "flat":
            key = f"flat:{physnet}"
            if s.scalar(select(m.Network.id).where(m.Network.segment_key == key)):
                raise Conflict(f"Unable to create the flat network. Physical network {physnet} "
                               "is in use.", kind="FlatNetworkInUse")
            return net_type, physnet, None, key, mtu
        if net_type == "local":
            return net_type, None, None, None, mtu
        lo, hi = VLAN_RANGE if net_type == "vlan" else VXLAN_RANGE
        if net_type in ("vxlan", "geneve"):
            mtu = 1450
        prefix = f"vlan:{physnet}:" if net_type == "vlan" else f"{net_type}:"
        if seg_id is not None:
            if not lo <= seg_id <= hi:
                raise BadRequest(f"Invalid input for operation: segmentation_id out of range "
                                 f"({lo} through {hi}).", kind="InvalidInput")
            key = f"{prefix}{seg_id}"
            if s.scalar(select(m.Network.id).where(m.Network.segment_key == key)):
                kind = "VlanIdInUse" if net_type == "vlan" else "TunnelIdInUse"
                raise Conflict(f"Unable to create the network. The {net_type} "
                               f"{seg_id} on physical network {physnet} is in use."
                               if net_type == "vlan" else
                               f"Unable to create the network. The tunnel ID {seg_id} is in "
                               "use.", kind=kind)
            return net_type, physnet, seg_id, key, mtu
        used = {k for k in s.scalars(select(m.Network.segment_key).where(
            m.Network.segment_key.like(f"{prefix}%")))}
        start = 1 if net_type == "vlan" else 1001  # tenant VNIs like DevStack's 1:1000 + 1000
        for candidate in range(start, hi + 1):
            if f"{prefix}{candidate}" not in used:
                return net_type, physnet, candidate, f"{prefix}{candidate}", mtu
        raise Conflict("Unable to create the network. No tenant network is available for "
                       "allocation.", kind="NoNetworkAvailable")

    # -- update / delete ------------------------------------------------------------------
    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        admin_only(ctx, attrs, ("shared", "router:external", "is_default"), "update_network")
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_network")
            for key, col in (("name", "name"), ("description", "description"),
                             ("admin_state_up", "admin_state_up"), ("mtu", "mtu"),
                             ("port_security_enabled", "port_security_enabled"),
                             ("dns_domain", "dns_domain"), ("is_default", "is_default")):
                if key in attrs:
                    setattr(row, col, attrs[key])
            if "qos_policy_id" in attrs:
                self.svc.qos_policies.check_usable(s, ctx, attrs["qos_policy_id"])
                row.qos_policy_id = attrs["qos_policy_id"]
            if "shared" in attrs and attrs["shared"] != row.shared:
                self._set_rbac(s, row, "access_as_shared", attrs["shared"])
                row.shared = attrs["shared"]
            if "router:external" in attrs and attrs["router:external"] != row.external:
                if not attrs["router:external"]:
                    if s.scalar(select(m.Port.id).where(
                            m.Port.network_id == row.id,
                            m.Port.device_owner.in_(("network:router_gateway",
                                                     "network:floatingip")))):
                        raise Conflict(f"Unable to reconfigure sharing settings for network "
                                       f"{row.id}. Multiple tenants are using it.",
                                       kind="ExternalNetworkInUse")
                self._set_rbac(s, row, "access_as_external", attrs["router:external"])
                row.external = attrs["router:external"]
            bump(row)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def _set_rbac(self, s: Session, row: m.Network, action: str, on: bool) -> None:
        existing = s.scalars(select(m.RBACPolicy).where(
            m.RBACPolicy.object_id == row.id, m.RBACPolicy.action == action,
            m.RBACPolicy.target_tenant == "*")).first()
        if on and existing is None:
            s.add(m.RBACPolicy(project_id=row.project_id, object_type="network",
                               object_id=row.id, action=action, target_tenant="*"))
        elif not on and existing is not None:
            if action == "access_as_shared" and s.scalar(select(m.Port.id).where(
                    m.Port.network_id == row.id, m.Port.project_id != row.project_id,
                    m.Port.project_id != "")):
                raise Conflict(f"Unable to reconfigure sharing settings for network {row.id}. "
                               "Multiple tenants are using it.", kind="InvalidSharedSetting")
            s.delete(existing)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_network")
            ports = s.scalars(select(m.Port).where(m.Port.network_id == row.id)).all()
            fips = s.scalars(select(m.FloatingIP).where(
                m.FloatingIP.floating_network_id == row.id)).all()
            loose = {f.floating_port_id for f in fips if f.port_id is None}
            busy = [p for p in ports if p.device_owner != "network:dhcp" and p.id not in loose]
            if busy:
                raise Conflict(f"Unable to complete operation on network {row.id}. There are "
                               "one or more ports still in use on the network.",
                               kind="NetworkInUse")
            for f in fips:  # unassociated floating IPs go with their network (Neutron does)
                s.delete(f)
            s.flush()
            for p in ports:
                self.svc.ports.delete_row(s, p)
            for sub in s.scalars(select(m.Subnet).where(m.Subnet.network_id == row.id)):
                s.delete(sub)
            for pol in s.scalars(select(m.RBACPolicy).where(m.RBACPolicy.object_id == row.id)):
                s.delete(pol)
            s.flush()
            s.delete(row)
        self.svc.changed()


class Subnets(Resource):
    singular, plural, model, keys = "subnet", "subnets", m.Subnet, views.SUBNET_KEYS
    not_found_kind, label = "SubnetNotFound", "Subnet"

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[m.Subnet]:
        stmt = s.query(m.Subnet)
        if not ctx.is_admin:
            nets = select(m.Network.id).where(self.svc.networks.visible_clause(s, ctx))
            stmt = stmt.filter(or_(m.Subnet.project_id == ctx.project_id,
                                   m.Subnet.network_id.in_(nets)))
        if len(query.getlist("network_id")) == 1:
            stmt = stmt.filter(m.Subnet.network_id == query.get("network_id"))
        return stmt.order_by(m.Subnet.created_at, m.Subnet.id).all()

    def visible(self, s: Session, ctx: RequestContext, row: m.Subnet) -> bool:
        if ctx.is_admin or row.project_id == ctx.project_id:
            return True
        net = s.get(m.Network, row.network_id)
        return net is not None and self.svc.networks.visible(s, ctx, net)

    def render(self, s: Session, ctx: RequestContext, rows: list[m.Subnet]) -> list[dict]:
        external = set(s.scalars(select(m.Network.id).where(m.Network.external.is_(True)))) \
            if rows else set()
        out = []
        for r in rows:
            body = views.subnet(r)
            body["router:external"] = r.network_id in external  # subnet-external-network
            out.append(body)
        return out

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> m.Subnet:
        policy.enforce(ctx, "network:create_subnet", ctx.as_target())
        net = self.svc.networks.load(s, ctx, attrs["network_id"])
        policy.enforce(ctx, "network:create_subnet_on_network", {"project_id": net.project_id})
        project = owner_for(ctx, attrs)
        self.svc.quotas.check(s, project, "subnet", 1)
        pool = None
        if attrs.get("subnetpool_id") or attrs.get("use_default_subnetpool"):
            pool = self.svc.subnetpools.pool_for(s, ctx, attrs)
        if "cidr" not in attrs and pool is None:
            raise BadRequest("Bad subnets request: a cidr must be specified in the absence of "
                             "a subnet pool", kind="BadRequest")
        if "ip_version" not in attrs:
            if pool is not None:
                attrs["ip_version"] = pool.ip_version
            else:
                raise BadRequest("Failed to parse request. Required attribute 'ip_version' not "
                                 "specified", kind="HTTPBadRequest")
        version = attrs["ip_version"]
        existing = s.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)).all()
        if pool is not None and "cidr" not in attrs:
            attrs["cidr"] = self.svc.subnetpools.allocate_prefix(s, pool, attrs.get("prefixlen"))
        net_cidr = ipaddress.ip_network(attrs["cidr"])
        if net_cidr.version != version:
            raise BadRequest("Invalid input for operation: Cidr and IP version are "
                             "inconsistent.", kind="InvalidInput")
        if net_cidr.prefixlen == 0 or (version == 4 and net_cidr.prefixlen > 30 and
                                       net_cidr.prefixlen != 31) or net_cidr.prefixlen == 128:
            raise BadRequest(f"Invalid input for operation: {net_cidr} is not a usable subnet "
                             "CIDR.", kind="InvalidInput")
        enable_dhcp = attrs.get("enable_dhcp", True)
        ipam.check_modes(version, attrs.get("ipv6_ra_mode"), attrs.get("ipv6_address_mode"),
                         enable_dhcp)
        if version == 6 and (attrs.get("ipv6_address_mode") in ipam.AUTO_MODES or
                             attrs.get("ipv6_ra_mode") in ipam.AUTO_MODES) and \
                net_cidr.prefixlen != 64:
            raise BadRequest("Invalid input for operation: Invalid CIDR "
                             f"{net_cidr} for IPv6 address mode. OpenStack uses the EUI-64 "
                             "address format, which requires the prefix to be /64.",
                             kind="InvalidInput")
        ipam.check_overlap(net_cidr, existing, net.id)
        if "gateway_ip" in attrs:
            gateway = attrs["gateway_ip"]
        else:
            gateway = str(net_cidr.network_address + 1)
        ipam.check_gateway(net_cidr, gateway)
        if "allocation_pools" in attrs and attrs["allocation_pools"]:
            pools = ipam.validate_pools(net_cidr, attrs["allocation_pools"], gateway)
        else:
            pools = ipam.default_pools(net_cidr, gateway)
        dns = attrs.get("dns_nameservers", [])
        routes = attrs.get("host_routes", [])
        ipam.check_dns_routes(net_cidr, dns, routes)
        row = m.Subnet(project_id=project, network_id=net.id, name=attrs.get("name", ""),
                       description=attrs.get("description", ""), ip_version=version,
                       cidr=str(net_cidr), gateway_ip=gateway, enable_dhcp=enable_dhcp,
                       allocation_pools=pools, dns_nameservers=dns, host_routes=routes,
                       ipv6_ra_mode=attrs.get("ipv6_ra_mode"),
                       ipv6_address_mode=attrs.get("ipv6_address_mode"),
                       subnetpool_id=pool.id if pool is not None else None,
                       service_types=attrs.get("service_types", []),
                       dns_publish_fixed_ip=attrs.get("dns_publish_fixed_ip", False))
        s.add(row)
        s.flush()
        if enable_dhcp and version == 4:
            self.svc.ports.ensure_dhcp_port(s, net, row)
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_subnet")
            net_cidr = ipaddress.ip_network(row.cidr)
            gateway = attrs.get("gateway_ip", row.gateway_ip)
            if "gateway_ip" in attrs and attrs["gateway_ip"] != row.gateway_ip:
                ipam.check_gateway(net_cidr, gateway)
                if gateway is not None and ipaddress.ip_address(gateway) not in net_cidr:
                    pass  # Neutron allows an off-subnet gateway
                if row.gateway_ip and s.scalar(select(m.IPAllocation.port_id).join(
                        m.Port, m.Port.id == m.IPAllocation.port_id).where(
                        m.IPAllocation.subnet_id == row.id,
                        m.IPAllocation.ip_address == row.gateway_ip,
                        m.Port.device_owner.like("network:router%"))):
                    raise Conflict(f"Gateway {row.gateway_ip} in subnet {row.id} is in use by a "
                                   "router interface.", kind="GatewayIpInUse")
            if "allocation_pools" in attrs:
                row.allocation_pools = (ipam.validate_pools(net_cidr, attrs["allocation_pools"],
                                                            gateway)
                                        if attrs["allocation_pools"] else
                                        ipam.default_pools(net_cidr, gateway))
            elif "gateway_ip" in attrs:
                ipam.validate_pools(net_cidr, row.allocation_pools, gateway)
            dns = attrs.get("dns_nameservers", row.dns_nameservers)
            routes = attrs.get("host_routes", row.host_routes)
            ipam.check_dns_routes(net_cidr, dns, routes)
            if attrs.get("enable_dhcp") is False and (row.ipv6_ra_mode or row.ipv6_address_mode):
                ipam.check_modes(row.ip_version, row.ipv6_ra_mode, row.ipv6_address_mode, False)
            for key in ("name", "description", "gateway_ip", "dns_nameservers", "host_routes",
                        "enable_dhcp", "service_types", "dns_publish_fixed_ip"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            bump(row)
            s.flush()
            net = s.get(m.Network, row.network_id)
            if row.ip_version == 4:
                if row.enable_dhcp:
                    self.svc.ports.ensure_dhcp_port(s, net, row)
                else:
                    self.svc.ports.release_dhcp(s, net.id, row.id)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_subnet")
            auto = ipam.is_auto(row)
            allocs = s.execute(select(m.IPAllocation, m.Port.device_owner).join(
                m.Port, m.Port.id == m.IPAllocation.port_id).where(
                m.IPAllocation.subnet_id == row.id)).all()
            for alloc, owner in allocs:
                if owner == "network:dhcp" or (auto and owner not in ipam.ROUTER_OWNERS):
                    continue
                raise Conflict(f"Unable to complete operation on subnet {row.id}: One or more "
                               "ports have an IP allocation from this subnet.",
                               kind="SubnetInUse")
            for alloc, _ in allocs:
                s.delete(alloc)
            s.flush()
            s.delete(row)
            s.flush()
            self.svc.ports.drop_empty_dhcp(s, row.network_id)
        self.svc.changed()
