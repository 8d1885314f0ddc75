"""Networks, subnets, routers, ports, security groups, floating IPs; create network (with
a subnet) and router (gateway, interface); and the topology picture, an SVG drawn here
from the same listings (routers left, networks middle, instances right, a line per link).

Bodies are validated by Neutron's own schema code (schemas.parse_body) before the
managers' create, exactly as the REST route does.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY
from pocketstack.dashboard.web import View
from pocketstack.errors import PocketError
from pocketstack.services.network.schemas import parse_body


def _mine(items: list[dict], pid: str, shared_ok: bool = False) -> list[dict]:
    """The project's view: Neutron lists everything to an admin; the project pages show
    the project's own resources (and shared/external networks to pick from)."""
    return [i for i in items if i.get("project_id") == pid or
            (shared_ok and (i.get("shared") or i.get("router:external")))]


def listings(cloud: Any, ctx: Any) -> dict[str, list[dict]]:
    net = cloud.services["network"]
    pid = ctx.project_id
    out = {
        "networks": _mine(net.networks.list(ctx, NO_QUERY, "")["networks"], pid, True),
        "subnets": net.subnets.list(ctx, NO_QUERY, "")["subnets"],
        "routers": _mine(net.routers.list(ctx, NO_QUERY, "")["routers"], pid),
        "security_groups": _mine(net.security_groups.list(ctx, NO_QUERY, "")["security_groups"],
                                 pid),
        "floatingips": _mine(net.floatingips.list(ctx, NO_QUERY, "")["floatingips"], pid),
    }
    visible = {n["id"] for n in out["networks"]}
    out["subnets"] = [s for s in out["subnets"] if s["network_id"] in visible]
    by_net: dict[str, list[dict]] = {}
    for sub in out["subnets"]:
        by_net.setdefault(sub["network_id"], []).append(sub)
    out["subnets_by_net"] = by_net  # the template's join, without a loop per network
    return out


def port_page(cloud: Any, ctx: Any, paging: dict[str, str]) -> tuple[list[dict], bool]:
    """One page of the project's ports (Neutron's own limit/marker paging)."""
    from starlette.datastructures import QueryParams

    net = cloud.services["network"]
    body = net.ports.list(ctx, QueryParams({**paging, "project_id": ctx.project_id}),
                          "/dashboard/ports")
    return body["ports"], any(link.get("rel") == "next" for link in body.get("ports_links", []))


async def ports_page(v: View, error: str | None = None, status: int = 200) -> Response:
    from urllib.parse import urlencode

    from pocketstack.dashboard.instances import page_query

    paging = page_query(v)
    ports, more = await v.call(port_page, v.cloud, v.ctx, paging)
    nets = await v.call(lambda: _mine(v.service("network").networks.list(
        v.ctx, NO_QUERY, "")["networks"], v.ctx.project_id, True))
    nxt = urlencode({"limit": paging["limit"], "marker": ports[-1]["id"]}) \
        if more and ports else None
    return v.render("ports.html", status, nav="ports", ports=ports, next_query=nxt,
                    first_page="marker" not in paging, networks=nets, error=error)


async def port_create(v: View) -> Response:
    """A port with a chosen fixed IP and MAC (seed 003's `openstack port create
    --fixed-ip ... --mac-address ...`), validated by Neutron's schema code."""
    attrs: dict[str, Any] = {"network_id": v.field("network_id"), "name": v.field("name")}
    if v.field("ip_address").strip():
        attrs["fixed_ips"] = [{"ip_address": v.field("ip_address").strip()}]
    if v.field("mac_address").strip():
        attrs["mac_address"] = v.field("mac_address").strip()
    net = v.service("network")
    try:
        await v.call(lambda: net.ports.create(v.ctx, parse_body("port", attrs)))
    except PocketError as err:
        return await ports_page(v, err.message, err.status)
    return v.redirect("/dashboard/ports")


async def networks_page(v: View, error: str | None = None, status: int = 200) -> Response:
    data = await v.call(listings, v.cloud, v.ctx)
    return v.render("networks.html", status, nav="networks", error=error, **data)


def _create(cloud: Any, ctx: Any, form: dict[str, str]) -> None:
    net = cloud.services["network"]
    if form["kind"] == "network":
        network = net.networks.create(ctx, parse_body("network", {"name": form["name"]}))
        if form.get("cidr"):
            try:
                net.subnets.create(ctx, parse_body("subnet", {
                    "name": form.get("subnet_name") or f"{form['name']}-subnet",
                    "network_id": network["id"], "ip_version": 4, "cidr": form["cidr"]}))
            except PocketError:
                net.networks.delete(ctx, network["id"])  # nothing half-made
                raise
    elif form["kind"] == "router":
        attrs: dict[str, Any] = {"name": form["name"]}
        if form.get("external_network"):
            attrs["external_gateway_info"] = {"network_id": form["external_network"]}
        router = net.routers.create(ctx, parse_body("router", attrs))
        if form.get("subnet_id"):
            try:
                net.routers.add_interface(ctx, router["id"], {"subnet_id": form["subnet_id"]})
            except PocketError:
                net.routers.delete(ctx, router["id"])
                raise


def _security(cloud: Any, ctx: Any, form: dict[str, str]) -> None:
    """A security group, or a rule in one (Neutron's schema code converts and checks the
    protocol, ports and prefix as it does for the API)."""
    net = cloud.services["network"]
    if form["kind"] == "security_group":
        net.security_groups.create(ctx, parse_body("security_group", {"name": form["name"]}))
        return
    attrs: dict[str, Any] = {"security_group_id": form["security_group_id"],
                             "direction": form["direction"] or "ingress",
                             "ethertype": "IPv6" if ":" in form["remote_ip_prefix"] else "IPv4"}
    if form["protocol"]:
        attrs["protocol"] = form["protocol"]
    if form["port_min"]:
        attrs["port_range_min"] = form["port_min"]
        attrs["port_range_max"] = form["port_max"] or form["port_min"]
    if form["remote_ip_prefix"]:
        attrs["remote_ip_prefix"] = form["remote_ip_prefix"]
    net.security_group_rules.create(ctx, parse_body("security_group_rule", attrs))


async def create(v: View) -> Response:
    if v.field("kind") in ("security_group", "rule"):
        sform = {k: v.field(k).strip() for k in (
            "kind", "name", "security_group_id", "direction", "protocol", "port_min",
            "port_max", "remote_ip_prefix")}
        try:
            await v.call(_security, v.cloud, v.ctx, sform)
        except PocketError as err:
            return await networks_page(v, err.message, err.status)
        return v.redirect("/dashboard/networks")
    form = {k: v.field(k).strip() for k in ("kind", "name", "cidr", "subnet_name",
                                            "external_network", "subnet_id")}
    if form["kind"] not in ("network", "router"):
        return await networks_page(v, "Unknown kind of resource.", 400)
    try:
        await v.call(_create, v.cloud, v.ctx, form)
    except PocketError as err:
        return await networks_page(v, err.message, err.status)
    return v.redirect("/dashboard/networks")


# -- topology ------------------------------------------------------------------------------
def topology(cloud: Any, ctx: Any) -> dict[str, Any]:
    """Nodes and links with coordinates, for topology.svg (a few list calls, no per-node
    queries): routers link to their gateway and interface networks, instances to the
    networks of their ports."""
    from pocketstack import policy
    from pocketstack.dashboard.instances import server_names

    net = cloud.services["network"]
    pid = ctx.project_id
    data = {
        "networks": _mine(net.networks.list(ctx, NO_QUERY, "")["networks"], pid, True),
        "subnets": net.subnets.list(ctx, NO_QUERY, "")["subnets"],
        "routers": _mine(net.routers.list(ctx, NO_QUERY, "")["routers"], pid),
    }
    # Ports: only who owns them and where: three columns of the project's own ports (under
    # the port policy), not each port's full body (500 instances: 4x cheaper).
    from sqlalchemy import select as sql_select

    from pocketstack.services.network.models import Port

    policy.enforce(ctx, "network:get_port", ctx.as_target())
    with net.db.read() as s:
        data["ports"] = [{"device_owner": owner, "device_id": dev, "network_id": nid}
                         for owner, dev, nid in s.execute(sql_select(
                             Port.device_owner, Port.device_id, Port.network_id).where(
                             Port.project_id == (pid or "")))]
    names = {sid: name for sid, name, _ in server_names(cloud.services["compute"], ctx)}
    row_h, top = 56, 40
    nets = [{"id": n["id"], "name": n["name"] or n["id"][:8],
             "external": bool(n.get("router:external")),
             "cidrs": [s["cidr"] for s in data["subnets"] if s["network_id"] == n["id"]]}
            for n in data["networks"]]
    net_y = {n["id"]: top + i * row_h for i, n in enumerate(nets)}
    routers = []
    for r in data["routers"]:
        linked = set()
        gw = (r.get("external_gateway_info") or {}).get("network_id")
        if gw:
            linked.add(gw)
        routers.append({"id": r["id"], "name": r["name"] or r["id"][:8], "nets": linked})
    instances: dict[str, dict[str, Any]] = {}
    for p in data["ports"]:
        owner, dev = p.get("device_owner") or "", p.get("device_id")
        if owner == "network:router_interface":
            for r in routers:
                if r["id"] == dev:
                    r["nets"].add(p["network_id"])
        elif owner.startswith("compute:") and dev in names:
            inst = instances.setdefault(dev, {"id": dev, "name": names[dev], "nets": set()})
            inst["nets"].add(p["network_id"])
    height = max(len(nets), len(routers), len(instances), 1) * row_h + top
    for i, r in enumerate(routers):
        r["y"] = top + i * row_h
    inst_list = sorted(instances.values(), key=lambda x: x["name"])
    for i, inst in enumerate(inst_list):
        inst["y"] = top + i * row_h
    lines = []
    for r in routers:
        lines += [(200, r["y"] + 16, 300, net_y[n] + 16, r["id"], n) for n in sorted(r["nets"])
                  if n in net_y]
    for inst in inst_list:
        lines += [(540, net_y[n] + 16, 640, inst["y"] + 16, inst["id"], n)
                  for n in sorted(inst["nets"]) if n in net_y]
    for n in nets:
        n["y"] = net_y[n["id"]]
    return {"networks": nets, "routers": routers, "instances": inst_list, "lines": lines,
            "height": height, "width": 860}


async def topology_page(v: View) -> Response:
    data = await v.call(topology, v.cloud, v.ctx)  # inlined: its links stay clickable
    return v.render("topology.html", nav="topology", **data)


async def topology_svg(v: View) -> Response:
    data = await v.call(topology, v.cloud, v.ctx)
    resp = v.render("topology.svg", **data)
    resp.headers["content-type"] = "image/svg+xml; charset=utf-8"
    return resp
