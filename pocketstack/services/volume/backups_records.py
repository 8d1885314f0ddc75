"""Backup export/import records (Cinder's backup-record): the row as base64 JSON, so a
backup can be re-registered after a database loss. The objects are not copied: an imported
record points at the same container, prefix and account."""

from __future__ import annotations

import base64
from typing import Any

import orjson

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume.backups import (SERVICE, _check_quota, _objects, _read_meta,
                                                 account, account_of, load)
from pocketstack.services.volume.common import is_uuid
from pocketstack.services.volume.models import Backup


def export_record(svc, ctx: RequestContext, backup_id: str) -> dict[str, str]:  # noqa: ANN001
    with svc.db.read() as s:
        b = load(s, ctx, backup_id, "export")
        if b.status != "available":
            raise BadRequest(f"Invalid backup: Backup status must be available and not "
                             f"{b.status}.")
        record = {"id": b.id, "project_id": b.project_id, "account": account_of(b),
                  "user_id": b.user_id,
                  "volume_id": b.volume_id, "snapshot_id": b.snapshot_id, "name": b.name,
                  "description": b.description, "availability_zone": b.availability_zone,
                  "container": b.container, "object_prefix": b.object_prefix,
                  "size": b.size, "object_count": b.object_count, "parent_id": b.parent_id,
                  "metadata": dict(b.metadata_ or {})}
    url = base64.b64encode(orjson.dumps(record)).decode()
    return {"backup_service": SERVICE, "backup_url": url}


def import_record(svc, ctx: RequestContext, body: Any) -> Backup:  # noqa: ANN001
    policy.enforce(ctx, "backup:backup-import", {"project_id": ctx.project_id})
    if not isinstance(body, dict) or not isinstance(body.get("backup_service"), str) or \
            not isinstance(body.get("backup_url"), str):
        raise BadRequest("Invalid input: backup-record needs backup_service and backup_url.")
    if body["backup_service"] != SERVICE:
        raise BadRequest(f"Invalid backup: unsupported backup service "
                         f"{body['backup_service']!r}; this cloud has {SERVICE}.")
    try:
        rec = orjson.loads(base64.b64decode(body["backup_url"], validate=True))
        if not isinstance(rec, dict):
            raise ValueError("not an object")
        rid, prefix, container = rec["id"], rec["object_prefix"], rec["container"]
        size = int(rec["size"])
        if not (is_uuid(rid) and isinstance(prefix, str) and isinstance(container, str)):
            raise ValueError("bad id, container or prefix")
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadRequest(f"Invalid backup: the backup_url cannot be decoded ({exc}).") \
            from None
    # Cinder imports into the caller's project; the objects stay where they were written
    # (an admin may import another project's record; a member only its own account's)
    project = ctx.project_id or ""
    acct = rec.get("account") if ctx.is_admin and isinstance(rec.get("account"), str) \
        else account(project)
    store = _objects(svc)
    try:
        _read_meta(store, acct, container, prefix)
        status, reason = "available", None
    except (NotFound, ValueError, OSError):
        status, reason = "error", "the backup's metadata object is missing from the store"
    with svc.db.write() as s:
        if s.get(Backup, rid) is not None:
            raise BadRequest(f"Invalid backup: Backup {rid} already exists.")
        _check_quota(s, project, size)
        b = Backup(id=rid, project_id=project, user_id=ctx.user_id or "",
                   volume_id=str(rec.get("volume_id") or ""), snapshot_id=rec.get("snapshot_id"),
                   name=rec.get("name"), description=rec.get("description"),
                   status=status, fail_reason=reason,
                   availability_zone=rec.get("availability_zone") or svc.az,
                   container=container, account=acct, object_prefix=prefix, size=size,
                   object_count=int(rec.get("object_count") or 0), parent_id=None,
                   metadata_=dict(rec.get("metadata") or {}), data_timestamp=utcnow())
        s.add(b)
        s.flush()
        return b
