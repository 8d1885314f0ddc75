"""Rendering Heat v1 bodies (stack, resource, event) from rows."""

from __future__ import annotations

from typing import Any

from pocketstack.db.base import isotime
from pocketstack.services.orchestration.models import Stack, StackEvent


def base(settings: Any, project_id: str) -> str:
    return f"{settings.base_url}/orchestration/v1/{project_id}"


def stack_url(settings: Any, st: Stack) -> str:
    return f"{base(settings, st.project_id)}/stacks/{st.name}/{st.id}"


def stack_summary(settings: Any, st: Stack, *, project: bool = False) -> dict[str, Any]:
    out = {
        "id": st.id, "stack_name": st.name, "description": "",
        "stack_status": f"{st.action}_{st.status}", "stack_status_reason": st.status_reason,
        "creation_time": isotime(st.created_at), "updated_time": isotime(st.updated_at),
        "deletion_time": isotime(st.deleted_at), "stack_owner": st.username,
        "parent": st.owner_id, "stack_user_project_id": st.project_id, "tags": st.tags,
        "links": [{"href": stack_url(settings, st), "rel": "self"}],
    }
    if project:
        out["project"] = st.project_id
    return out


def stack_detail(settings: Any, st: Stack, params: dict[str, str],
                 outputs: list[dict[str, Any]] | None) -> dict[str, Any]:
    desc = (st.template or {}).get("description") or "No description"
    out = stack_summary(settings, st)
    out.update({"description": desc, "template_description": desc,
                "parameters": params, "disable_rollback": st.disable_rollback,
                "timeout_mins": st.timeout_mins, "capabilities": [],
                "notification_topics": []})
    if outputs is not None and not (st.action == "DELETE" and st.status == "COMPLETE"):
        out["outputs"] = outputs
    return out


def resource(settings: Any, st: Stack, row: Any, required_by: list[str], *,
             detail: bool = False, attributes: dict[str, Any] | None = None,
             nested_stack: Stack | None = None, parent_resource: str | None = None
             ) -> dict[str, Any]:
    surl = stack_url(settings, st)
    links = [{"href": f"{surl}/resources/{row.name}", "rel": "self"},
             {"href": surl, "rel": "stack"}]
    if nested_stack is not None:
        links.append({"href": stack_url(settings, nested_stack), "rel": "nested"})
    out = {
        "resource_name": row.name, "logical_resource_id": row.name,
        "physical_resource_id": row.physical_resource_id or "",
        "resource_status": f"{row.action}_{row.status}",
        "resource_status_reason": row.status_reason, "resource_type": row.type,
        "creation_time": isotime(row.created_at),
        "updated_time": isotime(row.updated_at or row.created_at),
        "required_by": required_by, "links": links,
    }
    if parent_resource:
        out["parent_resource"] = parent_resource
    if detail:
        out["description"] = ""
        out["attributes"] = attributes or {}
    return out


def event(settings: Any, st: Stack, e: StackEvent, *, detail: bool = False) -> dict[str, Any]:
    surl = stack_url(settings, st)
    out = {
        "id": e.id, "event_time": isotime(e.created_at),
        "resource_name": e.resource_name, "logical_resource_id": e.resource_name,
        "physical_resource_id": e.physical_resource_id or "",
        "resource_status": f"{e.action}_{e.status}",
        "resource_status_reason": e.reason,
        "links": [{"href": f"{surl}/resources/{e.resource_name}/events/{e.id}", "rel": "self"},
                  {"href": f"{surl}/resources/{e.resource_name}", "rel": "resource"},
                  {"href": surl, "rel": "stack"}],
    }
    if detail:
        out["resource_type"] = e.resource_type
        out["resource_properties"] = e.properties or {}
    return out
