"""POST /servers/{id}/action rescue / unrescue (nova api-ref servers-action-rescue):
state checks, intent, task; the worker's RescueMixin boots the rescue image.

Nova keeps the rescue's bookkeeping in system_metadata; ours sits beside the boot image's
properties, in ``Server.image["rescue"]`` ({"image_id": ...}), like the shelve's."""

from __future__ import annotations

import logging
import traceback
from typing import Any

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.compute.base import RUNNING
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.compute import actions
from pocketstack.services.compute.models import Server
from pocketstack.services.compute.worker_actions import fault
from pocketstack.workers.queue import Task

log = logging.getLogger("pocketstack.compute.worker")

RESCUABLE = ("active", "stopped", "error")  # nova/compute/api.py rescue()


def rescue(acts: Any, ctx: RequestContext, server_id: str, arg: Any, ver: Any) -> str:
    """Returns the adminPass shown in the 200 response."""
    from pocketstack.services.compute.routes_servers import _password
    from pocketstack.services.compute.servers import is_uuid

    if arg is not None and not isinstance(arg, dict):
        raise BadRequest("Invalid input for field/attribute rescue.")
    arg = arg or {}
    extra = set(arg) - {"adminPass", "rescue_image_ref"}
    if extra:
        raise BadRequest("Invalid input for field/attribute rescue. Additional properties are "
                         f"not allowed ({', '.join(repr(e) for e in sorted(extra))} were "
                         "unexpected)")
    password = arg.get("adminPass")
    if password is not None and not isinstance(password, str):
        raise BadRequest("Invalid input for field/attribute adminPass.")
    ref = arg.get("rescue_image_ref")
    if ref is not None:
        if not isinstance(ref, str) or not is_uuid(ref.rstrip("/").rsplit("/", 1)[-1]):
            raise BadRequest("Invalid input for field/attribute rescue_image_ref.")
        ref = ref.rstrip("/").rsplit("/", 1)[-1]

    def mutate(s, srv: Server) -> None:  # noqa: ANN001
        if (not srv.image_id or (srv.image or {}).get("volume_backed")) and \
                not ver.at_least(2, 87):
            raise BadRequest(f"Cannot rescue a volume-backed instance {srv.id}")
    acts._begin(ctx, server_id, "rescue", RESCUABLE, "rescuing", "rescue", "rescue",
                {"rescue_image_ref": ref}, mutate)
    return password or _password()


def unrescue(acts: Any, ctx: RequestContext, server_id: str) -> None:
    acts._begin(ctx, server_id, "unrescue", ("rescued",), "unrescuing", "unrescue", "unrescue")


class RescueMixin:
    """Worker handlers; need the Worker's db, driver, svc, _load, _set, spec_for,
    _image_path, _replug."""

    def _rescue_image(self, srv: Server, image_id: str) -> tuple[Any, dict[str, Any]]:
        """(file or None, image dict) of the rescue image, seen with the server owner's
        rights: another project's private image is "not found", as Nova's image fetch
        with the user's token."""
        images = self.svc.cloud.services.get("image")
        if images is None:
            raise NotFound(f"Image {image_id} could not be found.")
        member = RequestContext(user_id=srv.user_id, project_id=srv.project_id,
                                roles=frozenset({"member", "reader"}))
        image = images.get_image(member, image_id)
        if image.get("status") != "active":
            raise BadRequest(f"Image {image_id} is not active (status {image.get('status')}): "
                             "it cannot boot the rescue.")
        if image.get("container_format") in ("aki", "ari") or image.get("disk_format") in (
                "aki", "ari"):
            raise BadRequest(f"Image {image_id} is a kernel or ramdisk image: it cannot boot "
                             "the rescue.")
        path = images.image_path(image_id) if self.driver.capabilities.needs_image_file \
            else None
        return path, image

    def rescue(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or srv.task_state != "rescuing" or not srv.host:
            return
        image_id = task.payload.get("rescue_image_ref") or srv.image_id
        try:
            with actions.event(self.db, srv.id, "rescue", "compute_rescue_instance", srv.host):
                if not image_id:
                    raise BadRequest("A volume-backed server has no image to rescue from; "
                                     "give rescue_image_ref.")
                path, image = self._rescue_image(srv, image_id)
                spec = self.spec_for(srv, image_path=self._image_path(srv))
                rescue_spec = self.spec_for(srv, image_path=path)
                rescue_spec.image_id = image_id
                rescue_spec.image_properties = dict(image.get("properties") or {})
                rescue_spec.disk_format = image.get("disk_format") or ""
                rescue_spec.container_format = image.get("container_format") or ""
                if image_id != srv.image_id and path is not None:
                    # a VM rescue image boots through its own kernel_id/ramdisk_id, if any
                    rescue_spec.kernel_path, rescue_spec.ramdisk_path = (
                        self._boot_file(srv, rescue_spec.image_properties.get(k), k)
                        for k in ("kernel_id", "ramdisk_id"))
                self.driver.rescue(spec, rescue_spec)
                self._replug(srv)
        except Exception as exc:  # noqa: BLE001 - back as it was, the reason in the fault
            log.warning("rescue of %s failed: %s", srv.id, exc)
            msg = getattr(exc, "message", None) or str(exc)
            self._set(srv.id, task_state=None, power_state=self.driver.get_power_state(
                srv.host, srv.id), fault=fault(400 if isinstance(exc, (BadRequest, NotFound))
                                               else 500, f"Rescue of instance {srv.id} "
                                               f"failed: {msg}", traceback.format_exc()))
            return
        with self.db.write() as s:
            row = s.get(Server, srv.id)
            if row is None:
                return
            row.image = {**(row.image or {}), "rescue": {"image_id": image_id,
                                                         "vm_state": srv.vm_state}}
            row.vm_state, row.task_state, row.power_state = "rescued", None, RUNNING
            row.updated_at = utcnow()

    def unrescue(self, task: Task) -> None:
        srv = self._load(task.resource_id)
        if srv is None or srv.task_state != "unrescuing" or not srv.host:
            return
        try:
            with actions.event(self.db, srv.id, "unrescue", "compute_unrescue_instance",
                               srv.host):
                self.driver.unrescue(self.spec_for(srv, image_path=self._image_path(srv)))
                self._replug(srv)
        except Exception as exc:  # noqa: BLE001 - stays in rescue; the action has the error
            log.warning("unrescue of %s failed: %s", srv.id, exc)
            self._set(srv.id, task_state=None)
            return
        with self.db.write() as s:
            row = s.get(Server, srv.id)
            if row is None:
                return
            image = dict(row.image or {})
            image.pop("rescue", None)
            row.image = image
            row.vm_state, row.task_state, row.power_state = "active", None, RUNNING
            row.updated_at = utcnow()
