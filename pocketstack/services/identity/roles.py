"""Roles, implied roles, grants (project, domain, system, OS-INHERIT) and role assignments."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.identity.assignments import (GROUP_DOMAIN, GROUP_PROJECT,
                                                       GROUP_SYSTEM, SYSTEM_TARGET,
                                                       USER_DOMAIN, USER_PROJECT, USER_SYSTEM,
                                                       project_ancestors)
from pocketstack.services.identity.common import (body_object, collection, flag, get_domain,
                                                  get_group, get_project, get_role, get_user,
                                                  links, merge_extra, opt_str, req_name,
                                                  split_extra)
from pocketstack.services.identity.models import (Assignment, Group, ImpliedRole, Project, Role,
                                                  User, UserGroupMembership)

ROLE_OPTIONS = {"immutable"}


def role_view(svc: Any, r: Role) -> dict[str, Any]:
    return {**(r.extra or {}), "id": r.id, "name": r.name, "domain_id": r.domain_id or None,
            "description": r.description, "options": r.options or {},
            "links": links(svc.base, f"roles/{r.id}")}


def _role_ref(svc: Any, r: Role) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "links": links(svc.base, f"roles/{r.id}")}


def _role_options(data: dict[str, Any]) -> dict[str, Any]:
    options = data.get("options", {})
    if not isinstance(options, dict) or set(options) - ROLE_OPTIONS:
        raise BadRequest("Invalid input for field 'role.options': only 'immutable' is known")
    if any(not isinstance(v, (bool, type(None))) for v in options.values()):
        raise BadRequest("Invalid input for field 'role.options': values must be booleans")
    return options


# -- roles ----------------------------------------------------------------------------------
def create_role(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "role")
    name = req_name(data, "role")
    domain_id = opt_str(data, "domain_id", prefix="role") or ""
    desc = opt_str(data, "description", prefix="role", max_len=255)
    options = {k: v for k, v in _role_options(data).items() if v is not None}
    policy.enforce(ctx, "identity:create_role", {"domain_id": domain_id or None})
    with svc.db.write() as s:
        if domain_id:
            get_domain(s, domain_id)
        if s.scalars(select(Role.id).where(Role.name == name, Role.domain_id == domain_id)
                     ).first():
            raise Conflict(f"Conflict occurred attempting to store role - Duplicate entry "
                           f"found with name {name}.")
        role = Role(name=name, domain_id=domain_id, description=desc, options=options,
                    extra=split_extra(data, {"name", "domain_id", "description", "options"}))
        s.add(role)
        s.flush()
        return {"role": role_view(svc, role)}


def list_roles(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_roles", {})
    with svc.db.read() as s:
        stmt = select(Role).where(Role.domain_id == (q.get("domain_id") or "")).order_by(Role.name)
        if "name" in q:
            stmt = stmt.where(Role.name == q["name"])
        items = [role_view(svc, r) for r in s.scalars(stmt).all()]
    return collection(svc.base, "roles", "roles", items)


def show_role(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_role", {})
    with svc.db.read() as s:
        return {"role": role_view(svc, get_role(s, p["role_id"]))}


def update_role(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "role")
    policy.enforce(ctx, "identity:update_role", {})
    with svc.db.write() as s:
        role = get_role(s, p["role_id"])
        if (role.options or {}).get("immutable") and set(data) - {"options"}:
            raise Forbidden(f"Role {role.id} is immutable.")
        if "domain_id" in data and (data["domain_id"] or "") != role.domain_id:
            raise BadRequest("Update of `domain_id` is not allowed.")
        if "name" in data:
            name = req_name(data, "role")
            if s.scalars(select(Role.id).where(Role.name == name,
                                               Role.domain_id == role.domain_id,
                                               Role.id != role.id)).first():
                raise Conflict(f"Conflict occurred attempting to store role - Duplicate "
                               f"entry found with name {name}.")
            role.name = name
        if "description" in data:
            role.description = opt_str(data, "description", prefix="role", max_len=255)
        if "options" in data:
            merged = {**(role.options or {}), **_role_options(data)}
            role.options = {k: v for k, v in merged.items() if v is not None}
        merge_extra(role, data, {"name", "domain_id", "description", "options"})
        s.flush()
        out = role_view(svc, role)
    svc.changed()
    return {"role": out}


def delete_role(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:delete_role", {})
    with svc.db.write() as s:
        role = get_role(s, p["role_id"])
        if (role.options or {}).get("immutable"):
            raise Forbidden(f"Role {role.id} is immutable.")
        s.execute(delete(Assignment).where(Assignment.role_id == role.id))
        s.execute(delete(ImpliedRole).where((ImpliedRole.prior_role_id == role.id)
                                            | (ImpliedRole.implied_role_id == role.id)))
        s.delete(role)
    svc.changed()


# -- implied roles ------------------------------------------------------------------------------
def _inference(svc: Any, prior: Role, implied: Role) -> dict[str, Any]:
    return {"role_inference": {"prior_role": _role_ref(svc, prior),
                               "implies": _role_ref(svc, implied)},
            "links": links(svc.base, f"roles/{prior.id}/implies/{implied.id}")}


def create_implied(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:implied_roles", {})
    with svc.db.write() as s:
        prior, implied = get_role(s, p["prior_role_id"]), get_role(s, p["implied_role_id"])
        if implied.domain_id and not prior.domain_id:
            raise Forbidden(f"Implied role {implied.id} is domain-specific; a global role "
                            "cannot imply it.")
        if prior.id == implied.id:
            raise Forbidden("A role cannot imply itself.")
        # refuse cycles: implied must not (transitively) imply prior
        frontier, seen = {implied.id}, set()
        while frontier:
            if prior.id in frontier:
                raise Forbidden(f"Implying {implied.id} from {prior.id} would create a cycle.")
            seen |= frontier
            frontier = set(s.scalars(select(ImpliedRole.implied_role_id).where(
                ImpliedRole.prior_role_id.in_(frontier)))) - seen
        if s.get(ImpliedRole, (prior.id, implied.id)) is None:
            s.add(ImpliedRole(prior_role_id=prior.id, implied_role_id=implied.id))
        out = _inference(svc, prior, implied)
    svc.changed()
    return out


def _get_implied(s: Session, p: dict) -> tuple[Role, Role]:
    prior, implied = get_role(s, p["prior_role_id"]), get_role(s, p["implied_role_id"])
    if s.get(ImpliedRole, (prior.id, implied.id)) is None:
        raise NotFound(f"{prior.id} does not imply {implied.id}.")
    return prior, implied


def show_implied(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_role_inference_rules", {})
    with svc.db.read() as s:
        return _inference(svc, *_get_implied(s, p))


def delete_implied(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:implied_roles", {})
    with svc.db.write() as s:
        prior, implied = _get_implied(s, p)
        s.execute(delete(ImpliedRole).where(ImpliedRole.prior_role_id == prior.id,
                                            ImpliedRole.implied_role_id == implied.id))
    svc.changed()


def list_implied(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_role_inference_rules", {})
    with svc.db.read() as s:
        prior = get_role(s, p["prior_role_id"])
        implied = s.scalars(select(Role).join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
                            .where(ImpliedRole.prior_role_id == prior.id)).all()
        return {"role_inference": {"prior_role": _role_ref(svc, prior),
                                   "implies": [_role_ref(svc, r) for r in implied]},
                "links": links(svc.base, f"roles/{prior.id}/implies")}


def list_inferences(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_role_inference_rules", {})
    with svc.db.read() as s:
        roles = {r.id: r for r in s.scalars(select(Role)).all()}
        by_prior: dict[str, list[str]] = {}
        for rule in s.scalars(select(ImpliedRole)).all():
            by_prior.setdefault(rule.prior_role_id, []).append(rule.implied_role_id)
    out = [{"prior_role": _role_ref(svc, roles[pid]),
            "implies": [_role_ref(svc, roles[i]) for i in sorted(ids, key=lambda x: roles[x].name)]}
           for pid, ids in by_prior.items() if pid in roles]
    return {"role_inferences": out, "links": links(svc.base, "role_inferences")}


# -- grants ---------------------------------------------------------------------------------
def _grant_key(s: Session, p: dict, target_kind: str, inherited: bool = False
               ) -> tuple[str, str, str, dict[str, Any]]:
    """(type, actor id, target id, policy target) for a grant path."""
    if "user_id" in p:
        actor = get_user(s, p["user_id"]).id
        kinds = {"project": USER_PROJECT, "domain": USER_DOMAIN, "system": USER_SYSTEM}
    else:
        actor = get_group(s, p["group_id"]).id
        kinds = {"project": GROUP_PROJECT, "domain": GROUP_DOMAIN, "system": GROUP_SYSTEM}
    if target_kind == "project":
        proj = get_project(s, p["project_id"])
        target, ptarget = proj.id, {"project_id": proj.id, "domain_id": proj.domain_id}
    elif target_kind == "domain":
        dom = get_domain(s, p["domain_id"])
        target, ptarget = dom.id, {"domain_id": dom.id}
    else:
        target, ptarget = SYSTEM_TARGET, {}
    return kinds[target_kind], actor, target, ptarget


def _check_role_fits(s: Session, role: Role, target_kind: str, target_id: str) -> None:
    if not role.domain_id:
        return
    if target_kind == "system":
        raise Forbidden("A domain-specific role cannot be granted on the system.")
    domain = target_id if target_kind == "domain" else s.get(Project, target_id).domain_id
    if domain != role.domain_id:
        raise Forbidden(f"Domain-specific role {role.id} can only be granted within its "
                        f"domain {role.domain_id}.")


def grant(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any, *, target_kind: str,
          inherited: bool = False) -> None:
    with svc.db.write() as s:
        kind, actor, target, ptarget = _grant_key(s, p, target_kind)
        policy.enforce(ctx, "identity:create_grant" if target_kind != "system"
                       else "identity:create_system_grant", ptarget)
        role = get_role(s, p["role_id"])
        _check_role_fits(s, role, target_kind, target)
        key = dict(type=kind, actor_id=actor, target_id=target, role_id=role.id,
                   inherited=inherited)
        if s.get(Assignment, key) is None:
            s.add(Assignment(**key))
    svc.changed()


def check_grant(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any, *, target_kind: str,
                inherited: bool = False) -> None:
    with svc.db.read() as s:
        kind, actor, target, ptarget = _grant_key(s, p, target_kind)
        policy.enforce(ctx, "identity:check_grant", {**ptarget, "user_id": p.get("user_id")})
        role = get_role(s, p["role_id"])
        key = dict(type=kind, actor_id=actor, target_id=target, role_id=role.id,
                   inherited=inherited)
        if s.get(Assignment, key) is None:
            raise NotFound(f"Could not find role assignment with role: {role.id}, "
                           f"{'user' if 'user_id' in p else 'group'}: {actor}, "
                           f"{target_kind}: {target}.")


def revoke(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any, *, target_kind: str,
           inherited: bool = False) -> None:
    with svc.db.write() as s:
        kind, actor, target, ptarget = _grant_key(s, p, target_kind)
        policy.enforce(ctx, "identity:revoke_grant" if target_kind != "system"
                       else "identity:revoke_system_grant", ptarget)
        role = get_role(s, p["role_id"])
        key = dict(type=kind, actor_id=actor, target_id=target, role_id=role.id,
                   inherited=inherited)
        row = s.get(Assignment, key)
        if row is None:
            raise NotFound(f"Could not find role assignment with role: {role.id}, "
                           f"{'user' if 'user_id' in p else 'group'}: {actor}, "
                           f"{target_kind}: {target}.")
        s.delete(row)
    svc.changed()


def list_grants(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any, *, target_kind: str,
                inherited: bool = False) -> dict:
    with svc.db.read() as s:
        kind, actor, target, ptarget = _grant_key(s, p, target_kind)
        policy.enforce(ctx, "identity:list_grants", {**ptarget, "user_id": p.get("user_id")})
        rows = s.scalars(select(Role).join(Assignment, Assignment.role_id == Role.id).where(
            Assignment.type == kind, Assignment.actor_id == actor,
            Assignment.target_id == target, Assignment.inherited.is_(inherited))
            .order_by(Role.name)).all()
        items = [role_view(svc, r) for r in rows]
    return collection(svc.base, "roles", "roles", items)


# -- /v3/role_assignments -------------------------------------------------------------------------
def _entry(svc: Any, a: Assignment, *, user_id: str | None = None,
           project_id: str | None = None, via_group: str | None = None,
           prior: str | None = None, role_id: str | None = None) -> dict[str, Any]:
    actor_is_user = a.type.startswith("User")
    if a.type.endswith("Project"):
        scope_kind, scope_id = "project", a.target_id
    elif a.type.endswith("Domain"):
        scope_kind, scope_id = "domain", a.target_id
    else:
        scope_kind, scope_id = "system", None
    if project_id is not None:  # an inherited assignment expanded onto a project
        scope: dict[str, Any] = {"project": {"id": project_id}}
    elif scope_kind == "system":
        scope = {"system": {"all": True}}
    else:
        scope = {scope_kind: {"id": scope_id}}
    if a.inherited and project_id is None:
        scope["OS-INHERIT:inherited_to"] = "projects"
    actor_part = ("users" if actor_is_user else "groups") + f"/{a.actor_id}"
    if scope_kind == "system":
        path = f"system/{actor_part}/roles/{a.role_id}"
    else:
        path = f"{scope_kind}s/{scope_id}/{actor_part}/roles/{a.role_id}"
        if a.inherited:
            path = f"OS-INHERIT/{path}/inherited_to_projects"
    link: dict[str, Any] = {"assignment": f"{svc.base}/v3/{path}"}
    if via_group:
        link["membership"] = f"{svc.base}/v3/groups/{a.actor_id}/users/{user_id}"
    if prior:
        link["prior_role"] = f"{svc.base}/v3/roles/{prior}"
    out: dict[str, Any] = {"role": {"id": role_id or a.role_id}, "scope": scope, "links": link}
    if user_id is not None:
        out["user"] = {"id": user_id}
    elif actor_is_user:
        out["user"] = {"id": a.actor_id}
    else:
        out["group"] = {"id": a.actor_id}
    return out


def list_assignments(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    effective = flag(q, "effective")
    include_names = flag(q, "include_names")
    include_subtree = flag(q, "include_subtree")
    user_f, group_f, role_f = q.get("user.id"), q.get("group.id"), q.get("role.id")
    proj_f, dom_f = q.get("scope.project.id"), q.get("scope.domain.id")
    system_f = q.get("scope.system")
    inherited_f = q.get("scope.OS-INHERIT:inherited_to")
    if effective and group_f:
        raise BadRequest("Specify at most one of effective and group.id.")
    if sum(x is not None for x in (proj_f, dom_f, system_f)) > 1:
        raise BadRequest("Specify at most one scope (project, domain or system).")
    if include_subtree and not proj_f:
        raise BadRequest("scope.project.id needs to be specified if include_subtree is "
                         "also specified.")
    # A user may list their own assignments; admins and domain readers list others'.
    own = user_f is not None and user_f == ctx.user_id
    if not own:
        policy.enforce(ctx, "identity:list_role_assignments",
                       {"domain_id": dom_f or ctx.domain_id})
    with svc.db.read() as s:
        rows = list(s.scalars(select(Assignment)).all()) if not (user_f and not effective) else \
            list(s.scalars(select(Assignment).where(Assignment.actor_id == user_f)).all())
        projects = {x.id: x for x in s.scalars(select(Project)).all()}
        entries = _expand(svc, s, rows, projects, effective)
        if not ctx.is_admin and ctx.domain_id and not own:
            entries = [e for e in entries if _entry_domain(e, projects) == ctx.domain_id]
        # filters
        project_ids = None
        if proj_f:
            project_ids = {proj_f}
            if include_subtree:
                frontier = {proj_f}
                while frontier:
                    frontier = {x.id for x in projects.values() if x.parent_id in frontier}
                    project_ids |= frontier

        def keep(e: dict[str, Any]) -> bool:
            sc = e["scope"]
            if user_f and e.get("user", {}).get("id") != user_f:
                return False
            if group_f and e.get("group", {}).get("id") != group_f:
                return False
            if role_f and e["role"]["id"] != role_f:
                return False
            if project_ids is not None and sc.get("project", {}).get("id") not in project_ids:
                return False
            if dom_f and sc.get("domain", {}).get("id") != dom_f:
                return False
            if system_f and "system" not in sc:
                return False
            if inherited_f and sc.get("OS-INHERIT:inherited_to") != inherited_f:
                return False
            return True

        entries = [e for e in entries if keep(e)]
        if include_names:
            _add_names(s, entries, projects)
    return {"role_assignments": entries,
            "links": {"self": f"{svc.base}/v3/role_assignments", "previous": None,
                      "next": None}}


def _entry_domain(e: dict[str, Any], projects: dict[str, Project]) -> str | None:
    sc = e["scope"]
    if "domain" in sc:
        return sc["domain"]["id"]
    if "project" in sc and sc["project"]["id"] in projects:
        return projects[sc["project"]["id"]].domain_id
    return None


def _expand(svc: Any, s: Session, rows: list[Assignment], projects: dict[str, Project],
            effective: bool) -> list[dict[str, Any]]:
    if not effective:
        return [_entry(svc, a) for a in rows]
    members: dict[str, list[str]] = {}
    for m in s.scalars(select(UserGroupMembership)).all():
        members.setdefault(m.group_id, []).append(m.user_id)
    implied: dict[str, list[str]] = {}
    for rule in s.scalars(select(ImpliedRole)).all():
        implied.setdefault(rule.prior_role_id, []).append(rule.implied_role_id)
    domain_roles = set(s.scalars(select(Role.id).where(Role.domain_id != "")))
    children: dict[str, list[str]] = {}
    for proj in projects.values():
        if not proj.is_domain and proj.parent_id:
            children.setdefault(proj.parent_id, []).append(proj.id)

    def subtree(pid: str) -> list[str]:
        out, frontier = [], [pid]
        while frontier:
            nxt = [c for f in frontier for c in children.get(f, [])]
            out.extend(nxt)
            frontier = nxt
        return out

    out: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for a in rows:
        users = [a.actor_id] if a.type.startswith("User") else members.get(a.actor_id, [])
        via_group = not a.type.startswith("User")
        if a.inherited:
            if a.type.endswith("Domain"):
                targets = [x.id for x in projects.values()
                           if x.domain_id == a.target_id and not x.is_domain]
            else:
                targets = subtree(a.target_id)
        else:
            targets = [None]
        # the role and everything it implies, minus domain-specific roles
        role_chain: list[tuple[str, str | None]] = [(a.role_id, None)]
        frontier = [a.role_id]
        seen_roles = {a.role_id}
        while frontier:
            nxt = []
            for rid in frontier:
                for imp in implied.get(rid, []):
                    if imp not in seen_roles:
                        seen_roles.add(imp)
                        role_chain.append((imp, rid))
                        nxt.append(imp)
            frontier = nxt
        for uid in users:
            for tgt in targets:
                for rid, prior in role_chain:
                    if rid in domain_roles:
                        continue
                    key = (uid, a.type[-7:], a.target_id if tgt is None else tgt, rid,
                           a.inherited and tgt is None)
                    if key in seen:
                        continue
                    seen.add(key)
                    out.append(_entry(svc, a, user_id=uid, project_id=tgt,
                                      via_group=a.actor_id if via_group else None,
                                      prior=prior, role_id=rid))
    return out


def _add_names(s: Session, entries: list[dict[str, Any]], projects: dict[str, Project]) -> None:
    users = {u.id: u for u in s.scalars(select(User)).all()}
    groups = {g.id: g for g in s.scalars(select(Group)).all()}
    roles = {r.id: r for r in s.scalars(select(Role)).all()}

    def dom(did: str) -> dict[str, Any]:
        d = projects.get(did)
        return {"id": did, "name": d.name if d else None}

    for e in entries:
        r = roles.get(e["role"]["id"])
        if r is not None:
            e["role"]["name"] = r.name
            if r.domain_id:
                e["role"]["domain"] = dom(r.domain_id)
        if "user" in e and e["user"]["id"] in users:
            u = users[e["user"]["id"]]
            e["user"].update(name=u.name, domain=dom(u.domain_id))
        if "group" in e and e["group"]["id"] in groups:
            g = groups[e["group"]["id"]]
            e["group"].update(name=g.name, domain=dom(g.domain_id))
        sc = e["scope"]
        if "project" in sc and sc["project"]["id"] in projects:
            pr = projects[sc["project"]["id"]]
            sc["project"].update(name=pr.name, domain=dom(pr.domain_id))
        if "domain" in sc and sc["domain"]["id"] in projects:
            sc["domain"]["name"] = projects[sc["domain"]["id"]].name


def project_chain(s: Session, proj: Project) -> list[Project]:
    return [proj, *project_ancestors(s, proj)]
