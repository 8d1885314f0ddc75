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

from pocketstack.dashboard.web import TRANSITIONAL, View, age
from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.compute import views as nova_views
from pocketstack.services.compute.microversions import MAX, APIVersion
from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent

VER = APIVersion(*MAX)
# Nova's power_state numbers (nova/compute/power_state.py)
POWER_STATES = {0: "NOSTATE", 1: "Running", 3: "Paused", 4: "Shutdown", 6: "Crashed",
                7: "Suspended"}
NO_QUERY = QueryParams("")


def _addresses_text(addrs: dict[str, list[dict]] | None) -> list[str]:
    out = []
    for net, items in (addrs or {}).items():
        for a in items:
            kind = a.get("OS-EXT-IPS:type")
            out.append(f"{net}: {a.get('addr')}" + (" (floating)" if kind == "floating" else ""))
    return out


def actions_for(status: str, locked: bool) -> list[str]:
    """The actions the state allows (Nova would answer others with a 409)."""
    out = {"ACTIVE": ["stop", "reboot"], "SHUTOFF": ["start"]}.get(status, [])
    return out + ["unlock" if locked else "lock", "delete"]


PAGE = 100  # rows a list page shows by default (?limit= up to Nova's 1000)


def page_query(v: View) -> dict[str, str]:
    """limit/marker from the page's URL, as Nova's list takes them."""
    q = v.request.query_params
    out = {"limit": str(PAGE)}
    if q.get("limit", "").isdigit():
        out["limit"] = str(min(max(int(q["limit"]), 1), 1000))
    if q.get("marker"):
        out["marker"] = q["marker"]
    return out


def server_rows(compute: Any, ctx: Any, all_projects: bool = False,
                paging: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """One page of the list: one server query, one address query (the network service's)
    for the servers shown; ``more`` when Nova says there is a next page."""
    params = dict(paging or {})
    if all_projects:
        params["all_tenants"] = "1"
    rows, more = compute.servers.list_(ctx, QueryParams(params), VER)
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
            "age": age(srv.created_at), "actions": actions_for(st, srv.locked),
        })
    return out, more


def server_names(compute: Any, ctx: Any) -> list[tuple[str, str, str]]:
    """(id, name, status) of the project's servers, for pickers and pictures: the same
    policy and project scope as Nova's list, without loading whole rows (their JSON columns
    are most of a 500-server list's cost)."""
    from pocketstack import policy
    from pocketstack.services.compute.models import Server

    policy.enforce(ctx, "compute:server_list", ctx.as_target())
    with compute.db.read() as s:
        rows = s.execute(select(Server.id, Server.name, Server.vm_state, Server.task_state)
                         .where(Server.project_id == (ctx.project_id or ""),
                                Server.deleted.is_(False)).order_by(Server.name)).all()
    return [(sid, name, nova_views.status(vm, task)) for sid, name, vm, task in rows]


def paging_values(v: View, rows: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """What the list templates need to page and to poll the same page."""
    from urllib.parse import urlencode

    paging = page_query(v)
    limit = paging["limit"]
    this = urlencode(paging)
    nxt = urlencode({"limit": limit, "marker": rows[-1]["id"]}) if more and rows else None
    return {"polling": any(r["transitional"] for r in rows), "query": this,
            "next_query": nxt, "first_page": "marker" not in paging}


async def instances_page(v: View) -> Response:
    rows, more = await v.call(server_rows, v.service("compute"), v.ctx, False, page_query(v))
    return v.render("instances.html", nav="instances", rows=rows,
                    table_url="/dashboard/instances/table", **paging_values(v, rows, more))


async def instances_table(v: View) -> Response:
    """The htmx partial: the table alone; it keeps polling while anything is in flight."""
    rows, more = await v.call(server_rows, v.service("compute"), v.ctx, False, page_query(v))
    return v.render("instances_table.html", rows=rows, table_url="/dashboard/instances/table",
                    **paging_values(v, rows, more))


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
    log = [{**nova_views.action(a, VER), "events": events.get(a.id, [])} for a in acts]
    console, console_error = None, None
    try:
        console = compute.actions_api.console_output(ctx, srv.id, {"length": 40})
    except PocketError as err:
        console_error = err.message
    power = POWER_STATES.get(srv.power_state, str(srv.power_state))
    return {"server": body, "row": {"locked": srv.locked, "created": srv.created_at,
                                    "power": power},
            "addresses": _addresses_text(addrs.get(srv.id)), "fault": body.get("fault"),
            "action_log": log, "actions": actions_for(body["status"], srv.locked),
            "image_name": (srv.image or {}).get("name") or srv.image_id,
            "console": console, "console_error": console_error,
            "transitional": body["status"] in TRANSITIONAL or srv.task_state is not None}


async def instance_page(v: View, error: dict[str, Any] | None = None) -> Response:
    data = await v.call(instance_detail, v.cloud, v.ctx, v.params["server_id"])
    if v.is_htmx():  # the poll: the body alone, no forms' choices
        return v.render("instance_body.html", nav="instances", **data)
    from pocketstack.dashboard.instance_actions import choices

    forms = await v.call(choices, v.cloud, v.ctx, v.params["server_id"])
    return v.render("instance.html", error["code"] if error else 200, nav="instances",
                    forms=forms, form_error=error, **data)
