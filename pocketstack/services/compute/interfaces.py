"""Nova's os-interface (``openstack server add port|network`` / ``remove port``, ``port list
--server``): a server's ports, attached and detached while it lives.

The ports are the network service's (``cloud.services["network"]``: allocate_for_server /
release_port / server_ports / plug_vif); compute decides when, checks the server's state
and makes the guest see the change. On a running server the port is plugged into its
network namespace as the next ethN and the compute driver is told (a VM gets a NIC; a
container's processes see the link directly). On a stopped server only the records change:
the next start plugs every port the server has.

Nova keeps device tags (2.49 on attach, shown from 2.70) in its virtual interface table;
here they live with the server, under ``scheduler_hints[TAGS_KEY]`` (never shown by the
API), so nothing can drift from the server they belong to.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, empty, json, run
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound, PocketError
from pocketstack.services.compute import actions
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.models import Server
from pocketstack.services.compute.server_validation import check_device_tag, is_uuid

log = logging.getLogger("pocketstack.compute")

TAGS_KEY = "pocketstack:nic_tags"
# Nova's check_instance_state for attach_interface / detach_interface
CHANGEABLE = {"active", "paused", "stopped"}
RUNNING = {"active", "paused"}


def _network(svc: Any) -> Any:
    net = svc.cloud.services.get("network")
    if net is None:
        raise BadRequest("This cloud has no networking service.")
    return net


def _view(port: dict[str, Any], tags: dict[str, str] | None, ver: APIVersion) -> dict[str, Any]:
    body = {"net_id": port["network_id"], "port_id": port["id"],
            "mac_addr": port["mac_address"], "port_state": port["status"],
            "fixed_ips": [{"subnet_id": ip["subnet_id"], "ip_address": ip["ip_address"]}
                          for ip in port["fixed_ips"]]}
    if ver.at_least(2, 70):
        body["tag"] = (tags or {}).get(port["id"])
    return body


def _tags(srv: Server) -> dict[str, str]:
    return dict((srv.scheduler_hints or {}).get(TAGS_KEY) or {})


def remember_tags(svc: Any, server_id: str, tags: dict[str, str | None]) -> None:
    """Record device tags of the server's ports (None forgets one)."""
    if not tags:
        return
    with svc.db.write() as s:
        srv = s.get(Server, server_id)
        if srv is None:
            return
        kept = _tags(srv)
        for port_id, tag in tags.items():
            if tag is None:
                kept.pop(port_id, None)
            else:
                kept[port_id] = tag
        srv.scheduler_hints = {**(srv.scheduler_hints or {}), TAGS_KEY: kept}


def _find(svc: Any, server_id: str, port_id: str) -> dict[str, Any]:
    for port in _network(svc).server_ports(server_id):
        if port["id"] == port_id:
            return port
    raise NotFound(f"Instance {server_id} does not have a port with id {port_id}",
                   kind="PortNotFound")


def list_(svc: Any, ctx: RequestContext, server_id: str,
          ver: APIVersion) -> list[dict[str, Any]]:
    srv = svc.servers.get(ctx, server_id)  # 404 unless ctx may see the server
    tags = _tags(srv)
    return [_view(p, tags, ver) for p in _network(svc).server_ports(server_id)]


def show(svc: Any, ctx: RequestContext, server_id: str, port_id: str,
         ver: APIVersion) -> dict[str, Any]:
    srv = svc.servers.get(ctx, server_id)
    return _view(_find(svc, server_id, port_id), _tags(srv), ver)


def _check_body(body: Any, ver: APIVersion) -> tuple[list[dict[str, Any]] | str, str | None]:
    """The request (for allocate_for_server) and the tag of an attach body."""
    if body is None:
        return "auto", None
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute interfaceAttachment: must be an "
                         "object")
    allowed = {"net_id", "port_id", "fixed_ips"} | ({"tag"} if ver.at_least(2, 49) else set())
    extra = set(body) - allowed
    if extra:
        raise BadRequest("Invalid input for field/attribute interfaceAttachment. Additional "
                         f"properties are not allowed ({', '.join(sorted(extra))} were "
                         "unexpected)")
    for key in ("net_id", "port_id"):
        if key in body and not is_uuid(body[key]):
            raise BadRequest(f"Invalid input for field/attribute {key}: {body[key]!r} is not "
                             "a valid UUID")
    ip = None
    if "fixed_ips" in body:
        fixed = body["fixed_ips"]
        if not (isinstance(fixed, list) and len(fixed) == 1 and isinstance(fixed[0], dict)
                and set(fixed[0]) == {"ip_address"} and isinstance(fixed[0]["ip_address"], str)):
            raise BadRequest("Invalid input for field/attribute fixed_ips: expected exactly "
                             "one item {\"ip_address\": ...}")
        try:
            ip = str(ipaddress.ip_address(fixed[0]["ip_address"]))
        except ValueError:
            raise BadRequest(f"Invalid input for field/attribute ip_address: "
                             f"{fixed[0]['ip_address']!r} is not an IP address") from None
    tag = check_device_tag(body["tag"]) if "tag" in body else None
    if body.get("net_id") and body.get("port_id"):
        raise BadRequest("Must not input both network_id and port_id")
    if ip and not body.get("net_id"):
        raise BadRequest("Must input network_id when request IP address")
    if body.get("port_id"):
        return [{"port": body["port_id"]}], tag
    if body.get("net_id"):
        return [{"uuid": body["net_id"], **({"fixed_ip": ip} if ip else {})}], tag
    return "auto", tag


def _changeable(svc: Any, ctx: RequestContext, server_id: str, op: str) -> Server:
    with svc.db.write() as s:
        srv = svc.servers.load(s, ctx, server_id, "compute:server_interfaces")
        svc.servers.check_lock(ctx, srv)
        if srv.vm_state not in CHANGEABLE or srv.task_state:
            state = f"task_state {srv.task_state}" if srv.task_state else \
                f"vm_state {srv.vm_state}"
            raise Conflict(f"Cannot '{op}' instance {server_id} while it is in {state}",
                           kind="InstanceInvalidState")
        actions.record(s, srv, op, ctx)
        s.expunge(srv)
        return srv


def attach(svc: Any, ctx: RequestContext, server_id: str, body: Any,
           ver: APIVersion) -> dict[str, Any]:
    requested, tag = _check_body(body, ver)
    srv = _changeable(svc, ctx, server_id, "attach_interface")
    net = _network(svc)
    try:
        port = net.allocate_for_server(ctx, server_id, requested, [], srv.host)[0]
    except PocketError as exc:
        kind = getattr(exc, "kind", None)
        if kind == "NetworkNotFound":  # Nova answers 404 here, 400 at boot
            raise NotFound(exc.message, kind=kind) from None
        if kind == "NetworkAmbiguous" or "Unable to automatically allocate" in exc.message:
            raise BadRequest(exc.message, kind=kind) from None
        raise
    with actions.event(svc.db, server_id, "attach_interface", "compute_attach_interface",
                       srv.host):
        if srv.vm_state in RUNNING and srv.host:
            try:
                _plug(svc, net, srv, port)
            except Exception as exc:  # noqa: BLE001 - undo the port, report the reason
                log.warning("attach of %s to %s failed: %s", port["id"], server_id, exc)
                net.release_port(server_id, port["id"])
                raise Conflict(f"Failed to attach network adapter device to {server_id}: "
                               f"{exc}", kind="InterfaceAttachFailed") from None
    if tag is not None:
        remember_tags(svc, server_id, {port["id"]: tag})
    return show(svc, ctx, server_id, port["id"], ver)


def _plug(svc: Any, net: Any, srv: Server, port: dict[str, Any]) -> None:
    pid = svc.driver.netns_pid(srv.host, srv.id)
    if pid is None:
        return  # no real namespace (fake driver): the records are the whole truth
    net.plug_vif(port["id"], pid)
    svc.driver.attach_interface(srv.host, srv.id, port["mac_address"])


def detach(svc: Any, ctx: RequestContext, server_id: str, port_id: str) -> None:
    svc.servers.get(ctx, server_id)  # 404 for an unknown server before anything else
    port = _find(svc, server_id, port_id)
    srv = _changeable(svc, ctx, server_id, "detach_interface")
    with actions.event(svc.db, server_id, "detach_interface", "compute_detach_interface",
                       srv.host):
        if srv.host:
            try:
                svc.driver.detach_interface(srv.host, server_id, port["mac_address"])
            except Exception as exc:  # noqa: BLE001 - the port is released regardless
                log.warning("detach of %s from %s in the guest: %s", port_id, server_id, exc)
        _network(svc).release_port(server_id, port_id)
    remember_tags(svc, server_id, {port_id: None})


# The server actions addFixedIp / removeFixedIp (gone from 2.44): an interface on a network,
# and the detach of the port holding an address.
def add_fixed_ip(svc: Any, ctx: RequestContext, server_id: str, arg: Any,
                 ver: APIVersion) -> None:
    if not isinstance(arg, dict) or set(arg) != {"networkId"}:
        raise BadRequest("Invalid input for field/attribute addFixedIp: expected "
                         "{\"networkId\": <network uuid>}")
    attach(svc, ctx, server_id, {"net_id": arg["networkId"]}, ver)


def remove_fixed_ip(svc: Any, ctx: RequestContext, server_id: str, arg: Any,
                    ver: APIVersion) -> None:
    if not isinstance(arg, dict) or set(arg) != {"address"} or \
            not isinstance(arg["address"], str):
        raise BadRequest("Invalid input for field/attribute removeFixedIp: expected "
                         "{\"address\": <IP address>}")
    svc.servers.get(ctx, server_id)
    for port in _network(svc).server_ports(server_id):
        if arg["address"] in [ip["ip_address"] for ip in port["fixed_ips"]]:
            detach(svc, ctx, server_id, port["id"])
            return
    raise BadRequest(f"Unable to find address {arg['address']} on instance {server_id}")


def register(svc: Any, add: Any) -> None:
    """Routes on the compute slice's ``add`` (microversion and request-id headers)."""
    base = "/v2.1/servers/{server_id}/os-interface"

    async def interface_list(req: Req, ver: APIVersion) -> Response:
        rows = await run(list_, svc, req.ctx, req.params["server_id"], ver)
        return json({"interfaceAttachments": rows})

    async def interface_attach(req: Req, ver: APIVersion) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or set(data) - {"interfaceAttachment"}:
            raise BadRequest("Invalid input for field/attribute interfaceAttachment: the body "
                             "must be {\"interfaceAttachment\": {...}}")
        att = await run(attach, svc, req.ctx, req.params["server_id"],
                        data.get("interfaceAttachment"), ver)
        return json({"interfaceAttachment": att})

    async def interface_show(req: Req, ver: APIVersion) -> Response:
        att = await run(show, svc, req.ctx, req.params["server_id"], req.params["port_id"], ver)
        return json({"interfaceAttachment": att})

    async def interface_detach(req: Req, ver: APIVersion) -> Response:
        await run(detach, svc, req.ctx, req.params["server_id"], req.params["port_id"])
        return empty(202)

    add("get", base, interface_list)
    add("post", base, interface_attach)
    add("get", base + "/{port_id}", interface_show)
    add("delete", base + "/{port_id}", interface_detach)
