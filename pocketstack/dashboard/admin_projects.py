"""Admin: projects with their compute usage against their quotas, and the quota form
(instances, vCPUs, RAM) through Nova's os-quota-sets code. Keystone's project list and
Nova's quota checks decide who may: a member gets 403."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY, VER
from pocketstack.dashboard.web import View
from pocketstack.errors import BadRequest, PocketError

RESOURCES = (("instances", "Instances", ""), ("cores", "vCPUs", ""), ("ram", "RAM", "MiB"))


def projects(cloud: Any, ctx: Any) -> list[dict[str, Any]]:
    from pocketstack import policy
    from pocketstack.services.compute.models import Quota, Server
    from pocketstack.services.identity.projects import list_projects

    rows = list_projects(cloud.identity, ctx, {}, NO_QUERY, None)["projects"]
    policy.enforce(ctx, "compute:quota_show", {"project_id": ""})  # anyone's: admin
    compute = cloud.services["compute"]
    ids = [p["id"] for p in rows]
    with compute.db.read() as s:  # usage and limits of all projects in three queries
        defaults = compute.quotas.defaults(s)
        used = {pid: (n, c, r) for pid, n, c, r in s.execute(
            select(Server.project_id, func.count(), func.coalesce(func.sum(Server.vcpus), 0),
                   func.coalesce(func.sum(Server.memory_mb), 0))
            .where(Server.deleted.is_(False), Server.project_id.in_(ids))
            .group_by(Server.project_id))}
        limits: dict[str, dict[str, int]] = {}
        for q in s.execute(select(Quota).where(Quota.project_id.in_(ids))).scalars():
            limits.setdefault(q.project_id, {})[q.resource] = q.hard_limit
    out = []
    for p in rows:
        n, c, r = used.get(p["id"], (0, 0, 0))
        lim = {**defaults, **limits.get(p["id"], {})}
        out.append({"id": p["id"], "name": p["name"], "enabled": p.get("enabled", True),
                    "domain_id": p.get("domain_id"), "usage": [
                        {"key": key, "label": label, "unit": unit, "used": value,
                         "limit": lim.get(key, -1)}
                        for (key, label, unit), value in zip(RESOURCES, (n, c, r))]})
    return out


async def projects_page(v: View, error: str | None = None, status: int = 200) -> Response:
    rows = await v.call(projects, v.cloud, v.ctx)
    return v.render("admin_projects.html", status, nav="admin_projects", rows=rows,
                    error=error)


async def quota_update(v: View) -> Response:
    compute = v.service("compute")
    body: dict[str, int] = {}
    try:
        for key, label, _ in RESOURCES:
            raw = v.field(key).strip()
            if raw:
                try:
                    body[key] = int(raw)
                except ValueError:
                    raise BadRequest(f"{label} must be a whole number (-1: unlimited).") from None
        await v.call(compute.quotas.update, v.ctx, v.params["project_id"], body, VER)
    except PocketError as err:
        if err.status == 403:
            raise
        return await projects_page(v, err.message, err.status)
    return v.redirect("/dashboard/admin/projects")
