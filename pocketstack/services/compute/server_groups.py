"""Server groups: affinity, anti-affinity and their soft variants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound, OverQuota
from pocketstack.services.compute.models import Server, ServerGroup

POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


class ServerGroups:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db

    def lock_group(self, s, group_id: str) -> None:  # noqa: ANN001
        s.execute(select(ServerGroup.id).where(ServerGroup.id == group_id).with_for_update())

    def create(self, ctx: RequestContext, body: Any, ver) -> ServerGroup:  # noqa: ANN001
        policy.enforce(ctx, "compute:server_group_create", ctx.as_target())
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute server_group: must be an object")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name: a non-blank string")
        rules: dict[str, Any] = {}
        if ver.has("group_policy_singular"):
            extra = set(body) - {"name", "policy", "rules"}
            pol = body.get("policy")
            rules = body.get("rules") or {}
            if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"}:
                raise BadRequest("Invalid input for field/attribute rules")
            if rules and pol != "anti-affinity":
                raise BadRequest("Only anti-affinity policy supports rules.")
            if "max_server_per_host" in rules:
                v = rules["max_server_per_host"]
                if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                    raise BadRequest("Invalid input for field/attribute max_server_per_host")
        else:
            extra = set(body) - {"name", "policies"}
            pols = body.get("policies")
            if not isinstance(pols, list) or len(pols) != 1:
                raise BadRequest("Invalid input for field/attribute policies: exactly one policy")
            pol = pols[0]
        if extra:
            raise BadRequest("Invalid input for field/attribute server_group. Additional "
                             f"properties are not allowed ({', '.join(sorted(extra))})")
        allowed = POLICIES if ver.has("soft_affinity") else POLICIES[:2]
        if pol not in allowed:
            raise BadRequest(f"Invalid input for field/attribute policy. Value: {pol}. "
                             f"'{pol}' is not one of {list(allowed)}")
        with self.db.write() as s:
            self.svc.quotas.lock_project(s, ctx.project_id or "")
            limit = self.svc.quotas.limit_for(s, ctx.project_id or "", "server_groups")
            count = s.execute(select(func.count()).select_from(ServerGroup).where(
                ServerGroup.project_id == ctx.project_id)).scalar() or 0
            if limit >= 0 and count + 1 > limit:
                raise OverQuota("Quota exceeded, too many server groups.")
            g = ServerGroup(name=name, project_id=ctx.project_id or "", user_id=ctx.user_id or "",
                            policy=pol, rules=rules)
            s.add(g)
            s.flush()
            return g

    def _load(self, s, ctx: RequestContext, group_id: str) -> ServerGroup:  # noqa: ANN001
        g = s.get(ServerGroup, group_id)
        if g is None or not policy.check(ctx, "compute:server_group_show",
                                         {"project_id": g.project_id}):
            raise NotFound(f"Instance group {group_id} could not be found.")
        return g

    def get(self, ctx: RequestContext, group_id: str) -> tuple[ServerGroup, list[str]]:
        with self.db.read() as s:
            g = self._load(s, ctx, group_id)
            return g, self.members(s, g.id)

    def members(self, s, group_id: str) -> list[str]:  # noqa: ANN001
        return list(s.execute(select(Server.id).where(Server.group_id == group_id,
                                                      Server.deleted.is_(False))
                              .order_by(Server.seq)).scalars())

    def list_(self, ctx: RequestContext, query) -> list[tuple[ServerGroup, list[str]]]:  # noqa: ANN001
        q = select(ServerGroup).order_by(ServerGroup.created_at, ServerGroup.id)
        all_projects = query.get("all_projects", "").lower() in ("true", "1", "yes")
        if all_projects:
            policy.enforce(ctx, "compute:server_group_list_all")
        else:
            q = q.where(ServerGroup.project_id == (ctx.project_id or ""))
        with self.db.read() as s:
            groups = list(s.execute(q).scalars())
            out = [(g, self.members(s, g.id)) for g in groups]
        offset = int(query.get("offset", 0) or 0)
        limit = query.get("limit")
        out = out[offset:]
        if limit is not None:
            out = out[:int(limit)]
        return out

    def delete(self, ctx: RequestContext, group_id: str) -> None:
        with self.db.write() as s:
            g = self._load(s, ctx, group_id)
            policy.enforce(ctx, "compute:server_group_delete", {"project_id": g.project_id})
            s.delete(g)


def view(g: ServerGroup, members: list[str], ver) -> dict[str, Any]:  # noqa: ANN001
    body: dict[str, Any] = {"id": g.id, "name": g.name, "members": members}
    if ver.has("group_policy_singular"):
        body["policy"] = g.policy
        body["rules"] = dict(g.rules or {})
    else:
        body["policies"] = [g.policy]
        body["metadata"] = {}
    if ver.has("server_group_project"):
        body["project_id"] = g.project_id
        body["user_id"] = g.user_id
    return body
