"""The worker's ``snapshot`` task (createImage / createBackup): the server's disk into the
queued image the API made, then backup rotation."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pocketstack.context import RequestContext
from pocketstack.services.compute import actions
from pocketstack.services.compute.models import Server
from pocketstack.workers.queue import Task

log = logging.getLogger("pocketstack.compute.worker")


def _image_api():  # noqa: ANN202 - the image slice's module, imported when first needed
    from pocketstack.services.image import images

    return images


def run(worker: Any, task: Task) -> None:
    """Fill the queued image with the server's disk; for a backup, then delete the
    oldest backups of that type beyond ``rotation``. A failed snapshot deletes the image
    (as Nova does) and the instance action shows the error."""
    p = task.payload
    srv = worker._load(task.resource_id)
    images = worker.svc.cloud.services.get("image")
    internal = RequestContext.internal()
    if images is None:
        return
    if srv is None:  # deleted before its snapshot ran: the queued image goes too
        try:
            _image_api().remove(images, internal, p["image_id"])
        except Exception:  # noqa: BLE001 - already gone
            pass
        return
    target = Path(worker.svc.settings.data_dir) / "compute" / "snapshots" / f"{p['image_id']}.img"
    target.parent.mkdir(parents=True, exist_ok=True)
    saved = False
    try:
        with actions.event(worker.db, srv.id, p["action"], "compute_snapshot_instance",
                           srv.host):
            worker.driver.snapshot(srv.host, srv.id, target)
            info = images.get_image(internal, p["image_id"])
            images.create_image_from_file(
                internal, target, name=info["name"], disk_format=info["disk_format"],
                container_format=info["container_format"], image_id=p["image_id"])
        saved = True
    except Exception:  # noqa: BLE001
        log.exception("server %s: snapshot into image %s failed", srv.id, p["image_id"])
        try:
            _image_api().remove(images, internal, p["image_id"])
        except Exception:  # noqa: BLE001 - already gone
            pass
    finally:
        if target.exists():
            os.unlink(target)
    try:
        if saved and p.get("rotation") is not None:  # Nova rotates after a good backup only
            rotate_backups(images, srv, p["backup_type"], int(p["rotation"]))
    except Exception:  # noqa: BLE001 - the backup itself is fine
        log.exception("server %s: backup rotation failed", srv.id)
    finally:  # the server leaves image_snapshot / image_backup when all of it is done
        worker._set(srv.id, task_state=None)


def rotate_backups(images: Any, srv: Server, backup_type: str, rotation: int) -> None:
    internal = RequestContext.internal()
    query = {"instance_uuid": srv.id, "image_type": "backup", "backup_type": backup_type,
             "sort_key": "created_at", "sort_dir": "desc", "limit": "1000"}
    rows = _image_api().list_images(images, internal, query)["images"]
    for old in rows[rotation:]:
        try:
            _image_api().remove(images, internal, old["id"])
        except Exception:  # noqa: BLE001 - deleted meanwhile, or protected
            log.warning("server %s: could not rotate out backup %s", srv.id, old["id"])
