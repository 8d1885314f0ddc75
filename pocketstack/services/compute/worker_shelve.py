"""The worker's shelve, shelve-offload and unshelve handlers (a mixin of worker.Worker).

Nova keeps a shelved server's bookkeeping (shelved_at, shelved_image_id, shelved_host) in
its system_metadata, next to the image_* properties of the image it booted from; ours live
in the same place: ``Server.image["shelve"]``, beside the boot image's properties (nothing
renders that key). States follow nova/compute/manager.py:

  shelve:    task shelving -> shelving_image_pending_upload -> shelving_image_uploading
             -> vm shelved (power off, snapshot kept as <name>-shelved)
  offload:   task shelving_offloading -> vm shelved_offloaded (driver instance gone,
             host/node cleared, allocation freed; ports and volumes stay the server's)
  unshelve:  task unshelving -> spawning -> vm active; the snapshot image is deleted.

Every handler is idempotent (the queue runs it again after kill -9): a snapshot already
uploaded is not taken again, a destroyed instance destroys again as a no-op, an unshelve
interrupted after its claim starts over from the claim.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import Path
from typing import Any

from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.drivers.compute.base import NOSTATE, RUNNING, SHUTDOWN
from pocketstack.scheduler.manager import NoValidHost
from pocketstack.services.compute import actions
from pocketstack.services.compute.models import Server
from pocketstack.services.compute.worker_actions import fault
from pocketstack.workers.queue import Task

log = logging.getLogger("pocketstack.compute.worker")

SHELVING = ("shelving", "shelving_image_pending_upload", "shelving_image_uploading")


def shelve_info(srv: Server) -> dict[str, Any]:
    return dict((srv.image or {}).get("shelve") or {})


def _parse_time(text: str):  # noqa: ANN202
    """shelved_at (isotime) as utcnow() gives times: naive UTC."""
    import datetime as dt

    t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t


class ShelveMixin:
    """Needs the Worker's db, driver, svc, _load, _set, spec_for, _release, _plug,
    _schedule_and_claim."""

    def _set_shelve_info(self, server_id: str, info: dict[str, Any] | None) -> None:
        with self.db.write() as s:
            row = s.get(Server, server_id)
            if row is None:
                return
            image = dict(row.image or {})
            if info is None:
                image.pop("shelve", None)
            else:
                image["shelve"] = info
            row.image = image  # a new dict: the JSON column sees the change

    def _images(self) -> Any:
        return self.svc.cloud.services.get("image")

    def _drop_image(self, image_id: str | None) -> None:
        images = self._images()
        if not image_id or images is None:
            return
        from pocketstack.services.image import images as image_api

        try:
            image_api.remove(images, RequestContext.internal(), image_id)
        except Exception:  # noqa: BLE001 - gone already (or deleted by its owner)
            log.info("shelved image %s already gone", image_id)

    # -- shelve ---------------------------------------------------------------------------
    def shelve(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or srv.task_state not in SHELVING:
            return
        image_id = task.payload.get("image_id")
        was = task.payload.get("vm_state", "active")
        try:
            with actions.event(self.db, srv.id, "shelve", "compute_shelve_instance", srv.host):
                if srv.host and srv.id in self.driver.list_instances(srv.host):
                    self.driver.power_off(srv.host, srv.id)
                if image_id:
                    self._upload_shelved(srv, image_id)
        except Exception as exc:  # noqa: BLE001
            # Nothing half-done: the snapshot image goes, the server is as it was.
            log.warning("shelve of %s failed: %s", srv.id, exc)
            self._drop_image(image_id)
            try:
                if was == "active" and srv.host:
                    self.driver.power_on(self.spec_for(srv, image_path=self._image_path(srv)))
            except Exception:  # noqa: BLE001
                log.exception("powering %s on again after a failed shelve failed", srv.id)
            self._set(srv.id, task_state=None, power_state=self.driver.get_power_state(
                srv.host or "", srv.id), fault=fault(500, f"Shelve of instance {srv.id} "
                                                          f"failed: {exc}",
                                                     traceback.format_exc()))
            return
        self._set_shelve_info(srv.id, {"shelved_at": isotime(utcnow()),
                                       "shelved_image_id": image_id,
                                       "shelved_host": srv.host})
        self._set(srv.id, vm_state="shelved", task_state=None, power_state=SHUTDOWN)
        offload_time = int(self.svc.conf.shelved_offload_time)
        if offload_time == 0:
            # [DEFAULT] shelved_offload_time = 0: offloaded at once, in the same action.
            self._set(srv.id, task_state="shelving_offloading")
            self._offload(srv.id, "shelve")
        # offload_time > 0: offload_due() (the service's periodic task) offloads it later.

    def offload_due(self) -> None:
        """Nova's _poll_shelved_instances: servers shelved on this machine's hosts for
        longer than shelved_offload_time (> 0) are offloaded."""
        from sqlalchemy import select

        offload_time = int(self.svc.conf.shelved_offload_time)
        if offload_time <= 0 or not self.svc.local_hosts:
            return
        with self.db.read() as s:
            rows = list(s.execute(select(Server).where(
                Server.deleted.is_(False), Server.vm_state == "shelved",
                Server.task_state.is_(None), Server.host.in_(self.svc.local_hosts))).scalars())
        now = utcnow()
        due = [r.id for r in rows if shelve_info(r).get("shelved_at") and (
            now - _parse_time(shelve_info(r)["shelved_at"])).total_seconds() >= offload_time]
        for server_id in due:
            with self.db.write() as s:
                row = s.get(Server, server_id)
                if row is None or row.vm_state != "shelved" or row.task_state is not None:
                    continue
                row.task_state = "shelving_offloading"
                self.svc.queue.enqueue(s, "shelve_offload", row.id, {"action": "shelve"})
        if due:
            self.svc.queue.kick()

    def _upload_shelved(self, srv: Server, image_id: str) -> None:
        images = self._images()
        internal = RequestContext.internal()
        info = images.get_image(internal, image_id)
        if info.get("status") == "active":  # uploaded before a restart cut the task short
            return
        self._set(srv.id, task_state="shelving_image_pending_upload")
        target = (Path(self.svc.settings.data_dir) / "compute" / "snapshots" /
                  f"{image_id}.img")
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._set(srv.id, task_state="shelving_image_uploading")
            self.driver.snapshot(srv.host, srv.id, target)
            images.create_image_from_file(
                internal, target, name=info["name"], disk_format=info["disk_format"],
                container_format=info["container_format"], image_id=image_id)
        finally:
            if target.exists():
                os.unlink(target)

    # -- offload --------------------------------------------------------------------------
    def shelve_offload(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None:
            return
        if srv.task_state != "shelving_offloading":
            return
        self._offload(srv.id, task.payload.get("action", "shelveOffload"))

    def _offload(self, server_id: str, action: str) -> None:
        srv = self._load(server_id)
        if srv is None:
            return
        try:
            with actions.event(self.db, srv.id, action, "compute_shelve_offload_instance",
                               srv.host):
                if srv.host:
                    self.driver.destroy(srv.host, srv.id)  # the disk goes; the image has it
                from pocketstack.services.compute import config_drives

                config_drives.remove(self.svc, srv.id)  # local files go with the host
                self._release(srv)
                self._set(srv.id, vm_state="shelved_offloaded", task_state=None, host=None,
                          node=None, power_state=NOSTATE)
        except Exception as exc:  # noqa: BLE001 - stays SHELVED (or as it was), no task left
            log.warning("offload of %s failed: %s", srv.id, exc)
            self._set(srv.id, task_state=None)
        self.svc.scheduler.refresh()

    # -- unshelve -------------------------------------------------------------------------
    def unshelve(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or srv.task_state not in ("unshelving", "spawning", "powering-on"):
            return
        if srv.vm_state == "shelved":
            # Not offloaded: Nova's conductor only starts it again (start_instance).
            self._set(srv.id, task_state="powering-on")
            try:
                with actions.event(self.db, srv.id, "unshelve", "compute_start_instance",
                                   srv.host):
                    self.driver.power_on(self.spec_for(srv, image_path=self._image_path(srv)))
                    self._replug(srv)
            except Exception as exc:  # noqa: BLE001 - still SHELVED; the action has why
                log.warning("unshelve (start) of %s failed: %s", srv.id, exc)
                self._set(srv.id, task_state=None)
                return
            self._drop_image(shelve_info(srv).get("shelved_image_id"))
            self._set_shelve_info(srv.id, None)
            self._set(srv.id, vm_state="active", task_state=None, power_state=RUNNING)
            return
        if task.attempts and srv.host:
            # A restart cut a previous attempt short after its claim: start over.
            self._undo_unshelve(srv)
            srv = self._load(srv.id)
            if srv is None:
                return
        payload = task.payload
        with self.db.write() as s:
            row = s.get(Server, srv.id)
            if payload.get("availability_zone") is not None:
                row.requested_az = payload["availability_zone"]
            elif payload.get("unpin_az"):
                row.requested_az = None
        srv = self._load(srv.id)
        try:
            # Nova's events: the conductor's scheduling, then the compute host's spawn
            with actions.event(self.db, srv.id, "unshelve", "schedule_instances", None):
                self._schedule_and_claim(srv, set(), action="unshelve",
                                         force_host=payload.get("host"))
            srv = self._load(srv.id)
            if srv is None:
                return
            with actions.event(self.db, srv.id, "unshelve", "compute_unshelve_instance",
                               srv.host):
                self._set(srv.id, task_state="spawning")
                self._spawn_unshelved(srv)
        except Exception as exc:  # noqa: BLE001 - back to SHELVED_OFFLOADED with the reason
            tb = traceback.format_exc()
            msg = str(exc) if isinstance(exc, NoValidHost) else (
                f"Unshelve of instance {srv.id} failed: {exc}")
            log.warning("unshelve of %s failed: %s", srv.id, msg)
            srv = self._load(srv.id)
            if srv is not None:
                self._undo_unshelve(srv)
                self._set(srv.id, vm_state="shelved_offloaded", task_state=None,
                          power_state=NOSTATE, fault=fault(500, msg, msg + "\n" + tb))
            return
        self._drop_image(shelve_info(srv).get("shelved_image_id"))
        self._set_shelve_info(srv.id, None)
        self._set(srv.id, vm_state="active", task_state=None, power_state=RUNNING,
                  launched_at=utcnow(), fault=None)

    def _spawn_unshelved(self, srv: Server) -> None:
        image_id = shelve_info(srv).get("shelved_image_id")
        net = self.svc.cloud.services.get("network")
        ports = net.server_ports(srv.id) if net is not None else []
        if image_id and self.driver.capabilities.needs_image_file:
            image_path = self._images().image_path(image_id)
        else:  # volume-backed: the boot volume is the disk (a container's root file
            image_path = self._image_path(srv)  # system still comes from its image)
        from pocketstack.services.compute import config_drives

        config_drives.prepare(self.svc, srv, rebuild=True)  # a new host: built again
        spec = self.spec_for(srv, image_path=image_path, network_info=ports)
        if image_id:
            spec.image_id = image_id
        self.driver.spawn(spec)
        self._plug(srv, ports)
        self._reattach_volumes(srv)

    def _reattach_volumes(self, srv: Server) -> None:
        """The server's volumes stayed attached (in the volume service) while it was
        offloaded; the new instance gets their devices again, at the same names."""
        vol = self.svc.cloud.services.get("volume")
        if vol is None:
            return
        for att in vol.server_attachments(RequestContext.internal(), srv.id):
            if att["status"] == "attached" and att["device_path"] and att["device"]:
                self.driver.attach_block_device(srv.host, srv.id, att["device_path"],
                                                att["device"])

    def _undo_unshelve(self, srv: Server) -> None:
        if srv.host:
            try:
                self.driver.destroy(srv.host, srv.id)
            except Exception:  # noqa: BLE001
                log.exception("destroy of %s failed while undoing an unshelve", srv.id)
        self._release(srv)
        self._set(srv.id, host=None, node=None)
        self.svc.scheduler.refresh()
