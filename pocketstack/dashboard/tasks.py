"""The task panel every page shows (as Proxmox's): the project's latest operations on its
instances with their outcome, from Nova's instance action log (three small queries)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pocketstack import policy

LIMIT = 8


def recent(cloud: Any, ctx: Any) -> list[dict[str, Any]]:
    from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent, Server

    if not policy.check(ctx, "compute:server_list", ctx.as_target()):
        return []
    compute = cloud.services["compute"]
    with compute.db.read() as s:
        acts = list(s.execute(select(InstanceAction).where(
            InstanceAction.project_id == (ctx.project_id or ""))
            .order_by(InstanceAction.id.desc()).limit(LIMIT)).scalars())
        if not acts:
            return []
        ids = [a.id for a in acts]
        results: dict[int, list[str | None]] = {}
        for aid, result in s.execute(select(InstanceActionEvent.action_id,
                                            InstanceActionEvent.result)
                                     .where(InstanceActionEvent.action_id.in_(ids))):
            results.setdefault(aid, []).append(result)
        names = dict(s.execute(select(Server.id, Server.name).where(
            Server.id.in_({a.server_id for a in acts}))).all())
    out = []
    for a in acts:
        res = results.get(a.id, [])
        if any(r is not None and r.lower() == "error" for r in res):
            outcome = "error"
        elif not res or any(r is None for r in res):
            outcome = "running"
        else:
            outcome = "success"
        out.append({"action": a.action, "server_id": a.server_id,
                    "server": names.get(a.server_id, a.server_id[:8]), "outcome": outcome,
                    "when": a.start_time})
    return out
