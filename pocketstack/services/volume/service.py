"""Cinder's core: the service object, its task runner and crash recovery.

Every state change is recorded in the database first (status ``creating``, ``deleting``,
``extending``... plus a ``task`` describing the work), committed, and only then handed to
a worker thread that drives the driver and records the outcome. After ``kill -9`` the
start hook (``recover``) finds every row still in flight and finishes or rolls back its
work, so nothing stays in a transitional status and no export (loop device) leaks.

Resource logic lives in sibling modules (``volumes``, ``snapshots``, ``types``, ``quotas``,
``attachments``, ``transfers``, ``backups`` (to the object store), ``groups`` (generic
volume groups and group snapshots)) as functions taking this service; the class holds what
they share and the small internal interface other slices (compute) call, documented in
``ComputeInterface`` below.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers import volume as volume_drivers
from pocketstack.drivers.volume.base import VolumeDriver, VolumeDriverError

log = logging.getLogger("pocketstack.volume")

DEFAULT_TYPE = "__DEFAULT__"
MAX_VERSION = "3.70"
MIN_VERSION = "3.0"


class VolumeService:
    def __init__(self, cloud: Any, driver: VolumeDriver | None = None) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.db = cloud.db
        if driver is None:
            driver, note = volume_drivers.load(cloud.settings)
            if note:
                cloud.degraded.append(note)
        self.driver = driver
        conf = cloud.settings.volume
        self.az = conf.availability_zone
        self.backend = conf.backend_name or driver.name
        self.host = f"pocketstack@{self.backend}"
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._inflight: set[tuple[str, str]] = set()
        # Cinder -> Nova external events ("volume-extended"): compute subscribes
        # fn(server_id, volume_id, new_size) and is told when an attached volume grew.
        self.extend_listeners: list[Any] = []

    @property
    def pool_host(self) -> str:
        """Cinder's ``host@backend#pool``, as ``os-vol-host-attr:host`` shows it."""
        return f"{self.host}#{self.driver.stats().pool_name}" if self.driver.name != "fake" \
            else f"{self.host}#fake"

    # -- lifecycle ----------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Create the default volume type (Cinder's ``__DEFAULT__``). Idempotent."""
        from pocketstack.services.volume.models import VolumeType

        with self.db.write() as s:
            if s.scalar(select(VolumeType).where(VolumeType.name == DEFAULT_TYPE)) is None:
                s.add(VolumeType(name=DEFAULT_TYPE, description="Default Volume Type",
                                 is_public=True, extra_specs={}))

    @property
    def executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=max(1, self.settings.volume.workers),
                    thread_name_prefix="volume-worker")
            return self._executor

    def submit(self, kind: str, resource_id: str, fn, *args: Any) -> None:  # noqa: ANN001
        """Run ``fn(*args)`` in a worker, once per (kind, id) at a time."""
        key = (kind, resource_id)
        with self._lock:
            if key in self._inflight:
                return
            self._inflight.add(key)

        def job() -> None:
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a worker must never die silently
                log.exception("volume task %s %s failed", kind, resource_id)
            finally:
                with self._lock:
                    self._inflight.discard(key)

        self.executor.submit(job)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until no task is in flight (tests, benchmarks, shutdown)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._inflight:
                    return
            time.sleep(0.01)

    async def start(self) -> None:
        from pocketstack.api.http import run

        await run(self.recover)

    async def stop(self) -> None:
        ex = self._executor
        if ex is not None:
            from pocketstack.api.http import run

            await run(ex.shutdown, True)
            self._executor = None

    def recover(self) -> None:
        """Finish or roll back whatever a previous process left in flight."""
        from pocketstack.services.volume import snapshots, volume_actions, volumes
        from pocketstack.services.volume.models import Snapshot, Volume, VolumeAttachment

        with self.db.write() as s:
            # Attach/detach in progress cannot be resumed (the caller is gone): roll back.
            for att in s.scalars(select(VolumeAttachment).where(
                    VolumeAttachment.attach_status.in_(("attaching", "detaching")))):
                if att.attach_status == "attaching":
                    s.delete(att)
                else:
                    att.attach_status = "attached"
            s.flush()
            for vol in s.scalars(select(Volume).where(Volume.status.in_(
                    ("attaching", "detaching", "reserved", "uploading", "downloading",
                     "maintenance", "backing-up", "retyping")))):
                if vol.status == "downloading":
                    continue  # a create from image: resumed below
                live = [a for a in vol.attachments if a.attach_status == "attached"]
                vol.status = "in-use" if live else "available"
        # Exports that no attachment explains are leaks from a crash: release them.
        try:
            exported = self.driver.exports()
        except VolumeDriverError:
            exported = {}
        if exported:
            with self.db.read() as s:
                needed = set(s.scalars(select(VolumeAttachment.volume_id).where(
                    VolumeAttachment.attach_status.in_(("attached", "attaching")),
                    VolumeAttachment.device_path.is_not(None))))
            for volume_id in exported:
                if volume_id not in needed:
                    try:
                        self.driver.unexport(volume_id)
                    except VolumeDriverError as exc:
                        log.warning("could not release export of %s: %s", volume_id, exc)
        with self.db.read() as s:
            todo = [(v.id, v.status) for v in s.scalars(select(Volume).where(
                Volume.status.in_(("creating", "downloading", "deleting", "extending"))))]
            snaps = [(x.id, x.status) for x in s.scalars(select(Snapshot).where(
                Snapshot.status.in_(("creating", "deleting"))))]
        for volume_id, status in todo:
            if status in ("creating", "downloading"):
                self.submit("volume", volume_id, volumes.run_create, self, volume_id)
            elif status == "deleting":
                self.submit("volume", volume_id, volumes.run_delete, self, volume_id)
            else:
                self.submit("volume", volume_id, volume_actions.run_extend, self, volume_id)
        for snapshot_id, status in snaps:
            fn = snapshots.run_create if status == "creating" else snapshots.run_delete
            self.submit("snapshot", snapshot_id, fn, self, snapshot_id)
        from pocketstack.services.volume import backups, groups

        backups.recover(self)
        groups.recover(self)

    def purge(self) -> None:
        """``pocketstack down --purge``: remove every volume, snapshot and export we made."""
        try:
            self.driver.purge()
        except VolumeDriverError as exc:
            log.warning("volume purge: %s", exc)

    # =====================================================================================
    # The internal interface for compute (Nova's side of os-volume_attachments and boot
    # from volume). Every call takes the caller's RequestContext; ``ctx`` of the user for
    # user actions, ``RequestContext.internal()`` for Nova acting on its own. All are
    # synchronous (call them through ``api.http.run`` from async code).
    # =====================================================================================
    def get_volume(self, ctx: RequestContext, volume_id: str) -> dict[str, Any]:
        """The volume as a plain dict (id, name, size, status, bootable, attachments,
        project_id, image_metadata...). Raises NotFound (404) if ctx cannot see it."""
        from pocketstack.services.volume import volumes

        return volumes.internal_view(self, volumes.get(self, ctx, volume_id))

    def snapshot_volume_id(self, ctx: RequestContext, snapshot_id: str) -> str:
        """The volume a snapshot was taken of. Raises NotFound (404) if ctx cannot see it."""
        from pocketstack.services.volume import snapshots

        return snapshots.get(self, ctx, snapshot_id).volume_id

    def reserve(self, ctx: RequestContext, volume_id: str, server_id: str,
                info: dict[str, Any] | None = None) -> str:
        """Reserve the volume for ``server_id`` (Nova's attachment_create without a
        connector): status -> ``reserved``. ``info`` is kept as the attachment's connector
        until ``attach(attachment_id=...)`` (Nova's mapping: boot_index, device...).
        Returns the attachment id. Raises BadRequest (400) unless the volume is available
        (or multiattach)."""
        from pocketstack.services.volume import attachments

        return attachments.create(self, ctx, volume_id, server_id, connector=None,
                                  info=info).id

    def attach(self, ctx: RequestContext, volume_id: str, server_id: str,
               mountpoint: str | None = None, host: str | None = None,
               mode: str = "rw", attachment_id: str | None = None,
               connector: dict[str, Any] | None = None) -> dict[str, Any]:
        """Attach the volume to a server for real: export it on this host and mark it
        in-use. Returns ``{"attachment_id", "device_path" (host block device, e.g.
        /dev/loop7), "mountpoint", "volume_id"}``. ``attachment_id`` completes an
        earlier ``reserve``; ``connector`` is stored with the attachment (Nova keeps its
        ``{"nova": {"tag", "delete_on_termination"}}`` there). Raises BadRequest (400) if
        the volume cannot be attached, Conflict (409) if the backend fails to export it;
        on any failure the volume is left as it was."""
        from pocketstack.services.volume import attachments

        return attachments.attach_for_server(self, ctx, volume_id, server_id, mountpoint,
                                             host, mode, attachment_id, connector)

    def server_attachments(self, ctx: RequestContext, server_id: str) -> list[dict[str, Any]]:
        """Every attachment of ``server_id`` (any project when ctx is admin or internal):
        ``[{"attachment_id", "volume_id", "device" (mountpoint), "device_path",
        "status", "connector"}]``, oldest first."""
        from pocketstack.services.volume.models import VolumeAttachment

        with self.db.read() as s:
            rows = s.scalars(select(VolumeAttachment).where(
                VolumeAttachment.instance_uuid == server_id)
                .order_by(VolumeAttachment.created_at)).all()
            return [{"attachment_id": a.id, "volume_id": a.volume_id, "device": a.mountpoint,
                     "device_path": a.device_path, "status": a.attach_status,
                     "connector": dict(a.connector or {})} for a in rows
                    if ctx.is_admin or a.volume.project_id == ctx.project_id]

    def attached_volumes(self, server_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """server id -> [{"volume_id", "connector"}] of its attached volumes, in one query
        (for Nova's ``os-extended-volumes:volumes_attached`` in server lists)."""
        from pocketstack.services.volume.models import VolumeAttachment

        out: dict[str, list[dict[str, Any]]] = {}
        if not server_ids:
            return out
        with self.db.read() as s:
            for a in s.scalars(select(VolumeAttachment).where(
                    VolumeAttachment.instance_uuid.in_(server_ids),
                    VolumeAttachment.attach_status == "attached")
                    .order_by(VolumeAttachment.created_at)):
                out.setdefault(a.instance_uuid, []).append(
                    {"volume_id": a.volume_id, "connector": dict(a.connector or {})})
        return out

    def server_deleted(self, ctx: RequestContext, server_id: str) -> None:
        """A server is gone: detach every volume it had, and delete the ones attached
        with ``delete_on_termination`` (recorded in the attachment's connector)."""
        for att in self.server_attachments(RequestContext.internal(), server_id):
            nova = att["connector"].get("nova") or {}
            self.detach(RequestContext.internal(), att["volume_id"], att["attachment_id"])
            if nova.get("delete_on_termination"):
                self.delete_on_termination(RequestContext.internal(), att["volume_id"])

    def detach(self, ctx: RequestContext, volume_id: str, attachment_id: str | None = None,
               server_id: str | None = None) -> None:
        """Detach (terminate the connection): release the host export when no other
        attachment needs it, delete the attachment, volume -> available. Detaching what
        is not attached is success (idempotent)."""
        from pocketstack.services.volume import attachments

        attachments.detach_for_server(self, ctx, volume_id, attachment_id, server_id)

    def create_from_image_for_boot(self, ctx: RequestContext, image_id: str, size: int,
                                   name: str = "", volume_type: str | None = None,
                                   availability_zone: str | None = None) -> dict[str, Any]:
        """Create a bootable volume from a Glance image for boot-from-volume
        (block_device_mapping_v2 source_type=image, destination_type=volume). Returns the
        new volume dict at once (status ``creating``/``downloading``); poll
        ``get_volume`` until ``available``. Quota is charged to ctx's project."""
        from pocketstack.services.volume import volumes

        body = {"size": size, "imageRef": image_id, "name": name or None,
                "volume_type": volume_type, "availability_zone": availability_zone}
        return volumes.internal_view(self, volumes.create(self, ctx, body))

    def create_blank_for_boot(self, ctx: RequestContext, size: int, name: str = "",
                              volume_type: str | None = None) -> dict[str, Any]:
        """Create an empty volume (block_device_mapping_v2 source_type=blank)."""
        from pocketstack.services.volume import volumes

        return volumes.internal_view(self, volumes.create(
            self, ctx, {"size": size, "name": name or None, "volume_type": volume_type}))

    def delete_on_termination(self, ctx: RequestContext, volume_id: str) -> None:
        """A server with ``delete_on_termination`` went away: detach whatever is left
        and delete the volume. A volume already gone is success."""
        from pocketstack.errors import BadRequest, NotFound
        from pocketstack.services.volume import volumes

        try:
            self.detach(ctx, volume_id)
            volumes.delete(self, ctx, volume_id, cascade=True)
        except NotFound:
            return
        except BadRequest as exc:  # e.g. still attached elsewhere (multiattach): keep it
            log.warning("not deleting volume %s on termination: %s", volume_id, exc.message)

    def wait_until(self, ctx: RequestContext, volume_id: str, statuses: tuple[str, ...],
                   timeout: float = 300.0) -> dict[str, Any]:
        """Block until the volume reaches one of ``statuses`` (or ``error``)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            vol = self.get_volume(ctx, volume_id)
            if vol["status"] in statuses or vol["status"].startswith("error"):
                return vol
            if time.monotonic() > deadline:
                return vol
            time.sleep(0.05)

    @staticmethod
    def now():  # noqa: ANN205
        return utcnow()
