"""Ports (api-ref: ports): addresses, MACs, security groups, address pairs, binding."""

from __future__ import annotations

import ipaddress
import secrets
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
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
from pocketstack.services.network.schemas import is_multicast_mac

L3_OWNERS = ("network:router_interface", "network:router_gateway", "network:floatingip",
             "network:router_interface_distributed", "network:ha_router_replicated_interface")


def random_mac(base: str = "fa:16:3e") -> str:
    return base + "".join(f":{b:02x}" for b in secrets.token_bytes(3))


def _fixed_ips_filter(item: dict, wanted: list[str]) -> bool:
    for w in wanted:
        key, _, value = w.partition("=")
        for ip in item["fixed_ips"]:
            if key == "ip_address_substr" and value in ip["ip_address"]:
                return True
            if key in ("ip_address", "subnet_id") and ip.get(key) == value:
                return True
    return False


class Ports(Resource):
    singular, plural, model, keys = "port", "ports", m.Port, views.PORT_KEYS
    not_found_kind, label = "PortNotFound", "Port"
    special_filters = {"fixed_ips": _fixed_ips_filter,
                       "security_group_ids": lambda i, w: bool(set(i["security_groups"]) & set(w))}

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[m.Port]:
        stmt = s.query(m.Port)
        if not ctx.is_admin:
            owned_nets = select(m.Network.id).where(m.Network.project_id == ctx.project_id)
            stmt = stmt.filter(or_(m.Port.project_id == ctx.project_id,
                                   m.Port.network_id.in_(owned_nets)))
        for key, col in (("network_id", m.Port.network_id), ("device_id", m.Port.device_id),
                         ("device_owner", m.Port.device_owner)):
            if len(query.getlist(key)) == 1:
                stmt = stmt.filter(col == query.get(key))
        return stmt.order_by(m.Port.created_at, m.Port.id).all()

    def visible(self, s: Session, ctx: RequestContext, row: m.Port) -> bool:
        if ctx.is_admin or row.project_id == ctx.project_id:
            return True
        net = s.get(m.Network, row.network_id)
        return net is not None and net.project_id == ctx.project_id

    def fixed_ips(self, s: Session, port_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {i: [] for i in port_ids}
        if not port_ids:
            return out
        q = select(m.IPAllocation.port_id, m.IPAllocation.subnet_id, m.IPAllocation.ip_address)
        q = q.where(m.IPAllocation.port_id.in_(port_ids)) if len(port_ids) < 500 else q
        for port_id, subnet_id, ip in s.execute(q):
            if port_id in out:
                out[port_id].append({"subnet_id": subnet_id, "ip_address": ip})
        for ips in out.values():
            ips.sort(key=lambda x: (ipaddress.ip_address(x["ip_address"]).version,
                                    int(ipaddress.ip_address(x["ip_address"]))))
        return out

    def render(self, s: Session, ctx: RequestContext, rows: list[m.Port]) -> list[dict]:
        ids = [r.id for r in rows]
        ips = self.fixed_ips(s, ids)
        out = [views.port(r, ips[r.id], ctx) for r in rows]
        if not rows:
            return out
        trunks = self.svc.trunks.details(s, ids)
        net_ids = {r.network_id for r in rows}
        net_qos = dict(s.execute(select(m.Network.id, m.Network.qos_policy_id).where(
            m.Network.id.in_(net_ids), m.Network.qos_policy_id.is_not(None))).all())
        for row, body in zip(rows, out):
            body["qos_network_policy_id"] = net_qos.get(row.network_id)
            if row.id in trunks:  # trunk-details: only on a trunk's parent port
                body["trunk_details"] = trunks[row.id]
        return out

    # -- create ---------------------------------------------------------------------------
    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any],
                  *, internal: bool = False) -> m.Port:
        policy.enforce(ctx, "network:create_port", ctx.as_target())
        net = self.svc.networks.load(s, ctx, attrs["network_id"])
        net_owner = {"project_id": net.project_id}
        for key in ("binding:host_id", "binding:profile"):
            if key in attrs and not internal:
                policy.enforce(ctx, "network:create_port:binding", net_owner)
        if "mac_address" in attrs and not internal:
            policy.enforce(ctx, "network:create_port:mac_address", net_owner)
        owner = attrs.get("device_owner", "")
        if owner.startswith("network:") and not internal:
            policy.enforce(ctx, "network:create_port:device_owner", net_owner)
        if any("ip_address" in f for f in attrs.get("fixed_ips") or []) and not internal:
            policy.enforce(ctx, "network:create_port:fixed_ips:ip_address", net_owner)
        project = owner_for(ctx, attrs) if "tenant_id" in attrs else (ctx.project_id or "")
        if not internal:
            self.svc.quotas.check(s, project, "port", 1)
        mac = attrs.get("mac_address") or random_mac()
        if is_multicast_mac(mac):
            raise BadRequest(f"Invalid input for mac_address. Reason: '{mac}' is not a valid "
                             "unicast MAC address.", kind="HTTPBadRequest")
        if s.scalar(select(m.Port.id).where(m.Port.network_id == net.id,
                                            m.Port.mac_address == mac)):
            raise Conflict(f"Unable to complete operation for network {net.id}. The mac "
                           f"address {mac} is in use.", kind="MacAddressInUse")
        port_security = attrs.get("port_security_enabled", net.port_security_enabled)
        sgs = attrs.get("security_groups")
        if sgs and not port_security:
            raise BadRequest("Port security must be enabled and port must have an IP address "
                             "in order to use security groups.",
                             kind="PortSecurityAndIPRequiredForSecurityGroups")
        pairs = attrs.get("allowed_address_pairs", [])
        if pairs and not port_security:
            raise Conflict("Port Security must be enabled in order to have allowed address "
                           "pairs on a port.", kind="AddressPairAndPortSecurityRequired")
        if sgs is None:
            sgs = ([self.svc.security_groups.default_id(s, project)]
                   if port_security and not owner.startswith("network:") else [])
        else:
            self.svc.security_groups.check_usable(s, ctx, sgs, project)
        binding_host = attrs.get("binding:host_id", "")
        row = m.Port(project_id=project, network_id=net.id, name=attrs.get("name", ""),
                     description=attrs.get("description", ""),
                     admin_state_up=attrs.get("admin_state_up", True), mac_address=mac,
                     device_id=attrs.get("device_id", ""), device_owner=owner,
                     port_security_enabled=port_security, security_groups=sgs,
                     allowed_address_pairs=_pairs(pairs, mac),
                     extra_dhcp_opts=attrs.get("extra_dhcp_opts", []),
                     binding_host_id=binding_host,
                     binding_profile=attrs.get("binding:profile", {}),
                     binding_vnic_type=attrs.get("binding:vnic_type", "normal"),
                     binding_vif_type="bridge" if binding_host else "unbound",
                     dns_name=attrs.get("dns_name", ""),
                     status="ACTIVE" if owner.startswith("network:") else "DOWN",
                     host_index=next_index(s, m.Port))
        if attrs.get("qos_policy_id"):
            self.svc.qos_policies.check_usable(s, ctx, attrs["qos_policy_id"])
            row.qos_policy_id = attrs["qos_policy_id"]
        s.add(row)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict(f"Unable to complete operation for network {net.id}. The mac "
                           f"address {mac} is in use.", kind="MacAddressInUse") from None
        self.assign_ips(s, net, row, attrs.get("fixed_ips"))
        return row

    def assign_ips(self, s: Session, net: m.Network, port: m.Port,
                   fixed_ips: list[dict] | None) -> None:
        subnets = s.scalars(select(m.Subnet).where(m.Subnet.network_id == net.id)
                            .order_by(m.Subnet.created_at)).all()
        by_id = {sub.id: sub for sub in subnets}
        if fixed_ips is None:
            # Neutron: one address from the first IPv4 subnet with room, one from the first
            # stateful IPv6 subnet, and an EUI-64 address on every automatic IPv6 subnet.
            picked_v4 = picked_v6 = False
            for sub in subnets:
                if ipam.is_auto(sub):
                    if port.device_owner in ipam.ROUTER_OWNERS:
                        continue
                    ipam.allocate(s, sub, port, None, explicit=False)
                    continue
                if (sub.ip_version == 4 and picked_v4) or (sub.ip_version == 6 and picked_v6):
                    continue
                free = ipam.next_free(s, sub)
                if free is None:
                    continue
                ipam.allocate(s, sub, port, free, explicit=False)
                if sub.ip_version == 4:
                    picked_v4 = True
                else:
                    picked_v6 = True
            if subnets and not picked_v4 and not picked_v6 and not any(
                    ipam.is_auto(x) for x in subnets):
                raise Conflict(f"No more IP addresses available on network {net.id}.",
                               kind="IpAddressGenerationFailure")
            return
        for entry in fixed_ips:
            sub = None
            if "subnet_id" in entry:
                sub = by_id.get(entry["subnet_id"])
                if sub is None:
                    raise BadRequest(f"Invalid input for operation: Failed to create port on "
                                     f"network {net.id}, because fixed_ips included invalid "
                                     f"subnet {entry['subnet_id']}.", kind="InvalidInput")
            elif "ip_address" in entry:
                addr = ipaddress.ip_address(entry["ip_address"])
                sub = next((x for x in subnets if addr.version == x.ip_version and
                            addr in ipaddress.ip_network(x.cidr)), None)
                if sub is None:
                    raise BadRequest(f"Invalid input for operation: IP address "
                                     f"{entry['ip_address']} is not a valid IP for the "
                                     "defined networks subnets.", kind="InvalidInput")
            else:
                raise BadRequest("Invalid input for operation: fixed_ips entries need a "
                                 "subnet_id or an ip_address.", kind="InvalidInput")
            ipam.allocate(s, sub, port, entry.get("ip_address"),
                          explicit="ip_address" in entry)

    # -- update ---------------------------------------------------------------------------
    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_port")
            net = s.get(m.Network, row.network_id)
            net_owner = {"project_id": net.project_id}
            if "mac_address" in attrs and attrs["mac_address"] != row.mac_address:
                policy.enforce(ctx, "network:update_port:mac_address", net_owner)
                if row.binding_host_id and row.device_owner.startswith("compute:"):
                    raise Conflict(f"Unable to complete operation on port {row.id}, port is "
                                   "already bound, port type: bridge, old_mac "
                                   f"{row.mac_address}, new_mac {attrs['mac_address']}.",
                                   kind="PortBound")
                if s.scalar(select(m.Port.id).where(m.Port.network_id == net.id,
                                                    m.Port.mac_address == attrs["mac_address"],
                                                    m.Port.id != row.id)):
                    raise Conflict(f"Unable to complete operation for network {net.id}. The "
                                   f"mac address {attrs['mac_address']} is in use.",
                                   kind="MacAddressInUse")
                row.mac_address = attrs["mac_address"]
            for key in ("binding:host_id", "binding:profile"):
                if key in attrs:
                    policy.enforce(ctx, "network:update_port:binding", net_owner)
            if "device_owner" in attrs and attrs["device_owner"].startswith("network:"):
                policy.enforce(ctx, "network:update_port:device_owner", net_owner)
            if any("ip_address" in f for f in attrs.get("fixed_ips", [])):
                policy.enforce(ctx, "network:update_port:fixed_ips:ip_address", net_owner)
            port_security = attrs.get("port_security_enabled", row.port_security_enabled)
            sgs = attrs.get("security_groups", row.security_groups)
            if "security_groups" in attrs:
                self.svc.security_groups.check_usable(s, ctx, sgs, row.project_id)
            if not port_security and sgs:
                if "port_security_enabled" in attrs and "security_groups" not in attrs:
                    raise Conflict("Port has security group associated. Cannot disable port "
                                   "security or ip address until security group is removed.",
                                   kind="PortSecurityPortHasSecurityGroup")
                raise BadRequest("Port security must be enabled and port must have an IP "
                                 "address in order to use security groups.",
                                 kind="PortSecurityAndIPRequiredForSecurityGroups")
            pairs = attrs.get("allowed_address_pairs", row.allowed_address_pairs)
            if pairs and not port_security:
                raise Conflict("Port Security must be enabled in order to have allowed address "
                               "pairs on a port.", kind="AddressPairAndPortSecurityRequired")
            row.port_security_enabled = port_security
            row.security_groups = sgs
            if "allowed_address_pairs" in attrs:
                row.allowed_address_pairs = _pairs(attrs["allowed_address_pairs"],
                                                   row.mac_address)
            for key, col in (("name", "name"), ("description", "description"),
                             ("admin_state_up", "admin_state_up"), ("device_id", "device_id"),
                             ("device_owner", "device_owner"),
                             ("binding:profile", "binding_profile"),
                             ("binding:vnic_type", "binding_vnic_type"),
                             ("extra_dhcp_opts", "extra_dhcp_opts"), ("dns_name", "dns_name")):
                if key in attrs:
                    setattr(row, col, attrs[key])
            if "qos_policy_id" in attrs:
                self.svc.qos_policies.check_usable(s, ctx, attrs["qos_policy_id"])
                row.qos_policy_id = attrs["qos_policy_id"]
            if "binding:host_id" in attrs:
                row.binding_host_id = attrs["binding:host_id"]
                row.binding_vif_type = "bridge" if row.binding_host_id else "unbound"
            if "fixed_ips" in attrs:
                self.replace_ips(s, net, row, attrs["fixed_ips"])
            bump(row)
            body = self.show_one(s, ctx, row)
        self.svc.changed()
        return body

    def replace_ips(self, s: Session, net: m.Network, row: m.Port, wanted: list[dict]) -> None:
        current = s.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == row.id)).all()
        keep, new = set(), []
        for entry in wanted:
            match = next((a for a in current if
                          ("ip_address" not in entry or a.ip_address == entry["ip_address"]) and
                          ("subnet_id" not in entry or a.subnet_id == entry["subnet_id"]) and
                          (a.subnet_id, a.ip_address) not in keep), None)
            if match is not None and "ip_address" in entry:
                keep.add((match.subnet_id, match.ip_address))
            elif match is not None and "subnet_id" in entry and not any(
                    "ip_address" in e and e.get("subnet_id") == match.subnet_id for e in wanted):
                keep.add((match.subnet_id, match.ip_address))
            else:
                new.append(entry)
        for a in current:
            if (a.subnet_id, a.ip_address) not in keep:
                fip = s.scalars(select(m.FloatingIP).where(
                    m.FloatingIP.port_id == row.id,
                    m.FloatingIP.fixed_ip_address == a.ip_address)).first()
                if fip is not None:
                    fip.port_id = fip.fixed_ip_address = fip.router_id = None
                    fip.status = "DOWN"
                s.delete(a)
        s.flush()
        if new:
            self.assign_ips(s, net, row, new)

    # -- delete ---------------------------------------------------------------------------
    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_port")
            if row.device_owner in L3_OWNERS and not ctx.is_internal:
                raise Conflict(f"Port {row.id} cannot be deleted directly via the port API: "
                               f"has device owner {row.device_owner}.", kind="L3PortInUse")
            self.svc.trunks.check_port_delete(s, row.id)
            self.delete_row(s, row)
        self.svc.changed()

    def delete_row(self, s: Session, row: m.Port) -> None:
        # the API refuses a trunk's port (Ports.delete); internal deletes (a server's own
        # port at server delete) drop the trunk association instead of failing
        self.svc.trunks.forget_port(s, row.id)
        for fip in s.scalars(select(m.FloatingIP).where(m.FloatingIP.port_id == row.id)):
            fip.port_id = fip.fixed_ip_address = fip.router_id = None
            fip.status = "DOWN"
            bump(fip)
        for a in s.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == row.id)):
            s.delete(a)
        s.flush()
        s.delete(row)
        s.flush()

    # -- the DHCP port (Neutron's DHCP agent creates one per network) ---------------------
    def dhcp_port(self, s: Session, network_id: str) -> m.Port | None:
        return s.scalars(select(m.Port).where(m.Port.network_id == network_id,
                                              m.Port.device_owner == "network:dhcp")).first()

    def ensure_dhcp_port(self, s: Session, net: m.Network, subnet: m.Subnet) -> None:
        port = self.dhcp_port(s, net.id)
        if port is None:
            port = m.Port(project_id=net.project_id, network_id=net.id, name="",
                          mac_address=random_mac(), device_owner="network:dhcp",
                          device_id=f"dhcp-{net.id}", status="ACTIVE",
                          port_security_enabled=False, security_groups=[],
                          allowed_address_pairs=[], binding_host_id=self.svc.host,
                          binding_vif_type="bridge", host_index=next_index(s, m.Port))
            s.add(port)
            s.flush()
        if s.scalar(select(m.IPAllocation.ip_address).where(
                m.IPAllocation.port_id == port.id, m.IPAllocation.subnet_id == subnet.id)):
            return
        if ipam.next_free(s, subnet) is not None:
            ipam.allocate(s, subnet, port, None, explicit=False)

    def release_dhcp(self, s: Session, network_id: str, subnet_id: str) -> None:
        port = self.dhcp_port(s, network_id)
        if port is None:
            return
        for a in s.scalars(select(m.IPAllocation).where(m.IPAllocation.port_id == port.id,
                                                         m.IPAllocation.subnet_id == subnet_id)):
            s.delete(a)
        s.flush()
        self.drop_empty_dhcp(s, network_id)

    def drop_empty_dhcp(self, s: Session, network_id: str) -> None:
        port = self.dhcp_port(s, network_id)
        if port is not None and not s.scalar(select(m.IPAllocation.ip_address).where(
                m.IPAllocation.port_id == port.id)):
            s.delete(port)
            s.flush()

    def get_row(self, s: Session, port_id: str) -> m.Port:
        row = s.get(m.Port, port_id)
        if row is None:
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        return row


def _pairs(pairs: list[dict], mac: str) -> list[dict]:
    out = []
    for p in pairs:
        entry = {"ip_address": p["ip_address"], "mac_address": p.get("mac_address") or mac}
        if entry in out:
            raise BadRequest("Request contains duplicate address pair: mac_address "
                             f"{entry['mac_address']} ip_address {entry['ip_address']}.",
                             kind="DuplicateAddressPairInRequest")
        out.append(entry)
    return out
