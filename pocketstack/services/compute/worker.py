"""Task handlers: they drive the compute driver until the server matches what the API
recorded, and record a fault with the real reason when it cannot.

Every handler is idempotent: after kill -9 the queue runs it again with attempts > 0.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import NotFound, PocketError
from pocketstack.drivers.compute.base import RUNNING, SHUTDOWN, InstanceSpec
from pocketstack.scheduler.host_state import RequestSpec
from pocketstack.scheduler.manager import NoValidHost
from pocketstack.services.compute import actions, config_drives, snapshots
from pocketstack.services.compute.models import Allocation, Host, PciDevice, Server
from pocketstack.services.compute.server_rescue import RescueMixin
from pocketstack.services.compute.server_validation import guest_hostname
from pocketstack.services.compute.service import _ClaimRace
from pocketstack.services.compute.worker_actions import PowerResizeMixin, fault
from pocketstack.services.compute.worker_shelve import ShelveMixin
from pocketstack.workers.queue import Task

log = logging.getLogger("pocketstack.compute.worker")


class Worker(PowerResizeMixin, ShelveMixin, RescueMixin):
    def __init__(self, svc: Any) -> None:
        self.svc = svc
        self.db = svc.db
        self.driver = svc.driver
        self.handlers = {
            "build": self.build, "delete": self.delete,
            "stop": self._power("stop"), "start": self._power("start"),
            "reboot": self._power("reboot"), "pause": self._power("pause"),
            "unpause": self._power("unpause"), "suspend": self._power("suspend"),
            "resume": self._power("resume"), "rebuild": self.rebuild, "resize": self.resize,
            "confirm_resize": self.confirm_resize, "revert_resize": self.revert_resize,
            "snapshot": lambda task: snapshots.run(self, task),
            "shelve": self.shelve, "shelve_offload": self.shelve_offload,
            "unshelve": self.unshelve, "rescue": self.rescue, "unrescue": self.unrescue,
        }

    # -- helpers ----------------------------------------------------------------------------
    def _load(self, server_id: str) -> Server | None:
        with self.db.read() as s:
            srv = s.get(Server, server_id)
        return None if srv is None or srv.deleted else srv

    def _set(self, server_id: str, **values: Any) -> None:
        with self.db.write() as s:
            srv = s.get(Server, server_id)
            if srv is None:
                return
            for k, v in values.items():
                setattr(srv, k, v)
            srv.updated_at = utcnow()

    def _ctx(self, srv: Server) -> RequestContext:
        return RequestContext(user_id=srv.user_id, project_id=srv.project_id, is_internal=True,
                              roles=frozenset({"admin"}))

    def spec_for(self, srv: Server, flavor: dict | None = None, image_path=None,  # noqa: ANN001
                 network_info: list | None = None) -> InstanceSpec:
        fl = flavor or srv.flavor or {}
        with self.db.read() as s:
            pci = list(s.execute(select(PciDevice.address).where(
                PciDevice.server_id == srv.id)).scalars())
        user_data = None
        if srv.user_data:
            import base64

            user_data = base64.b64decode(srv.user_data)
        image = srv.image or {}
        props = dict(image.get("properties") or {})
        kernel = ramdisk = None
        if network_info is None:  # power on, reboot, rebuild...: the ports it has now
            net = self.svc.cloud.services.get("network")
            network_info = net.server_ports(srv.id) if net is not None else []
        if image_path is not None:  # a VM image may boot through its kernel/ramdisk images
            kernel, ramdisk = (self._boot_file(srv, props.get(k), k)
                               for k in ("kernel_id", "ramdisk_id"))
        return InstanceSpec(
            id=srv.id, name=srv.name, hostname=guest_hostname(srv.hostname),
            host=srv.host or "",
            vcpus=int(fl.get("vcpus", srv.vcpus)), memory_mb=int(fl.get("ram", srv.memory_mb)),
            root_gb=int(fl.get("disk", srv.root_gb)), image_id=srv.image_id,
            image_path=image_path, image_properties=props,
            disk_format=image.get("disk_format") or "",
            container_format=image.get("container_format") or "",
            kernel_path=kernel, ramdisk_path=ramdisk,
            user_data=user_data, metadata=dict(srv.metadata_ or {}), key_data=srv.key_data,
            network_info=network_info, pci_devices=pci,
            config_drive=config_drives.prepare(self.svc, srv, rebuild=False))

    def _boot_file(self, srv: Server, image_id: str | None, prop: str):  # noqa: ANN202
        """The file of the image an image's kernel_id/ramdisk_id names. Whoever owns an
        image may write any id there, so the named image must be one the server's project
        may use (Nova fetches it with the user's token) or have the same owner as the
        image naming it; else another project's private kernel or ramdisk would be loaded
        into this guest's memory."""
        images = self.svc.cloud.services.get("image")
        if not image_id or images is None:
            return None
        member = RequestContext(user_id=srv.user_id, project_id=srv.project_id,
                                roles=frozenset({"member", "reader"}))
        try:
            images.get_image(member, image_id)
        except NotFound:
            try:
                owners = {images.get_image(self._ctx(srv), i).get("owner")
                          for i in (image_id, srv.image_id)}
            except NotFound:
                owners = {None}
            if len(owners) != 1 or None in owners:
                raise NotFound(f"Image {image_id} (the {prop} of image {srv.image_id}) could "
                               "not be found.") from None
        return images.image_path(image_id)

    def _image_path(self, srv: Server):  # noqa: ANN202
        if not self.driver.capabilities.needs_image_file:
            return None
        images = self.svc.cloud.services.get("image")
        if images is None:
            raise RuntimeError(f"Image {srv.image_id} could not be found (no image service).")
        return images.image_path(srv.image_id)

    def request_spec(self, srv: Server, tried: set[str]) -> RequestSpec:
        fl = srv.flavor or {}
        hints = srv.scheduler_hints or {}
        spec = RequestSpec(
            vcpus=srv.vcpus, memory_mb=srv.memory_mb, disk_gb=srv.root_gb,
            extra_specs=dict(fl.get("extra_specs") or {}),
            image_properties=dict((srv.image or {}).get("properties") or {}),
            availability_zone=srv.requested_az, same_host=list(hints.get("same_host") or []),
            different_host=list(hints.get("different_host") or []), ignore_hosts=set(tried),
            pci_requests=self.svc.pci_requests(fl.get("extra_specs") or {}),
            force_host=hints.get("force_host"))
        if srv.group_id:
            self._fill_group(spec, srv)
        return spec

    def _fill_group(self, spec: RequestSpec, srv: Server) -> None:
        from pocketstack.services.compute.models import ServerGroup

        with self.db.read() as s:
            g = s.get(ServerGroup, srv.group_id)
            hosts = list(s.execute(select(Server.host).where(
                Server.group_id == srv.group_id, Server.deleted.is_(False),
                Server.host.is_not(None), Server.id != srv.id)).scalars())
        if g is not None:
            spec.group_policy, spec.group_rules, spec.group_hosts = g.policy, dict(g.rules or {}), hosts

    # -- build ------------------------------------------------------------------------------
    def build(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or srv.vm_state != "building":
            return
        if task.attempts and srv.host:
            # A restart interrupted this build after the claim: adopt or start over.
            if (srv.id in self.driver.list_instances(srv.host) and
                    self.driver.get_power_state(srv.host, srv.id) == RUNNING):
                self._set(srv.id, vm_state="active", task_state=None, power_state=RUNNING,
                          launched_at=srv.launched_at or utcnow())
                return
            self._cleanup(srv)
            srv = self._load(srv.id)
            if srv is None:
                return
        tried: set[str] = set()
        last_error = ""
        for attempt in range(self.svc.conf.max_attempts):
            started = utcnow()
            try:
                host = self._schedule_and_claim(srv, tried, started)
            except NoValidHost as exc:
                msg = str(exc) if not last_error else f"{exc} Last build error: {last_error}"
                tb = traceback.format_exc()
                with self.db.write() as s:
                    actions.add_event(s, srv.id, "create", "conductor_schedule_and_build_instances",
                                      None, started, "Error", tb, msg[:255])
                    row = s.get(Server, srv.id)
                    if row is not None and not row.deleted:
                        row.vm_state, row.task_state = "error", None
                        row.fault = fault(500, msg[:255], msg + "\n" + tb)
                        row.updated_at = utcnow()
                return
            srv = self._load(srv.id)
            if srv is None:  # deleted while scheduling; the delete task cleans up
                return
            try:
                return self._spawn(srv, task)
            except Exception as exc:  # noqa: BLE001 - becomes the server's fault
                log.warning("build of %s on %s failed: %s", srv.id, host, exc)
                last_error = str(exc) or type(exc).__name__
                tb = traceback.format_exc()
                with self.db.write() as s:
                    actions.finish_event(s, srv.id, "create", "compute__do_build_and_run_instance",
                                         "Error", tb, last_error[:255])
                self._cleanup(srv)
                tried.add(host)
                if attempt + 1 >= self.svc.conf.max_attempts:
                    self._error(srv.id, fault(500, f"Build of instance {srv.id} failed: "
                                                   f"{last_error}"[:255], tb))
                    return
                srv = self._load(srv.id)
                if srv is None:
                    return
                continue
            return

    def _schedule_and_claim(self, srv: Server, tried: set[str], started=None,  # noqa: ANN001
                            action: str = "create", force_host: str | None = None) -> str:
        """Pick a host and claim it. ``action`` "create" records the build's events and
        moves on to networking/spawning; another (unshelve) only claims."""
        for _ in range(8):
            spec = self.request_spec(srv, tried)
            if force_host:
                spec.force_host = force_host
            (hs, take), = self.svc.scheduler.select_destinations(spec, 1, [srv.id])
            ok = False
            try:
                with self.db.write() as s:
                    row = s.get(Server, srv.id)
                    if row is None or row.deleted or row.task_state == "deleting":
                        ok = True  # nothing to place; the caller notices
                        hs_name = hs.host
                        self.svc.scheduler.release_server(hs.host, srv.id, spec.vcpus,
                                                          spec.memory_mb, spec.disk_gb, take)
                        return hs_name
                    if row.group_id and not self._group_allows(s, row, hs.host):
                        raise _ClaimRace()
                    if self.svc.claim(s, row, hs.id, take):
                        row.host, row.node = hs.host, hs.nodename
                        if not row.requested_az:
                            row.availability_zone = hs.availability_zone
                        row.updated_at = utcnow()
                        ok = True
                        if action == "create":
                            actions.add_event(s, row.id, "create",
                                              "conductor_schedule_and_build_instances", None,
                                              started or utcnow(), "Success")
                            actions.add_event(s, row.id, "create",
                                              "compute__do_build_and_run_instance", hs.host,
                                              utcnow())
                            # No port to plug: straight to spawning (saves a write per boot).
                            row.task_state = (
                                "spawning" if row.requested_networks == "none" or
                                "network" not in self.svc.cloud.services else "networking")
            except _ClaimRace:
                ok = False
            if ok:
                return hs.host
            self.svc.scheduler.release_server(hs.host, srv.id, spec.vcpus, spec.memory_mb,
                                              spec.disk_gb, take)
            self.svc.scheduler.refresh()
        raise NoValidHost("Hosts kept changing under concurrent claims; try again.")

    def _group_allows(self, s, row: Server, host: str) -> bool:  # noqa: ANN001
        from pocketstack.services.compute.models import ServerGroup

        self.svc.groups_api.lock_group(s, row.group_id)
        g = s.get(ServerGroup, row.group_id)
        if g is None:
            return True
        hosts = list(s.execute(select(Server.host).where(
            Server.group_id == g.id, Server.deleted.is_(False), Server.host.is_not(None),
            Server.id != row.id)).scalars())
        if g.policy == "anti-affinity":
            return hosts.count(host) < int((g.rules or {}).get("max_server_per_host", 1))
        if g.policy == "affinity":
            return not hosts or host in hosts
        return True

    def _spawn(self, srv: Server, task: Task | None = None) -> bool:
        """Ports, disk, driver; True when the task was completed in the final write."""
        net = self.svc.cloud.services.get("network")
        ports: list = []
        if net is not None and srv.requested_networks != "none":
            requested = srv.requested_networks
            try:
                ports = net.allocate_for_server(self._ctx(srv), srv.id,
                                                "auto" if requested == "legacy" else requested,
                                                list(srv.security_groups or []), srv.host)
            except PocketError as exc:
                # Pre-2.37 requests without networks boot without a port when the project
                # has no network (Nova did); anything else is a real failure.
                if requested != "legacy" or "Unable to automatically allocate" not in exc.message:
                    raise
                ports = []
            if isinstance(requested, list):  # device tags of the requested NICs (2.32+)
                from pocketstack.services.compute import interfaces

                interfaces.remember_tags(self.svc, srv.id, {
                    port["id"]: req["tag"] for req, port in zip(requested, ports)
                    if req.get("tag")})
            with self.db.write() as s:
                row = s.get(Server, srv.id)
                if row is not None:
                    row.task_state, row.updated_at = "spawning", utcnow()
        from pocketstack.services.compute import volume_attachments

        volume_attachments.prepare_boot_volumes(self.svc, srv)  # boot from volume
        config_drives.prepare(self.svc, srv, rebuild=True)  # with the ports it has now
        spec = self.spec_for(srv, image_path=self._image_path(srv), network_info=ports)
        self.driver.spawn(spec)
        self._plug(srv, ports)
        volume_attachments.attach_boot_volumes(self.svc, srv)
        with self.db.write() as s:
            row = s.get(Server, srv.id)
            if row is None or row.deleted:
                return False
            row.vm_state, row.task_state, row.power_state = "active", None, RUNNING
            row.launched_at, row.progress, row.updated_at = utcnow(), 100, utcnow()
            row.fault = None
            actions.finish_event(s, srv.id, "create", "compute__do_build_and_run_instance",
                                 "Success")
            if task is not None:
                self.svc.queue.complete(s, task)
        return task is not None

    def _plug(self, srv: Server, ports: list) -> None:
        net = self.svc.cloud.services.get("network")
        if net is None or not ports:
            return
        pid = self.driver.netns_pid(srv.host or "", srv.id)
        if pid is None:
            return
        for port in ports:
            net.plug_vif(port["id"], pid)

    def _cleanup(self, srv: Server) -> None:
        """Undo a (partial) build: driver, ports, claim."""
        if srv.host:
            try:
                self.driver.destroy(srv.host, srv.id)
            except Exception:  # noqa: BLE001
                log.exception("destroy of %s failed during cleanup", srv.id)
        self._deallocate_network(srv)
        self._release(srv)
        self._set(srv.id, host=None, node=None, task_state="scheduling")

    def _deallocate_network(self, srv: Server) -> None:
        net = self.svc.cloud.services.get("network")
        if net is None:
            return
        try:
            net.deallocate_for_server(self._ctx(srv), srv.id)
        except Exception:  # noqa: BLE001
            log.exception("deallocating ports of %s failed", srv.id)

    def _release(self, srv: Server) -> None:
        with self.db.write() as s:
            pci = {}
            for vendor, product in s.execute(select(PciDevice.vendor_id, PciDevice.product_id)
                                             .where(PciDevice.server_id == srv.id)).all():
                pci[(vendor, product)] = pci.get((vendor, product), 0) + 1
            alloc = s.execute(select(Allocation).where(Allocation.server_id == srv.id)).scalar()
            host = s.get(Host, alloc.host_id).host if alloc else None
            amounts = (alloc.vcpus, alloc.memory_mb, alloc.disk_gb) if alloc else None
            self.svc.release(s, srv.id)
        if amounts:
            self.svc.scheduler.release_server(host, srv.id, *amounts, pci)

    def _error(self, server_id: str, f: dict[str, Any]) -> None:
        self._set(server_id, vm_state="error", task_state=None, fault=f)

    # -- delete -----------------------------------------------------------------------------
    def delete(self, task: Task) -> None:
        with self.db.read() as s:
            srv = s.get(Server, task.resource_id)
        if srv is None or srv.deleted:
            return
        with actions.event(self.db, srv.id, "delete", "compute_terminate_instance", srv.host):
            if srv.host:
                self.driver.destroy(srv.host, srv.id)
            from pocketstack.services.compute import volume_attachments

            volume_attachments.server_deleted(self.svc, srv.id)  # detach; delete_on_termination
            self._deallocate_network(srv)
            self._release(srv)
            config_drives.remove(self.svc, srv.id)
            # a shelved server's snapshot goes with it (nova/compute/api.py _delete)
            from pocketstack.services.compute.worker_shelve import shelve_info

            self._drop_image(shelve_info(srv).get("shelved_image_id"))
            now = utcnow()
            self._set(srv.id, deleted=True, deleted_at=now, terminated_at=now,
                      vm_state="deleted", task_state=None, power_state=0)

    # -- restart ------------------------------------------------------------------------------
    def reconcile(self) -> None:
        """At start: re-adopt servers the driver still runs, repair what a crash left."""
        local = self.svc.local_hosts
        with self.db.read() as s:
            servers = list(s.execute(select(Server).where(Server.deleted.is_(False),
                                                          Server.host.in_(local))).scalars())
            pending = set(s.execute(select(self.svc.queue.model.resource_id).where(
                self.svc.queue.model.state.in_(("pending", "running")))).scalars())
        by_host: dict[str, set[str]] = {}
        for host in local:
            try:
                by_host[host] = set(self.driver.list_instances(host))
            except Exception:  # noqa: BLE001
                log.exception("listing instances on %s failed", host)
                by_host[host] = set()
        known = {srv.id for srv in servers}
        for srv in servers:
            if srv.id in pending or srv.vm_state == "building":
                continue  # its task will resume it
            present = srv.id in by_host.get(srv.host or "", set())
            if not present and not self.driver.capabilities.instances_survive_restart:
                # A simulated server: recreate it as it was.
                try:
                    self.driver.spawn(self.spec_for(srv))
                    if srv.vm_state in ("stopped", "shelved"):
                        self.driver.power_off(srv.host, srv.id)
                    elif srv.vm_state == "paused":
                        self.driver.pause(srv.host, srv.id)
                    elif srv.vm_state == "suspended":
                        self.driver.suspend(srv.host, srv.id)
                except Exception:  # noqa: BLE001
                    log.exception("re-creating simulated server %s failed", srv.id)
                continue
            if not present:
                if srv.vm_state != "error":
                    self._error(srv.id, fault(500, "The server's disk was lost while the compute "
                                                   "service was down."))
                continue
            power = self.driver.get_power_state(srv.host, srv.id)
            updates: dict[str, Any] = {}
            if srv.task_state not in (None, "deleting"):
                updates["task_state"] = None
            if power == SHUTDOWN and srv.vm_state in ("active", "paused", "suspended"):
                updates.update(vm_state="stopped", power_state=SHUTDOWN)  # it died meanwhile
            elif power != srv.power_state:
                updates["power_state"] = power
            if updates:
                self._set(srv.id, **updates)
        # Orphans: processes of servers that no longer exist here.
        for host, ids in by_host.items():
            for sid in ids - known:
                with self.db.read() as s:
                    row = s.get(Server, sid)
                if row is not None and not row.deleted and (row.vm_state == "building" or sid in pending):
                    continue
                log.warning("removing orphaned server %s from %s", sid, host)
                try:
                    self.driver.destroy(host, sid)
                except Exception:  # noqa: BLE001
                    log.exception("removing orphan %s failed", sid)
        # Allocations of deleted servers, and host counters, from the source of truth.
        with self.db.write() as s:
            live = select(Server.id).where(Server.deleted.is_(False))
            for alloc in s.execute(select(Allocation).where(Allocation.server_id.not_in(live))).scalars():
                s.delete(alloc)
            s.execute(PciDevice.__table__.update().where(
                PciDevice.server_id.is_not(None), PciDevice.server_id.not_in(live))
                .values(server_id=None))
            s.flush()
            self.svc.recount_hosts(s)
