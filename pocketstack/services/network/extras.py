"""Quotas, RBAC policies, metering labels/rules and subnet pools."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network import views
from pocketstack.services.network.common import DEFAULT_QUOTAS, bump
from pocketstack.services.network.resource import Resource, owner_for

COUNTED = {"network": m.Network, "subnet": m.Subnet, "port": m.Port, "router": m.Router,
           "floatingip": m.FloatingIP, "security_group": m.SecurityGroup,
           "security_group_rule": m.SecurityGroupRule, "rbac_policy": m.RBACPolicy,
           "subnetpool": m.SubnetPool}


class Quotas:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db

    def limits(self, s: Session, project_id: str) -> dict[str, int]:
        out = dict(DEFAULT_QUOTAS)
        for q in s.scalars(select(m.Quota).where(m.Quota.project_id == project_id)):
            out[q.resource] = q.hard_limit
        return out

    def used(self, s: Session, project_id: str, resource: str) -> int:
        model = COUNTED[resource]
        return s.scalar(select(func.count()).select_from(model).where(
            model.project_id == project_id)) or 0

    def check(self, s: Session, project_id: str, resource: str, delta: int) -> None:
        if not project_id:
            return
        limit = self.limits(s, project_id).get(resource, -1)
        if limit < 0:
            return
        if self.used(s, project_id, resource) + delta > limit:
            raise Conflict(f"Quota exceeded for resources: ['{resource}'].", kind="OverQuota")

    def _target(self, ctx: RequestContext, project_id: str) -> None:
        policy.enforce(ctx, "network:get_quota", {"project_id": project_id})

    def show(self, ctx: RequestContext, project_id: str) -> dict:
        self._target(ctx, project_id)
        with self.db.read() as s:
            return self.limits(s, project_id)

    def defaults(self, ctx: RequestContext, project_id: str) -> dict:
        self._target(ctx, project_id)
        return dict(DEFAULT_QUOTAS)

    def details(self, ctx: RequestContext, project_id: str) -> dict:
        self._target(ctx, project_id)
        with self.db.read() as s:
            limits = self.limits(s, project_id)
            return {r: {"limit": lim, "used": self.used(s, project_id, r), "reserved": 0}
                    for r, lim in limits.items()}

    def list(self, ctx: RequestContext) -> list[dict]:
        policy.enforce(ctx, "network:update_quota", ctx.as_target())
        with self.db.read() as s:
            projects = sorted(set(s.scalars(select(m.Quota.project_id))))
            return [{**self.limits(s, p), "project_id": p, "tenant_id": p} for p in projects]

    def update(self, ctx: RequestContext, project_id: str, body: Any) -> dict:
        policy.enforce(ctx, "network:update_quota", {"project_id": project_id})
        if not isinstance(body, dict) or not isinstance(body.get("quota"), dict):
            raise BadRequest("Invalid input: expected {'quota': {...}}", kind="HTTPBadRequest")
        values = {}
        for key, value in body["quota"].items():
            if key in ("project_id", "tenant_id", "force", "check_limit"):
                continue
            if key not in DEFAULT_QUOTAS:
                raise BadRequest(f"Unrecognized attribute(s) '{key}'", kind="HTTPBadRequest")
            try:
                num = int(value)
            except (TypeError, ValueError):
                raise BadRequest(f"Invalid input for {key}. Reason: '{value}' is not an "
                                 "integer.", kind="HTTPBadRequest") from None
            if num < -1:
                raise BadRequest(f"Invalid input for {key}. Reason: '{num}' is too small - "
                                 "must be at least '-1'.", kind="HTTPBadRequest")
            values[key] = num
        with self.db.write() as s:
            for key, num in values.items():
                row = s.get(m.Quota, (project_id, key))
                if row is None:
                    s.add(m.Quota(project_id=project_id, resource=key, hard_limit=num))
                else:
                    row.hard_limit = num
            s.flush()
            return self.limits(s, project_id)

    def delete(self, ctx: RequestContext, project_id: str) -> None:
        policy.enforce(ctx, "network:update_quota", {"project_id": project_id})
        with self.db.write() as s:
            for row in s.scalars(select(m.Quota).where(m.Quota.project_id == project_id)):
                s.delete(row)


class RBACPolicies(Resource):
    singular, plural, model, keys = "rbac_policy", "rbac_policies", m.RBACPolicy, views.RBAC_KEYS
    not_found_kind, label = "RbacPolicyNotFound", "RBAC policy"
    ordering = ("id",)

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [views.rbac_policy(r) for r in rows]

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_rbac_policy", ctx.as_target())
        if attrs.get("target_project") and "target_tenant" not in attrs:
            attrs["target_tenant"] = attrs["target_project"]
        if attrs.get("target_tenant") == "*":
            policy.enforce(ctx, "network:create_rbac_policy:target_tenant", ctx.as_target())
        if attrs["object_type"] == "qos_policy":
            return self._create_qos(ctx, attrs)
        if attrs["object_type"] != "network":
            raise BadRequest(f"Invalid input for operation: object_type "
                             f"{attrs['object_type']} is not supported; only 'network' "
                             "and 'qos_policy'.", kind="InvalidInput")
        with self.db.write() as s:
            net = s.get(m.Network, attrs["object_id"])
            if net is None or not (ctx.is_admin or net.project_id == ctx.project_id):
                raise NotFound(f"Network {attrs['object_id']} could not be found.",
                               kind="NetworkNotFound")
            if attrs["action"] == "access_as_external":
                policy.enforce(ctx, "network:create_rbac_policy:access_as_external",
                               ctx.as_target())
            project = owner_for(ctx, attrs)
            self.svc.quotas.check(s, project, "rbac_policy", 1)
            if s.scalar(select(m.RBACPolicy.id).where(
                    m.RBACPolicy.object_id == net.id, m.RBACPolicy.action == attrs["action"],
                    m.RBACPolicy.target_tenant == attrs["target_tenant"])):
                raise Conflict("An RBAC policy already exists with those values.",
                               kind="DuplicateEntry")
            row = m.RBACPolicy(project_id=project, object_type="network", object_id=net.id,
                               action=attrs["action"], target_tenant=attrs["target_tenant"])
            s.add(row)
            if row.target_tenant == "*":
                if row.action == "access_as_shared":
                    net.shared = True
                else:
                    net.external = True
            s.flush()
            body = views.rbac_policy(row)
        self.svc.changed()
        return body

    def _create_qos(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            pol = self.svc.qos_policies.rbac_object(s, ctx, attrs["object_id"],
                                                    attrs["action"])
            project = owner_for(ctx, attrs)
            self.svc.quotas.check(s, project, "rbac_policy", 1)
            if s.scalar(select(m.RBACPolicy.id).where(
                    m.RBACPolicy.object_type == "qos_policy", m.RBACPolicy.object_id == pol.id,
                    m.RBACPolicy.target_tenant == attrs["target_tenant"])):
                raise Conflict("An RBAC policy already exists with those values.",
                               kind="DuplicateEntry")
            row = m.RBACPolicy(project_id=project, object_type="qos_policy",
                               object_id=pol.id, action=attrs["action"],
                               target_tenant=attrs["target_tenant"])
            s.add(row)
            if row.target_tenant == "*":
                pol.shared = True
            s.flush()
            return views.rbac_policy(row)

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_rbac_policy")
            target = attrs.get("target_tenant") or attrs.get("target_project")
            if target and target != row.target_tenant:
                self._check_unused(s, row)
                row.target_tenant = target
                qos = s.get(m.QosPolicy, row.object_id) \
                    if row.object_type == "qos_policy" else None
                if qos is not None:  # the column mirrors the wildcard entry
                    s.flush()
                    qos.shared = bool(s.scalar(select(m.RBACPolicy.id).where(
                        m.RBACPolicy.object_type == "qos_policy",
                        m.RBACPolicy.object_id == qos.id, m.RBACPolicy.target_tenant == "*")))
            return views.rbac_policy(row)

    def _check_unused(self, s: Session, row: m.RBACPolicy) -> None:
        if row.object_type == "qos_policy":
            self.svc.qos_policies.check_rbac_removal(s, row)
            return
        net = s.get(m.Network, row.object_id)
        if net is None or row.action != "access_as_shared":
            return
        q = select(m.Port.id).where(m.Port.network_id == net.id,
                                    m.Port.project_id != net.project_id, m.Port.project_id != "")
        if row.target_tenant != "*":
            q = q.where(m.Port.project_id == row.target_tenant)
        if s.scalar(q.limit(1)):
            raise Conflict(f"RBAC policy on object {net.id} cannot be removed because other "
                           "objects depend on it.", kind="RbacPolicyInUse")

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_rbac_policy")
            self._check_unused(s, row)
            qos = s.get(m.QosPolicy, row.object_id) if row.object_type == "qos_policy" \
                else None
            if qos is not None and row.target_tenant == "*":
                qos.shared = False
            net = s.get(m.Network, row.object_id) if row.object_type == "network" else None
            if net is not None and row.target_tenant == "*":
                if row.action == "access_as_shared":
                    net.shared = False
                else:
                    net.external = False
            s.delete(row)
        self.svc.changed()


class MeteringLabels(Resource):
    singular, plural, model, keys = ("metering_label", "metering_labels", m.MeteringLabel,
                                     views.LABEL_KEYS)
    not_found_kind, label = "MeteringLabelNotFound", "Metering label"
    ordering = ("id",)

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [views.metering_label(r) for r in rows]

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_metering_label", ctx.as_target())
        with self.db.write() as s:
            row = m.MeteringLabel(project_id=owner_for(ctx, attrs), name=attrs.get("name", ""),
                                  description=attrs.get("description", ""),
                                  shared=attrs.get("shared", False))
            s.add(row)
            s.flush()
            return views.metering_label(row)

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_metering_label")
            for key in ("name", "description"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            return views.metering_label(row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_metering_label")
            for rule in s.scalars(select(m.MeteringLabelRule).where(
                    m.MeteringLabelRule.metering_label_id == row.id)):
                s.delete(rule)
            s.flush()
            s.delete(row)
        self.svc.changed()


class MeteringLabelRules(Resource):
    singular, plural, model, keys = ("metering_label_rule", "metering_label_rules",
                                     m.MeteringLabelRule, views.LABEL_RULE_KEYS)
    not_found_kind, label = "MeteringLabelRuleNotFound", "Metering label rule"
    ordering = ("id",)

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [views.metering_label_rule(r) for r in rows]

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_metering_label_rule", ctx.as_target())
        prefixes = [attrs.get(k) for k in ("remote_ip_prefix", "source_ip_prefix",
                                           "destination_ip_prefix")]
        if not any(prefixes):
            raise BadRequest("You must define at least one of remote_ip_prefix, "
                             "source_ip_prefix or destination_ip_prefix.",
                             kind="HTTPBadRequest")
        if attrs.get("remote_ip_prefix") and (prefixes[1] or prefixes[2]):
            raise BadRequest("Cannot use 'remote-ip-prefix' with 'source-ip-prefix' or "
                             "'destination-ip-prefix'.", kind="HTTPBadRequest")
        direction = attrs.get("direction", "ingress")
        with self.db.write() as s:
            label = s.get(m.MeteringLabel, attrs["metering_label_id"])
            if label is None or not (ctx.is_admin or label.project_id == ctx.project_id):
                raise NotFound(f"Metering label {attrs['metering_label_id']} does not exist",
                               kind="MeteringLabelNotFound")
            for other in s.scalars(select(m.MeteringLabelRule).where(
                    m.MeteringLabelRule.metering_label_id == label.id,
                    m.MeteringLabelRule.direction == direction,
                    m.MeteringLabelRule.excluded == attrs.get("excluded", False))):
                for key in ("remote_ip_prefix", "source_ip_prefix", "destination_ip_prefix"):
                    a, b = getattr(other, key), attrs.get(key)
                    if a and b and ipaddress.ip_network(a).overlaps(ipaddress.ip_network(b)) \
                            and all(getattr(other, k) == attrs.get(k) for k in (
                                "remote_ip_prefix", "source_ip_prefix",
                                "destination_ip_prefix") if k != key):
                        raise Conflict(f"Metering label rule with {key} {b} overlaps another.",
                                       kind="MeteringLabelRuleOverlaps")
            row = m.MeteringLabelRule(project_id=label.project_id, metering_label_id=label.id,
                                      direction=direction,
                                      excluded=attrs.get("excluded", False),
                                      remote_ip_prefix=attrs.get("remote_ip_prefix"),
                                      source_ip_prefix=attrs.get("source_ip_prefix"),
                                      destination_ip_prefix=attrs.get("destination_ip_prefix"))
            s.add(row)
            s.flush()
            body = views.metering_label_rule(row)
        self.svc.changed()
        return body

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        raise BadRequest("Metering label rules cannot be updated.", kind="HTTPBadRequest")

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            s.delete(self.owned(s, ctx, id_, "delete_metering_label_rule"))
        self.svc.changed()


class SubnetPools(Resource):
    singular, plural, model, keys = ("subnetpool", "subnetpools", m.SubnetPool,
                                     views.SUBNETPOOL_KEYS)
    not_found_kind, label = "SubnetPoolNotFound", "Subnet pool"

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = s.query(m.SubnetPool)
        if not ctx.is_admin:
            from sqlalchemy import or_
            stmt = stmt.filter(or_(m.SubnetPool.project_id == ctx.project_id,
                                   m.SubnetPool.shared.is_(True)))
        return stmt.order_by(m.SubnetPool.created_at, m.SubnetPool.id).all()

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return ctx.is_admin or row.project_id == ctx.project_id or row.shared

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [views.subnetpool(r) for r in rows]

    def _validate(self, prefixes: list[str], dflt: int | None, lo: int | None,
                  hi: int | None) -> tuple[int, int, int, int]:
        if not prefixes:
            raise BadRequest("Invalid input for prefixes. Reason: at least one prefix is "
                             "required.", kind="HTTPBadRequest")
        versions = {ipaddress.ip_network(p).version for p in prefixes}
        if len(versions) != 1:
            raise BadRequest("Cannot mix IPv4 and IPv6 prefixes in a subnet pool.",
                             kind="PrefixVersionMismatch")
        version = versions.pop()
        maxlen = 32 if version == 4 else 128
        lo = lo if lo is not None else min(ipaddress.ip_network(p).prefixlen for p in prefixes)
        hi = hi if hi is not None else maxlen
        dflt = dflt if dflt is not None else lo
        if not (0 <= lo <= dflt <= hi <= maxlen):
            raise BadRequest(f"Illegal prefix bounds: min_prefixlen={lo}, default_prefixlen="
                             f"{dflt}, max_prefixlen={hi}.", kind="IllegalSubnetPoolPrefixBounds")
        return version, dflt, lo, hi

    def create(self, ctx: RequestContext, attrs: dict[str, Any]) -> dict:
        policy.enforce(ctx, "network:create_subnetpool", ctx.as_target())
        if attrs.get("shared") or attrs.get("is_default"):
            policy.enforce(ctx, "network:create_subnetpool:shared", ctx.as_target())
        prefixes = [str(n) for n in ipaddress.collapse_addresses(
            ipaddress.ip_network(p) for p in attrs.get("prefixes", []))] \
            if attrs.get("prefixes") else []
        version, dflt, lo, hi = self._validate(prefixes, attrs.get("default_prefixlen"),
                                               attrs.get("min_prefixlen"),
                                               attrs.get("max_prefixlen"))
        with self.db.write() as s:
            self.svc.address_scopes.check_for_pool(s, ctx, attrs.get("address_scope_id"),
                                                   version)
            project = owner_for(ctx, attrs)
            self.svc.quotas.check(s, project, "subnetpool", 1)
            row = m.SubnetPool(project_id=project, name=attrs.get("name", ""),
                               description=attrs.get("description", ""), ip_version=version,
                               prefixes=prefixes, default_prefixlen=dflt, min_prefixlen=lo,
                               max_prefixlen=hi, shared=attrs.get("shared", False),
                               is_default=attrs.get("is_default", False),
                               default_quota=attrs.get("default_quota"),
                               address_scope_id=attrs.get("address_scope_id"))
            s.add(row)
            s.flush()
            return views.subnetpool(row)

    def create_bulk(self, ctx: RequestContext, items: list[dict]) -> list[dict]:
        return [self.create(ctx, a) for a in items]

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_subnetpool")
            prefixes = row.prefixes
            if "prefixes" in attrs:
                new = [ipaddress.ip_network(p) for p in attrs["prefixes"]]
                for old in row.prefixes:
                    o = ipaddress.ip_network(old)
                    if not any(o.version == n.version and o.subnet_of(n) for n in new):
                        raise BadRequest("Illegal update to prefixes: existing prefixes can "
                                         "only be extended.", kind="IllegalSubnetPoolPrefixUpdate")
                prefixes = [str(n) for n in ipaddress.collapse_addresses(new)]
            _, dflt, lo, hi = self._validate(
                prefixes, attrs.get("default_prefixlen", row.default_prefixlen),
                attrs.get("min_prefixlen", row.min_prefixlen),
                attrs.get("max_prefixlen", row.max_prefixlen))
            row.prefixes, row.default_prefixlen, row.min_prefixlen, row.max_prefixlen = (
                prefixes, dflt, lo, hi)
            if attrs.get("address_scope_id"):
                self.svc.address_scopes.check_for_pool(s, ctx, attrs["address_scope_id"],
                                                       row.ip_version)
            for key in ("name", "description", "is_default", "default_quota",
                        "address_scope_id"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            bump(row)
            return views.subnetpool(row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_subnetpool")
            if s.scalar(select(m.Subnet.id).where(m.Subnet.subnetpool_id == row.id)):
                raise Conflict(f"Unable to delete subnet pool: Subnet pool {row.id} has "
                               "allocated subnets.", kind="SubnetPoolInUse")
            s.delete(row)

    # -- used by subnet create ------------------------------------------------------------
    def pool_for(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> m.SubnetPool:
        if attrs.get("subnetpool_id"):
            return self.load(s, ctx, attrs["subnetpool_id"])
        version = attrs.get("ip_version", 4)
        pool = s.scalars(select(m.SubnetPool).where(m.SubnetPool.is_default.is_(True),
                                                    m.SubnetPool.ip_version == version)).first()
        if pool is None:
            raise BadRequest(f"Bad subnets request: no default subnet pool for IPv{version}.",
                             kind="BadRequest")
        return pool

    def allocate_prefix(self, s: Session, pool: m.SubnetPool, prefixlen: int | None) -> str:
        length = prefixlen if prefixlen is not None else pool.default_prefixlen
        if not pool.min_prefixlen <= length <= pool.max_prefixlen:
            raise BadRequest(f"Unable to allocate subnet with prefix length {length}, maximum "
                             f"allowed prefix is {pool.max_prefixlen}, minimum "
                             f"{pool.min_prefixlen}.", kind="IllegalSubnetPrefixLength"
                             if False else "BadRequest")
        used = [ipaddress.ip_network(c) for c in s.scalars(
            select(m.Subnet.cidr).where(m.Subnet.subnetpool_id == pool.id))]
        for prefix in pool.prefixes:
            net = ipaddress.ip_network(prefix)
            if length < net.prefixlen:
                continue
            for cand in net.subnets(new_prefix=length):
                if not any(cand.overlaps(u) for u in used):
                    return str(cand)
        raise Conflict(f"Subnet allocation failed: no prefix of length {length} left in pool "
                       f"{pool.id}.", kind="SubnetAllocationError")


def bump_row(row: Any) -> None:
    bump(row)
