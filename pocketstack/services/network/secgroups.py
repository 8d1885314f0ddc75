"""Security groups and rules (api-ref: security-groups, security-group-rules).

Each project gets a ``default`` group the first time it touches security groups or
creates a port: all egress allowed, ingress only from members of the same group.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network import views
from pocketstack.services.network.common import bump
from pocketstack.services.network.resource import Resource, owner_for

PROTOCOLS = {"ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58,
             "igmp": 2, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
             "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113,
             "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112}
PORT_PROTOCOLS = {"tcp", "udp", "sctp", "dccp", "udplite", "6", "17", "132", "33", "136"}
ICMP = {"icmp", "icmpv6", "ipv6-icmp", "1", "58"}


class SecurityGroups(Resource):
    singular, plural, model, keys = ("security_group", "security_groups", m.SecurityGroup,
                                     views.SG_KEYS)
    not_found_kind, label = "SecurityGroupNotFound", "Security group"

    def list(self, ctx: RequestContext, query: Any, url: str) -> dict[str, Any]:
        if ctx.project_id and not ctx.is_internal:
            self.ensure_default(ctx.project_id)
        return super().list(ctx, query, url)

    def render(self, s: Session, ctx: RequestContext, rows: list[m.SecurityGroup]) -> list[dict]:
        ids = [r.id for r in rows]
        rules: dict[str, list[dict]] = {i: [] for i in ids}
        if ids:
            q = select(m.SecurityGroupRule).order_by(m.SecurityGroupRule.created_at)
            if len(ids) < 500:
                q = q.where(m.SecurityGroupRule.security_group_id.in_(ids))
            for rule in s.scalars(q):
                if rule.security_group_id in rules:
                    rules[rule.security_group_id].append(views.security_group_rule(rule))
        return [views.security_group(r, rules[r.id]) for r in rows]

    # -- the default group ----------------------------------------------------------------
    def ensure_default(self, project_id: str) -> None:
        with self.db.read() as s:
            if s.scalar(select(m.SecurityGroup.id).where(
                    m.SecurityGroup.default_for == project_id)):
                return
        try:
            with self.db.write() as s:
                self.default_id(s, project_id)
        except IntegrityError:
            pass  # another request created it first

    def default_id(self, s: Session, project_id: str) -> str:
        sg_id = s.scalar(select(m.SecurityGroup.id).where(
            m.SecurityGroup.default_for == project_id))
        if sg_id:
            return sg_id
        sg = m.SecurityGroup(project_id=project_id, name="default",
                             description="Default security group", default_for=project_id)
        s.add(sg)
        s.flush()
        for ethertype in ("IPv4", "IPv6"):
            s.add(m.SecurityGroupRule(project_id=project_id, security_group_id=sg.id,
                                      direction="egress", ethertype=ethertype))
            s.add(m.SecurityGroupRule(project_id=project_id, security_group_id=sg.id,
                                      direction="ingress", ethertype=ethertype,
                                      remote_group_id=sg.id))
        s.flush()
        return sg.id

    def check_usable(self, s: Session, ctx: RequestContext, ids: list[str], project: str
                     ) -> None:
        for sg_id in ids:
            sg = s.get(m.SecurityGroup, sg_id)
            if sg is None or not (ctx.is_admin or sg.project_id in (project, ctx.project_id)):
                raise NotFound(f"Security group {sg_id} does not exist",
                               kind="SecurityGroupNotFound")

    # -- CRUD -----------------------------------------------------------------------------
    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_security_group", ctx.as_target())
        project = owner_for(ctx, attrs)
        self.ensure_default(project)
        if attrs.get("name") == "default":
            raise Conflict("Default security group already exists.",
                           kind="SecurityGroupDefaultAlreadyExists")
        with self.db.write() as s:
            self.svc.quotas.check(s, project, "security_group", 1)
            sg = m.SecurityGroup(project_id=project, name=attrs.get("name", ""),
                                 description=attrs.get("description", ""),
                                 stateful=attrs.get("stateful", True))
            s.add(sg)
            s.flush()
            for ethertype in ("IPv4", "IPv6"):
                s.add(m.SecurityGroupRule(project_id=project, security_group_id=sg.id,
                                          direction="egress", ethertype=ethertype))
            s.flush()
            body = self.show_one(s, ctx, sg)
        return body

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            sg = self.owned(s, ctx, id_, "update_security_group")
            if sg.default_for and "name" in attrs and attrs["name"] != "default":
                raise Conflict("Updating default security group not allowed.",
                               kind="SecurityGroupCannotUpdateDefault")
            if not sg.default_for and attrs.get("name") == "default":
                raise Conflict("Default security group already exists.",
                               kind="SecurityGroupDefaultAlreadyExists")
            if "stateful" in attrs and attrs["stateful"] != sg.stateful and self.in_use(s, sg.id):
                raise Conflict(f"Security Group {sg.id} in use.", kind="SecurityGroupInUse")
            for key in ("name", "description", "stateful"):
                if key in attrs:
                    setattr(sg, key, attrs[key])
            bump(sg)
            body = self.show_one(s, ctx, sg)
        self.svc.changed()
        return body

    def in_use(self, s: Session, sg_id: str) -> bool:
        col = cast(m.Port.security_groups, String)
        return s.scalar(select(m.Port.id).where(col.like(f'%"{sg_id}"%')).limit(1)) is not None

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            sg = self.owned(s, ctx, id_, "delete_security_group")
            if sg.default_for and not ctx.is_admin:
                raise Conflict("Removing default security group not allowed.",
                               kind="SecurityGroupCannotRemoveDefault")
            if self.in_use(s, sg.id):
                raise Conflict(f"Security Group {sg.id} in use.", kind="SecurityGroupInUse")
            for rule in s.scalars(select(m.SecurityGroupRule).where(
                    m.SecurityGroupRule.remote_group_id == sg.id,
                    m.SecurityGroupRule.security_group_id != sg.id)):
                s.delete(rule)
            for rule in s.scalars(select(m.SecurityGroupRule).where(
                    m.SecurityGroupRule.security_group_id == sg.id)):
                s.delete(rule)
            s.flush()
            s.delete(sg)
        self.svc.changed()


class SecurityGroupRules(Resource):
    singular, plural, model, keys = ("security_group_rule", "security_group_rules",
                                     m.SecurityGroupRule, views.RULE_KEYS)
    not_found_kind, label = "SecurityGroupRuleNotFound", "Security group rule"

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = s.query(m.SecurityGroupRule)
        if not ctx.is_admin:
            own = select(m.SecurityGroup.id).where(m.SecurityGroup.project_id == ctx.project_id)
            from sqlalchemy import or_
            stmt = stmt.filter(or_(m.SecurityGroupRule.project_id == ctx.project_id,
                                   m.SecurityGroupRule.security_group_id.in_(own)))
        if len(query.getlist("security_group_id")) == 1:
            stmt = stmt.filter(m.SecurityGroupRule.security_group_id ==
                               query.get("security_group_id"))
        return stmt.order_by(m.SecurityGroupRule.created_at, m.SecurityGroupRule.id).all()

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        defaults = set(s.scalars(select(m.SecurityGroup.id).where(
            m.SecurityGroup.default_for.is_not(None)))) if rows else set()
        out = []
        for r in rows:
            body = views.security_group_rule(r)
            body["belongs_to_default_sg"] = r.security_group_id in defaults
            out.append(body)
        return out

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]
                  ) -> m.SecurityGroupRule:
        policy.enforce(ctx, "network:create_security_group_rule", ctx.as_target())
        sg = s.get(m.SecurityGroup, attrs["security_group_id"])
        if sg is None or not (ctx.is_admin or sg.project_id == ctx.project_id):
            raise NotFound(f"Security group {attrs['security_group_id']} does not exist",
                           kind="SecurityGroupNotFound")
        project = owner_for(ctx, attrs) if "tenant_id" in attrs else sg.project_id
        self.svc.quotas.check(s, project, "security_group_rule", 1)
        ethertype = attrs.get("ethertype", "IPv4")
        protocol = _protocol(attrs.get("protocol"), ethertype)
        pmin, pmax = attrs.get("port_range_min"), attrs.get("port_range_max")
        _check_ports(protocol, pmin, pmax)
        prefix = attrs.get("remote_ip_prefix")
        remote_group = attrs.get("remote_group_id")
        if prefix and remote_group:
            raise BadRequest("Only remote_ip_prefix or remote_group_id may be provided.",
                             kind="SecurityGroupRemoteGroupAndRemoteIpPrefix")
        if prefix:
            version = ipaddress.ip_network(prefix, strict=False).version
            if f"IPv{version}" != ethertype:
                raise BadRequest(f"Conflicting value ethertype {ethertype} for CIDR {prefix}",
                                 kind="SecurityGroupRuleParameterConflict")
            if ipaddress.ip_network(prefix, strict=False).prefixlen == 0:
                prefix = None if False else prefix
        if remote_group and s.get(m.SecurityGroup, remote_group) is None:
            raise NotFound(f"Security group {remote_group} does not exist",
                           kind="SecurityGroupNotFound")
        for other in s.scalars(select(m.SecurityGroupRule).where(
                m.SecurityGroupRule.security_group_id == sg.id)):
            if (other.direction, other.ethertype, _norm_proto(other.protocol), other.port_range_min,
                    other.port_range_max, other.remote_ip_prefix, other.remote_group_id) == (
                    attrs["direction"], ethertype, _norm_proto(protocol), pmin, pmax, prefix,
                    remote_group):
                raise Conflict(f"Security group rule already exists. Rule id is {other.id}.",
                               kind="SecurityGroupRuleExists")
        row = m.SecurityGroupRule(
            project_id=project, security_group_id=sg.id, direction=attrs["direction"],
            ethertype=ethertype, protocol=protocol, port_range_min=pmin, port_range_max=pmax,
            remote_ip_prefix=prefix, remote_group_id=remote_group,
            remote_address_group_id=attrs.get("remote_address_group_id"),
            description=attrs.get("description", ""))
        s.add(row)
        s.flush()
        bump(sg)
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_security_group_rule")
            if "description" in attrs:
                row.description = attrs["description"]
            bump(row)
            return self.show_one(s, ctx, row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_security_group_rule")
            s.delete(row)
        self.svc.changed()


def _norm_proto(p: str | None) -> str | None:
    if p is None:
        return None
    return str(PROTOCOLS.get(p, p))


def _protocol(value: Any, ethertype: str) -> str | None:
    if value is None or value == "" or (isinstance(value, str) and value.lower() == "any"):
        return None
    if isinstance(value, bool):
        value = str(value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        num = int(value)
        if not 0 <= num <= 255:
            raise BadRequest(f"Security group rule protocol {value} not supported. Only "
                             f"protocol values {sorted(PROTOCOLS)} and integer representations "
                             "[0 to 255] are supported.",
                             kind="SecurityGroupRuleInvalidProtocol")
        return str(num)
    if not isinstance(value, str) or value.lower() not in PROTOCOLS:
        raise BadRequest(f"Security group rule protocol {value} not supported. Only protocol "
                         f"values {sorted(PROTOCOLS)} and integer representations [0 to 255] "
                         "are supported.", kind="SecurityGroupRuleInvalidProtocol")
    value = value.lower()
    if value in ("icmpv6", "ipv6-icmp") and ethertype == "IPv4":
        raise BadRequest(f"Security group rule for ethertype '{ethertype}' not supported. "
                         f"Allowed ethertypes are IPv6 for protocol {value}.",
                         kind="SecurityGroupEthertypeConflictWithProtocol")
    return value


def _check_ports(protocol: str | None, pmin: int | None, pmax: int | None) -> None:
    if pmin is None and pmax is None:
        return
    if protocol is None:
        raise BadRequest("Must also specify protocol if port range is given.",
                         kind="SecurityGroupProtocolRequiredWithPorts")
    if protocol in PORT_PROTOCOLS:
        for p in (pmin, pmax):
            if p is not None and not 1 <= p <= 65535:
                raise BadRequest(f"Invalid value for port {p}.",
                                 kind="SecurityGroupInvalidPortValue")
        if pmin is None or (pmax is not None and pmin > pmax):
            raise BadRequest("For TCP/UDP protocols, port_range_min must be <= "
                             "port_range_max", kind="SecurityGroupInvalidPortRange")
    elif protocol in ICMP:
        for name, field, v in (("type", "port-range-min", pmin), ("code", "port-range-max",
                                                                   pmax)):
            if v is not None and not 0 <= v <= 255:
                raise BadRequest(f"Invalid value for ICMP {name} ({field}): {v}. It must be "
                                 "0 to 255.", kind="SecurityGroupInvalidIcmpValue")
        if pmin is None and pmax is not None:
            raise BadRequest(f"ICMP code (port-range-max) {pmax} is provided but ICMP type "
                             "(port-range-min) is missing.",
                             kind="SecurityGroupMissingIcmpType")
    else:
        raise BadRequest(f"Invalid protocol {protocol} for port range, only supported for "
                         "TCP, UDP, UDPLITE, SCTP, DCCP and ICMP protocols",
                         kind="SecurityGroupInvalidProtocolForPortRange")
