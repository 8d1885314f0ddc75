"""Block storage quotas: limits per project (with class defaults) and usage from the tables.

Usage is counted from the volume and snapshot rows inside the same write transaction that
adds the new row, so concurrent creates cannot both slip under a limit: SQLite serialises
writers (BEGIN IMMEDIATE), and on PostgreSQL a transaction-scoped advisory lock per project
does the same.
"""

from __future__ import annotations

import zlib
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from pocketstack.errors import BadRequest, OverQuota
from pocketstack.services.volume.models import Quota, QuotaClass, Snapshot, Volume, VolumeType

DEFAULTS = {"volumes": 10, "snapshots": 10, "gigabytes": 1000, "backups": 10,
            "backup_gigabytes": 1000, "per_volume_gigabytes": -1, "groups": 10}
PER_TYPE = ("volumes", "snapshots", "gigabytes")


def lock_project(s: Session, project_id: str) -> None:
    if s.bind is not None and s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                  {"k": zlib.crc32(f"volume-quota:{project_id}".encode())})


def defaults(s: Session) -> dict[str, int]:
    limits = dict(DEFAULTS)
    for q in s.scalars(select(QuotaClass).where(QuotaClass.class_name == "default")):
        limits[q.resource] = q.hard_limit
    for name in s.scalars(select(VolumeType.name)):
        for res in PER_TYPE:
            limits.setdefault(f"{res}_{name}", -1)
    return limits


def limits_for(s: Session, project_id: str) -> dict[str, int]:
    limits = defaults(s)
    for q in s.scalars(select(Quota).where(Quota.project_id == project_id)):
        limits[q.resource] = q.hard_limit
    return limits


def usage(s: Session, project_id: str) -> dict[str, int]:
    used = {k: 0 for k in DEFAULTS}
    type_names = dict(s.execute(select(VolumeType.id, VolumeType.name)).all())
    for type_id, count, size in s.execute(
            select(Volume.volume_type_id, func.count(), func.coalesce(func.sum(Volume.size), 0))
            .where(Volume.project_id == project_id, Volume.consumes_quota.is_(True))
            .group_by(Volume.volume_type_id)):
        used["volumes"] += count
        used["gigabytes"] += int(size)
        name = type_names.get(type_id)
        if name:
            used[f"volumes_{name}"] = used.get(f"volumes_{name}", 0) + count
            used[f"gigabytes_{name}"] = used.get(f"gigabytes_{name}", 0) + int(size)
    for type_id, count, size in s.execute(
            select(Volume.volume_type_id, func.count(), func.coalesce(func.sum(Snapshot.size), 0))
            .select_from(Snapshot).join(Volume, Volume.id == Snapshot.volume_id)
            .where(Snapshot.project_id == project_id, Snapshot.consumes_quota.is_(True))
            .group_by(Volume.volume_type_id)):
        used["snapshots"] += count
        used["gigabytes"] += int(size)
        name = type_names.get(type_id)
        if name:
            used[f"snapshots_{name}"] = used.get(f"snapshots_{name}", 0) + count
            used[f"gigabytes_{name}"] = used.get(f"gigabytes_{name}", 0) + int(size)
    from pocketstack.services.volume.backups import usage as backup_usage

    used["backups"], used["backup_gigabytes"] = backup_usage(s, project_id)
    return used


def check(s: Session, project_id: str, *, volumes: int = 0, snapshots: int = 0,
          gigabytes: int = 0, type_name: str | None = None, size: int | None = None) -> None:
    """Raise OverQuota (413, Cinder's messages) if adding these would pass a limit."""
    lock_project(s, project_id)
    limits = limits_for(s, project_id)
    per_volume = limits.get("per_volume_gigabytes", -1)
    if size is not None and per_volume >= 0 and size > per_volume:
        raise OverQuota(f"Requested volume size {size}G is larger than maximum allowed limit "
                        f"{per_volume}G.", status=413, kind="VolumeSizeExceedsLimit")
    used = usage(s, project_id)
    wanted = {"volumes": volumes, "snapshots": snapshots, "gigabytes": gigabytes}
    if type_name:
        for res in PER_TYPE:
            wanted[f"{res}_{type_name}"] = wanted[res]
    for res, delta in wanted.items():
        limit = limits.get(res, -1)
        if delta <= 0 or limit < 0:
            continue
        consumed = used.get(res, 0)
        if consumed + delta > limit:
            if res.startswith("gigabytes"):
                raise OverQuota(
                    f"VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds "
                    f"allowed {res} quota. Requested {delta}G, quota is {limit}G and "
                    f"{consumed}G has been consumed.", status=413,
                    kind="VolumeSizeExceedsAvailableQuota")
            what = "snapshots" if res.startswith("snapshots") else "volumes"
            raise OverQuota(f"Maximum number of {what} allowed ({limit}) exceeded for quota "
                            f"'{res}'.", status=413,
                            kind="SnapshotLimitExceeded" if what == "snapshots"
                            else "VolumeLimitExceeded")


def show(s: Session, project_id: str, with_usage: bool) -> dict[str, Any]:
    limits = limits_for(s, project_id)
    if not with_usage:
        return {"id": project_id, **limits}
    used = usage(s, project_id)
    body: dict[str, Any] = {"id": project_id}
    for res, limit in limits.items():
        body[res] = {"limit": limit, "in_use": used.get(res, 0), "reserved": 0,
                     "allocated": 0}
    return body


def _validate(s: Session, values: dict[str, Any], project_id: str | None) -> dict[str, int]:
    known = set(defaults(s))
    out: dict[str, int] = {}
    for key, value in values.items():
        if key in ("id", "tenant_id"):
            continue
        if key not in known:
            raise BadRequest(f"Bad key(s) in quota set: {key}")
        if isinstance(value, bool):
            raise BadRequest(f"Quota {key} must be an integer.")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise BadRequest(f"Quota {key} must be an integer.") from None
        if number < -1:
            raise BadRequest(f"Quota limit {key} must be -1 or greater.")
        if number > 2 ** 31 - 1:
            raise BadRequest(f"Quota limit {key} must be less than or equal to 2147483647.")
        out[key] = number
    if project_id is not None:
        used = usage(s, project_id)
        for key, number in out.items():
            if number >= 0 and key != "per_volume_gigabytes" and used.get(key, 0) > number:
                raise BadRequest(f"Quota limit invalid for project '{project_id}' for resource "
                                 f"'{key}': limit of {number} must be greater than or equal "
                                 f"to already used and reserved {used.get(key, 0)}.")
    return out


def update(s: Session, project_id: str, values: dict[str, Any]) -> dict[str, int]:
    clean = _validate(s, values, project_id)
    for key, number in clean.items():
        row = s.scalar(select(Quota).where(Quota.project_id == project_id,
                                           Quota.resource == key))
        if row is None:
            s.add(Quota(project_id=project_id, resource=key, hard_limit=number))
        else:
            row.hard_limit = number
    s.flush()
    return limits_for(s, project_id)


def reset(s: Session, project_id: str) -> None:
    for row in s.scalars(select(Quota).where(Quota.project_id == project_id)):
        s.delete(row)


def update_class(s: Session, class_name: str, values: dict[str, Any]) -> dict[str, int]:
    clean = _validate(s, values, None)
    for key, number in clean.items():
        row = s.scalar(select(QuotaClass).where(QuotaClass.class_name == class_name,
                                                QuotaClass.resource == key))
        if row is None:
            s.add(QuotaClass(class_name=class_name, resource=key, hard_limit=number))
        else:
            row.hard_limit = number
    s.flush()
    return show_class(s, class_name)


def show_class(s: Session, class_name: str) -> dict[str, int]:
    limits = defaults(s)
    if class_name != "default":
        for q in s.scalars(select(QuotaClass).where(QuotaClass.class_name == class_name)):
            limits[q.resource] = q.hard_limit
    return limits
