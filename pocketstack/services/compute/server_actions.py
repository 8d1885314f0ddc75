"""POST /servers/{id}/action: one entry per action in ``ACTIONS`` (state check, intent,
task). The task handlers in worker.py do the work."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute import actions
from pocketstack.services.compute.models import Flavor, Server

# action -> (allowed vm_states, task_state set, task kind, instance action name)
SIMPLE: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "os-stop": (("active", "error"), "powering-off", "stop", "stop"),
    "os-start": (("stopped",), "powering-on", "start", "start"),
    "pause": (("active",), "pausing", "pause", "pause"),
    "unpause": (("paused",), "unpausing", "unpause", "unpause"),
    "suspend": (("active",), "suspending", "suspend", "suspend"),
    "resume": (("suspended",), "resuming", "resume", "resume"),
}


class ServerActions:
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db

    def _conflict(self, srv: Server, name: str) -> Conflict:
        return Conflict(f"Cannot '{name}' instance {srv.id} while it is in vm_state "
                        f"{srv.vm_state}" if srv.task_state is None else
                        f"Cannot '{name}' instance {srv.id} while it is in task_state "
                        f"{srv.task_state}")

    def _begin(self, ctx: RequestContext, server_id: str, name: str, states: tuple[str, ...],
               task_state: str, kind: str, action: str, payload: dict | None = None,
               mutate=None) -> Server:  # noqa: ANN001
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_action")
            self.svc.servers.check_lock(ctx, srv)
            if srv.vm_state not in states or srv.task_state is not None:
                raise self._conflict(srv, name)
            if mutate is not None:
                mutate(s, srv)
            srv.task_state = task_state
            srv.updated_at = utcnow()
            actions.record(s, srv, action, ctx)
            self.svc.queue.enqueue(s, kind, srv.id, {"action": action, **(payload or {})})
        self.svc.queue.kick()
        return srv

    def simple(self, ctx: RequestContext, server_id: str, name: str) -> None:
        states, task_state, kind, action = SIMPLE[name]
        self._begin(ctx, server_id, name.removeprefix("os-"), states, task_state, kind, action)

    def reboot(self, ctx: RequestContext, server_id: str, arg: Any) -> None:
        if not isinstance(arg, dict) or arg.get("type", "").upper() not in ("SOFT", "HARD"):
            raise BadRequest("Invalid input for field/attribute type: 'SOFT' or 'HARD' is required")
        hard = arg["type"].upper() == "HARD"
        states = ("active", "stopped", "paused", "suspended", "error") if hard else ("active",)
        self._begin(ctx, server_id, "reboot", states,
                    "rebooting_hard" if hard else "rebooting", "reboot", "reboot", {"hard": hard})

    def lock(self, ctx: RequestContext, server_id: str, arg: Any, allow_reason: bool) -> None:
        reason = None
        if isinstance(arg, dict):
            if set(arg) - ({"locked_reason"} if allow_reason else set()):
                raise BadRequest("Invalid input for field/attribute lock")
            reason = arg.get("locked_reason")
            if reason is not None and (not isinstance(reason, str) or len(reason) > 255):
                raise BadRequest("Invalid input for field/attribute locked_reason")
        elif arg is not None:
            raise BadRequest("Invalid input for field/attribute lock")
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_lock")
            srv.locked, srv.locked_reason = True, reason
            srv.locked_by = "admin" if ctx.is_admin and ctx.project_id != srv.project_id else "owner"
            actions.record(s, srv, "lock", ctx)

    def unlock(self, ctx: RequestContext, server_id: str) -> None:
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_lock")
            if srv.locked and srv.locked_by == "admin" and not ctx.is_admin:
                raise Conflict(f"Instance {srv.id} is locked by an administrator")
            srv.locked, srv.locked_by, srv.locked_reason = False, None, None
            actions.record(s, srv, "unlock", ctx)

    def rebuild(self, ctx: RequestContext, server_id: str, arg: Any, ver) -> str | None:  # noqa: ANN001
        from pocketstack.services.compute.servers import check_metadata, check_name, is_uuid

        if not isinstance(arg, dict):
            raise BadRequest("Invalid input for field/attribute rebuild")
        allowed = {"imageRef", "name", "adminPass", "metadata", "accessIPv4", "accessIPv6",
                   "preserve_ephemeral", "OS-DCF:diskConfig", "personality"}
        if ver.has("server_description"):
            allowed.add("description")
        if ver.at_least(2, 54):
            allowed.add("key_name")
        if ver.has("no_personality"):
            allowed = (allowed - {"personality"}) | {"user_data"}
        if ver.has("server_hostname"):
            allowed.add("hostname")
        extra = set(arg) - allowed
        if extra:
            raise BadRequest("Invalid input for field/attribute rebuild. Additional properties "
                             f"are not allowed ({', '.join(sorted(extra))} were unexpected)")
        image_ref = arg.get("imageRef")
        if not isinstance(image_ref, str) or not image_ref:
            raise BadRequest("Invalid input for field/attribute imageRef: is a required property")
        image_id = image_ref.rstrip("/").rsplit("/", 1)[-1]
        if not is_uuid(image_id):
            raise BadRequest("Invalid imageRef provided.")
        if "name" in arg:
            check_name(arg["name"])
        if "hostname" in arg:
            from pocketstack.services.compute.server_validation import check_hostname

            check_hostname(arg["hostname"], ver)
        image = self.svc.servers._image(ctx, image_id)
        from pocketstack.services.compute.servers import _image_props

        def mutate(s, srv: Server) -> None:  # noqa: ANN001
            if (srv.image or {}).get("volume_backed") and srv.image_id != image_id:
                # Nova before 2.93 refuses this; from 2.93 it asks Cinder to reimage the
                # root volume (os-reimage, Cinder 3.68), which this cloud's block storage
                # does not do, so the server is refused here rather than left in ERROR.
                why = ("this cloud's block storage cannot reimage a root volume"
                       if ver.has("rebuild_volume_backed") else
                       "Unable to rebuild with a different image for a volume-backed server.")
                raise BadRequest(f"Image {image_id} is unacceptable: {why}")
            if "hostname" in arg:
                srv.hostname = arg["hostname"]
            if "metadata" in arg:
                srv.metadata_ = check_metadata(arg["metadata"], self.svc.quotas.limit_for(
                    s, srv.project_id, "metadata_items"))
            if "name" in arg:
                srv.name = arg["name"]
            for key, attr in (("accessIPv4", "access_ipv4"), ("accessIPv6", "access_ipv6")):
                if key in arg:
                    setattr(srv, attr, arg[key] or "")
            if "description" in arg:
                srv.description = arg["description"]
            if "user_data" in arg:
                srv.user_data = arg["user_data"]
            if arg.get("personality") is not None:  # the rebuilt server's injected files
                from pocketstack.services.compute import injected_files

                files = injected_files.parse(arg["personality"], self.svc.quotas.limits(
                    s, srv.project_id))
                hints = {k: v for k, v in (srv.scheduler_hints or {}).items()
                         if k != injected_files.KEY}
                srv.scheduler_hints = {**hints, **({injected_files.KEY: files} if files
                                                   else {})}
            if "key_name" in arg:
                srv.key_name = arg["key_name"]
            if arg.get("OS-DCF:diskConfig") in ("AUTO", "MANUAL"):
                srv.disk_config = arg["OS-DCF:diskConfig"]
            srv.image_id = image_id
            srv.image = {"id": image_id, "name": image.get("name"),
                         "properties": _image_props(image),
                         "container_format": image.get("container_format"),
                         "disk_format": image.get("disk_format")}
        with self.db.read() as s:
            cur = self.svc.servers.load(s, ctx, server_id, "compute:server_action")
        was_stopped = cur.vm_state == "stopped"
        self._begin(ctx, server_id, "rebuild", ("active", "stopped", "error"), "rebuilding",
                    "rebuild", "rebuild", {"was_stopped": was_stopped}, mutate)
        return arg.get("adminPass")

    def resize(self, ctx: RequestContext, server_id: str, arg: Any) -> None:
        if not isinstance(arg, dict) or set(arg) - {"flavorRef", "OS-DCF:diskConfig"}:
            raise BadRequest("Invalid input for field/attribute resize")
        ref = arg.get("flavorRef")
        if ref is None or isinstance(ref, bool) or str(ref).strip() == "":
            raise BadRequest("Invalid input for field/attribute flavorRef: is a required property")
        flavor_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
        with self.db.read() as s:
            fl = s.get(Flavor, flavor_id)
            if fl is None:
                raise BadRequest(f"Flavor {flavor_id} could not be found.")

        def mutate(s, srv: Server) -> None:  # noqa: ANN001
            if fl.id == srv.flavor_id:
                raise BadRequest("When resizing, instances must change flavor!")
            root = fl.root_gb + fl.ephemeral_gb + (fl.swap + 1023) // 1024
            if root < srv.root_gb and fl.root_gb < (srv.flavor or {}).get("disk", 0):
                raise BadRequest("Resize error: Unable to resize disk down.")
            self.svc.quotas.check_delta(s, srv.project_id, fl.vcpus - srv.vcpus,
                                        fl.memory_mb - srv.memory_mb)
            from pocketstack.services.compute.admin_apis import record_migration

            record_migration(s, srv, ctx, "resize", srv.flavor_id, fl.id)
            srv.old_flavor = {**(srv.flavor or {}), "_power": srv.power_state,
                              "_root_gb": srv.root_gb}
            srv.flavor = {"id": fl.id, "name": fl.name, "vcpus": fl.vcpus, "ram": fl.memory_mb,
                          "disk": fl.root_gb, "ephemeral": fl.ephemeral_gb, "swap": fl.swap,
                          "extra_specs": dict(fl.extra_specs or {})}
            srv.flavor_id, srv.vcpus, srv.memory_mb = fl.id, fl.vcpus, fl.memory_mb
            if arg.get("OS-DCF:diskConfig") in ("AUTO", "MANUAL"):
                srv.disk_config = arg["OS-DCF:diskConfig"]
            srv.root_gb = max(root, srv.root_gb)
        self._begin(ctx, server_id, "resize", ("active", "stopped"), "resize_prep", "resize",
                    "resize", None, mutate)

    def confirm_resize(self, ctx: RequestContext, server_id: str) -> None:
        self._begin(ctx, server_id, "confirmResize", ("resized",), "resize_finish",
                    "confirm_resize", "confirmResize")

    def revert_resize(self, ctx: RequestContext, server_id: str) -> None:
        self._begin(ctx, server_id, "revertResize", ("resized",), "resize_reverting",
                    "revert_resize", "revertResize")

    def inject_network_info(self, ctx: RequestContext, server_id: str) -> None:
        """Nova's injectNetworkInfo pushes the network config into a Xen guest; libvirt's
        driver does nothing for it. Our guests take their config from DHCP and the metadata
        service, which always show the current ports, so there is nothing to push: this
        checks the server and permission, as Nova's API does, and records the action."""
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_inject_network_info")
            if not srv.host:
                raise Conflict(f"Instance {srv.id} is not ready (it has no host yet).")
            actions.record(s, srv, "injectNetworkInfo", ctx)

    def migrate(self, ctx: RequestContext, server_id: str, arg: Any, ver) -> None:  # noqa: ANN001
        """Cold migration. Nova's conductor schedules the move synchronously, so "no other
        host" is the API's 400 NoValidHost (with an error migration record)."""
        from pocketstack.services.compute.admin_apis import record_migration
        from pocketstack.services.compute.models import Host

        allowed = {"host"} if ver.at_least(2, 56) else set()
        if arg is not None and (not isinstance(arg, dict) or set(arg) - allowed):
            raise BadRequest("Invalid input for field/attribute migrate. Additional properties "
                             "are not allowed" + ("" if allowed else
                                                  " (a target host needs microversion 2.56)"))
        target = (arg or {}).get("host")
        if target is not None and (not isinstance(target, str) or not 1 <= len(target) <= 255):
            raise BadRequest("Invalid input for field/attribute host: a host name is required")
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_migrate")
            if srv.vm_state not in ("active", "stopped") or srv.task_state is not None:
                raise self._conflict(srv, "migrate")
            hosts = list(s.execute(select(Host)).scalars())
            if target is not None:
                if target not in {h.host for h in hosts}:
                    raise BadRequest(f"Compute host {target} could not be found.")
                if target == srv.host:
                    raise BadRequest("The target host can't be the same one.")
            others = [h for h in hosts if h.host != srv.host and h.status == "enabled"
                      and not h.forced_down and self.svc.host_is_up(h)
                      and (target is None or h.host == target)]
            mig = record_migration(s, srv, ctx, "migration", srv.flavor_id, srv.flavor_id)
            mig.dest_compute = mig.dest_node = mig.dest_host = None
            mig.status = "error"
            actions.record(s, srv, "migrate", ctx)
        if not others:
            raise BadRequest("No valid host was found. There is no other enabled compute host "
                             "to move the server to.")
        raise BadRequest(f"No valid host was found. Moving a server between hosts is not "
                         f"supported by the {self.svc.driver.name} compute driver.")

    def evacuate(self, ctx: RequestContext, server_id: str, arg: Any, ver) -> None:  # noqa: ANN001
        """Nova's evacuate (admin): rebuild a server of a failed host on another one; from
        2.95 it would end stopped there. Nova refuses while the source host's compute
        service is up (400 ComputeServiceInUse); once it is down, our drivers cannot
        rebuild a server on another host, which is said as the migrate action says it."""
        from pocketstack.services.compute.models import Host

        allowed = {"host", "adminPass", "onSharedStorage"}
        if ver.at_least(2, 14):
            allowed.discard("onSharedStorage")
        if ver.at_least(2, 29) and not ver.at_least(2, 68):
            allowed.add("force")
        if not isinstance(arg, dict) or set(arg) - allowed:
            raise BadRequest("Invalid input for field/attribute evacuate. Additional "
                             "properties are not allowed")
        host = arg.get("host")
        if host is not None and (not isinstance(host, str) or not 1 <= len(host) <= 255):
            raise BadRequest("Invalid input for field/attribute host.")
        if arg.get("force") is True and not host:
            raise BadRequest("Can't force to a non-provided destination")
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_evacuate")
            hosts = {h.host: h for h in s.execute(select(Host)).scalars()}
            if host is not None and host not in hosts:
                raise NotFound(f"Compute host {host} not found.")
            if srv.host == host:
                raise BadRequest("The target host can't be the same one.")
            if srv.vm_state not in ("active", "stopped", "error") or srv.task_state:
                raise self._conflict(srv, "evacuate")
            source = hosts.get(srv.host or "")
            if source is not None and self.svc.host_is_up(source) and not source.forced_down:
                raise BadRequest(f"Compute service of {srv.host} is still in use.")
        raise BadRequest("No valid host was found. Moving a server between hosts is not "
                         f"supported by the {self.svc.driver.name} compute driver.")

    def reset_state(self, ctx: RequestContext, server_id: str, arg: Any) -> None:
        policy.enforce(ctx, "compute:server_reset_state")
        state = (arg or {}).get("state") if isinstance(arg, dict) else None
        if state not in ("active", "error"):
            raise BadRequest("Invalid input for field/attribute state: 'active' or 'error'")
        with self.db.write() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_reset_state")
            srv.vm_state, srv.task_state = state, None
            actions.record(s, srv, "resetState", ctx)

    def console_output(self, ctx: RequestContext, server_id: str, arg: Any) -> str:
        length = None
        if isinstance(arg, dict) and arg.get("length") is not None:
            try:
                length = int(arg["length"])
            except (TypeError, ValueError):
                raise BadRequest("Invalid input for field/attribute length") from None
            if length < -1:
                raise BadRequest("Invalid input for field/attribute length")
            if length == -1:
                length = None
        with self.db.read() as s:
            srv = self.svc.servers.load(s, ctx, server_id, "compute:server_console")
        if srv.vm_state == "building" or not srv.host:
            raise Conflict(f"Instance {srv.id} is not ready (vm_state {srv.vm_state}).")
        try:
            output = self.svc.driver.console_output(srv.host, srv.id, None)
        except Exception as exc:  # noqa: BLE001
            raise NotFound(f"Console log for instance {srv.id} is not available: {exc}") from None
        if length is None:
            return output
        # Nova's tail: the last ``length`` pieces of output.split("\n") (a trailing newline
        # makes the last piece empty, and it counts).
        return "\n".join(output.split("\n")[-length:]) if length else ""

    def create_image(self, ctx: RequestContext, server_id: str, arg: Any,
                     backup: bool = False) -> str:
        """createImage / createBackup: a queued image now, its data from the worker's
        ``snapshot`` task (the server is in task_state image_snapshot until then, so a
        second snapshot meanwhile is a 409, as in Nova)."""
        what = "createBackup" if backup else "createImage"
        if not isinstance(arg, dict) or not isinstance(arg.get("name"), str) or not arg["name"].strip():
            raise BadRequest("Invalid input for field/attribute name: is a required property")
        if len(arg["name"]) > 255:
            raise BadRequest("Invalid input for field/attribute name: longer than 255 characters")
        keys = {"name", "metadata"} | ({"backup_type", "rotation"} if backup else set())
        if set(arg) - keys:
            raise BadRequest(f"Invalid input for field/attribute {what}. Additional properties "
                             f"are not allowed ({', '.join(sorted(set(arg) - keys))} were "
                             "unexpected)")
        rotation = None
        if backup:
            if not isinstance(arg.get("backup_type"), str):
                raise BadRequest("Invalid input for field/attribute backup_type: a string is "
                                 "required")
            rotation = arg.get("rotation")
            if isinstance(rotation, str) and rotation.strip().isdigit():
                rotation = int(rotation)
            if not isinstance(rotation, int) or isinstance(rotation, bool) or rotation < 0:
                raise BadRequest("Invalid input for field/attribute rotation: a non-negative "
                                 "integer is required")
        meta = arg.get("metadata") or {}
        if not isinstance(meta, dict) or any(
                not isinstance(k, str) or not 1 <= len(k) <= 255 or not isinstance(v, str)
                or len(v) > 255 for k, v in meta.items()):
            raise BadRequest("Invalid input for field/attribute metadata: keys of 1 to 255 "
                             "characters, string values of at most 255")
        images = self.svc.cloud.services.get("image")
        if images is None:
            raise BadRequest("Snapshots need the image service, which this cloud does not run.")
        action = "compute:server_create_backup" if backup else "compute:server_create_image"
        states = ("active", "stopped") if backup else ("active", "stopped", "paused", "suspended")

        def check(srv: Server) -> None:
            if srv.vm_state not in states or srv.task_state:
                raise self._conflict(srv, what)
        with self.db.read() as s:
            srv = self.svc.servers.load(s, ctx, server_id, action)
            check(srv)
        # Nova carries the base image's properties over to the snapshot; not the image
        # service's own bookkeeping (pocketstack_*) or the description.
        props = {k: v for k, v in (srv.image or {}).get("properties", {}).items()
                 if isinstance(v, str) and not k.startswith("pocketstack") and k != "description"}
        props.update({"image_type": "backup" if backup else "snapshot", "instance_uuid": srv.id,
                      "base_image_ref": srv.image_id, "user_id": ctx.user_id or "",
                      **{str(k): str(v) for k, v in meta.items()}})
        if backup:
            props["backup_type"] = arg["backup_type"]
        image = images.create_image_placeholder(
            ctx, name=arg["name"], disk_format=(srv.image or {}).get("disk_format") or "raw",
            container_format=(srv.image or {}).get("container_format") or "bare",
            properties=props)
        try:
            with self.db.write() as s:
                srv = self.svc.servers.load(s, ctx, server_id, action)
                check(srv)
                srv.task_state = "image_backup" if backup else "image_snapshot"
                actions.record(s, srv, what, ctx)
                self.svc.queue.enqueue(s, "snapshot", srv.id, {
                    "action": what, "image_id": image["id"], "backup_type": arg.get("backup_type"),
                    "rotation": rotation})
        except BaseException:
            from pocketstack.services.image import images as image_api

            image_api.remove(images, RequestContext.internal(), image["id"])
            raise
        self.svc.queue.kick()
        return image["id"]
