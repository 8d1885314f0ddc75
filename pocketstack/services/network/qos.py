"""QoS policies and their rules (api-ref v2 "Quality of Service"): bandwidth_limit,
dscp_marking and minimum_bandwidth rules, the rule types, ``qos_policy_id`` on networks
and ports.

The API records the policies; the data plane does not enforce them (no tc shaping or DSCP
rewriting in the linux driver yet): the rule types list says which rules exist, not that
a driver applies them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.common import bump, project_fields, standard
from pocketstack.services.network.resource import Resource, owner_for

KEYS = {"id", "name", "description", "shared", "is_default", "rules", "tenant_id",
        "project_id", "tags", "created_at", "updated_at", "revision_number"}

MAX_INT = 2 ** 31 - 1
# neutron_lib.constants.VALID_DSCP_MARKS
DSCP_MARKS = (0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 46, 48,
              56)
# rule type -> its parameters (shown by the rule body and by GET /qos/rule-types/{type})
RULE_PARAMS: dict[str, tuple[str, ...]] = {
    "bandwidth_limit": ("max_kbps", "max_burst_kbps", "direction"),
    "dscp_marking": ("dscp_mark",),
    "minimum_bandwidth": ("min_kbps", "direction"),
    "packet_rate_limit": ("max_kpps", "max_burst_kpps", "direction"),
    "minimum_packet_rate": ("min_kpps", "direction"),
}
# The packet-rate rules keep their numbers in the kbps columns (same integer range; the
# rule type says the unit), so the rule table needs no column per unit.
COLUMN = {"max_kpps": "max_kbps", "max_burst_kpps": "max_burst_kbps", "min_kpps": "min_kbps"}
# URL segment -> rule type
RULE_COLLECTIONS = {f"{t}_rules": t for t in RULE_PARAMS}


def rule_body(rule: m.QosRule, *, in_policy: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rule.id}
    for key in RULE_PARAMS[rule.rule_type]:
        body[key] = getattr(rule, COLUMN.get(key, key))
    if in_policy:  # the policy's "rules" list also says what each rule is and whose
        body["type"] = rule.rule_type
        body["qos_policy_id"] = rule.qos_policy_id
    return body


def supported_parameters(rule_type: str) -> list[dict[str, Any]]:
    out = []
    for name in RULE_PARAMS[rule_type]:
        if name == "direction":
            choices = ["any", "ingress", "egress"] if rule_type == "minimum_packet_rate" \
                else ["ingress", "egress"]
            out.append({"parameter_name": name, "parameter_type": "choices",
                        "parameter_values": choices})
        elif name == "dscp_mark":
            out.append({"parameter_name": name, "parameter_type": "choices",
                        "parameter_values": list(DSCP_MARKS)})
        else:
            out.append({"parameter_name": name, "parameter_type": "range",
                        "parameter_values": {"start": 0, "end": MAX_INT}})
    return out


class QosPolicies(Resource):
    singular, plural, model, keys = "policy", "policies", m.QosPolicy, KEYS
    not_found_kind, label = "QosPolicyNotFound", "QoS policy"

    # Sharing is RBAC (object_type qos_policy, access_as_shared): "shared" is the wildcard
    # entry, kept in the column; an entry naming a project shares with that project only.
    @staticmethod
    def _granted(project: str | None) -> Any:
        return select(m.RBACPolicy.object_id).where(
            m.RBACPolicy.object_type == "qos_policy",
            m.RBACPolicy.target_tenant.in_(["*", project or ""]))

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = select(m.QosPolicy)
        if not ctx.is_admin:
            stmt = stmt.where(or_(m.QosPolicy.project_id == ctx.project_id,
                                  m.QosPolicy.shared.is_(True),
                                  m.QosPolicy.id.in_(self._granted(ctx.project_id))))
        return list(s.scalars(stmt.order_by(m.QosPolicy.created_at, m.QosPolicy.id)))

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return ctx.is_admin or row.project_id == ctx.project_id or row.shared or bool(
            s.scalar(self._granted(ctx.project_id).where(m.RBACPolicy.object_id == row.id)))

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        # shared, as the caller sees it: shared with everyone or with the caller's project
        shared_here = set(s.scalars(self._granted(ctx.project_id).where(
            m.RBACPolicy.object_id.in_([r.id for r in rows])))) if rows else set()
        rules: dict[str, list[dict]] = {r.id: [] for r in rows}
        if rows:
            for rule in s.scalars(select(m.QosRule).where(
                    m.QosRule.qos_policy_id.in_(list(rules))).order_by(
                    m.QosRule.created_at, m.QosRule.id)):
                rules[rule.qos_policy_id].append(rule_body(rule, in_policy=True))
        return [{"id": r.id, "name": r.name, "shared": r.shared or r.id in shared_here,
                 "is_default": r.default_for is not None, "rules": rules[r.id],
                 **standard(r)} for r in rows]

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> Any:
        project = owner_for(ctx, attrs)
        policy.enforce(ctx, "network:create_policy", {"project_id": project})
        row = m.QosPolicy(project_id=project, name=attrs.get("name", ""),
                          description=attrs.get("description", ""),
                          shared=attrs.get("shared", False))
        if attrs.get("is_default"):
            self._make_default(s, row)
        s.add(row)
        s.flush()
        if row.shared:
            self._wildcard(s, row, True)
        return row

    def _wildcard(self, s: Session, row: m.QosPolicy, shared: bool) -> None:
        entry = s.scalars(select(m.RBACPolicy).where(
            m.RBACPolicy.object_type == "qos_policy", m.RBACPolicy.object_id == row.id,
            m.RBACPolicy.target_tenant == "*")).first()
        if shared and entry is None:
            s.add(m.RBACPolicy(project_id=row.project_id, object_type="qos_policy",
                               object_id=row.id, action="access_as_shared",
                               target_tenant="*"))
        elif not shared and entry is not None:
            self.check_rbac_removal(s, entry)
            s.delete(entry)
        row.shared = shared
        s.flush()

    # -- used by RBAC policies ------------------------------------------------------------
    def rbac_object(self, s: Session, ctx: RequestContext, object_id: str,
                    action: str) -> m.QosPolicy:
        row = s.get(m.QosPolicy, object_id)
        if row is None or not self.visible(s, ctx, row):
            raise NotFound(f"QoS policy {object_id} could not be found.",
                           kind="QosPolicyNotFound")
        if not (ctx.is_admin or row.project_id == ctx.project_id):
            # shared with the caller, not theirs to share on (Neutron answers 400)
            raise BadRequest(f"Invalid input for operation: QoS policy {object_id} is not "
                             "owned by the caller's project.", kind="InvalidInput")
        if action != "access_as_shared":
            raise BadRequest(f"Invalid input for operation: action {action} is not valid "
                             "for object_type qos_policy.", kind="InvalidInput")
        return row

    def check_rbac_removal(self, s: Session, entry: m.RBACPolicy) -> None:
        """An entry cannot go while a project it alone lets in has a network or port on
        the policy (Neutron's RbacPolicyInUse); unsharing a policy in use is refused even
        for the owner's networks, as Neutron does."""
        row = s.get(m.QosPolicy, entry.object_id)
        if row is None:
            return
        others = s.scalars(select(m.RBACPolicy.target_tenant).where(
            m.RBACPolicy.object_type == "qos_policy", m.RBACPolicy.object_id == row.id,
            m.RBACPolicy.id != entry.id)).all()
        if "*" in others:
            return
        for model in (m.Network, m.Port):
            # the owner's own networks count too (Neutron's test_policy_sharing_with_wildcard)
            q = select(model.project_id).where(model.qos_policy_id == row.id,
                                               model.project_id.not_in(others))
            if entry.target_tenant != "*":
                q = q.where(model.project_id == entry.target_tenant)
            if s.scalar(q.limit(1)):
                raise Conflict(f"RBAC policy on object {row.id} cannot be removed because "
                               "other objects depend on it.", kind="RbacPolicyInUse")

    def _make_default(self, s: Session, row: m.QosPolicy) -> None:
        other = s.scalar(select(m.QosPolicy.id).where(
            m.QosPolicy.default_for == row.project_id, m.QosPolicy.id != row.id))
        if other:
            raise Conflict(f"A default QoS policy exists for project {row.project_id}.",
                           kind="QoSPolicyDefaultAlreadyExists")
        row.default_for = row.project_id

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_policy")
            for key in ("name", "description"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            if "shared" in attrs and attrs["shared"] != row.shared:
                self._wildcard(s, row, attrs["shared"])
            if "is_default" in attrs:
                if attrs["is_default"]:
                    self._make_default(s, row)
                else:
                    row.default_for = None
            bump(row)
            s.flush()
            return self.show_one(s, ctx, row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_policy")
            for model, kind in ((m.Port, "port"), (m.Network, "network")):
                user = s.scalar(select(model.id).where(model.qos_policy_id == row.id).limit(1))
                if user:
                    raise Conflict(f"QoS Policy {row.id} is used by {kind} {user}.",
                                   kind="QosPolicyInUse")
            for entry in s.scalars(select(m.RBACPolicy).where(
                    m.RBACPolicy.object_type == "qos_policy",
                    m.RBACPolicy.object_id == row.id)):
                s.delete(entry)
            s.flush()
            s.delete(row)

    # -- used by networks and ports -------------------------------------------------------
    def check_usable(self, s: Session, ctx: RequestContext, policy_id: str | None) -> None:
        """A network or port may name a policy its caller can see (else 404, as Neutron)."""
        if policy_id is None:
            return
        row = s.get(m.QosPolicy, policy_id)
        if row is None or not self.visible(s, ctx, row):
            raise NotFound(f"QoS policy {policy_id} could not be found.",
                           kind="QosPolicyNotFound")

    def default_for(self, s: Session, project_id: str) -> str | None:
        return s.scalar(select(m.QosPolicy.id).where(m.QosPolicy.default_for == project_id))


class QosRules:
    """The rules of one type under /qos/policies/{policy_id}/<type>_rules."""

    def __init__(self, policies: QosPolicies, rule_type: str) -> None:
        self.policies = policies
        self.db = policies.db
        self.rule_type = rule_type
        self.singular = f"{rule_type}_rule"

    def _policy(self, s: Session, ctx: RequestContext, policy_id: str, action: str) -> Any:
        if action != "create":
            row = self.policies.load(s, ctx, policy_id)
        else:
            # Neutron checks a rule create against the parent policy's owner before
            # visibility (403, not 404); show/update/delete find the rule first (404)
            row = s.get(m.QosPolicy, policy_id)
            if row is None:
                raise self.policies.not_found(policy_id)
        policy.enforce(ctx, f"network:{action}_policy_{self.singular}",
                       {"project_id": row.project_id})
        if not self.policies.visible(s, ctx, row):
            raise self.policies.not_found(policy_id)
        return row

    def _rule(self, s: Session, policy_id: str, rule_id: str) -> m.QosRule:
        rule = s.get(m.QosRule, rule_id)
        if rule is None or rule.qos_policy_id != policy_id or rule.rule_type != self.rule_type:
            raise NotFound(f"QoS rule {rule_id} for policy {policy_id} could not be found.",
                           kind="QosRuleNotFound")
        return rule

    def list(self, ctx: RequestContext, policy_id: str, query: Any) -> list[dict]:
        with self.db.read() as s:
            self._policy(s, ctx, policy_id, "get")
            rules = s.scalars(select(m.QosRule).where(
                m.QosRule.qos_policy_id == policy_id, m.QosRule.rule_type == self.rule_type)
                .order_by(m.QosRule.created_at, m.QosRule.id))
            items = [rule_body(r, in_policy=False) for r in rules]
        fields = [f for f in query.getlist("fields") if f]
        return [project_fields(i, fields) for i in items]

    def get(self, ctx: RequestContext, policy_id: str, rule_id: str) -> dict:
        with self.db.read() as s:
            self._policy(s, ctx, policy_id, "get")
            return rule_body(self._rule(s, policy_id, rule_id), in_policy=False)

    def _check_unique(self, s: Session, rule: m.QosRule) -> None:
        q = select(m.QosRule.id).where(m.QosRule.qos_policy_id == rule.qos_policy_id,
                                       m.QosRule.rule_type == rule.rule_type,
                                       m.QosRule.id != rule.id)
        if "direction" in RULE_PARAMS[rule.rule_type]:
            q = q.where(m.QosRule.direction == rule.direction)
        if s.scalar(q.limit(1)):
            raise Conflict(f"Rule {rule.rule_type} already exists in QoS Policy "
                           f"{rule.qos_policy_id}.", kind="QoSRulesConflict")

    def create(self, ctx: RequestContext, policy_id: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self._policy(s, ctx, policy_id, "create")
            rule = m.QosRule(qos_policy_id=row.id, rule_type=self.rule_type)
            if "direction" in RULE_PARAMS[self.rule_type]:
                rule.direction = "egress"
            if self.rule_type in ("bandwidth_limit", "packet_rate_limit"):
                rule.max_burst_kbps = 0
            for key, value in attrs.items():
                setattr(rule, COLUMN.get(key, key), value)
            s.add(rule)
            s.flush()
            self._check_unique(s, rule)
            bump(row)
            return rule_body(rule, in_policy=False)

    def update(self, ctx: RequestContext, policy_id: str, rule_id: str,
               attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self._policy(s, ctx, policy_id, "update")
            rule = self._rule(s, policy_id, rule_id)
            for key, value in attrs.items():
                setattr(rule, COLUMN.get(key, key), value)
            s.flush()
            self._check_unique(s, rule)
            bump(row)
            return rule_body(rule, in_policy=False)

    def delete(self, ctx: RequestContext, policy_id: str, rule_id: str) -> None:
        with self.db.write() as s:
            row = self._policy(s, ctx, policy_id, "delete")
            s.delete(self._rule(s, policy_id, rule_id))
            bump(row)


class RuleTypes:
    def list(self, ctx: RequestContext, query: Any) -> list[dict]:
        policy.enforce(ctx, "network:get_rule_type", ctx.as_target())
        for key in query.keys():
            if key not in ("fields", "type", "all_rules", "all_supported"):
                raise BadRequest(f"{key} is an invalid filter; it is not an attribute of "
                                 "rule_types.", kind="HTTPBadRequest")
        wanted = query.getlist("type")
        return [{"type": t} for t in RULE_PARAMS if not wanted or t in wanted]

    def get(self, ctx: RequestContext, rule_type: str) -> dict:
        # the drivers and their parameters are for admins (neutron-tempest-plugin's
        # test_show_rule_type_details_as_user wants a 403 for a user)
        policy.enforce(ctx, "network:get_rule_type_details", ctx.as_target())
        if rule_type not in RULE_PARAMS:
            raise NotFound(f"QoS rule type {rule_type} could not be found.",
                           kind="QosRuleTypeNotFound")
        return {"type": rule_type, "drivers": [
            {"name": "pocketstack", "supported_parameters": supported_parameters(rule_type)}]}
