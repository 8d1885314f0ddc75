"""Operator views: hypervisors, compute services, aggregates, availability zones, usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound, NotImplementedYet
from pocketstack.services.compute.models import Aggregate, Host, Server
from pocketstack.services.compute.server_validation import is_uuid


def host_uptime() -> str:
    """This machine's `uptime` line (what Nova's libvirt driver reports), "" if unknown."""
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


class Hosts:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db

    # -- availability zones ---------------------------------------------------------------
    def zone_names(self) -> set[str]:
        with self.db.read() as s:
            azs = self.svc.host_azs(s)
            hosts = [h.host for h in s.execute(select(Host)).scalars()]
        names = {azs.get(h, self.svc.conf.default_availability_zone) for h in hosts}
        return names or {self.svc.conf.default_availability_zone}

    def zones(self, ctx: RequestContext, detail: bool) -> list[dict[str, Any]]:
        if detail:
            policy.enforce(ctx, "compute:availability_zone_detail")
        with self.db.read() as s:
            azs = self.svc.host_azs(s)
            hosts = list(s.execute(select(Host).order_by(Host.seq)).scalars())
        zones: dict[str, dict[str, Any]] = {}
        for h in hosts:
            az = azs.get(h.host, self.svc.conf.default_availability_zone)
            z = zones.setdefault(az, {"zoneName": az, "zoneState": {"available": False},
                                      "hosts": {} if detail else None})
            if h.status == "enabled" and self.svc.host_is_up(h):
                z["zoneState"]["available"] = True
            if detail:
                z["hosts"][h.host] = {"nova-compute": {
                    "available": self.svc.host_is_up(h), "active": h.status == "enabled",
                    "updated_at": isotime(h.heartbeat_at, micro=True, z=False)}}
        if detail:
            zones.setdefault("internal", {"zoneName": "internal", "zoneState": {"available": True},
                                          "hosts": {"pocketstack": {
                                              "nova-scheduler": {"available": True, "active": True,
                                                                 "updated_at": isotime(utcnow(), micro=True, z=False)},
                                              "nova-conductor": {"available": True, "active": True,
                                                                 "updated_at": isotime(utcnow(), micro=True, z=False)}}}})
        return list(zones.values())

    # -- services -----------------------------------------------------------------------------
    def service_view(self, h: Host, ver) -> dict[str, Any]:  # noqa: ANN001
        body: dict[str, Any] = {
            "id": h.service_id if ver.has("uuid_ids") else h.seq, "binary": "nova-compute",
            "host": h.host, "zone": self._zone(h.host), "status": h.status,
            "state": "up" if self.svc.host_is_up(h) else "down",
            "updated_at": isotime(h.heartbeat_at, micro=True, z=False),
            "disabled_reason": h.disabled_reason}
        if ver.has("service_forced_down"):
            body["forced_down"] = h.forced_down
        return body

    def _zone(self, host: str) -> str:
        with self.db.read() as s:
            return self.svc.host_azs(s).get(host, self.svc.conf.default_availability_zone)

    def services(self, ctx: RequestContext, query, ver) -> list[dict[str, Any]]:  # noqa: ANN001
        policy.enforce(ctx, "compute:services")
        binary = query.get("binary")
        host = query.get("host")
        with self.db.read() as s:
            hosts = list(s.execute(select(Host).order_by(Host.seq)).scalars())
        out = []
        now = isotime(utcnow(), micro=True, z=False)
        if binary in (None, "nova-scheduler", "nova-conductor") and host in (None, "pocketstack"):
            for i, b in enumerate(("nova-scheduler", "nova-conductor")):
                if binary in (None, b):
                    svc_body: dict[str, Any] = {
                        "id": f"00000000-0000-0000-0000-00000000000{i + 1}" if ver.has("uuid_ids")
                        else 1000000 + i, "binary": b, "host": "pocketstack", "zone": "internal",
                        "status": "enabled", "state": "up", "updated_at": now,
                        "disabled_reason": None}
                    if ver.has("service_forced_down"):
                        svc_body["forced_down"] = False
                    out.append(svc_body)
        for h in hosts:
            if binary not in (None, "nova-compute") or host not in (None, h.host):
                continue
            out.append(self.service_view(h, ver))
        return out

    def set_service(self, ctx: RequestContext, *, host: str | None = None,
                    service_id: str | None = None, status: str | None = None,
                    reason: str | None = None, forced_down: bool | None = None, ver=None) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:services_update")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
            raise BadRequest("Invalid input for field/attribute disabled_reason")
        if reason is not None and status != "disabled":
            raise BadRequest("Specifying 'disabled_reason' with status 'enabled' is invalid.")
        with self.db.write() as s:
            if service_id is not None:
                h = s.execute(select(Host).where(Host.service_id == service_id)).scalar()
                if h is None:
                    raise NotFound(f"Service {service_id} not found.")
            else:
                h = s.execute(select(Host).where(Host.host == host)).scalar()
                if h is None:
                    raise NotFound(f"Compute host {host} could not be found.")
            if status is not None:
                h.status = status
                h.disabled_reason = reason if status == "disabled" else None
            if forced_down is not None:
                h.forced_down = bool(forced_down)
            h.updated_at = utcnow()
        self.svc.scheduler.refresh()
        with self.db.read() as s:
            return self.service_view(s.get(Host, h.id), ver)

    def delete_service(self, ctx: RequestContext, service_id: str) -> None:
        policy.enforce(ctx, "compute:services_update")
        with self.db.write() as s:
            h = s.execute(select(Host).where(
                (Host.service_id == service_id) | (Host.seq == (int(service_id)
                                                                if service_id.isdigit() else -1)))).scalar()
            if h is None:
                raise NotFound(f"Service {service_id} not found.")
            busy = s.execute(select(Server.id).where(Server.host == h.host,
                                                     Server.deleted.is_(False)).limit(1)).first()
            if busy:
                raise Conflict("Unable to delete compute service that is hosting instances.")
            s.delete(h)
        self.svc.scheduler.refresh()

    # -- hypervisors ------------------------------------------------------------------------
    def _hypervisor(self, h: Host, ver, detail: bool, servers: list | None = None) -> dict:  # noqa: ANN001
        up = self.svc.host_is_up(h)
        body: dict[str, Any] = {"id": h.id if ver.has("uuid_ids") else h.seq,
                                "hypervisor_hostname": h.hypervisor_hostname,
                                "state": "up" if up else "down", "status": h.status}
        if detail:
            free_disk = h.local_gb - h.local_gb_used
            body.update({
                "vcpus": h.vcpus, "memory_mb": h.memory_mb, "local_gb": h.local_gb,
                "vcpus_used": h.vcpus_used, "memory_mb_used": h.memory_mb_used + h.reserved_host_memory_mb,
                "local_gb_used": h.local_gb_used, "hypervisor_type": h.hypervisor_type,
                "hypervisor_version": h.hypervisor_version,
                "free_ram_mb": h.memory_mb - h.memory_mb_used - h.reserved_host_memory_mb,
                "free_disk_gb": free_disk, "current_workload": 0, "running_vms": h.running_vms,
                "disk_available_least": free_disk, "host_ip": h.host_ip,
                "cpu_info": dict(h.cpu_info or {}) if ver.has("hypervisor_cpu_info_dict")
                else __import__("json").dumps(h.cpu_info or {}),
                "service": {"host": h.host, "id": h.service_id if ver.has("uuid_ids") else h.seq,
                            "disabled_reason": h.disabled_reason},
            })
            if ver.has("hypervisor_no_stats"):
                # 2.88 dropped the statistics-style fields (placement has them) and added
                # "uptime": this machine's `uptime` line, which every hypervisor here shares.
                for key in ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used",
                            "local_gb_used", "free_ram_mb", "free_disk_gb", "current_workload",
                            "running_vms", "disk_available_least", "cpu_info"):
                    del body[key]
                body["uptime"] = host_uptime() if up else None
        if servers is not None:
            body["servers"] = servers
        return body

    def hypervisors(self, ctx: RequestContext, query, ver, detail: bool) -> list[dict]:  # noqa: ANN001
        policy.enforce(ctx, "compute:hypervisors")
        q = select(Host).order_by(Host.seq)
        pattern = query.get("hypervisor_hostname_pattern")
        with self.db.read() as s:
            hosts = list(s.execute(q).scalars())
            if pattern:
                hosts = [h for h in hosts if pattern in h.hypervisor_hostname]
                if not hosts:
                    raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
            with_servers = query.get("with_servers", "").lower() in ("true", "1")
            servers: dict[str, list] = {}
            if with_servers:
                for sid, name, host in s.execute(select(Server.id, Server.name, Server.host).where(
                        Server.deleted.is_(False))):
                    servers.setdefault(host, []).append({"uuid": sid, "name": f"instance-{name}"})
        marker = query.get("marker")
        if marker is not None:
            ids = [str(h.id if ver.has("uuid_ids") else h.seq) for h in hosts]
            if marker not in ids:
                raise BadRequest(f"marker [{marker}] not found")
            hosts = hosts[ids.index(marker) + 1:]
        if "limit" in query:
            hosts = hosts[:int(query["limit"])]
        return [self._hypervisor(h, ver, detail, servers.get(h.host) if with_servers else None)
                for h in hosts]

    def hypervisor(self, ctx: RequestContext, hid: str, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:hypervisors")
        with self.db.read() as s:
            if ver.has("uuid_ids"):
                h = s.get(Host, hid)
            else:
                h = s.execute(select(Host).where(Host.seq == int(hid))).scalar() if hid.isdigit() else None
        if h is None:
            raise NotFound(f"Hypervisor with ID {hid} could not be found.")
        return self._hypervisor(h, ver, True)

    def statistics(self, ctx: RequestContext) -> dict:
        policy.enforce(ctx, "compute:hypervisors")
        keys = ("vcpus", "memory_mb", "local_gb", "vcpus_used", "memory_mb_used", "local_gb_used",
                "free_ram_mb", "free_disk_gb", "current_workload", "running_vms",
                "disk_available_least")
        total = {k: 0 for k in keys}
        with self.db.read() as s:
            hosts = list(s.execute(select(Host)).scalars())
        from pocketstack.services.compute.microversions import APIVersion
        for h in hosts:
            body = self._hypervisor(h, APIVersion(2, 1), True)
            for k in keys:
                total[k] += body[k]
        total["count"] = len(hosts)
        return total

    # -- aggregates ----------------------------------------------------------------------------
    def aggregate_view(self, a: Aggregate, ver) -> dict:  # noqa: ANN001
        body = {"id": a.id, "name": a.name, "availability_zone": (a.metadata_ or {}).get(
            "availability_zone"), "hosts": list(a.hosts or []), "metadata": dict(a.metadata_ or {}),
            "created_at": isotime(a.created_at, micro=True, z=False),
            "updated_at": isotime(a.updated_at, micro=True, z=False), "deleted": False,
            "deleted_at": None}
        if ver.has("aggregate_uuid"):
            body["uuid"] = a.uuid
        return body

    def _agg(self, s, agg_id: str) -> Aggregate:  # noqa: ANN001
        a = s.get(Aggregate, int(agg_id)) if str(agg_id).isdigit() else None
        if a is None:
            raise NotFound(f"Aggregate {agg_id} could not be found.")
        return a

    def aggregates(self, ctx: RequestContext) -> list[Aggregate]:
        policy.enforce(ctx, "compute:aggregates")
        with self.db.read() as s:
            return list(s.execute(select(Aggregate).order_by(Aggregate.id)).scalars())

    def cache_images(self, ctx: RequestContext, agg_id: str, body: Any) -> None:
        """2.81 POST /os-aggregates/{id}/images: Nova asks each host's virt driver to fetch
        the images ahead of boots; drivers without an image cache (ours fetch an image
        from Glance when a server boots) skip it, as Nova's do, so nothing is left to do
        once the request is valid and the images exist."""
        policy.enforce(ctx, "compute:aggregates")
        if not str(agg_id).isdigit():
            raise BadRequest(f"Invalid input for field/attribute id. Value: {agg_id}. "
                             "id must be an integer")
        cache = body.get("cache") if isinstance(body, dict) else None
        if not isinstance(cache, list) or not cache or set(body) != {"cache"} or any(
                not isinstance(c, dict) or set(c) != {"id"} or not isinstance(c["id"], str)
                or not is_uuid(c["id"]) for c in cache):
            raise BadRequest("Invalid input for field/attribute cache: a non-empty list of "
                             "{\"id\": image uuid}")
        ids = [c["id"] for c in cache]
        if len(set(ids)) != len(ids):
            raise BadRequest("Duplicate images in request")
        self.aggregate(ctx, agg_id)  # 404
        images = self.svc.cloud.services.get("image")
        for image_id in ids:
            try:
                images.get_image(ctx, image_id) if images is not None else None
            except NotFound:
                raise BadRequest(f"Image {image_id} could not be found.") from None

    def aggregate(self, ctx: RequestContext, agg_id: str) -> Aggregate:
        policy.enforce(ctx, "compute:aggregates")
        with self.db.read() as s:
            return self._agg(s, agg_id)

    def create_aggregate(self, ctx: RequestContext, body: Any) -> Aggregate:
        policy.enforce(ctx, "compute:aggregates")
        if not isinstance(body, dict) or set(body) - {"name", "availability_zone"}:
            raise BadRequest("Invalid input for field/attribute aggregate")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Invalid input for field/attribute name")
        az = body.get("availability_zone")
        if az is not None and (not isinstance(az, str) or not az or len(az) > 255 or ":" in az):
            raise BadRequest("Invalid input for field/attribute availability_zone")
        with self.db.write() as s:
            if s.execute(select(Aggregate.id).where(Aggregate.name == name)).first():
                raise Conflict(f"Aggregate {name} already exists.")
            a = Aggregate(name=name, metadata_={"availability_zone": az} if az else {}, hosts=[])
            s.add(a)
            s.flush()
        return a

    def update_aggregate(self, ctx: RequestContext, agg_id: str, body: Any) -> Aggregate:
        policy.enforce(ctx, "compute:aggregates")
        if not isinstance(body, dict) or not body or set(body) - {"name", "availability_zone"}:
            raise BadRequest("Invalid input for field/attribute aggregate")
        with self.db.write() as s:
            a = self._agg(s, agg_id)
            if "name" in body:
                a.name = body["name"]
            if "availability_zone" in body:
                meta = dict(a.metadata_ or {})
                if body["availability_zone"]:
                    meta["availability_zone"] = body["availability_zone"]
                else:
                    meta.pop("availability_zone", None)
                a.metadata_ = meta
            a.updated_at = utcnow()
        self.svc.scheduler.refresh()
        return a

    def delete_aggregate(self, ctx: RequestContext, agg_id: str) -> None:
        policy.enforce(ctx, "compute:aggregates")
        with self.db.write() as s:
            a = self._agg(s, agg_id)
            if a.hosts:
                raise BadRequest(f"Cannot remove aggregate {agg_id}: it still has hosts.")
            s.delete(a)

    def aggregate_action(self, ctx: RequestContext, agg_id: str, body: Any) -> Aggregate:
        policy.enforce(ctx, "compute:aggregates")
        if not isinstance(body, dict) or len(body) != 1:
            raise BadRequest("Invalid aggregate action")
        (name, arg), = body.items()
        with self.db.write() as s:
            a = self._agg(s, agg_id)
            hosts = list(a.hosts or [])
            if name in ("add_host", "remove_host"):
                host = (arg or {}).get("host") if isinstance(arg, dict) else None
                if not isinstance(host, str):
                    raise BadRequest("Invalid input for field/attribute host")
                if not s.execute(select(Host.id).where(Host.host == host)).first():
                    raise NotFound(f"Compute host {host} could not be found.")
                if name == "add_host":
                    if host in hosts:
                        raise Conflict(f"Aggregate {agg_id} already has host {host}.")
                    az = (a.metadata_ or {}).get("availability_zone")
                    other = self.svc.host_azs(s).get(host)
                    if az and other and other != az:
                        raise Conflict(f"Cannot add host {host} to aggregate {agg_id}: it is "
                                       f"in availability zone {other} already.")
                    hosts.append(host)
                else:
                    if host not in hosts:
                        raise NotFound(f"Cannot remove host {host} in aggregate {agg_id}")
                    hosts.remove(host)
                a.hosts = hosts
            elif name == "set_metadata":
                meta_in = (arg or {}).get("metadata") if isinstance(arg, dict) else None
                if not isinstance(meta_in, dict):
                    raise BadRequest("Invalid input for field/attribute metadata")
                meta = dict(a.metadata_ or {})
                for k, v in meta_in.items():
                    if v is None:
                        meta.pop(k, None)
                    elif not isinstance(v, str) or len(k) > 255 or len(v) > 255:
                        raise BadRequest(f"Invalid metadata {k}")
                    else:
                        meta[k] = v
                a.metadata_ = meta
            else:
                raise BadRequest(f"Invalid aggregate action {name}")
            a.updated_at = utcnow()
        self.svc.scheduler.refresh()
        return a

    # -- usage ----------------------------------------------------------------------------------
    def usage(self, ctx: RequestContext, query, project_id: str | None) -> list[dict]:  # noqa: ANN001
        policy.enforce(ctx, "compute:usage" if project_id is None else "compute:usage_show",
                       {"project_id": project_id})

        def parse(key: str, default: dt.datetime) -> dt.datetime:
            if key not in query:
                return default
            try:
                v = dt.datetime.fromisoformat(query[key].replace("Z", "+00:00"))
            except ValueError:
                raise BadRequest(f"Invalid {key} value {query[key]}") from None
            return v.astimezone(dt.timezone.utc).replace(tzinfo=None) if v.tzinfo else v
        now = utcnow()
        end = min(parse("end", now), now)
        start = parse("start", now - dt.timedelta(days=30))
        if start > end:
            raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
        detailed = query.get("detailed", "0") in ("1", "true", "True")
        q = select(Server).where(Server.created_at <= end,
                                 (Server.deleted_at.is_(None)) | (Server.deleted_at >= start))
        if project_id:
            q = q.where(Server.project_id == project_id)
        with self.db.read() as s:
            servers = list(s.execute(q).scalars())
        projects: dict[str, dict[str, Any]] = {}
        for srv in servers:
            a = max(srv.created_at, start)
            b = min(srv.deleted_at or end, end)
            hours = max((b - a).total_seconds(), 0) / 3600
            p = projects.setdefault(srv.project_id, {
                "tenant_id": srv.project_id, "total_hours": 0.0, "total_vcpus_usage": 0.0,
                "total_memory_mb_usage": 0.0, "total_local_gb_usage": 0.0,
                "start": isotime(start, micro=True, z=False), "stop": isotime(end, micro=True, z=False),
                "server_usages": []})
            p["total_hours"] += hours
            p["total_vcpus_usage"] += hours * srv.vcpus
            p["total_memory_mb_usage"] += hours * srv.memory_mb
            p["total_local_gb_usage"] += hours * srv.root_gb
            p["server_usages"].append({
                "instance_id": srv.id, "name": srv.name, "hours": hours, "memory_mb": srv.memory_mb,
                "local_gb": srv.root_gb, "vcpus": srv.vcpus, "tenant_id": srv.project_id,
                "flavor": (srv.flavor or {}).get("name"),
                "started_at": isotime(srv.created_at, micro=True, z=False),
                "ended_at": isotime(srv.deleted_at, micro=True, z=False),
                "state": "terminated" if srv.deleted else srv.vm_state,
                "uptime": int((now - srv.created_at).total_seconds())})
        if not detailed and project_id is None:
            for p in projects.values():
                p.pop("server_usages")
        if project_id and not projects:
            return [{}]
        return list(projects.values())


class OsHosts:
    """The deprecated os-hosts API (before 2.43): compute hosts and their resource usage."""

    def __init__(self, hosts: Hosts) -> None:
        self.hosts = hosts
        self.svc = hosts.svc
        self.db = hosts.db

    def list_(self, ctx: RequestContext, zone: str | None) -> list[dict[str, str]]:
        policy.enforce(ctx, "compute:hosts")
        with self.db.read() as s:
            azs = self.svc.host_azs(s)
            rows = list(s.execute(select(Host).order_by(Host.seq)).scalars())
        # Compute hosts first: clients (and people) take the first entry of `host list` for
        # `aggregate add host`, which only accepts a compute host, as in Nova.
        out = [{"host_name": h.host, "service": "compute",
                "zone": azs.get(h.host, self.svc.conf.default_availability_zone)} for h in rows]
        out += [{"host_name": "pocketstack", "service": b, "zone": "internal"}
                for b in ("scheduler", "conductor")]
        return [h for h in out if not zone or h["zone"] == zone]

    def _host(self, s, name: str) -> Host:  # noqa: ANN001
        h = s.execute(select(Host).where(Host.host == name)).scalar()
        if h is None:
            raise NotFound(f"Compute host {name} could not be found.")
        return h

    def show(self, ctx: RequestContext, name: str) -> list[dict[str, Any]]:
        policy.enforce(ctx, "compute:hosts")
        with self.db.read() as s:
            h = self._host(s, name)
            servers = list(s.execute(select(Server).where(Server.host == name,
                                                          Server.deleted.is_(False))).scalars())

        def row(project: str, cpu: int, mem: int, disk: int) -> dict[str, Any]:
            return {"resource": {"host": name, "project": project, "cpu": cpu,
                                 "memory_mb": mem, "disk_gb": disk}}
        out = [row("(total)", h.vcpus, h.memory_mb, h.local_gb),
               row("(used_now)", h.vcpus_used, h.memory_mb_used + h.reserved_host_memory_mb,
                   h.local_gb_used),
               row("(used_max)", sum(x.vcpus for x in servers),
                   sum(x.memory_mb for x in servers), sum(x.root_gb for x in servers))]
        per: dict[str, list[int]] = {}
        for x in servers:
            acc = per.setdefault(x.project_id, [0, 0, 0])
            acc[0] += x.vcpus
            acc[1] += x.memory_mb
            acc[2] += x.root_gb
        out += [row(p, *v) for p, v in sorted(per.items())]
        return out

    def update(self, ctx: RequestContext, name: str, body: Any) -> dict[str, Any]:
        policy.enforce(ctx, "compute:hosts")
        if not isinstance(body, dict) or not body or set(body) - {"status", "maintenance_mode"}:
            raise BadRequest("'status' or 'maintenance_mode' needed for host update")
        status, maint = body.get("status"), body.get("maintenance_mode")
        if status is None and maint is None:
            raise BadRequest("'status' or 'maintenance_mode' needed for host update")
        if status is not None and status not in ("enable", "disable"):
            raise BadRequest(f"Invalid status: '{status}'")
        if maint is not None and maint not in ("enable", "disable"):
            raise BadRequest(f"Invalid mode: '{maint}'")
        with self.db.read() as s:
            self._host(s, name)
        result: dict[str, Any] = {"host": name}
        if maint is not None:
            raise NotImplementedYet("Maintenance mode is not implemented by this compute "
                                    "driver.")
        if status is not None:
            self.hosts.set_service(ctx, host=name, status=status + "d")
            result["status"] = status + "d"
        return result

    def power_action(self, ctx: RequestContext, name: str, action: str) -> None:
        policy.enforce(ctx, "compute:hosts")
        with self.db.read() as s:
            self._host(s, name)
        raise NotImplementedYet(f"Host {action} is not supported: pocketstack does not power "
                                "its hypervisors on or off.")
