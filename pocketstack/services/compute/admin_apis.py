"""Nova's admin-only APIs: os-migrations, server diagnostics, os-instance_usage_audit_log
and os-server-external-events. Registered from routes.register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlencode

from sqlalchemy import select
from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, json, run
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.drivers.compute.base import CRASHED, PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.models import Flavor, Host, Migration, Server

V = "/v2.1"

# Nova's diagnostics "state" names for the power states (nova/compute/power_state.py)
_DIAG_STATE = {RUNNING: "running", PAUSED: "paused", SHUTDOWN: "shutdown", CRASHED: "crashed",
               SUSPENDED: "suspended"}
# The 2.48 "driver" field is an enum of Nova's virt drivers (libvirt, xenapi, vmwareapi,
# ironic). Ours drive QEMU and Linux containers, the two things Nova's libvirt driver does
# with virt_type qemu and lxc, so they answer "libvirt" with that hypervisor name.
_DIAG_HYPERVISOR = {"qemu": "qemu", "container": "lxc", "fake": "fake"}

# event name -> first microversion that accepts it (Nova's server_external_events schemas)
EVENT_NAMES = {"network-changed": (2, 1), "network-vif-plugged": (2, 1),
               "network-vif-unplugged": (2, 1), "network-vif-deleted": (2, 1),
               "volume-extended": (2, 51), "power-update": (2, 76),
               "accelerator-request-bound": (2, 82), "volume-reimaged": (2, 93)}
EVENT_STATUSES = ("failed", "completed", "in-progress")


# -- migrations ---------------------------------------------------------------------------
def record_migration(s, srv: Server, ctx: RequestContext, kind: str,  # noqa: ANN001
                     old_flavor_id: str | None, new_flavor_id: str | None) -> Migration:
    """Add the migration row of a resize (same host) in the caller's transaction."""
    def seq(fid: str | None) -> int | None:
        fl = s.get(Flavor, fid) if fid else None
        return fl.seq if fl is not None else None
    host = s.execute(select(Host).where(Host.host == srv.host)).scalar() if srv.host else None
    row = Migration(server_id=srv.id, project_id=srv.project_id, user_id=ctx.user_id or srv.user_id,
                    migration_type=kind, status="pre-migrating", source_compute=srv.host,
                    source_node=srv.node, dest_compute=srv.host, dest_node=srv.node,
                    dest_host=host.host_ip if host is not None else None,
                    old_instance_type_id=seq(old_flavor_id),
                    new_instance_type_id=seq(new_flavor_id))
    s.add(row)
    return row


def set_migration_status(db, server_id: str, status: str,  # noqa: ANN001
                         only_from: tuple[str, ...] | None = None) -> None:
    """Move the server's newest migration to ``status`` (if it is in ``only_from``)."""
    with db.write() as s:
        row = s.execute(select(Migration).where(Migration.server_id == server_id)
                        .order_by(Migration.id.desc())).scalars().first()
        if row is not None and (only_from is None or row.status in only_from):
            row.status, row.updated_at = status, utcnow()


def _migration_view(m: Migration, ver: APIVersion) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": m.id, "status": m.status, "instance_uuid": m.server_id,
        "source_compute": m.source_compute, "source_node": m.source_node,
        "dest_compute": m.dest_compute, "dest_node": m.dest_node, "dest_host": m.dest_host,
        "old_instance_type_id": m.old_instance_type_id,
        "new_instance_type_id": m.new_instance_type_id,
        "created_at": isotime(m.created_at, micro=True, z=False),
        "updated_at": isotime(m.updated_at, micro=True, z=False)}
    if ver.at_least(2, 23):
        body["migration_type"] = m.migration_type  # links only for live migrations
    if ver.at_least(2, 59):
        body["uuid"] = m.uuid
    if ver.has("migrations_user_filters"):
        body["user_id"], body["project_id"] = m.user_id, m.project_id
    return body


def _parse_time(value: str, name: str) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for query parameters {name}. Value: {value}. "
                         "It is not a date-time.") from None
    return t.replace(tzinfo=None) if t.tzinfo is None else t.astimezone(
        dt.timezone.utc).replace(tzinfo=None)


def list_migrations(svc: Any, ctx: RequestContext, query: Any, ver: APIVersion) -> dict:
    policy.enforce(ctx, "compute:migrations_index")
    q = select(Migration)
    allowed = {"hidden", "host", "instance_uuid", "source_compute", "status", "migration_type"}
    if ver.at_least(2, 59):
        allowed |= {"limit", "marker", "changes-since"}
        if ver.at_least(2, 66):
            allowed.add("changes-before")
        if ver.has("migrations_user_filters"):
            allowed |= {"user_id", "project_id"}
        extra = set(query) - allowed
        if extra:
            raise BadRequest("Invalid input for query parameters: Additional properties are "
                             f"not allowed ({', '.join(sorted(extra))} was unexpected)")
    for key, col in (("instance_uuid", Migration.server_id), ("status", Migration.status),
                     ("source_compute", Migration.source_compute),
                     ("migration_type", Migration.migration_type)):
        if key in query:
            q = q.where(col == query[key])
    if ver.has("migrations_user_filters"):
        for key, col in (("user_id", Migration.user_id), ("project_id", Migration.project_id)):
            if key in query:
                q = q.where(col == query[key])
    if "host" in query:
        q = q.where((Migration.source_compute == query["host"])
                    | (Migration.dest_compute == query["host"]))
    since = before = None
    if ver.at_least(2, 59) and "changes-since" in query:
        since = _parse_time(query["changes-since"], "changes-since")
    if ver.at_least(2, 66) and "changes-before" in query:
        before = _parse_time(query["changes-before"], "changes-before")
    if since and before and before < since:
        raise BadRequest("The value of changes-since must be less than or equal to "
                         "changes-before.")
    limit = None
    if ver.at_least(2, 59):
        q = q.order_by(Migration.created_at.desc(), Migration.id.desc())
        if "limit" in query:
            raw = query["limit"]
            if not str(raw).isdigit():
                raise BadRequest(f"Invalid input for query parameters limit. Value: {raw}. "
                                 "It is not a non-negative integer.")
            limit = int(raw)
    else:
        q = q.order_by(Migration.id)
    with svc.db.read() as s:
        rows = list(s.execute(q).scalars())
    if since:
        rows = [m for m in rows if (m.updated_at or m.created_at).replace(tzinfo=None) >= since]
    if before:
        rows = [m for m in rows if (m.updated_at or m.created_at).replace(tzinfo=None) <= before]
    if ver.at_least(2, 59) and "marker" in query:
        ids = [m.uuid for m in rows]
        if query["marker"] not in ids:
            raise BadRequest(f"Marker {query['marker']} could not be found.")
        rows = rows[ids.index(query["marker"]) + 1:]
    more = limit is not None and len(rows) > limit
    if limit is not None:
        rows = rows[:limit]
    body: dict[str, Any] = {"migrations": [_migration_view(m, ver) for m in rows]}
    if more and rows:
        params = {k: v for k, v in query.items() if k != "marker"}
        params["marker"] = rows[-1].uuid
        body["migrations_links"] = [{"rel": "next", "href":
                                     f"{svc.base_url}/v2.1/os-migrations?{urlencode(params)}"}]
    return body


# -- diagnostics ---------------------------------------------------------------------------
def diagnostics(svc: Any, ctx: RequestContext, server_id: str, ver: APIVersion) -> dict:
    from pocketstack.services.compute.volume_attachments import volumes_attached

    with svc.db.read() as s:
        srv = svc.servers.load(s, ctx, server_id, "compute:server_diagnostics")
    if srv.vm_state == "building" or not srv.host or srv.host not in svc.local_hosts:
        raise Conflict(f"Instance {srv.id} is not ready (vm_state {srv.vm_state}); it has "
                       "no diagnostics yet.")
    if srv.task_state is not None:
        raise Conflict(f"Cannot 'get_diagnostics' instance {srv.id} while it is in "
                       f"task_state {srv.task_state}")
    diag = svc.driver.diagnostics(srv.host, srv.id)
    addrs = svc.servers.addresses([srv.id]).get(srv.id) or {}
    macs = list(dict.fromkeys(a.get("OS-EXT-IPS-MAC:mac_addr") for items in addrs.values()
                              for a in items if a.get("OS-EXT-IPS-MAC:mac_addr")))
    volumes = volumes_attached(svc, [srv.id], ver).get(srv.id, [])
    null_nic = dict.fromkeys(("rx_octets", "rx_errors", "rx_drop", "rx_packets", "rx_rate",
                              "tx_octets", "tx_errors", "tx_drop", "tx_packets", "tx_rate"))
    body: dict[str, Any] = {
        "state": _DIAG_STATE.get(diag.power_state, "pending"),
        "driver": "libvirt",
        "hypervisor": _DIAG_HYPERVISOR.get(svc.driver.name, svc.driver.name),
        "hypervisor_os": "linux",
        "uptime": diag.uptime_s,
        "config_drive": bool(srv.config_drive),
        "num_cpus": srv.vcpus,
        "num_nics": len(macs),
        "num_disks": 1 + len(volumes),
        # "maximum" is the memory provisioned for the server: the enforced limit when the
        # driver reads one, else the flavor's RAM it was given.
        "memory_details": {"maximum": diag.memory_max_mb if diag.memory_max_mb is not None
                           else srv.memory_mb, "used": diag.memory_used_mb},
        # Without per-vCPU counters the one entry is the server's total (id null).
        "cpu_details": ([{"id": None, "time": diag.cpu_time_ns, "utilisation": None}]
                        if diag.cpu_time_ns is not None else []),
        "nic_details": [{"mac_address": mac, **null_nic} for mac in macs],
        "disk_details": [dict.fromkeys(("read_bytes", "read_requests", "write_bytes",
                                        "write_requests", "errors_count"))
                         for _ in range(1 + len(volumes))],
    }
    if ver.at_least(2, 48):
        return body
    # Before 2.48 the body was whatever the virt driver said; ours is the same facts,
    # without the unknowns.
    legacy = {k: v for k, v in body.items() if v is not None and k not in (
        "nic_details", "disk_details")}
    legacy["memory_details"] = {k: v for k, v in body["memory_details"].items() if v is not None}
    return legacy


# -- instance usage audit log ------------------------------------------------------------
def _last_month(before: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """nova.utils.last_completed_audit_period with the default unit, month."""
    end = dt.datetime(before.year, before.month, 1)
    begin = dt.datetime(end.year - 1, 12, 1) if end.month == 1 else \
        dt.datetime(end.year, end.month - 1, 1)
    return begin, end


def audit_log(svc: Any, ctx: RequestContext, before: str | None) -> dict:
    policy.enforce(ctx, "compute:instance_usage_audit_log")
    when = dt.datetime.utcnow()
    if before is not None:
        raw = unquote(before)
        try:
            when = dt.datetime.strptime(raw, "%Y-%m-%d %H:%M:%S.%f" if "." in raw
                                        else "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise BadRequest(f"Invalid timestamp for date {raw}") from None
    begin, end = _last_month(when)
    with svc.db.read() as s:
        hosts = sorted(s.execute(select(Host.host)).scalars())
    # This cloud runs no periodic instance usage audit (Nova's instance_usage_audit is off
    # by default too): there are no task logs, so every compute host is "not run".
    return {"period_beginning": str(begin), "period_ending": str(end),
            "num_hosts": len(hosts), "num_hosts_done": 0, "num_hosts_running": 0,
            "num_hosts_not_run": len(hosts), "hosts_not_run": hosts, "total_instances": 0,
            "total_errors": 0,
            "overall_status": f"{'ALL' if not hosts else f'0 of {len(hosts)}'} hosts done. "
                              "0 errors.",
            "log": {}}


# -- external events -------------------------------------------------------------------
def external_events(svc: Any, ctx: RequestContext, body: Any,
                    ver: APIVersion) -> tuple[list[dict], int]:
    policy.enforce(ctx, "compute:server_external_events")
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not events:
        raise BadRequest("Invalid input for field/attribute events: a non-empty list is "
                         "required")
    for ev in events:
        if not isinstance(ev, dict) or set(ev) - {"name", "server_uuid", "status", "tag"}:
            raise BadRequest("Invalid input for field/attribute events: each event has only "
                             "name, server_uuid, status and tag")
        names = [n for n, first in EVENT_NAMES.items() if ver.at_least(*first)]
        if ev.get("name") not in names:
            raise BadRequest(f"Invalid input for field/attribute name. Value: {ev.get('name')}."
                             f" It is not one of {', '.join(names)}")
        if not isinstance(ev.get("server_uuid"), str):
            raise BadRequest("Invalid input for field/attribute server_uuid: is a required "
                             "property")
        if ev.get("status", "completed") not in EVENT_STATUSES:
            raise BadRequest(f"Invalid input for field/attribute status. Value: "
                             f"{ev.get('status')}. It is not one of {', '.join(EVENT_STATUSES)}")
        if "tag" in ev and (not isinstance(ev["tag"], str) or len(ev["tag"]) > 255):
            raise BadRequest("Invalid input for field/attribute tag: a string of at most 255 "
                             "characters")
    out = []
    with svc.db.read() as s:
        for ev in events:
            srv = s.get(Server, ev["server_uuid"]) if len(ev["server_uuid"]) <= 36 else None
            item = {"name": ev["name"], "server_uuid": ev["server_uuid"],
                    "status": ev.get("status", "completed")}
            if "tag" in ev:
                item["tag"] = ev["tag"]
            if srv is None or srv.deleted:
                item.update(status="failed", code=404)
            elif not srv.host:
                item.update(status="failed", code=422)
            else:
                # Our drivers plug ports and volumes themselves, so nothing waits on these
                # notifications: they are accepted, as Nova does for events nobody awaits.
                item["code"] = 200
            out.append(item)
    codes = {e["code"] for e in out}
    status = 200 if codes == {200} else 404 if 200 not in codes and codes == {404} else 207
    return out, status


# -- topology (2.78) ------------------------------------------------------------------------
def topology(svc: Any, ctx: RequestContext, server_id: str, ver: APIVersion) -> dict:
    """GET /servers/{id}/topology. Our servers have no NUMA topology (no hw:numa_* flavor
    extra specs are honoured), and Nova answers exactly this for an instance without one
    (nova/api/openstack/compute/server_topology.py); host_node and cpu_pinning would be
    shown per node to those the ``host`` rule allows."""
    if not ver.at_least(2, 78):
        raise NotFound("The resource could not be found.")
    with svc.db.read() as s:
        svc.servers.load(s, ctx, server_id, "compute:server_topology")
    return {"nodes": [], "pagesize_kb": None}


def register(svc: Any, add: Callable[..., None]) -> None:
    async def migrations_index(req: Req, ver: APIVersion) -> Response:
        return json(await run(list_migrations, svc, req.ctx, req.query, ver))

    async def server_diagnostics(req: Req, ver: APIVersion) -> Response:
        return json(await run(diagnostics, svc, req.ctx, req.params["server_id"], ver))

    async def audit_logs(req: Req, ver: APIVersion) -> Response:
        return json({"instance_usage_audit_logs": await run(audit_log, svc, req.ctx, None)})

    async def audit_log_before(req: Req, ver: APIVersion) -> Response:
        return json({"instance_usage_audit_log": await run(audit_log, svc, req.ctx,
                                                           req.params["before"])})

    async def events_create(req: Req, ver: APIVersion) -> Response:
        body = await req.json()
        out, status = await run(external_events, svc, req.ctx, body, ver)
        if status == 404:
            raise NotFound("No instances found for any event")
        return json({"events": out}, status)

    add("get", V + "/os-migrations", migrations_index)
    add("get", V + "/servers/{server_id}/diagnostics", server_diagnostics)

    async def server_topology(req: Req, ver: APIVersion) -> Response:
        return json(await run(topology, svc, req.ctx, req.params["server_id"], ver))

    add("get", V + "/servers/{server_id}/topology", server_topology)
    add("get", V + "/os-instance_usage_audit_log", audit_logs)
    add("get", V + "/os-instance_usage_audit_log/{before}", audit_log_before)
    add("post", V + "/os-server-external-events", events_create)
