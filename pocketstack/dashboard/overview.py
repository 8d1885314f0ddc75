"""The overview: quota usage of the current project, read through each service's quota
code with the same policy checks as the quota APIs (os-quota-sets detail, Cinder's
quota_sets?usage=true, Neutron's quotas/details)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack import policy
from pocketstack.dashboard.instances import VER
from pocketstack.dashboard.web import View


def usage(cloud: Any, ctx: Any) -> list[dict[str, Any]]:
    from pocketstack.services.volume import quotas as volume_quotas

    pid = ctx.project_id
    nova = cloud.services["compute"].quotas.show(ctx, pid, True, VER)
    policy.enforce(ctx, "volume:show_quota", {"project_id": pid})
    volume = cloud.services["volume"]
    with volume.db.read() as s:
        cinder = volume_quotas.show(s, pid, True)
    neutron = cloud.services["network"].quotas.details(ctx, pid)

    def bar(label: str, src: dict, key: str, used_key: str, unit: str = "") -> dict:
        item = src.get(key) or {}
        return {"label": label, "used": item.get(used_key, 0), "limit": item.get("limit", -1),
                "unit": unit}

    return [
        bar("Instances", nova, "instances", "in_use"),
        bar("vCPUs", nova, "cores", "in_use"),
        bar("RAM", nova, "ram", "in_use", "MiB"),
        bar("Volumes", cinder, "volumes", "in_use"),
        bar("Volume storage", cinder, "gigabytes", "in_use", "GiB"),
        bar("Floating IPs", neutron, "floatingip", "used"),
        bar("Security groups", neutron, "security_group", "used"),
    ]


async def overview(v: View) -> Response:
    bars = await v.call(usage, v.cloud, v.ctx)
    return v.render("overview.html", nav="overview", bars=bars)
