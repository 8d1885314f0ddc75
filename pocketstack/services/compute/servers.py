"""Servers: create (records intent + queues the build), list, show, update, delete,
metadata and tags. The long work happens in worker.py."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import ipaddress
import re
import uuid
from typing import Any

from sqlalchemy import func, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import (BadRequest, Conflict, Forbidden, NotFound, OverQuota,
                               PocketError)
from pocketstack.services.compute import actions, flavors
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.models import (Flavor, Host, KeyPair, Server, ServerGroup)
from pocketstack.services.compute.server_validation import (CREATE_KEYS, MAX_TAGS, _hints,
                                                            _int, _networks, check_metadata,
                                                            check_hostname, check_name, check_tags,
                                                            hostname_for, is_uuid)
from pocketstack.services.compute.views import STATUS_TO_STATES


class Servers:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db

    # -- lookup ---------------------------------------------------------------------------
    def load(self, s, ctx: RequestContext, server_id: str, action: str = "compute:server_show",  # noqa: ANN001
             for_update: bool = False) -> Server:
        srv = s.get(Server, server_id) if len(server_id) <= 36 else None
        if srv is None or srv.deleted:
            raise NotFound(f"Instance {server_id} could not be found.")
        if not policy.check(ctx, action, {"project_id": srv.project_id, "user_id": srv.user_id}):
            if srv.project_id != ctx.project_id:
                raise NotFound(f"Instance {server_id} could not be found.")
            raise Forbidden(f"Policy doesn't allow {action} to be performed.")
        return srv

    def get(self, ctx: RequestContext, server_id: str) -> Server:
        with self.db.read() as s:
            return self.load(s, ctx, server_id)

    # -- create ---------------------------------------------------------------------------
    def create(self, ctx: RequestContext, body: Any, ver: APIVersion) -> tuple[list[Server], str | None, str]:
        policy.enforce(ctx, "compute:server_create", ctx.as_target())
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute server: must be an object")
        allowed = set(CREATE_KEYS)
        if not ver.has("server_description"):
            allowed.discard("description")
        if not ver.has("tags_on_create"):
            allowed.discard("tags")
        if ver.has("no_personality"):
            allowed.discard("personality")
        if not ver.has("server_hostname"):
            allowed.discard("hostname")
        extra = set(body) - allowed
        if extra:
            raise BadRequest("Invalid input for field/attribute server. Additional properties "
                             f"are not allowed ({', '.join(repr(e) for e in sorted(extra))} "
                             "were unexpected)")
        name = check_name(body.get("name"))
        hostname = check_hostname(body["hostname"], ver) if "hostname" in body else None
        conf = self.svc.conf
        # flavor
        flavor_ref = body.get("flavorRef")
        if flavor_ref is None or isinstance(flavor_ref, bool) or str(flavor_ref).strip() == "":
            raise BadRequest("Invalid input for field/attribute flavorRef: is a required property")
        flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
        # image (boot-from-volume would come through block_device_mapping_v2)
        bdm = body.get("block_device_mapping_v2") or body.get("block_device_mapping")
        image_ref = body.get("imageRef", "")
        if bdm is not None and not isinstance(bdm, list):
            raise BadRequest("Invalid input for field/attribute block_device_mapping_v2: must "
                             "be a list")
        from pocketstack.services.compute import volume_attachments  # boot from volume

        bdm_count = _int(body.get("max_count", body.get("min_count", 1)), "max_count")
        requested_image = image_ref if isinstance(image_ref, str) else ""
        image_ref, volume_plan = volume_attachments.parse_block_devices(
            self.svc, ctx, bdm, requested_image, bdm_count)
        # Booted from a volume without imageRef: Nova shows "image": "" (the image here is
        # only what the driver unpacks for the root file system).
        volume_backed = not requested_image and any(e.get("boot_index") == 0
                                                    for e in volume_plan)
        if not isinstance(image_ref, str) or not image_ref:
            raise BadRequest("Invalid input for field/attribute imageRef: is a required property")
        image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
        if not is_uuid(image_id):
            raise BadRequest("Invalid imageRef provided.")
        networks = _networks(body.get("networks"), ver)
        if networks in ("auto", "legacy"):
            self._check_auto_network(ctx, networks)
        min_count = _int(body.get("min_count", 1), "min_count")
        max_count = _int(body.get("max_count", min_count), "max_count")
        if min_count > max_count:
            raise BadRequest("min_count must be <= max_count")
        if max_count > 1000:
            raise BadRequest("max_count must be at most 1000 in one request")
        if hostname is not None and max_count > 1:
            raise BadRequest("Unable to allocate a single hostname to multiple instances")
        user_data = body.get("user_data")
        if user_data is not None:
            if not isinstance(user_data, str):
                raise BadRequest("Invalid input for field/attribute user_data: must be a "
                                 "base64-encoded string")
            if len(user_data) > conf.max_user_data_bytes:
                raise BadRequest(f"User data too large. User data must be no larger than "
                                 f"{conf.max_user_data_bytes} bytes once base64 encoded. Your "
                                 f"data is {len(user_data)} bytes")
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("User data needs to be valid base 64.") from None
        for key in ("accessIPv4", "accessIPv6"):
            if body.get(key):
                try:
                    addr = ipaddress.ip_address(body[key])
                except (ValueError, TypeError):
                    raise BadRequest(f"Invalid input for field/attribute {key}. Value: "
                                     f"{body[key]}. is not a valid IP address") from None
                if addr.version != (4 if key == "accessIPv4" else 6):
                    raise BadRequest(f"Invalid input for field/attribute {key}. Value: "
                                     f"{body[key]}. is not an IPv{4 if key == 'accessIPv4' else 6} "
                                     "address")
        sgs = body.get("security_groups") or []
        if not isinstance(sgs, list) or not all(isinstance(g, dict) and isinstance(
                g.get("name"), str) and g["name"] for g in sgs):
            raise BadRequest("Invalid input for field/attribute security_groups: a list of "
                             "{\"name\": ...}")
        sg_names = list(dict.fromkeys(g["name"] for g in sgs)) or ["default"]
        if sgs:
            sg_names = self._check_security_groups(ctx, sg_names)
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 255):
            raise BadRequest("Invalid input for field/attribute description: at most 255 "
                             "characters")
        tags = check_tags(body.get("tags", []))
        admin_pass = body.get("adminPass")
        if admin_pass is not None and not isinstance(admin_pass, str):
            raise BadRequest("Invalid input for field/attribute adminPass: must be a string")
        hints = _hints(body)
        az = body.get("availability_zone")
        force_host = None
        if az is not None:
            if not isinstance(az, str) or not az:
                raise BadRequest("Invalid input for field/attribute availability_zone")
            if ":" in az:
                az, _, force_host = az.partition(":")
                if force_host:
                    policy.enforce(ctx, "compute:server_create_forced_host")
                az = az or None
            if az is not None and az not in self.svc.hosts_api.zone_names():
                raise BadRequest("The requested availability zone is not available")
        disk_config = body.get("OS-DCF:diskConfig", "MANUAL")
        if disk_config not in ("AUTO", "MANUAL"):
            raise BadRequest("Invalid input for field/attribute OS-DCF:diskConfig")
        personality = body.get("personality") or []
        # image from the image service
        image = self._image(ctx, image_id)
        config_drive = _config_drive(body.get("config_drive"), image, conf)
        with self.db.read() as s:
            fl = s.get(Flavor, flavor_id)
            if fl is None or not (fl.is_public or ctx.is_admin or s.get(
                    flavors.FlavorAccess, (fl.id, ctx.project_id or ""))):
                raise BadRequest(f"Flavor {flavor_id} could not be found.")
            if fl.disabled:
                raise BadRequest(f"Flavor {flavor_id} is disabled.")
            limits = self.svc.quotas.limits(s, ctx.project_id or "")
            meta = check_metadata(body.get("metadata", {}), limits["metadata_items"])
            if isinstance(personality, list) and limits["injected_files"] >= 0 and (
                    len(personality) > limits["injected_files"]):
                raise OverQuota("Quota exceeded for injected_files")
            from pocketstack.services.compute import injected_files

            files = injected_files.parse(personality, limits)
            key_data = None
            key_name = body.get("key_name")
            if key_name is not None:
                kp = s.execute(select(KeyPair).where(KeyPair.user_id == ctx.user_id,
                                                     KeyPair.name == key_name)).scalar()
                if kp is None:
                    raise BadRequest("Invalid key_name provided.")
                key_data = kp.public_key
            group = None
            if "group" in hints:
                group = s.get(ServerGroup, hints["group"])
                if group is None or (group.project_id != ctx.project_id and not ctx.is_admin):
                    raise BadRequest(f"Server group {hints['group']} could not be found.")
        self.svc.pci_requests(fl.extra_specs)  # an undefined alias is a 400 now, not a fault
        min_disk = int(image.get("min_disk") or 0)
        min_ram = int(image.get("min_ram") or 0)
        if fl.root_gb and min_disk > fl.root_gb:
            raise BadRequest("Flavor's disk is too small for requested image. Flavor disk is "
                             f"{fl.root_gb * 2**30} bytes, image is {min_disk * 2**30} bytes.")
        if min_ram > fl.memory_mb:
            raise BadRequest("Flavor's memory is too small for requested image.")
        flavor_snap = {"id": fl.id, "name": fl.name, "vcpus": fl.vcpus, "ram": fl.memory_mb,
                       "disk": fl.root_gb, "ephemeral": fl.ephemeral_gb, "swap": fl.swap,
                       "extra_specs": dict(fl.extra_specs or {})}
        image_snap = {"id": image_id, "name": image.get("name"),
                      "properties": _image_props(image), "min_disk": min_disk,
                      "container_format": image.get("container_format"),
                      "disk_format": image.get("disk_format")}
        if volume_backed:
            image_snap["volume_backed"] = True
        reservation_id = "r-" + uuid.uuid4().hex[:8]
        created: list[Server] = []
        with self.db.write() as s:
            if group is not None:
                self.svc.groups_api.lock_group(s, group.id)
                members = s.execute(select(func.count()).select_from(Server).where(
                    Server.group_id == group.id, Server.deleted.is_(False))).scalar() or 0
                glimit = self.svc.quotas.limit_for(s, ctx.project_id or "", "server_group_members")
                if glimit >= 0 and members + min_count > glimit:
                    raise OverQuota("Quota exceeded, too many servers in group")
                if glimit >= 0:
                    max_count = min(max_count, glimit - members)
            count = self.svc.quotas.allowed_instances(
                s, ctx.project_id or "", fl.vcpus, fl.memory_mb, min_count, max_count)
            seq = (s.execute(select(func.max(Server.seq))).scalar() or 0)
            now = utcnow()
            for i in range(count):
                seq += 1
                display = name if count == 1 else f"{name}-{i + 1}"
                srv = Server(
                    id=str(uuid.uuid4()), seq=seq, name=display, hostname=hostname or hostname_for(display),
                    description=description, project_id=ctx.project_id or "",
                    user_id=ctx.user_id or "", image_id=image_id, image=image_snap,
                    flavor_id=fl.id, flavor=flavor_snap, vcpus=fl.vcpus, memory_mb=fl.memory_mb,
                    root_gb=fl.root_gb + fl.ephemeral_gb + (fl.swap + 1023) // 1024,
                    key_name=key_name, key_data=key_data, user_data=user_data, metadata_=meta,
                    tags=tags, security_groups=sg_names, requested_networks=networks,
                    requested_az=az, availability_zone=az or conf.default_availability_zone,
                    scheduler_hints={**hints, **({"force_host": force_host} if force_host else {}),
                                     **({injected_files.KEY: files} if files else {}),
                                     **({volume_attachments.PLAN_KEY: volume_plan}
                                        if volume_plan else {})},
                    group_id=group.id if group else None, vm_state="building",
                    task_state="scheduling", power_state=0,
                    access_ipv4=_norm_ip(body.get("accessIPv4")),
                    access_ipv6=_norm_ip(body.get("accessIPv6")),
                    config_drive=config_drive,
                    disk_config=disk_config, reservation_id=reservation_id, launch_index=i,
                    created_at=now, updated_at=now)
                s.add(srv)
                actions.record(s, srv, "create", ctx)
                self.svc.queue.enqueue(s, "build", srv.id)
                created.append(srv)
        self.svc.queue.kick()
        return created, admin_pass, reservation_id

    def _check_auto_network(self, ctx: RequestContext, networks: str) -> None:
        """Nova's API answers 409 NetworkAmbiguous at once when no network is given and it
        cannot choose among those the project sees (not a build that fails later). No
        network at all is left to the build (a legacy request boots without a port)."""
        net = self.svc.cloud.services.get("network")
        if net is None or not hasattr(net, "auto_network"):
            return
        try:
            net.auto_network(ctx)
        except Conflict:
            raise
        except PocketError:
            pass

    def _check_security_groups(self, ctx: RequestContext, names: list[str]) -> list[str]:
        """Unknown security groups are the caller's mistake (400), not a build fault.
        Returns the groups by name, as Nova shows them in the server, where a group given
        by id has a name no other group of the project shares (else the id stays, so the
        build still finds that very group)."""
        net = self.svc.cloud.services.get("network")
        groups_api = getattr(net, "security_groups", None)
        if groups_api is None:
            return names
        from starlette.datastructures import QueryParams

        groups = groups_api.list(ctx, QueryParams(), "")["security_groups"]
        known = {g["name"] for g in groups} | {g["id"] for g in groups}
        for name in names:
            if name != "default" and name not in known:
                raise BadRequest(f"Security group {name} not found for project "
                                 f"{ctx.project_id}.")
        own = [g for g in groups if g.get("project_id") == ctx.project_id]
        name_count: dict[str, int] = {}
        for g in own:
            name_count[g["name"]] = name_count.get(g["name"], 0) + 1
        by_id = {g["id"]: g["name"] for g in own if name_count[g["name"]] == 1}
        return list(dict.fromkeys(by_id.get(n, n) for n in names))

    def _image(self, ctx: RequestContext, image_id: str) -> dict[str, Any]:
        images = self.svc.cloud.services.get("image")
        if images is None:
            raise BadRequest(f"Image {image_id} could not be found.")
        try:
            image = images.get_image(ctx, image_id)
        except NotFound:
            raise BadRequest(f"Image {image_id} could not be found.") from None
        if image.get("status") not in (None, "active"):
            raise BadRequest(f"Image {image_id} is not active.")
        return image

    # -- list -------------------------------------------------------------------------------
    def list_(self, ctx: RequestContext, query, ver: APIVersion) -> tuple[list[Server], bool]:  # noqa: ANN001
        policy.enforce(ctx, "compute:server_list", ctx.as_target())
        q = select(Server)
        all_tenants = "all_tenants" in query and query.get("all_tenants", "").lower() not in (
            "0", "false", "off", "no")
        project = query.get("project_id") or query.get("tenant_id")
        # As Nova: tenant_id/project_id only mean something together with all_tenants.
        if all_tenants:
            policy.enforce(ctx, "compute:server_list_all_tenants")
            if project:
                q = q.where(Server.project_id == project)
        else:
            q = q.where(Server.project_id == (ctx.project_id or ""))
        changes = query.get("changes-since") or query.get("changes-before")
        deleted = query.get("deleted", "").lower() in ("true", "1", "yes") and ctx.is_admin
        for key, op in (("changes-since", ">="), ("changes-before", "<=")):
            if key in query:
                try:
                    when = dt.datetime.fromisoformat(query[key].replace("Z", "+00:00"))
                except ValueError:
                    raise BadRequest(f"Invalid input for query parameters {key}. Value: "
                                     f"{query[key]}. is not a 'date-time'") from None
                if when.tzinfo is not None:
                    when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
                q = q.where(Server.updated_at >= when if op == ">=" else Server.updated_at <= when)
        if deleted:
            q = q.where(Server.deleted.is_(True))
        elif not changes:
            q = q.where(Server.deleted.is_(False))
        st = query.get("status")
        if st:
            states = STATUS_TO_STATES.get(st.upper())
            if states is None:
                if ctx.is_admin:
                    raise BadRequest(f"Invalid server status: {st}")
                return [], False
            q = q.where(Server.vm_state.in_({vm for vm, _ in states}))
        simple = {"image": Server.image_id, "flavor": Server.flavor_id,
                  "reservation_id": Server.reservation_id}
        # Nova drops (ignores) the filters a non-admin may not use: these from 2.83, the
        # hostname from 2.90 (servers.py _get_server_search_options)
        more = {"key_name": Server.key_name, "availability_zone": Server.availability_zone,
                "vm_state": Server.vm_state, "task_state": Server.task_state,
                "user_id": Server.user_id, "power_state": Server.power_state,
                "config_drive": Server.config_drive}
        if ctx.is_admin or ver.has("non_admin_server_filters"):
            simple.update(more)
        hostname_re = query.get("hostname") if ctx.is_admin or ver.has("server_hostname") \
            else None
        for key, col in simple.items():
            if key in query:
                value = query[key]
                if key == "power_state":
                    try:
                        value = int(value)
                    except ValueError:
                        raise BadRequest(f"Invalid input for query parameters power_state. "
                                         f"Value: {value}.") from None
                q = q.where(col == value)
        if ctx.is_admin:
            for key, col in (("host", Server.host), ("node", Server.node)):
                if key in query:
                    q = q.where(col == query[key])
        if "locked" in query:
            q = q.where(Server.locked.is_(query["locked"].lower() in ("true", "1", "yes")))
        sort_key = query.get("sort_key", "created_at")
        sort_dir = query.get("sort_dir", "desc")
        cols = {"created_at": Server.seq, "display_name": Server.name, "updated_at": Server.updated_at,
                "uuid": Server.id, "vm_state": Server.vm_state, "host": Server.host,
                "launched_at": Server.launched_at, "project_id": Server.project_id,
                "user_id": Server.user_id, "availability_zone": Server.availability_zone,
                "key_name": Server.key_name, "task_state": Server.task_state,
                "power_state": Server.power_state, "display_description": Server.description}
        if sort_key not in cols or sort_dir not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort_key {sort_key} or sort_dir {sort_dir}")
        col = cols[sort_key]
        q = q.order_by(col.asc() if sort_dir == "asc" else col.desc(),
                       Server.seq.asc() if sort_dir == "asc" else Server.seq.desc())
        limit = None
        if "limit" in query:
            try:
                limit = int(query["limit"])
            except ValueError:
                raise BadRequest("limit param must be an integer") from None
            if limit < 0:
                raise BadRequest("limit param must be positive")
        limit = min(limit if limit is not None else 1000, 1000)
        python_side = hostname_re or any(k in query for k in (
            "name", "tags", "tags-any", "not-tags", "not-tags-any", "ip", "ip6", "marker"))
        if not python_side:
            q = q.limit(limit + 1)  # the database pages when nothing is filtered here
        with self.db.read() as s:
            rows = list(s.execute(q).scalars())
        for key, value in (("name", query.get("name")), ("hostname", hostname_re)):
            if value:  # Nova matches these as regular expressions
                try:
                    rx = re.compile(value)
                except re.error:
                    raise BadRequest(f"Invalid {key} filter {value}") from None
                rows = [r for r in rows if rx.search(getattr(r, key) or "")]
        for key, want_all, negate in (("tags", True, False), ("tags-any", False, False),
                                      ("not-tags", True, True), ("not-tags-any", False, True)):
            if key in query:
                wanted = [t for t in query[key].split(",") if t]
                check = all if want_all else any
                rows = [r for r in rows if check(t in (r.tags or []) for t in wanted) != negate]
        ip = query.get("ip") or query.get("ip6")
        if ip:
            try:
                rx = re.compile(ip)
            except re.error:
                raise BadRequest(f"Invalid ip filter {ip}") from None
            addrs = self.addresses([r.id for r in rows])
            rows = [r for r in rows if any(rx.match(a["addr"]) for net in addrs.get(r.id, {}).values()
                                           for a in net)]
        marker = query.get("marker")
        if marker is not None:
            ids = [r.id for r in rows]
            if marker not in ids:
                raise BadRequest(f"marker [{marker}] not found")
            rows = rows[ids.index(marker) + 1:]
        more = len(rows) > limit
        return rows[:limit], more

    def addresses(self, server_ids: list[str]) -> dict[str, Any]:
        net = self.svc.cloud.services.get("network")
        if net is None or not server_ids:
            return {}
        return net.server_addresses(server_ids)

    def host_states(self) -> dict[str, str]:
        with self.db.read() as s:
            hosts = list(s.execute(select(Host)).scalars())
        out = {}
        for h in hosts:
            if h.forced_down or not self.svc.host_is_up(h):
                out[h.host] = "DOWN" if not h.forced_down else "DOWN"
            elif h.status != "enabled":
                out[h.host] = "MAINTENANCE"
            else:
                out[h.host] = "UP"
        return out

    # -- update / delete --------------------------------------------------------------------
    def update(self, ctx: RequestContext, server_id: str, body: Any, ver: APIVersion) -> Server:
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute server: must be an object")
        allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"} | (
            {"description"} if ver.has("server_description") else set())
        if ver.has("server_hostname"):
            allowed.add("hostname")
        extra = set(body) - allowed
        if extra:
            raise BadRequest("Invalid input for field/attribute server. Additional properties "
                             f"are not allowed ({', '.join(repr(e) for e in sorted(extra))} "
                             "were unexpected)")
        if "name" in body:
            check_name(body["name"])
        if "hostname" in body:
            check_hostname(body["hostname"], ver)
        for key in ("accessIPv4", "accessIPv6"):
            if body.get(key):
                try:
                    addr = ipaddress.ip_address(body[key])
                except (ValueError, TypeError):
                    raise BadRequest(f"Invalid input for field/attribute {key}. Value: "
                                     f"{body[key]}. is not a valid IP address") from None
                if addr.version != (4 if key == "accessIPv4" else 6):
                    raise BadRequest(f"Invalid input for field/attribute {key}.")
        if "description" in body and body["description"] is not None and (
                not isinstance(body["description"], str) or len(body["description"]) > 255):
            raise BadRequest("Invalid input for field/attribute description")
        with self.db.write() as s:
            srv = self.load(s, ctx, server_id, "compute:server_update")
            if "name" in body:
                srv.name = body["name"]
            if "accessIPv4" in body:
                srv.access_ipv4 = _norm_ip(body["accessIPv4"])
            if "accessIPv6" in body:
                srv.access_ipv6 = _norm_ip(body["accessIPv6"])
            if "description" in body:
                srv.description = body["description"]
            if "hostname" in body:  # the guest learns it at its next boot (metadata)
                srv.hostname = body["hostname"]
            if "OS-DCF:diskConfig" in body:
                srv.disk_config = body["OS-DCF:diskConfig"]
            srv.updated_at = utcnow()
            return srv

    def check_lock(self, ctx: RequestContext, srv: Server) -> None:
        if srv.locked and not ctx.is_admin and not (srv.locked_by == "owner" and (
                ctx.project_id == srv.project_id and False)):
            raise Conflict(f"Instance {srv.id} is locked")

    def delete(self, ctx: RequestContext, server_id: str, force: bool = False) -> None:
        with self.db.write() as s:
            srv = self.load(s, ctx, server_id, "compute:server_delete")
            self.check_lock(ctx, srv)
            if srv.task_state == "deleting":
                return
            srv.task_state = "deleting"
            srv.updated_at = utcnow()
            actions.record(s, srv, "delete", ctx)
            self.svc.queue.enqueue(s, "delete", srv.id)
        self.svc.queue.kick()

    # -- metadata ---------------------------------------------------------------------------
    def set_metadata(self, ctx: RequestContext, server_id: str, meta: Any, replace: bool,
                     key: str | None = None) -> dict[str, str]:
        if not isinstance(meta, dict):
            raise BadRequest("Invalid input for field/attribute metadata: must be an object")
        if key is not None:
            if len(meta) != 1 or key not in meta:
                raise BadRequest("Request body and URI mismatch")
        with self.db.write() as s:
            srv = self.load(s, ctx, server_id, "compute:server_metadata")
            self.check_lock(ctx, srv)
            limit = self.svc.quotas.limit_for(s, srv.project_id, "metadata_items")
            new = dict(meta) if replace else {**(srv.metadata_ or {}), **meta}
            check_metadata(meta, -1)
            check_metadata(new, limit)
            srv.metadata_ = new
            srv.updated_at = utcnow()
        return dict(meta) if (key is not None or not replace) and key is not None else new

    def delete_metadata(self, ctx: RequestContext, server_id: str, key: str) -> None:
        with self.db.write() as s:
            srv = self.load(s, ctx, server_id, "compute:server_metadata")
            self.check_lock(ctx, srv)
            meta = dict(srv.metadata_ or {})
            if key not in meta:
                raise NotFound("Metadata item was not found")
            del meta[key]
            srv.metadata_ = meta

    # -- tags -------------------------------------------------------------------------------
    def set_tags(self, ctx: RequestContext, server_id: str, tags: list[str] | None,
                 add: str | None = None, remove: str | None = None) -> list[str]:
        with self.db.write() as s:
            srv = self.load(s, ctx, server_id, "compute:server_tags")
            current = list(srv.tags or [])
            if tags is not None:
                current = check_tags(tags)
            if add is not None:
                check_tags([add])
                if add not in current:
                    if len(current) >= MAX_TAGS:
                        raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
                    current.append(add)
            if remove is not None:
                if remove == "*":
                    current = []
                elif remove not in current:
                    raise NotFound(f"Tag {remove} could not be found for instance {server_id}")
                else:
                    current.remove(remove)
            srv.tags = current
            srv.updated_at = utcnow()
            return current


_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no"}


def _config_drive(value: Any, image: dict[str, Any], conf: Any) -> str:
    """Nova's config_drive column: "True" or "". Asked for (a boolean as Nova's
    parameter_types.boolean reads one), required by the image (img_config_drive=mandatory)
    or by the operator ([compute] force_config_drive), as nova/virt/configdrive.required_by."""
    if value is None or value == "":
        asked = False
    elif isinstance(value, bool):
        asked = value
    elif isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        asked = value.lower() in _TRUE
    else:
        raise BadRequest(f"Invalid input for field/attribute config_drive. Value: {value}. "
                         f"{value!r} is not valid under any of the given schemas")
    props = image.get("properties") or {}
    mandatory = (image.get("img_config_drive") or props.get("img_config_drive")) == "mandatory"
    return "True" if asked or mandatory or getattr(conf, "force_config_drive", False) else ""


def _image_props(image: dict[str, Any]) -> dict[str, Any]:
    props = dict(image.get("properties") or {})
    skip = {"id", "name", "status", "visibility", "size", "checksum", "created_at", "updated_at",
            "file", "schema", "self", "tags", "owner", "protected", "min_disk", "min_ram",
            "disk_format", "container_format", "virtual_size", "locations", "direct_url",
            "os_hash_algo", "os_hash_value", "os_hidden", "properties", "stores"}
    for k, v in image.items():
        if k not in skip and not isinstance(v, (dict, list)):
            props.setdefault(k, v)
    return props


def _norm_ip(value: Any) -> str:
    """Addresses are stored (and shown) in their canonical form, as Nova's IPAddress field."""
    if not value:
        return ""
    return str(ipaddress.ip_address(value))
