"""Effective roles: direct, through groups, inherited from parents and domains, implied."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pocketstack.services.identity.models import (Assignment, ImpliedRole, Project, Role,
                                                  UserGroupMembership)

USER_PROJECT, GROUP_PROJECT = "UserProject", "GroupProject"
USER_DOMAIN, GROUP_DOMAIN = "UserDomain", "GroupDomain"
USER_SYSTEM, GROUP_SYSTEM = "UserSystem", "GroupSystem"
SYSTEM_TARGET = "system"


def group_ids(session: Session, user_id: str) -> list[str]:
    return list(session.scalars(
        select(UserGroupMembership.group_id).where(UserGroupMembership.user_id == user_id)))


def project_ancestors(session: Session, project: Project) -> list[Project]:
    """Parents of ``project`` up to (not including) its domain, nearest first."""
    chain: list[Project] = []
    seen = {project.id}
    parent_id = project.parent_id
    while parent_id and parent_id != project.domain_id and parent_id not in seen:
        parent = session.get(Project, parent_id)
        if parent is None or parent.is_domain:
            break
        chain.append(parent)
        seen.add(parent.id)
        parent_id = parent.parent_id
    return chain


def expand_implied(session: Session, role_ids: set[str]) -> set[str]:
    """``role_ids`` and every role they imply, transitively. The implied-role table is
    small (a handful of rules), so it is read in one query and walked here instead of one
    query per level (admin > manager > member > reader was four)."""
    if not role_ids:
        return set()
    edges: dict[str, list[str]] = {}
    for prior, implied in session.execute(select(ImpliedRole.prior_role_id,
                                                 ImpliedRole.implied_role_id)):
        edges.setdefault(prior, []).append(implied)
    result = set(role_ids)
    frontier = list(role_ids)
    while frontier:
        for implied in edges.get(frontier.pop(), ()):
            if implied not in result:
                result.add(implied)
                frontier.append(implied)
    return result


def direct_role_ids(session: Session, actors: list[str], scope_kind: str, scope_id: str,
                    project: Project | None = None) -> set[str]:
    """Role ids granted to any of ``actors`` on the scope, before implication."""
    if scope_kind == "project":
        assert project is not None
        clauses = [(Assignment.type.in_((USER_PROJECT, GROUP_PROJECT)))
                   & (Assignment.target_id == project.id) & (Assignment.inherited.is_(False))]
        ancestors = [p.id for p in project_ancestors(session, project)]
        if ancestors:
            clauses.append(Assignment.type.in_((USER_PROJECT, GROUP_PROJECT))
                           & Assignment.target_id.in_(ancestors) & Assignment.inherited.is_(True))
        clauses.append(Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN))
                       & (Assignment.target_id == project.domain_id)
                       & Assignment.inherited.is_(True))
        where = or_(*clauses)
    elif scope_kind == "domain":
        where = (Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN))
                 & (Assignment.target_id == scope_id) & Assignment.inherited.is_(False))
    elif scope_kind == "system":
        where = (Assignment.type.in_((USER_SYSTEM, GROUP_SYSTEM))
                 & (Assignment.target_id == SYSTEM_TARGET))
    else:
        return set()
    return set(session.scalars(select(Assignment.role_id)
                               .where(Assignment.actor_id.in_(actors)).where(where)))


def effective_roles(session: Session, user_id: str, scope_kind: str, scope_id: str,
                    project: Project | None = None) -> list[Role]:
    actors = [user_id, *group_ids(session, user_id)]
    ids = expand_implied(session, direct_role_ids(session, actors, scope_kind, scope_id, project))
    if not ids:
        return []
    # Domain-specific roles only ever matter through the global roles they imply.
    return list(session.scalars(select(Role).where(Role.id.in_(ids), Role.domain_id == "")
                                .order_by(Role.name)))


def user_projects(session: Session, user_id: str) -> list[Project]:
    """Projects on which the user has any effective role (direct, group, inherited)."""
    actors = [user_id, *group_ids(session, user_id)]
    rows = session.execute(select(Assignment.type, Assignment.target_id, Assignment.inherited)
                           .where(Assignment.actor_id.in_(actors))).all()
    direct = {t for kind, t, inh in rows if kind in (USER_PROJECT, GROUP_PROJECT) and not inh}
    inherited_roots = {t for kind, t, inh in rows if kind in (USER_PROJECT, GROUP_PROJECT) and inh}
    inherited_domains = {t for kind, t, inh in rows if kind in (USER_DOMAIN, GROUP_DOMAIN) and inh}
    ids = set(direct)
    if inherited_domains:
        ids |= set(session.scalars(select(Project.id).where(
            Project.domain_id.in_(inherited_domains), Project.is_domain.is_(False))))
    frontier = set(inherited_roots)
    while frontier:
        children = set(session.scalars(select(Project.id).where(Project.parent_id.in_(frontier),
                                                                Project.is_domain.is_(False))))
        frontier = children - ids
        ids |= children
    if not ids:
        return []
    return list(session.scalars(select(Project).where(Project.id.in_(ids),
                                                      Project.is_domain.is_(False))
                                .order_by(Project.name)))


def user_domains(session: Session, user_id: str) -> list[Project]:
    actors = [user_id, *group_ids(session, user_id)]
    ids = set(session.scalars(select(Assignment.target_id).where(
        Assignment.actor_id.in_(actors), Assignment.type.in_((USER_DOMAIN, GROUP_DOMAIN)),
        Assignment.inherited.is_(False))))
    if not ids:
        return []
    return list(session.scalars(select(Project).where(Project.id.in_(ids),
                                                      Project.is_domain.is_(True))
                                .order_by(Project.name)))


def has_system_role(session: Session, user_id: str) -> bool:
    actors = [user_id, *group_ids(session, user_id)]
    return session.scalars(select(Assignment.role_id).where(
        Assignment.actor_id.in_(actors), Assignment.type.in_((USER_SYSTEM, GROUP_SYSTEM)))
    ).first() is not None
