"""Users (passwords, security compliance), groups and group membership.

Password changes and disabling bump ``tokens_valid_after`` so every earlier token dies at
once, without a growing revocation list. Lockout and password history follow Keystone's
[security_compliance] options (IdentitySettings).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound, Unauthorized
from pocketstack.services.identity import assignments
from pocketstack.services.identity.common import (body_object, collection, get_domain, get_group,
                                                  get_user, links, merge_extra, opt_bool, opt_str,
                                                  query_bool, req_name, split_extra)
from pocketstack.services.identity.models import (AccessRule, ApplicationCredential,
                                                  Assignment, Credential, Group,
                                                  PasswordHistory, Project, User,
                                                  UserGroupMembership)

USER_COLUMNS = {"name", "domain_id", "enabled", "password", "default_project_id", "options",
                "password_expires_at"}
USER_OPTIONS = {"ignore_change_password_upon_first_use", "ignore_password_expiry",
                "ignore_lockout_failure_attempts", "lock_password",
                "multi_factor_auth_enabled", "multi_factor_auth_rules"}


def user_view(svc: Any, u: User) -> dict[str, Any]:
    out = {**(u.extra or {}), "id": u.id, "name": u.name, "domain_id": u.domain_id,
           "enabled": u.enabled, "password_expires_at": isotime(u.password_expires_at,
                                                                micro=True, z=False),
           "options": u.options or {}, "links": links(svc.base, f"users/{u.id}")}
    if u.default_project_id:
        out["default_project_id"] = u.default_project_id
    return out


def group_view(svc: Any, g: Group) -> dict[str, Any]:
    return {**(g.extra or {}), "id": g.id, "name": g.name, "domain_id": g.domain_id,
            "description": g.description or "", "links": links(svc.base, f"groups/{g.id}")}


def _user_options(data: dict[str, Any]) -> dict[str, Any]:
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise BadRequest("Invalid input for field 'user.options': must be an object")
    for key in options:
        if key not in USER_OPTIONS:
            raise BadRequest(f"Invalid input for field 'user.options': unknown option {key!r}")
    return options


def _password(data: dict[str, Any]) -> str | None:
    pw = data.get("password")
    if pw is None:
        return None
    if not isinstance(pw, str):
        raise BadRequest("Invalid input for field 'user.password': must be a string")
    if len(pw) > 4096:
        raise BadRequest("Invalid input for field 'user.password': is longer than 4096 "
                         "characters")
    return pw


def _default_project(s: Session, project_id: Any) -> str | None:
    if project_id is None:
        return None
    if not isinstance(project_id, str):
        raise BadRequest("Invalid input for field 'user.default_project_id': must be a string")
    proj = s.get(Project, project_id)
    if proj is None or proj.is_domain:
        raise BadRequest(f"The default project {project_id} is not a project.")
    return project_id


def _set_password(svc: Any, s: Session, user: User, password: str) -> None:
    now = utcnow()
    user.password_hash = svc.hasher.hash(password)
    user.password_created_at = now
    days = svc.settings.identity.password_expires_days
    ignore = (user.options or {}).get("ignore_password_expiry")
    user.password_expires_at = now + dt.timedelta(days=days) if days and not ignore else None
    s.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash, created_at=now))
    keep = max(svc.settings.identity.unique_last_password_count, 1)
    old = s.scalars(select(PasswordHistory.id).where(PasswordHistory.user_id == user.id)
                    .order_by(PasswordHistory.id.desc()).offset(keep)).all()
    if old:
        s.execute(delete(PasswordHistory).where(PasswordHistory.id.in_(old)))


def _revoke_user_tokens(user: User) -> None:
    # Microseconds: every token issued before now dies, one issued a moment later lives.
    user.tokens_valid_after = int(time.time() * 1_000_000)


# -- users ----------------------------------------------------------------------------------
def create_user(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "user")
    name = req_name(data, "user")
    domain_id = opt_str(data, "domain_id", prefix="user") or ctx.domain_id or \
        ctx.project_domain_id or "default"
    enabled = opt_bool(data, "enabled", prefix="user", default=True)
    password = _password(data)
    options = _user_options(data)
    extra = split_extra(data, USER_COLUMNS)
    policy.enforce(ctx, "identity:create_user", {"domain_id": domain_id})
    with svc.db.write() as s:
        dom = s.get(Project, domain_id)
        if dom is None or not dom.is_domain:
            raise NotFound(f"Could not find domain: {domain_id}.")
        if s.scalars(select(User.id).where(User.domain_id == domain_id,
                                           User.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry "
                           f"found with name {name} at domain ID {domain_id}.")
        user = User(name=name, domain_id=domain_id, enabled=enabled, options=options,
                    default_project_id=_default_project(s, data.get("default_project_id")),
                    extra=extra)
        s.add(user)
        s.flush()
        if password is not None:
            _set_password(svc, s, user, password)
        out = user_view(svc, user)
    return {"user": out}


def list_users(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    domain_filter = q.get("domain_id")
    if not ctx.is_admin:
        policy.enforce(ctx, "identity:list_users", {"domain_id": ctx.domain_id})
        domain_filter = ctx.domain_id
    with svc.db.read() as s:
        stmt = select(User).order_by(User.name)
        if domain_filter:
            stmt = stmt.where(User.domain_id == domain_filter)
        if "name" in q:
            stmt = stmt.where(User.name == q["name"])
        if "enabled" in q:
            stmt = stmt.where(User.enabled.is_(bool(query_bool(q["enabled"]))))
        items = [user_view(svc, u) for u in s.scalars(stmt).all()]
    return collection(svc.base, "users", "users", items)


def show_user(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        user = get_user(s, p["user_id"])
        policy.enforce(ctx, "identity:get_user", {"user_id": user.id, "domain_id": user.domain_id})
        return {"user": user_view(svc, user)}


def update_user(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "user")
    with svc.db.write() as s:
        user = get_user(s, p["user_id"])
        policy.enforce(ctx, "identity:update_user",
                       {"user_id": user.id, "domain_id": user.domain_id})
        if "domain_id" in data and data["domain_id"] != user.domain_id:
            raise BadRequest("Update of `domain_id` is not allowed.")
        if "id" in data and data["id"] != user.id:
            raise BadRequest("The user id cannot be changed.")
        if "name" in data:
            name = req_name(data, "user")
            if s.scalars(select(User.id).where(User.domain_id == user.domain_id,
                                               User.name == name, User.id != user.id)).first():
                raise Conflict(f"Conflict occurred attempting to store user - Duplicate entry "
                               f"found with name {name} at domain ID {user.domain_id}.")
            user.name = name
        enabled = opt_bool(data, "enabled", prefix="user")
        if enabled is not None:
            if not enabled and user.enabled:
                _revoke_user_tokens(user)
            user.enabled = enabled
            if enabled:
                user.failed_auth_count = 0
        if "options" in data:
            merged = {**(user.options or {}), **_user_options(data)}
            user.options = {k: v for k, v in merged.items() if v is not None}
        if "default_project_id" in data:
            user.default_project_id = _default_project(s, data["default_project_id"])
        password = _password(data)
        if password is not None:
            # An administrator's reset: history rules do not apply (Keystone does the same).
            _set_password(svc, s, user, password)
            _revoke_user_tokens(user)
        merge_extra(user, data, USER_COLUMNS)
        s.flush()
        out = user_view(svc, user)
    svc.changed()
    return {"user": out}


def delete_user_rows(s: Session, user_id: str) -> None:
    s.execute(delete(Assignment).where(Assignment.actor_id == user_id))
    s.execute(delete(UserGroupMembership).where(UserGroupMembership.user_id == user_id))
    s.execute(delete(ApplicationCredential).where(ApplicationCredential.user_id == user_id))
    s.execute(delete(AccessRule).where(AccessRule.user_id == user_id))
    s.execute(delete(Credential).where(Credential.user_id == user_id))
    s.execute(delete(PasswordHistory).where(PasswordHistory.user_id == user_id))
    s.execute(delete(User).where(User.id == user_id))


def delete_user(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        user = get_user(s, p["user_id"])
        policy.enforce(ctx, "identity:delete_user",
                       {"user_id": user.id, "domain_id": user.domain_id})
        delete_user_rows(s, user.id)
    svc.changed()


def change_password(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    """POST /v3/users/{id}/password: the user's own change, with the old password."""
    data = body_object(body, "user")
    new, original = data.get("password"), data.get("original_password")
    if not isinstance(new, str) or not isinstance(original, str):
        raise BadRequest("Invalid input for field 'user': 'password' and 'original_password' "
                         "are required strings")
    if len(new) > 4096:
        raise BadRequest("Invalid input for field 'user.password': is longer than 4096 "
                         "characters")
    # Like Keystone this needs no token (an expired password can be changed): the
    # original password is the proof, and failures count towards lockout.
    settings = svc.settings.identity
    with svc.db.read() as s:
        user = s.get(User, p["user_id"]) if isinstance(p["user_id"], str) else None
        ok = svc.hasher.verify(user.password_hash if user else None, original)
        if user is None or svc._locked_out(user) or not ok:
            if user is not None and not svc._locked_out(user):
                svc._record_auth(user.id, False)
            raise Unauthorized("The request you have made requires authentication.")
    with svc.db.write() as s:
        user = get_user(s, p["user_id"])
        if (user.options or {}).get("lock_password"):
            raise BadRequest(f"You cannot change the password of user {user.id}: it is "
                             "locked.")
        if settings.minimum_password_age and user.password_created_at is not None:
            ready = user.password_created_at + dt.timedelta(days=settings.minimum_password_age)
            if utcnow() < ready:
                raise BadRequest(f"You cannot change your password at this time due to the "
                                 f"minimum password age. Once you change your password, it "
                                 f"must be used for {settings.minimum_password_age} day(s) "
                                 "before it can be changed.")
        if settings.unique_last_password_count:
            recent = s.scalars(select(PasswordHistory.password_hash)
                               .where(PasswordHistory.user_id == user.id)
                               .order_by(PasswordHistory.id.desc())
                               .limit(settings.unique_last_password_count)).all()
            if any(svc.hasher.verify(h, new) for h in recent):
                raise BadRequest("The new password cannot be identical to a previous password. "
                                 f"The total number which includes the new password must be "
                                 f"unique is {settings.unique_last_password_count}.")
        _set_password(svc, s, user, new)
        _revoke_user_tokens(user)
    svc.changed()


def user_projects(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        user = get_user(s, p["user_id"])
        policy.enforce(ctx, "identity:list_user_projects",
                       {"user_id": user.id, "domain_id": user.domain_id})
        projects = assignments.user_projects(s, user.id)
        from pocketstack.services.identity.projects import _tags, project_view

        if "enabled" in q:
            projects = [x for x in projects if x.enabled == bool(query_bool(q["enabled"]))]
        if "name" in q:
            projects = [x for x in projects if x.name == q["name"]]
        if "domain_id" in q:
            projects = [x for x in projects if x.domain_id == q["domain_id"]]
        items = [project_view(svc, x, _tags(s, x.id)) for x in projects]
    return collection(svc.base, f"users/{p['user_id']}/projects", "projects", items)


def user_groups(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        user = get_user(s, p["user_id"])
        policy.enforce(ctx, "identity:list_groups_for_user",
                       {"user_id": user.id, "domain_id": user.domain_id})
        rows = s.scalars(select(Group).join(UserGroupMembership,
                                            UserGroupMembership.group_id == Group.id)
                         .where(UserGroupMembership.user_id == user.id)
                         .order_by(Group.name)).all()
        items = [group_view(svc, g) for g in rows]
    return collection(svc.base, f"users/{p['user_id']}/groups", "groups", items)


# -- groups ---------------------------------------------------------------------------------
def create_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "group")
    name = req_name(data, "group")
    domain_id = opt_str(data, "domain_id", prefix="group") or ctx.domain_id or \
        ctx.project_domain_id or "default"
    desc = opt_str(data, "description", prefix="group") or ""
    policy.enforce(ctx, "identity:create_group", {"domain_id": domain_id})
    with svc.db.write() as s:
        get_domain(s, domain_id)
        if s.scalars(select(Group.id).where(Group.domain_id == domain_id,
                                            Group.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store group - Duplicate entry "
                           f"found with name {name} at domain ID {domain_id}.")
        group = Group(name=name, domain_id=domain_id, description=desc,
                      extra=split_extra(data, {"name", "domain_id", "description"}))
        s.add(group)
        s.flush()
        return {"group": group_view(svc, group)}


def list_groups(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    domain_filter = q.get("domain_id")
    if not ctx.is_admin:
        policy.enforce(ctx, "identity:list_groups", {"domain_id": ctx.domain_id})
        domain_filter = ctx.domain_id
    with svc.db.read() as s:
        stmt = select(Group).order_by(Group.name)
        if domain_filter:
            stmt = stmt.where(Group.domain_id == domain_filter)
        if "name" in q:
            stmt = stmt.where(Group.name == q["name"])
        items = [group_view(svc, g) for g in s.scalars(stmt).all()]
    return collection(svc.base, "groups", "groups", items)


def show_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        group = get_group(s, p["group_id"])
        policy.enforce(ctx, "identity:get_group", {"domain_id": group.domain_id})
        return {"group": group_view(svc, group)}


def update_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "group")
    with svc.db.write() as s:
        group = get_group(s, p["group_id"])
        policy.enforce(ctx, "identity:update_group", {"domain_id": group.domain_id})
        if "domain_id" in data and data["domain_id"] != group.domain_id:
            raise BadRequest("Update of `domain_id` is not allowed.")
        if "name" in data:
            name = req_name(data, "group")
            if s.scalars(select(Group.id).where(Group.domain_id == group.domain_id,
                                                Group.name == name,
                                                Group.id != group.id)).first():
                raise Conflict(f"Conflict occurred attempting to store group - Duplicate "
                               f"entry found with name {name}.")
            group.name = name
        if "description" in data:
            group.description = opt_str(data, "description", prefix="group") or ""
        merge_extra(group, data, {"name", "domain_id", "description"})
        s.flush()
        return {"group": group_view(svc, group)}


def delete_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        group = get_group(s, p["group_id"])
        policy.enforce(ctx, "identity:delete_group", {"domain_id": group.domain_id})
        s.execute(delete(Assignment).where(Assignment.actor_id == group.id))
        s.execute(delete(UserGroupMembership).where(UserGroupMembership.group_id == group.id))
        s.delete(group)
    svc.changed()


def group_users(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        group = get_group(s, p["group_id"])
        policy.enforce(ctx, "identity:list_users_in_group", {"domain_id": group.domain_id})
        rows = s.scalars(select(User).join(UserGroupMembership,
                                           UserGroupMembership.user_id == User.id)
                         .where(UserGroupMembership.group_id == group.id)
                         .order_by(User.name)).all()
        items = [user_view(svc, u) for u in rows]
    return collection(svc.base, f"groups/{p['group_id']}/users", "users", items)


def _membership(s: Session, ctx: RequestContext, p: dict, action: str) -> tuple[Group, User]:
    group = get_group(s, p["group_id"])
    user = get_user(s, p["user_id"])
    policy.enforce(ctx, action, {"domain_id": group.domain_id})
    return group, user


def add_user_to_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        group, user = _membership(s, ctx, p, "identity:add_user_to_group")
        if s.get(UserGroupMembership, (user.id, group.id)) is None:
            s.add(UserGroupMembership(user_id=user.id, group_id=group.id))
    svc.changed()


def check_user_in_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.read() as s:
        group, user = _membership(s, ctx, p, "identity:check_user_in_group")
        if s.get(UserGroupMembership, (user.id, group.id)) is None:
            raise NotFound(f"User '{user.id}' not found in group '{group.id}'.")


def remove_user_from_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        group, user = _membership(s, ctx, p, "identity:remove_user_from_group")
        row = s.get(UserGroupMembership, (user.id, group.id))
        if row is None:
            raise NotFound(f"User '{user.id}' not found in group '{group.id}'.")
        s.delete(row)
    svc.changed()
