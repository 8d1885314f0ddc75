"""Cinder's informational and admin resources: versions, availability zones, pools,
services, quotas, quota classes, limits, extensions, messages, backups."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import microversion, quotas
from pocketstack.services.volume.common import truthy
from pocketstack.services.volume.views import ts

UPDATED = "2023-08-31T00:00:00Z"

EXTENSIONS = [
    ("AvailabilityZones", "os-availability-zone", "Describe Availability Zones."),
    ("BackupsApi", "backups", "Backups support."),
    ("Capabilities", "capabilities", "Capabilities reporting support."),
    ("ExtendedServices", "os-extended-services", "Extended services support."),
    ("Hosts", "os-hosts", "Admin-only host administration."),
    ("ExtendedSnapshotAttributes", "os-extended-snapshot-attributes",
     "Extended SnapshotAttributes support."),
    ("QuotaClasses", "os-quota-class-sets", "Quota classes management support."),
    ("Quotas", "os-quota-sets", "Quota management support."),
    ("SchedulerStats", "scheduler-stats", "Scheduler stats support."),
    ("Services", "os-services", "Services support."),
    ("SnapshotActions", "os-snapshot-actions", "Enable snapshot manager actions."),
    ("TypesExtraSpecs", "os-types-extra-specs", "Type extra specs support."),
    ("TypesManage", "os-types-manage", "Types manage support."),
    ("VolumeActions", "os-volume-actions", "Enable volume actions."),
    ("VolumeHostAttribute", "os-vol-host-attr", "Expose host as an attribute of a volume."),
    ("VolumeImageMetadata", "os-vol-image-meta", "Show image metadata associated with the "
     "volume."),
    ("VolumeMigStatusAttribute", "os-vol-mig-status-attr", "Expose migration_status as an "
     "attribute of a volume."),
    ("VolumeTenantAttribute", "os-vol-tenant-attr", "Expose the internal project_id as an "
     "attribute of a volume."),
    ("VolumeTransfer", "os-volume-transfer", "Volume transfer management support."),
    ("VolumeTypeAccess", "os-volume-type-access", "Volume type access support."),
    ("AdminActions", "os-admin-actions", "Enable admin actions."),
]


def register_versions(svc: Any, r: Routes) -> None:
    root = svc.settings.base_url + "/volume"

    def doc() -> dict[str, Any]:
        return {"id": "v3.0", "status": "CURRENT", "version": microversion.fmt(microversion.MAX),
                "min_version": microversion.fmt(microversion.MIN), "updated": UPDATED,
                "links": [{"rel": "describedby", "type": "text/html",
                           "href": "https://docs.openstack.org/"},
                          {"rel": "self", "href": f"{root}/v3/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.volume+json;version=3"}]}

    async def versions(req: Req) -> Response:
        return json({"versions": [doc()]}, 300)

    async def version(req: Req) -> Response:
        return json({"versions": [doc()]})

    r.get("/", versions, auth=False)
    r.get("/v3", version, auth=False)
    r.get("/v3/", version, auth=False)


def register_info(svc: Any, add: Callable, base: str) -> None:
    Mv = tuple[int, int]

    async def availability_zones(req: Req, mv: Mv) -> Response:
        return json({"availabilityZoneInfo": [{"zoneName": svc.az,
                                               "zoneState": {"available": True}}]})

    async def extensions(req: Req, mv: Mv) -> Response:
        return json({"extensions": [
            {"alias": alias, "description": desc, "links": [], "name": name,
             "updated": "2013-04-18T00:00:00+00:00"} for name, alias, desc in EXTENSIONS]})

    async def pools(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:get_pools", {})
        stats = await run(svc.driver.stats)
        name = f"{svc.host}#{stats.pool_name}"
        pool: dict[str, Any] = {"name": name}
        if truthy(req.query.get("detail", "false")):
            caps = svc.driver.capabilities
            pool["capabilities"] = {
                "pool_name": stats.pool_name, "volume_backend_name": svc.backend,
                "total_capacity_gb": stats.total_capacity_gb,
                "free_capacity_gb": stats.free_capacity_gb,
                "allocated_capacity_gb": stats.allocated_capacity_gb,
                "provisioned_capacity_gb": stats.provisioned_capacity_gb,
                "max_over_subscription_ratio": str(stats.max_over_subscription_ratio),
                "reserved_percentage": 0, "QoS_support": False,
                "thin_provisioning_support": caps.thin_provisioning,
                "thick_provisioning_support": not caps.thin_provisioning,
                "multiattach": caps.multiattach, "storage_protocol": stats.storage_protocol,
                "vendor_name": stats.vendor_name, "driver_version": stats.driver_version,
                "timestamp": ts(svc.now()), "location_info": f"{svc.driver.name}:{svc.host}",
                "backend_state": "up",
            }
        return json({"pools": [pool]})

    async def capabilities(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:get_pools", {})
        host = req.params["host"]
        if host not in (svc.host, svc.host.split("@")[0]):
            raise NotFound(f"Service {host} could not be found.")
        stats = await run(svc.driver.stats)
        return json({"namespace": f"OS::Storage::Capabilities::{svc.host}",
                     "vendor_name": stats.vendor_name, "volume_backend_name": svc.backend,
                     "pool_name": stats.pool_name, "driver_version": stats.driver_version,
                     "storage_protocol": stats.storage_protocol, "display_name": None,
                     "description": None, "visibility": None, "replication_targets": [],
                     "properties": {"thin_provisioning": {
                         "title": "Thin Provisioning", "type": "boolean",
                         "description": "Sets thin provisioning."}}})

    def service_rows(mv: Mv) -> list[dict[str, Any]]:
        now = ts(svc.now())
        rows = [("cinder-scheduler", svc.host.split("@")[0]), ("cinder-volume", svc.host)]
        if "object-store" in svc.cloud.services:  # backups go to the object store
            rows.append(("cinder-backup", svc.host.split("@")[0]))
        out = []
        for binary, host in rows:
            item: dict[str, Any] = {"binary": binary, "host": host, "zone": svc.az,
                                    "status": "enabled", "state": "up", "updated_at": now,
                                    "disabled_reason": None}
            if mv >= (3, 7):
                item["cluster"] = None
            if mv >= (3, 49) and binary == "cinder-volume":
                item["backend_state"] = "up"
            out.append(item)
        return out

    async def services(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:list_services", {})
        rows = service_rows(mv)
        if req.query.get("host"):
            # "host" names the machine; a volume service's host is machine@backend
            rows = [x for x in rows if req.query["host"] in (x["host"],
                                                            x["host"].split("@")[0])]
        if req.query.get("binary"):
            rows = [x for x in rows if x["binary"] == req.query["binary"]]
        return json({"services": rows})

    async def service_update(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:update_service", {})
        action = req.params["action"]
        if action not in ("enable", "disable", "disable-log-reason", "freeze", "thaw",
                          "set-log", "get-log", "failover_host", "failover"):
            raise NotFound(f"Unknown action {action}")
        body = await req.json()
        if action in ("enable", "disable", "disable-log-reason"):
            host = body.get("host") if isinstance(body, dict) else None
            binary = body.get("binary") if isinstance(body, dict) else None
            if not host:
                raise BadRequest("Missing required element 'host' in request body.")
            match = [x for x in service_rows(mv) if x["host"] == host and
                     (binary is None or x["binary"] == binary)]
            if not match:
                raise NotFound(f"Service {host} could not be found.")
            raise BadRequest("This cloud runs one scheduler and one volume service in "
                             "process; they cannot be disabled.")
        raise BadRequest(f"{action} is not supported by this cloud (one backend).")

    async def hosts(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:list_services", {})
        return json({"hosts": [
            {"service-status": "available", "service": x["binary"], "zone": x["zone"],
             "service-state": "enabled", "host_name": x["host"], "last-update": x["updated_at"]}
            for x in service_rows(mv)]})

    async def host_show(req: Req, mv: Mv) -> Response:
        policy.enforce(req.ctx, "volume:list_services", {})
        host = req.params["host"]
        if host != svc.host:
            raise NotFound(f"Host {host} could not be found.", kind="HostNotFound")

        def call() -> list[dict[str, Any]]:
            from sqlalchemy import func, select

            from pocketstack.services.volume.models import Snapshot, Volume

            with svc.db.read() as s:
                vols = dict((p, (c, g)) for p, c, g in s.execute(
                    select(Volume.project_id, func.count(), func.coalesce(func.sum(Volume.size), 0))
                    .group_by(Volume.project_id)))
                snaps = dict((p, (c, g)) for p, c, g in s.execute(
                    select(Snapshot.project_id, func.count(),
                           func.coalesce(func.sum(Snapshot.size), 0))
                    .group_by(Snapshot.project_id)))

            def row(project: str, vc: int, vg: int, sc: int, sg: int) -> dict[str, Any]:
                return {"resource": {"volume_count": str(vc), "total_volume_gb": str(vg),
                                     "total_snapshot_gb": str(sg), "project": project,
                                     "host": host, "snapshot_count": str(sc)}}

            out = [row("(total)", sum(v[0] for v in vols.values()),
                       sum(int(v[1]) for v in vols.values()),
                       sum(v[0] for v in snaps.values()),
                       sum(int(v[1]) for v in snaps.values()))]
            for project in sorted(set(vols) | set(snaps)):
                vc, vg = vols.get(project, (0, 0))
                sc, sg = snaps.get(project, (0, 0))
                out.append(row(project, vc, int(vg), sc, int(sg)))
            return out

        return json({"host": await run(call)})

    # -- quotas -----------------------------------------------------------------------------
    def project_of(req: Req) -> str:
        target = req.params["target"]
        return target

    async def quota_show(req: Req, mv: Mv) -> Response:
        target = project_of(req)
        policy.enforce(req.ctx, "volume:show_quota", {"project_id": target})
        usage = truthy(req.query.get("usage", "false"))

        def call() -> dict[str, Any]:
            with svc.db.read() as s:
                return quotas.show(s, target, usage)

        return json({"quota_set": await run(call)})

    async def quota_defaults(req: Req, mv: Mv) -> Response:
        target = project_of(req)
        policy.enforce(req.ctx, "volume:show_quota", {"project_id": target})

        def call() -> dict[str, Any]:
            with svc.db.read() as s:
                return {"id": target, **quotas.defaults(s)}

        return json({"quota_set": await run(call)})

    async def quota_update(req: Req, mv: Mv) -> Response:
        target = project_of(req)
        policy.enforce(req.ctx, "volume:update_quota", {"project_id": target})
        data = await req.json()
        values = data.get("quota_set") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise BadRequest("Missing required element 'quota_set' in request body.")
        ident = svc.cloud.services.get("identity")
        if ident is not None and hasattr(ident, "project_exists"):
            if not await run(ident.project_exists, target):
                raise NotFound(f"Project {target} could not be found.")

        def call() -> dict[str, Any]:
            with svc.db.write() as s:
                return quotas.update(s, target, values)

        return json({"quota_set": await run(call)})

    async def quota_delete(req: Req, mv: Mv) -> Response:
        target = project_of(req)
        policy.enforce(req.ctx, "volume:delete_quota", {"project_id": target})

        def call() -> None:
            with svc.db.write() as s:
                quotas.reset(s, target)

        await run(call)
        return empty(200)

    async def quota_class_show(req: Req, mv: Mv) -> Response:
        name = req.params["class_name"]
        policy.enforce(req.ctx, "volume:show_quota_class", {})

        def call() -> dict[str, Any]:
            with svc.db.read() as s:
                return {"id": name, **quotas.show_class(s, name)}

        return json({"quota_class_set": await run(call)})

    async def quota_class_update(req: Req, mv: Mv) -> Response:
        name = req.params["class_name"]
        policy.enforce(req.ctx, "volume:update_quota_class", {})
        data = await req.json()
        values = data.get("quota_class_set") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise BadRequest("Missing required element 'quota_class_set' in request body.")
        if len(name) > 255:
            raise BadRequest("Quota class name is too long.")

        def call() -> dict[str, Any]:
            with svc.db.write() as s:
                return quotas.update_class(s, name, values)

        return json({"quota_class_set": await run(call)})

    async def limits(req: Req, mv: Mv) -> Response:
        project = req.ctx.project_id or ""
        if req.ctx.is_admin and req.query.get("project_id"):
            project = req.query["project_id"]

        def call() -> dict[str, Any]:
            with svc.db.read() as s:
                return quotas.show(s, project, True)

        q = await run(call)
        absolute = {
            "maxTotalVolumes": q["volumes"]["limit"], "totalVolumesUsed": q["volumes"]["in_use"],
            "maxTotalSnapshots": q["snapshots"]["limit"],
            "totalSnapshotsUsed": q["snapshots"]["in_use"],
            "maxTotalVolumeGigabytes": q["gigabytes"]["limit"],
            "totalGigabytesUsed": q["gigabytes"]["in_use"],
            "maxTotalBackups": q["backups"]["limit"], "totalBackupsUsed": 0,
            "maxTotalBackupGigabytes": q["backup_gigabytes"]["limit"],
            "totalBackupGigabytesUsed": 0,
        }
        return json({"limits": {"rate": [], "absolute": absolute}})

    def message_view(m: Any, project: str) -> dict[str, Any]:
        return {"id": m.id, "request_id": m.request_id, "message_level": m.message_level,
                "event_id": m.event_id, "created_at": ts(m.created_at),
                "guaranteed_until": ts(m.expires_at), "resource_uuid": m.resource_uuid,
                "resource_type": m.resource_type, "user_message": m.user_message,
                "links": [{"href": f"{base}/{project}/messages/{m.id}", "rel": "self"},
                          {"href": f"{base.rsplit('/v3', 1)[0]}/{project}/messages/{m.id}",
                           "rel": "bookmark"}]}

    def load_message(s: Any, req: Req) -> Any:
        from pocketstack.services.volume.common import is_uuid
        from pocketstack.services.volume.models import Message

        mid = req.params["message_id"]
        m = s.get(Message, mid) if is_uuid(mid) else None
        if m is None or not (req.ctx.is_admin or m.project_id == req.ctx.project_id):
            raise NotFound(f"Message {mid} could not be found.", kind="MessageNotFound")
        return m

    async def messages(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 3))
        policy.enforce(req.ctx, "volume:get_all_messages", {"project_id": req.ctx.project_id})

        def call() -> list[dict[str, Any]]:
            from sqlalchemy import select

            from pocketstack.services.volume.models import Message

            stmt = select(Message).order_by(Message.created_at.desc(), Message.id.desc())
            if not req.ctx.is_admin:
                stmt = stmt.where(Message.project_id == req.ctx.project_id)
            for key in ("resource_uuid", "resource_type", "event_id", "request_id",
                        "message_level"):
                if req.query.get(key):
                    stmt = stmt.where(getattr(Message, key) == req.query[key])
            with svc.db.read() as s:
                return [message_view(m, req.ctx.project_id or "") for m in s.scalars(stmt)]

        return json({"messages": await run(call)})

    async def message_show(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 3))

        def call() -> dict[str, Any]:
            with svc.db.read() as s:
                return message_view(load_message(s, req), req.ctx.project_id or "")

        return json({"message": await run(call)})

    async def message_delete(req: Req, mv: Mv) -> Response:
        microversion.require(mv, (3, 3))

        def call() -> None:
            with svc.db.write() as s:
                m = load_message(s, req)
                policy.enforce(req.ctx, "volume:delete_message", {"project_id": m.project_id})
                s.delete(m)

        await run(call)
        return empty(204)

    for method, path, handler in [
        ("GET", "/os-availability-zone", availability_zones),
        ("GET", "/extensions", extensions),
        ("GET", "/scheduler-stats/get_pools", pools),
        ("GET", "/capabilities/{host}", capabilities),
        ("GET", "/os-services", services),
        ("GET", "/os-hosts", hosts),
        ("GET", "/os-hosts/{host}", host_show),
        ("PUT", "/os-services/{action}", service_update),
        ("GET", "/os-quota-sets/{target}", quota_show),
        ("GET", "/os-quota-sets/{target}/defaults", quota_defaults),
        ("PUT", "/os-quota-sets/{target}", quota_update),
        ("DELETE", "/os-quota-sets/{target}", quota_delete),
        ("GET", "/os-quota-class-sets/{class_name}", quota_class_show),
        ("PUT", "/os-quota-class-sets/{class_name}", quota_class_update),
        ("GET", "/limits", limits),
        ("GET", "/messages", messages),
        ("GET", "/messages/{message_id}", message_show),
        ("DELETE", "/messages/{message_id}", message_delete),
    ]:
        add(method, path, handler)
