"""OS-TRUST: a trustor lends some of their roles on a project to a trustee.

The trustee then gets trust-scoped tokens (scope ``{"OS-TRUST:trust": {"id": ...}}``),
acting as the trustor when ``impersonation`` is set. A trust token's roles are the trust's
roles the trustor still holds on the project; deleting or expiring the trust, or using up
``remaining_uses``, ends it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.errors import BadRequest, Forbidden, NotFound
from pocketstack.services.identity import assignments
from pocketstack.services.identity.common import body_object, get_project, get_user, links
from pocketstack.services.identity.credentials import _parse_expiry
from pocketstack.services.identity.models import Project, Role, Trust


def trust_view(svc: Any, t: Trust) -> dict[str, Any]:
    return {"id": t.id, "trustor_user_id": t.trustor_user_id,
            "trustee_user_id": t.trustee_user_id, "project_id": t.project_id,
            "impersonation": t.impersonation,
            "expires_at": isotime(t.expires_at, micro=True) if t.expires_at else None,
            "remaining_uses": t.remaining_uses, "allow_redelegation": False,
            "redelegation_count": 0,
            "roles": [{"id": r["id"], "name": r["name"], "domain_id": None,
                       "links": links(svc.base, f"roles/{r['id']}")} for r in t.roles],
            "roles_links": {"self": f"{svc.base}/v3/OS-TRUST/trusts/{t.id}/roles",
                            "previous": None, "next": None},
            "links": {"self": f"{svc.base}/v3/OS-TRUST/trusts/{t.id}"}}


def live_trust(s: Session, trust_id: str, *, issuing: bool = False) -> Trust:
    """The trust if it still holds, else 404 (as Keystone's TrustNotFound). Used-up
    ``remaining_uses`` only stops new tokens; tokens already issued live on."""
    t = s.get(Trust, trust_id) if isinstance(trust_id, str) else None
    if t is None or t.deleted or (t.expires_at is not None and t.expires_at <= utcnow()) or (
            issuing and t.remaining_uses is not None and t.remaining_uses <= 0):
        raise NotFound(f"Could not find trust: {trust_id}.")
    return t


def trust_roles(s: Session, t: Trust) -> list[Role]:
    """The trust's roles that the trustor still has on the project (with implications)."""
    if not t.project_id:
        return []
    project = s.get(Project, t.project_id)
    if project is None or not project.enabled:
        return []
    held = {r.id: r for r in assignments.effective_roles(s, t.trustor_user_id, "project",
                                                          project.id, project)}
    wanted = assignments.expand_implied(s, {r["id"] for r in t.roles})
    return [held[rid] for rid in sorted(wanted, key=lambda x: held[x].name if x in held else "")
            if rid in held]


def create_trust(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "trust")
    trustor, trustee = data.get("trustor_user_id"), data.get("trustee_user_id")
    if not isinstance(trustor, str) or not isinstance(trustee, str):
        raise BadRequest("Invalid input for field 'trust': trustor_user_id and "
                         "trustee_user_id are required strings")
    impersonation = data.get("impersonation")
    if not isinstance(impersonation, bool):
        raise BadRequest("Invalid input for field 'trust.impersonation': a boolean is required")
    uses = data.get("remaining_uses")
    if uses is not None and (isinstance(uses, bool) or not isinstance(uses, int) or uses < 1):
        raise BadRequest("Invalid input for field 'trust.remaining_uses': a positive integer")
    expires = _parse_expiry(data.get("expires_at"))
    policy.enforce(ctx, "identity:create_trust", {"user_id": trustor})
    caller = svc.validate(ctx.auth_token) if ctx.auth_token else None
    if ctx.app_cred_id is not None or (caller is not None and caller.payload.trust_id):
        raise Forbidden("A trust cannot be created with an application credential or a "
                        "trust token.")
    requested = data.get("roles") or []
    if not isinstance(requested, list) or not all(isinstance(r, dict) for r in requested):
        raise BadRequest("Invalid input for field 'trust.roles': a list of {id} or {name}")
    project_id = data.get("project_id")
    if requested and not project_id:
        raise BadRequest("A trust with roles needs a project_id.")
    with svc.db.write() as s:
        get_user(s, trustee)
        roles: list[dict[str, str]] = []
        if project_id:
            project = get_project(s, project_id)
            held = {r.id: r for r in assignments.effective_roles(s, trustor, "project",
                                                                  project.id, project)}
            for ref in requested:
                match = [r for r in held.values() if r.id == ref.get("id") or
                         ("id" not in ref and r.name == ref.get("name"))]
                if not match:
                    raise Forbidden(f"The trustor does not hold role "
                                    f"{ref.get('id') or ref.get('name')} on the project.")
                roles.append({"id": match[0].id, "name": match[0].name})
        t = Trust(trustor_user_id=trustor, trustee_user_id=trustee, project_id=project_id,
                  impersonation=impersonation, expires_at=expires, remaining_uses=uses,
                  roles=roles, deleted=False, extra={})
        s.add(t)
        s.flush()
        return {"trust": trust_view(svc, t)}


def list_trusts(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    trustor, trustee = q.get("trustor_user_id"), q.get("trustee_user_id")
    if not ctx.is_admin and ctx.user_id not in (trustor, trustee):
        raise Forbidden("List trusts you are the trustor or trustee of "
                        "(trustor_user_id or trustee_user_id).")
    with svc.db.read() as s:
        stmt = select(Trust).where(Trust.deleted.is_(False))
        if trustor:
            stmt = stmt.where(Trust.trustor_user_id == trustor)
        if trustee:
            stmt = stmt.where(Trust.trustee_user_id == trustee)
        now = utcnow()
        items = [trust_view(svc, t) for t in s.scalars(stmt).all()
                 if t.expires_at is None or t.expires_at > now]
    return {"trusts": items, "links": {"self": f"{svc.base}/v3/OS-TRUST/trusts",
                                       "previous": None, "next": None}}


def _own(s: Session, ctx: RequestContext, trust_id: str) -> Trust:
    t = live_trust(s, trust_id)
    if not ctx.is_admin and ctx.user_id not in (t.trustor_user_id, t.trustee_user_id):
        raise NotFound(f"Could not find trust: {trust_id}.")
    return t


def show_trust(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        return {"trust": trust_view(svc, _own(s, ctx, p["trust_id"]))}


def delete_trust(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        t = _own(s, ctx, p["trust_id"])
        if not ctx.is_admin and ctx.user_id != t.trustor_user_id:
            raise Forbidden("Only the trustor may delete a trust.")
        t.deleted = True
    svc.changed()  # trust tokens die with the trust


def list_trust_roles(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        t = _own(s, ctx, p["trust_id"])
        view = trust_view(svc, t)
    return {"roles": view["roles"], "links": view["roles_links"]}


def show_trust_role(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        t = _own(s, ctx, p["trust_id"])
        view = trust_view(svc, t)
    for role in view["roles"]:
        if role["id"] == p["role_id"]:
            return {"role": role}
    raise NotFound(f"Role {p['role_id']} is not delegated by trust {p['trust_id']}.")
