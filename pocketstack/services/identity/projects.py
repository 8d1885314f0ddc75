"""Domains and projects (hierarchy, tags); domain-specific configuration is in
domain_configs.py.

As in Keystone a domain is a ``project`` row with ``is_domain``; a top-level project's
``parent_id`` is its domain. Every function takes the service, the caller's context and
the request's path params / query / body, enforces policy and returns the wire body.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.identity.assignments import project_ancestors
from pocketstack.services.identity.common import (collection, flag, get_domain, get_project,
                                                  links, merge_extra, opt_bool, opt_str,
                                                  query_bool, req_name, split_extra)
from pocketstack.services.identity.models import (ROOT_DOMAIN, ApplicationCredential,
                                                  Assignment, Credential, DomainConfig, Group,
                                                  Project, ProjectTag, Role, User)

PROJECT_COLUMNS = {"name", "description", "enabled", "domain_id", "parent_id", "is_domain",
                   "tags", "options"}
MAX_TAGS = 80


# -- views ----------------------------------------------------------------------------------
def _tags(s: Session, project_id: str) -> list[str]:
    return sorted(s.scalars(select(ProjectTag.name).where(ProjectTag.project_id == project_id)))


def _tags_of(s: Session, rows: list[Project]) -> dict[str, list[str]]:
    """Tags of many projects in one query (a list must not cost a query per project)."""
    out: dict[str, list[str]] = {r.id: [] for r in rows}
    if not out:
        return out
    ids = list(out)
    for i in range(0, len(ids), 500):  # keep the IN list within every backend's limits
        for pid, name in s.execute(select(ProjectTag.project_id, ProjectTag.name)
                                   .where(ProjectTag.project_id.in_(ids[i:i + 500]))):
            out[pid].append(name)
    for names in out.values():
        names.sort()
    return out


def project_view(svc: Any, p: Project, tags: list[str]) -> dict[str, Any]:
    return {**(p.extra or {}), "id": p.id, "name": p.name, "description": p.description or "",
            "enabled": p.enabled, "domain_id": None if p.is_domain else p.domain_id,
            "parent_id": p.parent_id, "is_domain": p.is_domain, "tags": tags,
            "options": p.options or {}, "links": links(svc.base, f"projects/{p.id}")}


def domain_view(svc: Any, d: Project, tags: list[str]) -> dict[str, Any]:
    return {**(d.extra or {}), "id": d.id, "name": d.name, "description": d.description or "",
            "enabled": d.enabled, "tags": tags, "options": d.options or {},
            "links": links(svc.base, f"domains/{d.id}")}


def _validate_tags(tags: Any, prefix: str) -> list[str]:
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise BadRequest(f"Invalid input for field '{prefix}.tags': must be a list of strings")
    if len(tags) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field '{prefix}.tags': at most {MAX_TAGS} tags")
    for tag in tags:
        _validate_tag(tag)
    return list(dict.fromkeys(tags))


def _validate_tag(tag: str) -> None:
    if not tag or len(tag) > 255 or "/" in tag or "," in tag:
        raise BadRequest(f"Invalid tag {tag!r}: 1 to 255 characters, no '/' or ','.")


def _set_tags(s: Session, project_id: str, tags: list[str]) -> None:
    s.execute(delete(ProjectTag).where(ProjectTag.project_id == project_id))
    s.flush()
    for tag in tags:
        s.add(ProjectTag(project_id=project_id, name=tag))


def _options(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    options = data.get("options", {})
    if not isinstance(options, dict):
        raise BadRequest(f"Invalid input for field '{prefix}.options': must be an object")
    for key, value in options.items():
        if key != "immutable" or not isinstance(value, (bool, type(None))):
            raise BadRequest(f"Invalid input for field '{prefix}.options': unknown or invalid "
                             f"option {key!r}")
    return {k: v for k, v in options.items() if v is not None}


def _immutable(p: Project | Role) -> bool:
    return bool((p.options or {}).get("immutable"))


def _check_name_free(s: Session, name: str, domain_id: str, *, is_domain: bool,
                     exclude: str | None = None) -> None:
    q = select(Project.id).where(Project.name == name, Project.domain_id == domain_id)
    if exclude:
        q = q.where(Project.id != exclude)
    if s.scalars(q).first() is not None:
        what = "domain" if is_domain else "project"
        raise Conflict(f"Conflict occurred attempting to store {what} - Duplicate entry found "
                       f"with name {name} at domain ID {domain_id}.")


# -- domains ----------------------------------------------------------------------------------
def create_domain(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    from pocketstack.services.identity.common import body_object

    data = body_object(body, "domain")
    policy.enforce(ctx, "identity:create_domain", {})
    name = req_name(data, "domain")
    desc = opt_str(data, "description", prefix="domain") or ""
    enabled = opt_bool(data, "enabled", prefix="domain", default=True)
    tags = _validate_tags(data.get("tags", []), "domain")
    options = _options(data, "domain")
    explicit = data.get("explicit_domain_id")
    with svc.db.write() as s:
        if s.scalars(select(Project.id).where(Project.is_domain.is_(True),
                                              Project.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store domain - Duplicate entry "
                           f"found with name {name}.")
        kw = {"id": explicit} if isinstance(explicit, str) and explicit else {}
        if kw and s.get(Project, explicit) is not None:
            raise Conflict(f"Conflict occurred attempting to store domain - Duplicate ID, "
                           f"{explicit}.")
        dom = Project(**kw, name=name, description=desc, enabled=enabled,
                      domain_id=ROOT_DOMAIN, parent_id=None, is_domain=True, options=options,
                      extra=split_extra(data, PROJECT_COLUMNS | {"explicit_domain_id"}))
        s.add(dom)
        s.flush()
        _set_tags(s, dom.id, tags)
        out = domain_view(svc, dom, tags)
    svc.changed()
    return {"domain": out}


def list_domains(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_domains", {})
    with svc.db.read() as s:
        stmt = select(Project).where(Project.is_domain.is_(True)).order_by(Project.name)
        if "name" in q:
            stmt = stmt.where(Project.name == q["name"])
        if "enabled" in q:
            stmt = stmt.where(Project.enabled.is_(bool(query_bool(q["enabled"]))))
        rows = s.scalars(stmt).all()
        tags = _tags_of(s, rows)
        items = [domain_view(svc, d, tags[d.id]) for d in rows]
    return collection(svc.base, "domains", "domains", items)


def show_domain(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        dom = get_domain(s, p["domain_id"])
        policy.enforce(ctx, "identity:get_domain", {"domain_id": dom.id})
        return {"domain": domain_view(svc, dom, _tags(s, dom.id))}


def update_domain(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    from pocketstack.services.identity.common import body_object

    data = body_object(body, "domain")
    policy.enforce(ctx, "identity:update_domain", {"domain_id": p["domain_id"]})
    if "id" in data and data["id"] != p["domain_id"]:
        raise BadRequest("The domain id cannot be changed.")
    with svc.db.write() as s:
        dom = get_domain(s, p["domain_id"])
        if _immutable(dom) and set(data) - {"options"}:
            raise Forbidden(f"Domain {dom.id} is immutable.")
        if "name" in data:
            name = req_name(data, "domain")
            if s.scalars(select(Project.id).where(Project.is_domain.is_(True),
                                                  Project.name == name,
                                                  Project.id != dom.id)).first():
                raise Conflict(f"Conflict occurred attempting to store domain - Duplicate "
                               f"entry found with name {name}.")
            dom.name = name
        if "description" in data:
            dom.description = opt_str(data, "description", prefix="domain") or ""
        enabled = opt_bool(data, "enabled", prefix="domain")
        if enabled is not None:
            dom.enabled = enabled
        if "options" in data:
            dom.options = {**(dom.options or {}), **_options(data, "domain")}
        if "tags" in data:
            _set_tags(s, dom.id, _validate_tags(data["tags"], "domain"))
        merge_extra(dom, data, PROJECT_COLUMNS | {"explicit_domain_id"})
        s.flush()
        out = domain_view(svc, dom, _tags(s, dom.id))
    svc.changed()
    return {"domain": out}


def delete_domain(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:delete_domain", {"domain_id": p["domain_id"]})
    with svc.db.write() as s:
        dom = get_domain(s, p["domain_id"])
        if dom.enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
        if _immutable(dom):
            raise Forbidden(f"Domain {dom.id} is immutable.")
        # Keystone deletes what the domain holds: projects, users, groups, domain roles.
        projects = s.scalars(select(Project).where(Project.domain_id == dom.id)).all()
        for proj in sorted(projects, key=lambda x: -len(project_ancestors(s, x))):
            _delete_project_rows(s, proj.id)
        for uid in s.scalars(select(User.id).where(User.domain_id == dom.id)).all():
            from pocketstack.services.identity.users import delete_user_rows

            delete_user_rows(s, uid)
        for gid in s.scalars(select(Group.id).where(Group.domain_id == dom.id)).all():
            s.execute(delete(Assignment).where(Assignment.actor_id == gid))
            s.execute(delete(Group).where(Group.id == gid))
        for rid in s.scalars(select(Role.id).where(Role.domain_id == dom.id)).all():
            s.execute(delete(Assignment).where(Assignment.role_id == rid))
            s.execute(delete(Role).where(Role.id == rid))
        _delete_project_rows(s, dom.id)
    svc.changed()


def _delete_project_rows(s: Session, project_id: str) -> None:
    s.execute(delete(Assignment).where(Assignment.target_id == project_id))
    s.execute(delete(ProjectTag).where(ProjectTag.project_id == project_id))
    s.execute(delete(ApplicationCredential).where(
        ApplicationCredential.project_id == project_id))
    s.execute(delete(Credential).where(Credential.project_id == project_id))
    s.execute(delete(DomainConfig).where(DomainConfig.domain_id == project_id))
    s.execute(delete(Project).where(Project.id == project_id))
    from pocketstack.services.identity.ep_filter import forget

    forget(s, project_id=project_id)
    from pocketstack.services.identity.federation import forget_domain

    forget_domain(s, project_id)


# -- projects ---------------------------------------------------------------------------------
def create_project(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    from pocketstack.services.identity.common import body_object

    data = body_object(body, "project")
    name = req_name(data, "project")
    desc = opt_str(data, "description", prefix="project") or ""
    enabled = opt_bool(data, "enabled", prefix="project", default=True)
    is_domain = opt_bool(data, "is_domain", prefix="project", default=False)
    tags = _validate_tags(data.get("tags", []), "project")
    options = _options(data, "project")
    domain_id = opt_str(data, "domain_id", prefix="project")
    parent_id = opt_str(data, "parent_id", prefix="project")
    extra = split_extra(data, PROJECT_COLUMNS)
    if is_domain:
        policy.enforce(ctx, "identity:create_domain", {})
        if parent_id or domain_id:
            raise BadRequest("A project acting as a domain has no parent or domain.")
        out = create_domain(svc, ctx, {}, None, {"domain": {
            "name": name, "description": desc, "enabled": enabled, "tags": tags,
            "options": options, **extra}})["domain"]
        return {"project": {**out, "domain_id": None, "parent_id": None, "is_domain": True,
                            "links": links(svc.base, f"projects/{out['id']}")}}
    with svc.db.write() as s:
        parent = None
        if parent_id:
            parent = s.get(Project, parent_id)
            if parent is None:
                raise NotFound(f"Could not find project: {parent_id}.")
            if parent.is_domain:
                domain_id = domain_id or parent.id
                parent = None
            else:
                if domain_id and domain_id != parent.domain_id:
                    raise BadRequest("The project's domain must be its parent's domain.")
                domain_id = parent.domain_id
        if not domain_id:
            domain_id = ctx.domain_id or ctx.project_domain_id or "default"
        dom = s.get(Project, domain_id)
        if dom is None or not dom.is_domain:
            raise NotFound(f"Could not find domain: {domain_id}.")
        policy.enforce(ctx, "identity:create_project", {"domain_id": domain_id})
        if not dom.enabled:
            raise BadRequest("Cannot create a project within a disabled domain.")
        if parent is not None:
            chain = [parent, *project_ancestors(s, parent)]
            if any(not x.enabled for x in chain):
                raise BadRequest("Cannot create a project in a branch containing a disabled "
                                 "project.")
            if len(chain) + 1 > svc.max_project_depth:
                raise Forbidden(f"Max hierarchy depth reached for {parent.id} branch.")
        _check_name_free(s, name, domain_id, is_domain=False)
        proj = Project(name=name, description=desc, enabled=enabled, domain_id=domain_id,
                       parent_id=parent.id if parent is not None else domain_id,
                       is_domain=False, options=options, extra=extra)
        s.add(proj)
        s.flush()
        _set_tags(s, proj.id, tags)
        out = project_view(svc, proj, tags)
    svc.changed()
    return {"project": out}


def _tag_filter(stmt: Any, q: Any) -> Any:
    def names(key: str) -> list[str]:
        return [t for t in (q.get(key) or "").split(",") if t]

    if "tags" in q:
        for tag in names("tags"):
            stmt = stmt.where(Project.id.in_(select(ProjectTag.project_id)
                                             .where(ProjectTag.name == tag)))
    if "tags-any" in q:
        stmt = stmt.where(Project.id.in_(select(ProjectTag.project_id)
                                         .where(ProjectTag.name.in_(names("tags-any")))))
    if "not-tags" in q:
        wanted = names("not-tags")
        having_all = select(ProjectTag.project_id).where(ProjectTag.name.in_(wanted)) \
            .group_by(ProjectTag.project_id)
        having_all = having_all.having(func.count() == len(set(wanted)))
        stmt = stmt.where(Project.id.not_in(having_all))
    if "not-tags-any" in q:
        stmt = stmt.where(Project.id.not_in(select(ProjectTag.project_id)
                                            .where(ProjectTag.name.in_(names("not-tags-any")))))
    return stmt


def list_projects(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    domain_filter = q.get("domain_id")
    if not ctx.is_admin:
        # A domain reader lists its own domain's projects; nobody else lists at all.
        policy.enforce(ctx, "identity:list_projects", {"domain_id": domain_filter or ctx.domain_id})
        domain_filter = ctx.domain_id
    with svc.db.read() as s:
        is_domain = query_bool(q.get("is_domain")) if "is_domain" in q else False
        stmt = select(Project).where(Project.is_domain.is_(bool(is_domain))).order_by(Project.name)
        if domain_filter:
            stmt = stmt.where(Project.domain_id == domain_filter)
        if "name" in q:
            stmt = stmt.where(Project.name == q["name"])
        if "enabled" in q:
            stmt = stmt.where(Project.enabled.is_(bool(query_bool(q["enabled"]))))
        if "parent_id" in q:
            stmt = stmt.where(Project.parent_id == q["parent_id"])
        stmt = _tag_filter(stmt, q)
        rows = s.scalars(stmt).all()
        tags = _tags_of(s, rows)
        items = [project_view(svc, x, tags[x.id]) for x in rows]
    return collection(svc.base, "projects", "projects", items)


def _subtree(s: Session, root: Project) -> list[Project]:
    out, frontier = [], [root.id]
    while frontier:
        children = s.scalars(select(Project).where(Project.parent_id.in_(frontier),
                                                   Project.is_domain.is_(False))).all()
        out.extend(children)
        frontier = [c.id for c in children]
    return out


def _nested_ids(chain: list[str]) -> dict[str, Any] | None:
    """[parent, grandparent, ...] -> {parent: {grandparent: None}}."""
    result: dict[str, Any] | None = None
    for pid in reversed(chain):
        result = {pid: result}
    return result


def show_project(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        proj = get_project(s, p["project_id"])
        policy.enforce(ctx, "identity:get_project",
                       {"project_id": proj.id, "domain_id": proj.domain_id})
        out = project_view(svc, proj, _tags(s, proj.id))
        if flag(q, "parents_as_list") and flag(q, "parents_as_ids") or (
                flag(q, "subtree_as_list") and flag(q, "subtree_as_ids")):
            raise BadRequest("Cannot use parents_as_list and parents_as_ids (or subtree_as_list "
                             "and subtree_as_ids) query params at the same time.")
        parents = project_ancestors(s, proj)
        if flag(q, "parents_as_list"):
            out["parents"] = [{"project": project_view(svc, x, _tags(s, x.id))}
                              for x in parents if _visible(svc, s, ctx, x)]
        if flag(q, "parents_as_ids"):
            out["parents"] = _nested_ids([x.id for x in parents] + [proj.domain_id])
        if flag(q, "subtree_as_list") or flag(q, "subtree_as_ids"):
            sub = _subtree(s, proj)
            if flag(q, "subtree_as_list"):
                out["subtree"] = [{"project": project_view(svc, x, _tags(s, x.id))}
                                  for x in sub if _visible(svc, s, ctx, x)]
            else:
                by_parent: dict[str, list[str]] = {}
                for x in sub:
                    by_parent.setdefault(x.parent_id or "", []).append(x.id)

                def tree(pid: str) -> dict[str, Any] | None:
                    kids = by_parent.get(pid)
                    return {k: tree(k) for k in kids} if kids else None

                out["subtree"] = tree(proj.id)
        return {"project": out}


def _visible(svc: Any, s: Session, ctx: RequestContext, proj: Project) -> bool:
    if ctx.is_admin or ctx.project_id == proj.id:
        return True
    from pocketstack.services.identity import assignments

    return bool(ctx.user_id and assignments.effective_roles(s, ctx.user_id, "project", proj.id,
                                                              proj))


def update_project(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    from pocketstack.services.identity.common import body_object

    data = body_object(body, "project")
    with svc.db.write() as s:
        proj = s.get(Project, p["project_id"])
        if proj is None:
            raise NotFound(f"Could not find project: {p['project_id']}.")
        policy.enforce(ctx, "identity:update_project",
                       {"project_id": proj.id, "domain_id": proj.domain_id})
        if _immutable(proj) and set(data) - {"options"}:
            raise Forbidden(f"Project {proj.id} is immutable.")
        if "domain_id" in data and data["domain_id"] != (None if proj.is_domain else
                                                         proj.domain_id):
            raise BadRequest("Update of `domain_id` is not allowed.")
        if "parent_id" in data and data["parent_id"] != proj.parent_id:
            raise Forbidden("Update of `parent_id` is not allowed.")
        if "is_domain" in data and data["is_domain"] != proj.is_domain:
            raise BadRequest("Update of `is_domain` is not allowed.")
        if "name" in data:
            name = req_name(data, "project")
            _check_name_free(s, name, proj.domain_id, is_domain=proj.is_domain, exclude=proj.id)
            proj.name = name
        if "description" in data:
            proj.description = opt_str(data, "description", prefix="project") or ""
        enabled = opt_bool(data, "enabled", prefix="project")
        if enabled is not None and enabled != proj.enabled:
            if not enabled and any(c.enabled for c in _subtree(s, proj)) and not proj.is_domain:
                raise Forbidden(f"Cannot disable project {proj.id} since its subtree contains "
                                "enabled projects.")
            if enabled and any(not x.enabled for x in project_ancestors(s, proj)):
                raise Forbidden(f"Cannot enable project {proj.id} since it has disabled "
                                "parents.")
            proj.enabled = enabled
        if "options" in data:
            proj.options = {**(proj.options or {}), **_options(data, "project")}
        if "tags" in data:
            _set_tags(s, proj.id, _validate_tags(data["tags"], "project"))
        merge_extra(proj, data, PROJECT_COLUMNS)
        s.flush()
        out = project_view(svc, proj, _tags(s, proj.id))
    svc.changed()
    return {"project": out}


def delete_project(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        proj = get_project(s, p["project_id"])
        policy.enforce(ctx, "identity:delete_project",
                       {"project_id": proj.id, "domain_id": proj.domain_id})
        if _immutable(proj):
            raise Forbidden(f"Project {proj.id} is immutable.")
        if s.scalars(select(Project.id).where(Project.parent_id == proj.id)).first():
            raise Forbidden(f"Cannot delete the project {proj.id} since it is not a leaf in "
                            "the hierarchy.")
        _delete_project_rows(s, proj.id)
    svc.changed()


# -- project tags -------------------------------------------------------------------------------
def _tag_target(s: Session, ctx: RequestContext, project_id: str, write: bool) -> Project:
    proj = get_project(s, project_id)
    action = "identity:update_project" if write else "identity:get_project"
    policy.enforce(ctx, action, {"project_id": proj.id, "domain_id": proj.domain_id})
    return proj


def list_tags(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        proj = _tag_target(s, ctx, p["project_id"], False)
        return {"tags": _tags(s, proj.id)}


def replace_tags(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    if not isinstance(body, dict) or "tags" not in body:
        raise BadRequest("Invalid input for field 'tags': is a required property")
    tags = _validate_tags(body["tags"], "project")
    with svc.db.write() as s:
        proj = _tag_target(s, ctx, p["project_id"], True)
        _set_tags(s, proj.id, tags)
        s.flush()
        return {"tags": _tags(s, proj.id), "links": links(svc.base, f"projects/{proj.id}/tags")}


def delete_tags(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        proj = _tag_target(s, ctx, p["project_id"], True)
        _set_tags(s, proj.id, [])


def check_tag(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.read() as s:
        proj = _tag_target(s, ctx, p["project_id"], False)
        if s.get(ProjectTag, (proj.id, p["tag"])) is None:
            raise NotFound(f"Tag {p['tag']} not found for project {proj.id}.")


def add_tag(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    _validate_tag(p["tag"])
    with svc.db.write() as s:
        proj = _tag_target(s, ctx, p["project_id"], True)
        if s.get(ProjectTag, (proj.id, p["tag"])) is None:
            if len(_tags(s, proj.id)) >= MAX_TAGS:
                raise BadRequest(f"A project has at most {MAX_TAGS} tags.")
            s.add(ProjectTag(project_id=proj.id, name=p["tag"]))


def delete_tag(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        proj = _tag_target(s, ctx, p["project_id"], True)
        row = s.get(ProjectTag, (proj.id, p["tag"]))
        if row is None:
            raise NotFound(f"Tag {p['tag']} not found for project {proj.id}.")
        s.delete(row)

