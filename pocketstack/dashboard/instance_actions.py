"""The instance page's forms beyond the buttons: snapshot, resize (and confirm/revert),
floating IP associate (an existing one or a new one from an external network) and
disassociate. Each goes through the code the REST call would run (ServerActions,
Neutron's floating IP manager with its schema check)."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import QueryParams
from starlette.responses import Response

from pocketstack.dashboard.instances import NO_QUERY
from pocketstack.dashboard.web import View
from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.network.schemas import parse_body


def choices(cloud: Any, ctx: Any, server_id: str) -> dict[str, Any]:
    """What the forms offer: flavors, the project's free floating IPs, external networks,
    the server's ports (as few list calls)."""
    from pocketstack.services.compute import flavors

    compute, net = cloud.services["compute"], cloud.services["network"]
    fips = net.floatingips.list(ctx, QueryParams({"project_id": ctx.project_id or ""}),
                                "")["floatingips"]
    ports = net.ports.list(ctx, QueryParams({"device_id": server_id}), "")["ports"]
    port_ids = {p["id"] for p in ports}
    nets = net.networks.list(ctx, QueryParams({"router:external": "true"}), "")["networks"]
    return {
        "flavors": [{"id": f.id, "name": f.name} for f in flavors.list_(compute, ctx, NO_QUERY)],
        "free_fips": [f for f in fips if not f.get("port_id")],
        "server_fips": [f for f in fips if f.get("port_id") in port_ids],
        "external_networks": [{"id": n["id"], "name": n["name"]} for n in nets],
        "ports": [{"id": p["id"], "ips": [ip["ip_address"] for ip in p.get("fixed_ips", [])]}
                  for p in ports],
    }


def _associate(cloud: Any, ctx: Any, server_id: str, fip_id: str, network_id: str) -> None:
    net = cloud.services["network"]
    compute = cloud.services["compute"]
    compute.servers.get(ctx, server_id)  # the caller's server, or 404
    ports = net.ports.list(ctx, QueryParams({"device_id": server_id}), "")["ports"]
    if not ports:
        raise BadRequest("The instance has no port to give a floating IP to.")
    port_id = ports[0]["id"]
    if fip_id:
        net.floatingips.update(ctx, fip_id, parse_body("floatingip", {"port_id": port_id},
                                                       update=True))
    elif network_id:
        net.floatingips.create(ctx, parse_body("floatingip", {
            "floating_network_id": network_id, "port_id": port_id}))
    else:
        raise BadRequest("Pick a floating IP or an external network.")


def console_url(v: View, sid: str) -> str:
    """A one-time console URL from Nova's remote-console code: noVNC where the server has
    a graphical console, else the serial console's browser page (xterm.js)."""
    from urllib.parse import quote

    from pocketstack.services.compute import consoles

    compute = v.service("compute")
    base = compute.conf.console_base_url.strip().rstrip("/") or consoles.request_base(
        v.request.url.scheme, v.request.headers.get("host"), compute.settings.base_url)
    try:
        return compute.consoles.create(v.ctx, sid, "vnc", "novnc", base)
    except PocketError as err:
        if err.status in (403, 404):
            raise
    url = compute.consoles.create(v.ctx, sid, "serial", "serial", base)
    token = url.rsplit("token=", 1)[1]
    return f"{base}/compute/console/serial.html?path=" + quote(
        f"compute/console/serial?token={token}", safe="")


async def server_form(v: View) -> Response:
    sid, name = v.params["server_id"], v.params["form"]
    compute = v.service("compute")
    acts = compute.actions_api
    try:
        if name == "console":
            return v.redirect(await v.call(console_url, v, sid))
        if name == "snapshot":
            image_id = await v.call(acts.create_image, v.ctx, sid,
                                    {"name": v.field("name") or f"{sid[:8]}-snapshot"})
            return v.redirect(f"/dashboard/images#{image_id}")
        if name == "resize":
            await v.call(acts.resize, v.ctx, sid, {"flavorRef": v.field("flavor")})
        elif name == "confirm-resize":
            await v.call(acts.confirm_resize, v.ctx, sid)
        elif name == "revert-resize":
            await v.call(acts.revert_resize, v.ctx, sid)
        elif name == "associate":
            await v.call(_associate, v.cloud, v.ctx, sid, v.field("floatingip_id"),
                         v.field("network_id"))
        elif name == "disassociate":
            net = v.service("network")
            await v.call(net.floatingips.update, v.ctx, v.field("floatingip_id"),
                         parse_body("floatingip", {"port_id": None}, update=True))
        else:
            raise BadRequest(f"There is no such action: {name}")
    except PocketError as err:
        if err.status in (403, 404):
            raise
        from pocketstack.dashboard.instances import instance_page

        return await instance_page(v, {"code": err.status, "message": err.message})
    return v.redirect(f"/dashboard/instances/{sid}")
