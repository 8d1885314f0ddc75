"""The image service object: what every image module shares, the interface other slices
call, start-up recovery and the default image seed.

Interface for other slices (``cloud.services["image"]``), all synchronous:

- ``get_image(ctx, image_id) -> dict``: the API view (properties flattened in, as
  ``GET /v2/images/{id}`` shows them) plus ``properties`` (the extra properties alone);
  NotFound if ``ctx`` may not see it.
- ``image_path(image_id) -> Path``: the local file with an active (or deactivated)
  image's data, for the container/VM drivers; NotFound if there is none.
- ``create_image_from_file(ctx, path, *, name, disk_format, container_format,
  properties, visibility="private", move=False, image_id=None) -> dict``: a snapshot
  upload; the file is hashed, inspected, then moved (``move=True``, same file system) or
  copied atomically into the store; the image is active when this returns. With the id
  of a queued image (``create_image_placeholder``) it fills that image instead.
- ``create_image_placeholder(ctx, *, name, disk_format, container_format, visibility,
  protected, properties) -> dict``: a queued image (Cinder's upload-to-image).
- ``bootstrap()``: at every ``up``: recover from a crash (partial uploads, imports) and,
  once, seed a bootable busybox image built by ``testimages`` (``[image]
  seed_default_image``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers.images import create_store
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.image import formats, images, views
from pocketstack.services.image.models import Image, ImageProperty, ImageTask

log = logging.getLogger("pocketstack.image")

SEED_PROPERTY = "pocketstack_seed"
BASE_VIEW_KEYS = frozenset((
    "name", "disk_format", "container_format", "visibility", "size", "virtual_size", "status",
    "checksum", "protected", "min_ram", "min_disk", "owner", "os_hidden", "os_hash_algo",
    "os_hash_value", "id", "created_at", "updated_at", "tags", "self", "file", "schema",
    "stores", "locations", "direct_url"))


class ImageService:
    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.db = cloud.db
        self.stores, self.weights = _build_stores(self.settings)
        default = self.settings.image.default_store or next(iter(self.stores))
        if default not in self.stores:
            raise ValueError(f"[image] default_store {default!r} is not one of the stores "
                             f"{sorted(self.stores)}")
        # The default store: uploads without X-Image-Meta-Store, imports without
        # ``stores``, and the staging area of every import.
        self.store = self.stores[default]
        if self.store.read_only:
            raise ValueError(f"[image] default_store {default!r} is read-only")
        self.background: set[Any] = set()  # running import tasks (asyncio)
        self.remote_tokens: dict[str, str | None] = {}  # glance-download task -> token
        from pocketstack.services.image.cache import ImageCache

        self.cache = ImageCache(self)  # [image] image_cache: local copies on this node

    # -- stores -----------------------------------------------------------------------------
    def order_stores(self, ids: Any) -> list[str]:
        """Store ids, known ones only, highest weight first (ties: configuration order)."""
        known = list(self.stores)
        unique = [i for i in dict.fromkeys(ids) if i in self.stores]
        return sorted(unique, key=lambda i: (-self.weights.get(i, 0), known.index(i)))

    def stores_of(self, row: Image) -> list[str]:
        """The stores holding ``row``'s data, highest weight first (the HTTP store when
        the image has http locations)."""
        ids: list[str] = []
        if row.stores:
            ids = row.stores.split(",")
        elif row.location:  # a row from before multi-store: its data is in the default store
            ids = [self.store.store_id]
        http = self.http_store()
        if row.http_locations and http is not None:
            ids.append(http.store_id)
        return self.order_stores(ids)

    def own_stores_of(self, row: Image) -> list[str]:
        """The writable stores holding a copy of ``row``'s data (no HTTP locations)."""
        if row.stores:
            return self.order_stores(row.stores.split(","))
        return [self.store.store_id] if row.location else []

    def store_for(self, row: Image) -> Any:
        """The store to read ``row``'s data from: the highest-weight one holding it, a
        copy of our own before the HTTP store."""
        ids = self.stores_of(row)
        if not ids:
            raise NotFound(f"Image {row.id} has no data.")
        own = [i for i in ids if not self.stores[i].read_only]
        return self.stores[(own or ids)[0]]

    def http_store(self) -> Any:
        """The read-only HTTP store, if one is configured."""
        return next((st for st in self.stores.values() if st.read_only), None)

    def get_store(self, store_id: str) -> Any:
        try:
            return self.stores[store_id]
        except KeyError:
            raise BadRequest(f"Unknown store {store_id!r}; this cloud has "
                             f"{', '.join(self.stores)}.") from None

    def writable_stores(self) -> list[str]:
        return self.order_stores(i for i, st in self.stores.items() if not st.read_only)

    # -- quotas -------------------------------------------------------------------------------
    def limit(self, project_id: str | None, name: str) -> int:
        """A project's limit (count, or MiB for sizes); -1 is unlimited.

        Keystone unified limits (service "glance") win when the identity slice offers
        ``limit_for(project_id, service_type, resource_name)``; else ``[image]`` settings.
        """
        identity = self.cloud.services.get("identity") if hasattr(self.cloud, "services") \
            else None
        lookup = getattr(identity, "limit_for", None)
        if lookup is not None and project_id:
            try:
                value = lookup(project_id, "image", name)
            except Exception:  # noqa: BLE001 - fall back to the configured default
                value = None
            if value is not None:
                return int(value)
        return int(getattr(self.settings.image, name, -1))

    # -- interface for other slices ----------------------------------------------------------
    def get_image(self, ctx: RequestContext, image_id: str) -> dict[str, Any]:
        """The API view, plus ``properties``: the extra properties alone (kernel_id,
        ramdisk_id, hw_*, os_*, img_config_drive, ...) for the consumers that want them
        apart from the base attributes."""
        view = images.show(self, ctx, image_id)
        view["properties"] = {k: v for k, v in view.items() if k not in BASE_VIEW_KEYS}
        return view

    def image_path(self, image_id: str) -> Path:
        with self.db.read() as s:
            row = s.get(Image, image_id)
            if row is None or row.status not in ("active", "deactivated") \
                    or not (row.location or row.http_locations):
                raise NotFound(f"Image {image_id} has no data.")
            store = self.store_for(row)
        try:
            return store.path(image_id)
        except (FileNotFoundError, NotImplementedError):
            pass
        if self.cache.enabled:  # data only at a location (or a remote store): cache it
            try:
                return self.cache.ensure(image_id)
            except (OSError, NotFound) as exc:
                raise NotFound(f"Image {image_id} could not be cached locally: "
                               f"{exc}") from None
        raise NotFound(f"Image {image_id} has no local data file (enable [image] "
                       "image_cache to use images whose data is at a location).")

    def create_image_placeholder(self, ctx: RequestContext, *, name: str, disk_format: str,
                                 container_format: str, visibility: str = "private",
                                 protected: bool = False,
                                 properties: dict[str, Any] | None = None) -> dict[str, Any]:
        """A queued image to fill later with ``create_image_from_file(image_id=...)``
        (Cinder's upload-to-image answers with the image id before the data is there)."""
        body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                "container_format": container_format,
                                "visibility": visibility, "protected": bool(protected),
                                **{k: str(v) for k, v in (properties or {}).items()
                                   if v is not None}}
        return images.create(self, ctx, body)

    def create_image_from_file(self, ctx: RequestContext, path: str | Path | None = None, *,
                               name: str, disk_format: str, container_format: str,
                               properties: dict[str, Any] | None = None,
                               visibility: str = "private", move: bool = False,
                               image_id: str | None = None) -> dict[str, Any]:
        """Snapshot upload (see the module docstring). Rolls back to nothing on failure.

        With ``image_id`` of a queued image (``create_image_placeholder``) the data goes
        into that image; otherwise a new image is created.
        """
        if path is None:
            raise BadRequest("create_image_from_file needs the path of the data.")
        src = Path(path)
        created_here = True
        if image_id is not None:
            with self.db.read() as s:
                existing = s.get(Image, image_id)
            created_here = existing is None
        if created_here:
            props = {k: str(v) for k, v in (properties or {}).items() if v is not None}
            body: dict[str, Any] = {"name": name, "disk_format": disk_format,
                                    "container_format": container_format,
                                    "visibility": visibility, **props}
            if image_id:
                body["id"] = image_id
            iid = images.create(self, ctx, body)["id"]
        else:
            iid = image_id
        try:
            md5, sha, size = hashlib.md5(usedforsecurity=False), hashlib.sha512(), 0
            with open(src, "rb") as fh:
                while chunk := fh.read(4 << 20):
                    md5.update(chunk)
                    sha.update(chunk)
                    size += len(chunk)

                def read_at(offset: int, n: int) -> bytes:
                    return os.pread(fh.fileno(), n, offset) if offset >= 0 and n > 0 else b""

                inspection = formats.check(read_at, size, disk_format,
                                           self.settings.image.require_format_match)
                formats.check_container(read_at, size, container_format,
                                        self.settings.image.require_format_match)
            with self.db.write() as s:
                row = s.get(Image, iid)
                if row is None or row.status != "queued":
                    raise Conflict(f"Image {iid} is not queued for data "
                                   f"({row.status if row else 'deleted'}).")
                row.status = "saving"
            location = self.store.adopt(iid, src, move=move)
            with self.db.write() as s:
                row = s.get(Image, iid)
                if row is None:
                    self.store.delete(iid)
                    raise NotFound(f"Image {iid} was deleted while its data was stored.")
                row.size, row.checksum = size, md5.hexdigest()
                row.os_hash_algo, row.os_hash_value = "sha512", sha.hexdigest()
                row.virtual_size = inspection.virtual_size
                row.location, row.status = location, "active"
                row.stores = self.store.store_id
                row.updated_at = utcnow()
                s.flush()
                return images.render(self, s, row)
        except BaseException as exc:
            try:
                if created_here:
                    images.remove(self, RequestContext.internal(), iid)
                else:
                    with self.db.write() as s:
                        row = s.get(Image, iid)
                        if row is not None and row.status == "saving":
                            killed = isinstance(exc, formats.InvalidImageData)
                            row.status = "killed" if killed else "queued"
            except Exception:  # noqa: BLE001
                log.exception("image %s: cleanup after a failed snapshot upload", iid)
            raise

    # -- tasks API (GET /v2/tasks...) ----------------------------------------------------------
    def list_tasks(self, ctx: RequestContext) -> dict[str, Any]:
        from pocketstack import policy

        policy.enforce(ctx, "image:get_tasks", {"project_id": ctx.project_id})
        with self.db.read() as s:
            rows = s.scalars(select(ImageTask).order_by(ImageTask.created_at.desc())
                             .limit(1000)).all()
            return {"tasks": [views.task(t, full=False) for t in rows],
                    "first": "/v2/tasks", "schema": "/v2/schemas/tasks"}

    def show_task(self, ctx: RequestContext, task_id: str) -> dict[str, Any]:
        from pocketstack import policy

        policy.enforce(ctx, "image:get_task", {"project_id": ctx.project_id})
        with self.db.read() as s:
            row = s.get(ImageTask, task_id)
            if row is None:
                raise NotFound(f"Task with the given id {task_id} not found")
            return views.task(row)

    def create_task(self, ctx: RequestContext, body: Any) -> dict[str, Any]:
        from pocketstack import policy

        policy.enforce(ctx, "image:add_task", {"project_id": ctx.project_id})
        if not isinstance(body, dict) or body.get("type") not in ("import",):
            raise BadRequest("Task type must be 'import'.")
        task_input = body.get("input")
        if not isinstance(task_input, dict) or not isinstance(task_input.get("import_from"),
                                                              str):
            raise BadRequest("Invalid input for task: 'import_from' is required.")
        # The legacy tasks API fetches from a URL; this cloud never fetches remote data.
        raise BadRequest(f"Import from {task_input['import_from']!r} is not possible here: "
                         "this cloud does not download remote images. Use interoperable "
                         "image import with glance-direct.")

    # -- info -----------------------------------------------------------------------------------
    def import_methods(self) -> list[str]:
        """The interoperable import methods this cloud offers ([image] import_methods)."""
        from pocketstack.services.image.imports import KNOWN_METHODS

        wanted = [m.strip() for m in self.settings.image.import_methods.split(",")
                  if m.strip()]
        methods = [m for m in KNOWN_METHODS if m in wanted]
        if len(self.writable_stores()) < 2 and "copy-image" in methods:
            methods.remove("copy-image")  # nowhere to copy to (Glance: needs multi-store)
        return methods

    def info_import(self) -> dict[str, Any]:
        return {"import-methods": {"description": "Import methods available.",
                                   "type": "array", "value": self.import_methods()}}

    def info_stores(self, detail: bool = False) -> dict[str, Any]:
        # Glance's shape: "default" is the string "true" on the default store only;
        # type, properties and weight only in /detail.
        out = []
        for sid, store in self.stores.items():
            entry: dict[str, Any] = {"id": sid}
            if store.description:
                entry["description"] = store.description
            if store is self.store:
                entry["default"] = "true"
            if store.read_only:
                entry["read-only"] = "true"
            if detail:
                entry["type"] = ("file" if store.capabilities.local_files
                                 else "http" if store.read_only else "memory")
                entry["weight"] = self.weights.get(sid, 0)
                root = getattr(store, "root", None)
                entry["properties"] = ({"data_dir": str(root), "chunk_size": 4 << 20,
                                        "thin_provisioning": True} if root else {})
            out.append(entry)
        return {"stores": out}

    def info_usage(self, ctx: RequestContext) -> dict[str, Any]:
        from sqlalchemy import func

        with self.db.read() as s:
            owner = ctx.project_id
            count = s.scalar(select(func.count()).select_from(Image)
                             .where(Image.owner == owner)) or 0
            size = s.scalar(select(func.coalesce(func.sum(Image.size), 0))
                            .where(Image.owner == owner)) or 0
            staged = s.scalar(select(func.coalesce(func.sum(Image.staged_size), 0))
                              .where(Image.owner == owner)) or 0
            uploading = s.scalar(select(func.count()).select_from(Image).where(
                Image.owner == owner, Image.status.in_(("saving", "uploading",
                                                        "importing")))) or 0

        def entry(name: str, usage: int) -> dict[str, int]:
            return {"limit": self.limit(owner, name), "usage": usage}

        return {"usage": {
            "image_size_total": entry("image_size_total", int(size) >> 20),
            "image_stage_total": entry("image_stage_total", int(staged) >> 20),
            "image_count_total": entry("image_count_total", int(count)),
            "image_count_uploading": {"limit": -1, "usage": int(uploading)},
        }}

    # -- start-up --------------------------------------------------------------------------------
    def bootstrap(self) -> None:
        self.recover()
        if self.settings.image.seed_default_image:
            try:
                self.seed_default_images()
            except Exception as exc:  # noqa: BLE001 - degrade loudly, never block `up`
                log.exception("seeding the default image failed")
                self.cloud.degraded.append(f"image: default image not seeded ({exc})")

    def recover(self) -> None:
        """Undo what a crash left half-done: temp files, uploads and imports in flight."""
        removed = sum(store.sweep() for store in self.stores.values())
        removed += self.cache.recover()
        with self.db.write() as s:
            for row in s.scalars(select(Image).where(Image.status.in_(
                    ("saving", "uploading", "importing")))):
                if row.status == "saving":
                    # Start-up: whoever was streaming its data is gone; it can be uploaded
                    # again (a file committed just before the crash is simply replaced).
                    row.status = "queued"
                elif row.status == "importing":
                    staged = self._has(row.id, "staging")
                    row.status = "uploading" if staged else "queued"
                    if not staged:
                        row.staged_size = row.staged_hash = None
                    for task in s.scalars(select(ImageTask).where(
                            ImageTask.image_id == row.id, ImageTask.status == "processing")):
                        task.status, task.message = "failure", "Interrupted by a restart."
                elif row.status == "uploading" and not self._has(row.id, "staging"):
                    row.status = "queued"
                    row.staged_size = row.staged_hash = None
                row.updated_at = utcnow()
            # Imports cut short (copy-image leaves its image active): the stores they still
            # had to do are failed stores now.
            from pocketstack.services.image.imports import _get_prop, _set_prop

            for task in s.scalars(select(ImageTask).where(ImageTask.status == "processing")):
                task.status, task.message = "failure", "Interrupted by a restart."
                if task.image_id and s.get(Image, task.image_id) is not None:
                    left = _get_prop(s, task.image_id, "os_glance_importing_to_stores")
                    failed = _get_prop(s, task.image_id, "os_glance_failed_import")
                    joined = ",".join(x for x in dict.fromkeys(
                        (failed + "," + left).split(",")) if x)
                    _set_prop(s, task.image_id, "os_glance_failed_import", joined)
                    _set_prop(s, task.image_id, "os_glance_importing_to_stores", "")
            holders = {iid: set(self.stores_of_ids(stores, location))
                       for iid, stores, location in s.execute(
                           select(Image.id, Image.stores, Image.location))}
        # Data whose record is gone (a crash between deleting the record and the file), or
        # a copy to a store the record does not list (a crash in the middle of a copy or
        # of a delete from one store).
        for sid, store in self.stores.items():
            for area in ("images", "staging"):
                for image_id in store.list_ids(area):
                    keep = image_id in holders and (area == "staging" or sid in holders[image_id])
                    if not keep:
                        store.delete(image_id, area)
                        removed += 1
        if removed:
            log.info("image store: removed %d partial or orphaned file(s) left by a crash",
                     removed)

    def stores_of_ids(self, stores: str | None, location: str | None) -> list[str]:
        if stores:
            return stores.split(",")
        return [self.store.store_id] if location else []

    def _has(self, image_id: str, area: str) -> bool:
        try:
            self.store.size(image_id, area)
            return True
        except FileNotFoundError:
            return False

    def seed_default_images(self) -> None:
        """Upload the busybox test images once (as DevStack uploads cirros)."""
        with self.db.read() as s:
            seeded = s.scalars(select(ImageProperty.value).where(
                ImageProperty.name == SEED_PROPERTY)).all()
        if "rootfs" in seeded and (("vm" in seeded and "disk" in seeded)
                                   or not _kernel_available(self)):
            return
        from pocketstack.services.image import testimages

        cache = self.settings.data_dir / "test-images"
        try:
            built = testimages.build(cache, kernel=True, download=False)
        except testimages.CannotBuild as exc:
            self.cloud.degraded.append(f"image: default image not seeded: {exc}")
            log.warning("default image not seeded: %s", exc)
            return
        admin = _admin_context(self)
        if "rootfs" not in seeded:
            self.create_image_from_file(
                admin, name="busybox", path=built.rootfs, disk_format="raw",
                container_format="docker", visibility="public",
                properties={SEED_PROPERTY: "rootfs", "os_distro": "busybox",
                            "os_type": "linux", "architecture": "x86_64",
                            "description": "BusyBox root file system (tar) for container "
                                           "instances, built from Debian busybox-static"})
        if "vm" not in seeded and built.kernel is not None and built.initramfs is not None:
            kernel = self.create_image_from_file(
                admin, name="busybox-vmlinuz", path=built.kernel, disk_format="aki",
                container_format="aki", visibility="public",
                properties={SEED_PROPERTY: "kernel"})
            ramdisk = self.create_image_from_file(
                admin, name="busybox-initramfs", path=built.initramfs, disk_format="ari",
                container_format="ari", visibility="public",
                properties={SEED_PROPERTY: "ramdisk"})
            self.create_image_from_file(
                admin, name="busybox-vm", path=built.disk, disk_format="ami",
                container_format="ami", visibility="public",
                properties={SEED_PROPERTY: "vm", "kernel_id": kernel["id"],
                            "ramdisk_id": ramdisk["id"], "os_distro": "busybox",
                            "os_type": "linux", "architecture": "x86_64",
                            "description": "Debian kernel + busybox initramfs (boots "
                                           "through kernel_id/ramdisk_id)"})
        if "disk" not in seeded and built.qcow2 is not None:
            # the cloud-image shape (MBR, syslinux, ext4 root; testimages/disk.py), booted
            # as any qcow2 image; its default user is cirros, as on DevStack's cirros
            self.create_image_from_file(
                admin, name="busybox-disk", path=built.qcow2, disk_format="qcow2",
                container_format="bare", visibility="public",
                properties={SEED_PROPERTY: "disk", "os_distro": "busybox",
                            "os_type": "linux", "architecture": "x86_64",
                            "hw_disk_bus": "virtio", "os_admin_user": "cirros",
                            "description": "cirros-like disk image (qcow2: MBR, syslinux, "
                                           "ext4 root; user cirros, key login over SSH)"})
        if built.missing:
            self.cloud.degraded.append("image: test images built without: "
                                       + "; ".join(built.missing))
        if built.kernel is None:
            self.cloud.degraded.append("image: VM test images (aki/ari) not seeded: no "
                                       "kernel cached; run scripts/build-test-images "
                                       "--with-kernel")


def _build_stores(settings: Any) -> tuple[dict[str, Any], dict[str, int]]:
    """The configured stores (``[image] stores``), in configuration order, and weights."""
    cfg = settings.image
    if not cfg.stores:
        only = create_store(cfg.store, settings.data_dir / "images")
        return {only.store_id: only}, {only.store_id: 0}
    stores: dict[str, Any] = {}
    weights: dict[str, int] = {}
    for sid, spec in cfg.stores.items():
        if not isinstance(spec, dict):
            raise ValueError(f"[image.stores.{sid}] must be a table")
        unknown = set(spec) - {"driver", "path", "weight", "description"}
        if unknown:
            raise ValueError(f"[image.stores.{sid}]: unknown setting(s) {sorted(unknown)}")
        if not sid or "," in sid or "/" in sid or sid.startswith("os_glance_"):
            raise ValueError(f"[image] store id {sid!r} may not contain ',' or '/' or start "
                             "with os_glance_")
        root = Path(spec.get("path") or settings.data_dir / f"images-{sid}")
        stores[sid] = create_store(str(spec.get("driver") or cfg.store), root,
                                   store_id=sid, description=spec.get("description"))
        weights[sid] = int(spec.get("weight", 0))
    return stores, weights


def _kernel_available(svc: ImageService) -> bool:
    from pocketstack.services.image import testimages

    return testimages.find_kernel(svc.settings.data_dir / "test-images") is not None


def _admin_context(svc: ImageService) -> RequestContext:
    """Seed images belong to the admin project, as DevStack's cirros does."""
    project_id = None
    identity = svc.cloud.services.get("identity")
    if identity is not None:
        try:
            from pocketstack.services.identity.models import Project

            with svc.db.read() as s:
                project = s.scalars(select(Project).where(Project.name == "admin",
                                                          Project.is_domain.is_(False))).first()
                project_id = project.id if project else None
        except Exception:  # noqa: BLE001
            project_id = None
    return RequestContext.internal(project_id=project_id)
