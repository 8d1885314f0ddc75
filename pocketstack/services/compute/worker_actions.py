"""The worker's power and rebuild/resize handlers (a mixin of worker.Worker): stop, start,
reboot, pause, suspend and their reverses; rebuild; resize, confirm, revert."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.compute.base import PAUSED, RUNNING, SHUTDOWN, SUSPENDED
from pocketstack.scheduler.manager import NoValidHost
from pocketstack.services.compute import actions
from pocketstack.services.compute.admin_apis import set_migration_status
from pocketstack.services.compute.models import Allocation, Server
from pocketstack.workers.queue import Task

log = logging.getLogger("pocketstack.compute.worker")


def fault(code: int, message: str, details: str = "") -> dict[str, Any]:
    """A server's fault record (worker.fault: every handler uses this one)."""
    from pocketstack.db.base import isotime

    return {"code": code, "message": message[:255], "details": details[-4000:],
            "created": isotime(utcnow())}


class PowerResizeMixin:
    """Needs the Worker's db, driver, svc, _load, _set, _error, spec_for, _image_path."""

    # -- power --------------------------------------------------------------------------------
    def _power(self, op: str):  # noqa: ANN202
        events = {"stop": "compute_stop_instance", "start": "compute_start_instance",
                  "reboot": "compute_reboot_instance", "pause": "compute_pause_instance",
                  "unpause": "compute_unpause_instance", "suspend": "compute_suspend_instance",
                  "resume": "compute_resume_instance"}

        def handler(task: Task) -> None:
            srv = self._load(task.resource_id)
            if srv is None or not srv.host:
                return
            host = srv.host
            action = task.payload.get("action", op)
            try:
                with actions.event(self.db, srv.id, action, events[op], host):
                    if op == "stop":
                        self.driver.power_off(host, srv.id)
                        final = dict(vm_state="stopped", power_state=SHUTDOWN)
                    elif op == "start":
                        self.driver.power_on(self.spec_for(srv, image_path=self._image_path(srv)))
                        final = dict(vm_state="active", power_state=RUNNING)
                    elif op == "reboot":
                        self.driver.reboot(self.spec_for(srv, image_path=self._image_path(srv)),
                                           hard=bool(task.payload.get("hard")))
                        final = dict(vm_state="active", power_state=RUNNING)
                    elif op == "pause":
                        self.driver.pause(host, srv.id)
                        final = dict(vm_state="paused", power_state=PAUSED)
                    elif op == "unpause":
                        self.driver.unpause(host, srv.id)
                        final = dict(vm_state="active", power_state=RUNNING)
                    elif op == "suspend":
                        self.driver.suspend(host, srv.id)
                        final = dict(vm_state="suspended", power_state=SUSPENDED)
                    else:
                        self.driver.resume(host, srv.id)
                        final = dict(vm_state="active", power_state=RUNNING)
                    if op in ("start", "reboot"):
                        self._replug(srv)
            except Exception as exc:  # noqa: BLE001
                # Nova leaves the server in its state and records the error on the action.
                self._set(srv.id, task_state=None,
                          power_state=self.driver.get_power_state(host, srv.id))
                log.warning("%s of %s failed: %s", op, srv.id, exc)
                return
            self._set(srv.id, task_state=None, **final)
        return handler

    def _replug(self, srv: Server) -> None:
        """A restarted container has a new network namespace: plug its ports again."""
        net = self.svc.cloud.services.get("network")
        if net is None or not self.driver.capabilities.real_processes:
            return
        pid = self.driver.netns_pid(srv.host or "", srv.id)
        ports_api = getattr(net, "ports", None)
        if pid is None or ports_api is None:
            return
        from starlette.datastructures import QueryParams

        ports = ports_api.list(RequestContext.internal(), QueryParams({"device_id": srv.id}),
                               "")["ports"]
        # no unplug first: plug_vif replaces a veth into the old namespace itself, and
        # the port keeps its interface name (eth1 stays eth1)
        for port in ports:
            net.plug_vif(port["id"], pid)

    # -- rebuild / resize ------------------------------------------------------------------
    def rebuild(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or not srv.host:
            return
        was_stopped = task.payload.get("was_stopped", False)
        try:
            with actions.event(self.db, srv.id, "rebuild", "compute_rebuild_instance", srv.host):
                self._set(srv.id, task_state="rebuild_spawning")
                from pocketstack.services.compute import config_drives

                config_drives.prepare(self.svc, srv, rebuild=True)  # Nova rebuilds it too
                self.driver.rebuild(self.spec_for(srv, image_path=self._image_path(srv)))
                if was_stopped:
                    self.driver.power_off(srv.host, srv.id)
                self._replug(srv)
        except Exception as exc:  # noqa: BLE001
            self._error(srv.id, fault(500, f"Rebuild of instance {srv.id} failed: {exc}"[:255],
                                      traceback.format_exc()))
            return
        self._set(srv.id, task_state=None, vm_state="stopped" if was_stopped else "active",
                  power_state=SHUTDOWN if was_stopped else RUNNING, launched_at=utcnow())

    def resize(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or not srv.host:
            return
        new = srv.flavor or {}
        old = srv.old_flavor or {}
        try:
            with actions.event(self.db, srv.id, "resize", "compute_resize_instance", srv.host):
                with self.db.write() as s:
                    alloc = s.execute(select(Allocation).where(
                        Allocation.server_id == srv.id)).scalar()
                    want = (max(new.get("vcpus", 0), old.get("vcpus", 0)),
                            max(new.get("ram", 0), old.get("ram", 0)),
                            max(srv.root_gb, alloc.disk_gb if alloc else 0))
                    if alloc is not None and (alloc.vcpus, alloc.memory_mb, alloc.disk_gb) != want:
                        if not self.svc.adjust_allocation(s, srv.id, *want, check=True):
                            raise NoValidHost(f"Host {srv.host} has no room for flavor "
                                              f"{new.get('name')} ({new.get('vcpus')} vCPUs, "
                                              f"{new.get('ram')} MB RAM).")
                self._set(srv.id, task_state="resize_finish")
                set_migration_status(self.db, srv.id, "migrating", ("pre-migrating",))
                self.driver.resize(self.spec_for(srv, flavor=new))
        except Exception as exc:  # noqa: BLE001
            # Undo: back to the old flavor, still running; the action shows the error.
            set_migration_status(self.db, srv.id, "error", ("pre-migrating", "migrating"))
            self._restore_flavor(srv, old)
            self._set(srv.id, task_state=None, fault=fault(500, str(exc)[:255],
                                                           traceback.format_exc()))
            self.svc.scheduler.refresh()
            return
        set_migration_status(self.db, srv.id, "finished", ("pre-migrating", "migrating"))
        self._set(srv.id, vm_state="resized", task_state=None)
        self.svc.scheduler.refresh()

    def _restore_flavor(self, srv: Server, old: dict) -> None:
        if not old:
            return
        with self.db.write() as s:
            row = s.get(Server, srv.id)
            row.flavor, row.flavor_id = {k: v for k, v in old.items() if k != "_power"}, old["id"]
            row.vcpus, row.memory_mb, row.root_gb = old["vcpus"], old["ram"], old.get(
                "_root_gb", row.root_gb)
            row.old_flavor = None
            self.svc.adjust_allocation(s, srv.id, old["vcpus"], old["ram"], row.root_gb,
                                       check=False)

    def confirm_resize(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None:
            return
        was_stopped = (srv.old_flavor or {}).get("_power") == SHUTDOWN
        with actions.event(self.db, srv.id, "confirmResize", "compute_confirm_resize", srv.host):
            with self.db.write() as s:
                row = s.get(Server, srv.id)
                self.svc.adjust_allocation(s, srv.id, row.vcpus, row.memory_mb, row.root_gb,
                                           check=False)
                row.old_flavor = None
                row.vm_state = "stopped" if was_stopped else "active"
                row.task_state = None
        set_migration_status(self.db, srv.id, "confirmed", ("finished",))
        self.svc.scheduler.refresh()

    def revert_resize(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None:
            return
        old = srv.old_flavor or {}
        with actions.event(self.db, srv.id, "revertResize", "compute_revert_resize", srv.host):
            set_migration_status(self.db, srv.id, "reverting", ("finished",))
            self.driver.resize(self.spec_for(srv, flavor=old))
            self._restore_flavor(srv, old)
        set_migration_status(self.db, srv.id, "reverted", ("reverting",))
        was_stopped = old.get("_power") == SHUTDOWN
        self._set(srv.id, vm_state="stopped" if was_stopped else "active", task_state=None)
        self.svc.scheduler.refresh()
