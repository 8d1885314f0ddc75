"""Instances: the self-refreshing list, the launch form, actions, the instance page.

Everything goes through the compute service objects the Nova routes use (Servers,
ServerActions) with the logged-in user's context, at the newest microversion; a page
gathers what it shows in one worker-thread call (a handful of queries, none per row).
"""

from __future__ import annotations

import base64
from typing import Any

from sqlalchemy import select
from starlette.datastructures import QueryParams
from starlette.responses import Response

from pocketstack.dashboard.web import TRANSITIONAL, View
from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.compute import views as nova_views
from pocketstack.services.compute.microversions import MAX, APIVersion
from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent

VER = APIVersion(*MAX)
NO_QUERY = QueryParams("")


def _addresses_text(addrs: dict[str, list[dict]] | None) -> list[str]:
    out = []
    for net, items in (addrs or {}).items():
        for a in items:
            kind = a.get("OS-EXT-IPS:type")
            out.append(f"{net}: {a.get('addr')}" + (" (floating)" if kind == "floating" else ""))
    return out


def server_rows(compute: Any, ctx: Any, all_projects: bool = False) -> list[dict[str, Any]]:
    """The list's rows: one server query, one address query (the network service's)."""
    query = QueryParams("all_tenants=1") if all_projects else NO_QUERY
    rows, _ = compute.servers.list_(ctx, query, VER)
    addrs = compute.servers.addresses([r.id for r in rows])
    out = []
    for srv in rows:
        st = nova_views.status(srv.vm_state, srv.task_state)
        out.append({
            "id": srv.id, "name": srv.name, "status": st, "task": srv.task_state,
            "addresses": _addresses_text(addrs.get(srv.id)),
            "image": (srv.image or {}).get("name") or srv.image_id or "",
            "flavor": (srv.flavor or {}).get("name") or srv.flavor_id,
            "created": srv.created_at, "locked": srv.locked, "project_id": srv.project_id,
            "host": srv.host, "transitional": st in TRANSITIONAL or srv.task_state is not None,
        })
    return out


async def instances_page(v: View) -> Response:
    rows = await v.call(server_rows, v.service("compute"), v.ctx)
    return v.render("instances.html", nav="instances", rows=rows,
                    polling=any(r["transitional"] for r in rows), table_url="/dashboard/instances/table")


async def instances_table(v: View) -> Response:
    """The htmx partial: the table alone; it keeps polling while anything is in flight."""
    rows = await v.call(server_rows, v.service("compute"), v.ctx)
    return v.render("instances_table.html", rows=rows, table_url="/dashboard/instances/table",
                    polling=any(r["transitional"] for r in rows))


# -- launch -------------------------------------------------------------------------------
def launch_choices(cloud: Any, ctx: Any) -> dict[str, Any]:
    from pocketstack.services.compute import flavors, keypairs
    from pocketstack.services.image.images import list_images

    compute, network = cloud.services["compute"], cloud.services["network"]
    images = list_images(cloud.services["image"], ctx, NO_QUERY)["images"]
    nets = network.networks.list(ctx, NO_QUERY, "")["networks"]
    groups = network.security_groups.list(ctx, NO_QUERY, "")["security_groups"]
    pid = ctx.project_id
    return {
        "images": [{"id": i["id"], "name": i.get("name") or i["id"]} for i in images
                   if i.get("status") == "active"],
        "flavors": [{"id": f.id, "name": f.name, "vcpus": f.vcpus, "ram": f.memory_mb,
                     "disk": f.root_gb} for f in flavors.list_(compute, ctx, NO_QUERY)],
        "networks": [{"id": n["id"], "name": n["name"]} for n in nets
                     if n.get("project_id") == pid or n.get("shared")],
        "security_groups": sorted({g["name"] for g in groups if g.get("project_id") == pid}),
        "keypairs": [k.name for k in keypairs.list_(compute, ctx, NO_QUERY)],
    }


async def launch_form(v: View) -> Response:
    choices = await v.call(launch_choices, v.cloud, v.ctx)
    return v.render("launch.html", nav="instances", choices=choices, values={}, error=None)


def launch_body(v: View) -> dict[str, Any]:
    """The Nova create body the form describes (the API itself validates the rest)."""
    try:
        count = int(v.field("count", "1") or "1")
    except ValueError:
        raise BadRequest("Count must be a whole number.") from None
    body: dict[str, Any] = {"name": v.field("name"), "flavorRef": v.field("flavor"),
                            "min_count": count, "max_count": count}
    if v.field("image"):
        body["imageRef"] = v.field("image")
    nets = v.fields("networks")
    body["networks"] = [{"uuid": n} for n in nets] if nets else "none"
    groups = v.fields("security_groups")
    if groups:
        body["security_groups"] = [{"name": g} for g in groups]
    if v.field("key_name"):
        body["key_name"] = v.field("key_name")
    if v.field("availability_zone"):
        body["availability_zone"] = v.field("availability_zone")
    user_data = v.field("user_data")
    if user_data:
        body["user_data"] = base64.b64encode(user_data.encode()).decode()
    return body


async def launch(v: View) -> Response:
    compute = v.service("compute")
    try:
        body = launch_body(v)
        created, _, _ = await v.call(compute.servers.create, v.ctx, body, VER)
    except PocketError as err:
        # the API's own fault, verbatim, with the form as it was
        choices = await v.call(launch_choices, v.cloud, v.ctx)
        values = {k: vals for k, vals in v.form.items() if k != "csrf_token"}
        return v.render("launch.html", err.status, nav="instances", choices=choices,
                        values=values, error={"code": err.status, "message": err.message})
    if len(created) == 1:
        return v.redirect(f"/dashboard/instances/{created[0].id}")
    return v.redirect("/dashboard/instances")


# -- actions ------------------------------------------------------------------------------
ACTIONS = ("start", "stop", "reboot", "delete", "lock", "unlock")


def do_action(compute: Any, ctx: Any, sid: str, name: str) -> None:
    acts = compute.actions_api
    if name == "start":
        acts.simple(ctx, sid, "os-start")
    elif name == "stop":
        acts.simple(ctx, sid, "os-stop")
    elif name == "reboot":
        acts.reboot(ctx, sid, {"type": "SOFT"})
    elif name == "delete":
        compute.servers.delete(ctx, sid)
    elif name == "lock":
        acts.lock(ctx, sid, None, True)
    elif name == "unlock":
        acts.unlock(ctx, sid)
    else:
        raise BadRequest(f"There is no such action: {name}")


async def action(v: View) -> Response:
    sid, name = v.params["server_id"], v.params["action"]
    await v.call(do_action, v.service("compute"), v.ctx, sid, name)
    back = v.field("back")
    if name == "delete" or back == "list":
        return v.redirect("/dashboard/instances")
    return v.redirect(f"/dashboard/instances/{sid}")


# -- the instance page --------------------------------------------------------------------
def instance_detail(cloud: Any, ctx: Any, sid: str) -> dict[str, Any]:
    compute = cloud.services["compute"]
    srv = compute.servers.get(ctx, sid)  # policy + project scope: another project's is 404
    base = cloud.settings.base_url + "/compute"
    addrs = compute.servers.addresses([srv.id])
    body = nova_views.server(base, srv, VER, ctx, addresses=addrs.get(srv.id), show=True)
    with compute.db.read() as s:
        acts = list(s.execute(select(InstanceAction).where(InstanceAction.server_id == srv.id)
                              .order_by(InstanceAction.id.desc()).limit(50)).scalars())
        events: dict[int, list] = {}
        if acts:
            for e in s.execute(select(InstanceActionEvent).where(
                    InstanceActionEvent.action_id.in_([a.id for a in acts]))
                    .order_by(InstanceActionEvent.id)).scalars():
                events.setdefault(e.action_id, []).append(
                    nova_views.event(e, VER, ctx, srv.project_id))
    actions = [{**nova_views.action(a, VER), "events": events.get(a.id, [])} for a in acts]
    console, console_error = None, None
    try:
        console = compute.actions_api.console_output(ctx, srv.id, {"length": 40})
    except PocketError as err:
        console_error = err.message
    return {"server": body, "row": {"locked": srv.locked, "created": srv.created_at},
            "addresses": _addresses_text(addrs.get(srv.id)), "fault": body.get("fault"),
            "actions": actions, "console": console, "console_error": console_error,
            "transitional": body["status"] in TRANSITIONAL or srv.task_state is not None}


async def instance_page(v: View) -> Response:
    data = await v.call(instance_detail, v.cloud, v.ctx, v.params["server_id"])
    template = "instance_body.html" if v.is_htmx() else "instance.html"
    return v.render(template, nav="instances", **data)
