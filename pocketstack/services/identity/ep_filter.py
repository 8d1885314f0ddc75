"""OS-EP-FILTER associations (api-ref v3-ext ep-filter.inc): endpoints and endpoint groups
associated with projects, and the endpoints an endpoint group selects.

Stored only: the token catalog is one cached document for every project here, so it is not
narrowed per project the way Keystone's SQL catalog does for projects with associations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import Conflict, NotFound
from pocketstack.services.identity.catalog_admin import endpoint_view, epg_view
from pocketstack.services.identity.common import collection, get_project, get_row
from pocketstack.services.identity.models import (Endpoint, EndpointGroup, Project,
                                                  ProjectEndpoint, ProjectEndpointGroup)
from pocketstack.services.identity.projects import _tags_of, project_view

RULE = "identity:manage_endpoint_groups"  # Keystone: admin for every OS-EP-FILTER call


def _projects(svc: Any, s: Session, ids: list[str]) -> list[dict[str, Any]]:
    rows = list(s.scalars(select(Project).where(Project.id.in_(ids), Project.is_domain.is_(False))
                          .order_by(Project.name))) if ids else []
    tags = _tags_of(s, rows)
    return [project_view(svc, r, tags[r.id]) for r in rows]


def _matches(e: Endpoint, filters: dict[str, Any]) -> bool:
    return all(getattr(e, k, None) == v for k, v in (filters or {}).items())


def _group_endpoints(s: Session, g: EndpointGroup) -> list[Endpoint]:
    return [e for e in s.scalars(select(Endpoint)) if _matches(e, g.filters)]


# -- project <-> endpoint ----------------------------------------------------------------------
def add_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        get_row(s, Endpoint, p["endpoint_id"], "endpoint")
        get_project(s, p["project_id"])
        if s.get(ProjectEndpoint, (p["endpoint_id"], p["project_id"])) is not None:
            raise Conflict("Conflict occurred attempting to store project_endpoint - "
                           "Duplicate entry.")
        s.add(ProjectEndpoint(endpoint_id=p["endpoint_id"], project_id=p["project_id"]))


def _association(s: Session, p: dict) -> ProjectEndpoint:
    row = s.get(ProjectEndpoint, (p["endpoint_id"], p["project_id"]))
    if row is None:
        raise NotFound(f"Endpoint {p['endpoint_id']} not found in project "
                       f"{p['project_id']}")
    return row


def check_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        get_row(s, Endpoint, p["endpoint_id"], "endpoint")
        get_project(s, p["project_id"])
        _association(s, p)


def remove_endpoint(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        s.delete(_association(s, p))


def project_endpoints(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    """The project's endpoints: those associated directly, then those its groups select."""
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        get_project(s, p["project_id"])
        ids = list(s.scalars(select(ProjectEndpoint.endpoint_id).where(
            ProjectEndpoint.project_id == p["project_id"])))
        found = {e.id: e for e in s.scalars(select(Endpoint).where(Endpoint.id.in_(ids)))}
        group_ids = list(s.scalars(select(ProjectEndpointGroup.endpoint_group_id).where(
            ProjectEndpointGroup.project_id == p["project_id"])))
        for g in s.scalars(select(EndpointGroup).where(EndpointGroup.id.in_(group_ids))):
            for e in _group_endpoints(s, g):
                found.setdefault(e.id, e)
        items = [endpoint_view(svc, e) for e in found.values()]
    return collection(svc.base, f"OS-EP-FILTER/projects/{p['project_id']}/endpoints",
                      "endpoints", items)


def endpoint_projects(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        get_row(s, Endpoint, p["endpoint_id"], "endpoint")
        ids = list(s.scalars(select(ProjectEndpoint.project_id).where(
            ProjectEndpoint.endpoint_id == p["endpoint_id"])))
        items = _projects(svc, s, ids)
    return collection(svc.base, f"OS-EP-FILTER/endpoints/{p['endpoint_id']}/projects",
                      "projects", items)


# -- project <-> endpoint group ----------------------------------------------------------------
def _group_link(svc: Any, group_id: str, project_id: str) -> dict[str, Any]:
    return {"endpoint_group_id": group_id, "project_id": project_id,
            "links": {"self": f"{svc.base}/v3/OS-EP-FILTER/endpoint_groups/{group_id}"
                              f"/projects/{project_id}"}}


def _group_and_project(s: Session, p: dict) -> None:
    get_project(s, p["project_id"])
    get_row(s, EndpointGroup, p["group_id"], "endpoint group")


def add_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        _group_and_project(s, p)
        if s.get(ProjectEndpointGroup, (p["group_id"], p["project_id"])) is not None:
            raise Conflict("Conflict occurred attempting to store project_endpoint_group - "
                           "Duplicate entry.")
        s.add(ProjectEndpointGroup(endpoint_group_id=p["group_id"],
                                   project_id=p["project_id"]))


def _membership(s: Session, p: dict) -> ProjectEndpointGroup:
    row = s.get(ProjectEndpointGroup, (p["group_id"], p["project_id"]))
    if row is None:
        raise NotFound(f"Endpoint Group Project Association not found: "
                       f"{p['group_id']}, {p['project_id']}")
    return row


def show_group_project(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        _group_and_project(s, p)
        _membership(s, p)
    return {"project_endpoint_group": _group_link(svc, p["group_id"], p["project_id"])}


def remove_group(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        _group_and_project(s, p)
        s.delete(_membership(s, p))


def project_groups(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        get_project(s, p["project_id"])
        ids = list(s.scalars(select(ProjectEndpointGroup.endpoint_group_id).where(
            ProjectEndpointGroup.project_id == p["project_id"])))
        items = [epg_view(svc, g) for g in s.scalars(
            select(EndpointGroup).where(EndpointGroup.id.in_(ids)))]
    return collection(svc.base, f"OS-EP-FILTER/projects/{p['project_id']}/endpoint_groups",
                      "endpoint_groups", items)


def group_projects(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        get_row(s, EndpointGroup, p["group_id"], "endpoint group")
        ids = list(s.scalars(select(ProjectEndpointGroup.project_id).where(
            ProjectEndpointGroup.endpoint_group_id == p["group_id"])))
        items = _projects(svc, s, ids)
    return collection(svc.base, f"OS-EP-FILTER/endpoint_groups/{p['group_id']}/projects",
                      "projects", items)


def group_endpoints(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        g = get_row(s, EndpointGroup, p["group_id"], "endpoint group")
        items = [endpoint_view(svc, e) for e in _group_endpoints(s, g)]
    return collection(svc.base, f"OS-EP-FILTER/endpoint_groups/{p['group_id']}/endpoints",
                      "endpoints", items)


def forget(s: Session, *, endpoint_id: str | None = None, group_id: str | None = None,
           project_id: str | None = None) -> None:
    """Drop the associations of a deleted endpoint, endpoint group or project."""
    if endpoint_id is not None:
        s.execute(delete(ProjectEndpoint).where(ProjectEndpoint.endpoint_id == endpoint_id))
    if group_id is not None:
        s.execute(delete(ProjectEndpointGroup).where(
            ProjectEndpointGroup.endpoint_group_id == group_id))
    if project_id is not None:
        s.execute(delete(ProjectEndpoint).where(ProjectEndpoint.project_id == project_id))
        s.execute(delete(ProjectEndpointGroup).where(
            ProjectEndpointGroup.project_id == project_id))


B = "/v3/OS-EP-FILTER"
ROUTES = [
    ("GET", B + "/endpoints/{endpoint_id}/projects", endpoint_projects, 200),
    ("GET", B + "/projects/{project_id}/endpoints", project_endpoints, 200),
    ("PUT", B + "/projects/{project_id}/endpoints/{endpoint_id}", add_endpoint, 204),
    ("GET", B + "/projects/{project_id}/endpoints/{endpoint_id}", check_endpoint, 204),
    ("HEAD", B + "/projects/{project_id}/endpoints/{endpoint_id}", check_endpoint, 204),
    ("DELETE", B + "/projects/{project_id}/endpoints/{endpoint_id}", remove_endpoint, 204),
    ("GET", B + "/projects/{project_id}/endpoint_groups", project_groups, 200),
    ("GET", B + "/endpoint_groups/{group_id}/projects", group_projects, 200),
    ("GET", B + "/endpoint_groups/{group_id}/endpoints", group_endpoints, 200),
    ("PUT", B + "/endpoint_groups/{group_id}/projects/{project_id}", add_group, 204),
    ("GET", B + "/endpoint_groups/{group_id}/projects/{project_id}", show_group_project, 200),
    ("HEAD", B + "/endpoint_groups/{group_id}/projects/{project_id}", show_group_project, 200),
    ("DELETE", B + "/endpoint_groups/{group_id}/projects/{project_id}", remove_group, 204),
]
