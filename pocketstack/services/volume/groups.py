"""Generic volume groups: group types with specs (3.11+), groups of volumes (3.13+), group
snapshots and groups made from a group or a group snapshot (3.14+).

A group is bookkeeping over ordinary volumes (``Volume.group_id``) and a group snapshot
over ordinary snapshots (``Snapshot.group_snapshot_id``): the bytes move through the
volume and snapshot workers, so their crash recovery covers the data. A group or group
snapshot only waits for its members; ``recover`` restarts those waits after a restart.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.volume import types
from pocketstack.services.volume.common import (apply_sort, check_name, is_uuid, parse_bool,
                                                truthy)
from pocketstack.services.volume.common import scoped_select
from pocketstack.services.volume.models import (Group, GroupSnapshot, GroupType, Snapshot,
                                                Volume, VolumeType)

log = logging.getLogger("pocketstack.volume.groups")

GROUP_SORT_KEYS = {"id", "name", "created_at", "updated_at", "status"}
POLL_SECONDS = 0.2


def _later(svc, kind: str, rid: str, fn) -> None:  # noqa: ANN001
    """Check again shortly. Waits never block a volume worker: a group waiting for member
    volumes that need those same workers would otherwise starve them."""
    timer = threading.Timer(POLL_SECONDS, svc.submit, (kind, rid, fn, svc, rid))
    timer.daemon = True
    timer.start()


# -- group types ---------------------------------------------------------------------------
def type_not_found(type_id: str) -> NotFound:
    return NotFound(f"Group type {type_id} could not be found.", kind="GroupTypeNotFound")


def load_type(s: Session, ctx: RequestContext, ref: str) -> GroupType:
    gt = s.get(GroupType, ref) if is_uuid(ref) else None
    if gt is None:
        gt = s.scalar(select(GroupType).where(GroupType.name == ref))
    if gt is None or not (gt.is_public or ctx.is_admin):
        raise type_not_found(ref)
    return gt


def _specs(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("Invalid input for field/attribute group_specs: must be an object.")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > 255:
            raise BadRequest("Invalid input for field/attribute group_specs: bad key.")
        if not isinstance(v, (str, int, float, bool)) or len(str(v)) > 255:
            raise BadRequest(f"Invalid input for field/attribute group_specs: bad value for "
                             f"{k}.")
        out[k] = v if isinstance(v, str) else str(v)
    return out


def list_types(s: Session, ctx: RequestContext, query: Any) -> list[GroupType]:
    policy.enforce(ctx, "group:group_types_get", {})
    stmt = select(GroupType)
    public = query.get("is_public")
    if not ctx.is_admin:
        stmt = stmt.where(GroupType.is_public.is_(True))
    elif public is not None and public.lower() not in ("none", ""):
        stmt = stmt.where(GroupType.is_public.is_(truthy(public)))
    sort = []
    for item in (query.get("sort") or "created_at:asc").split(","):
        key, _, direction = item.partition(":")
        if key not in ("name", "id", "created_at", "is_public", "description"):
            raise BadRequest(f"Invalid sort key {key!r}.")
        sort.append((key, direction or "asc"))
    return list(s.scalars(apply_sort(stmt, GroupType, sort)))


def create_type(s: Session, ctx: RequestContext, body: Any) -> GroupType:
    policy.enforce(ctx, "group:group_types_manage", {})
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute group_type.")
    name = check_name(body.get("name"))
    if not name or not name.strip():
        raise BadRequest("Invalid input for field/attribute name: a group type needs a name.")
    if s.scalar(select(GroupType).where(GroupType.name == name)) is not None:
        raise Conflict(f"Group Type {name} already exists.", kind="GroupTypeExists")
    gt = GroupType(name=name, description=check_name(body.get("description"), "description"),
                   is_public=parse_bool(body.get("is_public", True), "is_public"),
                   group_specs=_specs(body.get("group_specs")))
    s.add(gt)
    s.flush()
    return gt


def update_type(s: Session, ctx: RequestContext, type_id: str, body: Any) -> GroupType:
    policy.enforce(ctx, "group:group_types_manage", {})
    if not isinstance(body, dict) or not set(body) & {"name", "description", "is_public"}:
        raise BadRequest("Specify group type name, description or is_public.")
    gt = load_type(s, ctx, type_id)
    if "name" in body:
        name = check_name(body["name"])
        if not name or not name.strip():
            raise BadRequest("Invalid input for field/attribute name.")
        other = s.scalar(select(GroupType).where(GroupType.name == name))
        if other is not None and other.id != gt.id:
            raise Conflict(f"Group Type {name} already exists.", kind="GroupTypeExists")
        gt.name = name
    if "description" in body:
        gt.description = check_name(body["description"], "description")
    if "is_public" in body:
        gt.is_public = parse_bool(body["is_public"], "is_public")
    gt.updated_at = utcnow()
    s.flush()
    return gt


def delete_type(s: Session, ctx: RequestContext, type_id: str) -> None:
    policy.enforce(ctx, "group:group_types_manage", {})
    gt = load_type(s, ctx, type_id)
    if s.scalar(select(Group.id).where(Group.group_type_id == gt.id).limit(1)):
        raise BadRequest(f"Target group type {gt.id} is still in use.", kind="GroupTypeInUse")
    s.delete(gt)


def set_specs(s: Session, ctx: RequestContext, type_id: str, specs: Any) -> dict[str, str]:
    policy.enforce(ctx, "group:group_types_specs", {})
    gt = load_type(s, ctx, type_id)
    new = _specs(specs)
    gt.group_specs = {**(gt.group_specs or {}), **new}
    return new


def delete_spec(s: Session, ctx: RequestContext, type_id: str, key: str) -> None:
    policy.enforce(ctx, "group:group_types_specs", {})
    gt = load_type(s, ctx, type_id)
    if key not in (gt.group_specs or {}):
        raise NotFound(f"Group Type {gt.id} has no specs with key {key}.",
                       kind="GroupTypeSpecsNotFound")
    specs = dict(gt.group_specs)
    specs.pop(key)
    gt.group_specs = specs


# -- groups --------------------------------------------------------------------------------
def not_found(group_id: str) -> NotFound:
    return NotFound(f"Group {group_id} could not be found.", kind="GroupNotFound")


def load(s: Session, ctx: RequestContext, group_id: str, action: str = "get") -> Group:
    g = s.get(Group, group_id) if is_uuid(group_id) else None
    if g is None or not (ctx.is_admin or g.project_id == ctx.project_id):
        raise not_found(group_id)
    policy.enforce(ctx, f"group:{action}", {"project_id": g.project_id})
    return g


def list_groups(s: Session, ctx: RequestContext, query: Any, *, all_projects: bool,
                project_id: str | None, sort: list) -> list[Group]:
    policy.enforce(ctx, "group:get_all", {"project_id": ctx.project_id})
    stmt = scoped_select(Group, ctx, all_projects=all_projects, project_id=project_id,
                         query=query, equal=("name", "status"))
    return list(s.scalars(apply_sort(stmt, Group, sort)))


def members(s: Session, group_id: str) -> list[Volume]:
    return list(s.scalars(select(Volume).where(Volume.group_id == group_id)
                          .order_by(Volume.created_at)))


def _volume_types(s: Session, ctx: RequestContext, refs: Any) -> list[str]:
    if not isinstance(refs, list) or not refs:
        raise BadRequest("Invalid input: volume_types must be a non-empty list.")
    out = []
    for ref in refs:
        if not isinstance(ref, str):
            raise BadRequest("Invalid input: volume_types holds volume type ids or names.")
        vt = types.resolve_for_create(s, ctx, ref)
        if vt is None:
            raise NotFound(f"Volume type {ref} could not be found.", kind="VolumeTypeNotFound")
        out.append(vt.id)
    return out


def create(svc, ctx: RequestContext, body: Any) -> Group:  # noqa: ANN001
    policy.enforce(ctx, "group:create", {"project_id": ctx.project_id})
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute group.")
    if not body.get("group_type"):
        raise BadRequest("Missing required element 'group_type' in request body.")
    az = body.get("availability_zone") or svc.az
    if az != svc.az:
        raise BadRequest(f"Invalid input received: Availability zone '{az}' is invalid.")
    with svc.db.write() as s:
        gt = load_type(s, ctx, str(body["group_type"]))
        vtypes = _volume_types(s, ctx, body.get("volume_types"))
        _check_quota(s, ctx.project_id or "")
        g = Group(project_id=ctx.project_id or "", user_id=ctx.user_id or "",
                  name=check_name(body.get("name")),
                  description=check_name(body.get("description"), "description"),
                  status="available", group_type_id=gt.id, volume_type_ids=vtypes,
                  availability_zone=az)
        s.add(g)
        s.flush()
        return g


def _check_quota(s: Session, project_id: str) -> None:
    from sqlalchemy import func

    from pocketstack.errors import OverQuota
    from pocketstack.services.volume import quotas

    quotas.lock_project(s, project_id)
    limit = quotas.limits_for(s, project_id).get("groups", -1)
    used = s.scalar(select(func.count()).select_from(Group)
                    .where(Group.project_id == project_id)) or 0
    if limit >= 0 and used + 1 > limit:
        raise OverQuota(f"Maximum number of groups allowed ({limit}) exceeded for quota "
                        f"'groups'.", status=413, kind="GroupLimitExceeded")


def check_volume_group(s: Session, ctx: RequestContext, group_id: Any,
                       vtype: VolumeType | None) -> str:
    """For POST /volumes with ``group_id``: the group must be usable and allow the type."""
    g = s.get(Group, group_id) if isinstance(group_id, str) and is_uuid(group_id) else None
    if g is None or not (ctx.is_admin or g.project_id == ctx.project_id):
        raise not_found(str(group_id))
    if g.status != "available":
        raise BadRequest(f"Invalid group: Group status must be available, but current "
                         f"status is: {g.status}.")
    if vtype is None or vtype.id not in (g.volume_type_ids or []):
        raise BadRequest("Invalid input received: the volume's type is not one of the "
                         "group's volume types.")
    return g.id


def _id_list(value: Any, field: str) -> list[str]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field/attribute {field}: a comma-separated "
                         "string of volume ids.")
    return [x.strip() for x in value.split(",") if x.strip()]


def update(svc, ctx: RequestContext, group_id: str, body: Any) -> Group:  # noqa: ANN001
    if not isinstance(body, dict) or not set(body) & {"name", "description", "add_volumes",
                                                      "remove_volumes"}:
        raise BadRequest("Name, description, add_volumes, and remove_volumes can not be all "
                         "empty in the request body.")
    add = _id_list(body.get("add_volumes"), "add_volumes")
    remove = _id_list(body.get("remove_volumes"), "remove_volumes")
    with svc.db.write() as s:
        g = load(s, ctx, group_id, "update")
        if g.status != "available":
            raise BadRequest(f"Invalid group: Group status must be available, but current "
                             f"status is: {g.status}.")
        if "name" in body:
            g.name = check_name(body["name"])
        if "description" in body:
            g.description = check_name(body["description"], "description")
        changes = []
        for vid in add:
            vol = s.get(Volume, vid) if is_uuid(vid) else None
            if vol is None or vol.project_id != g.project_id:
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group "
                                 f"{g.id} because volume cannot be found.")
            if vol.group_id and vol.group_id != g.id:
                raise BadRequest(f"Invalid volume: Volume {vid} is already in a group.")
            if vol.volume_type_id not in (g.volume_type_ids or []):
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {g.id} "
                                 f"because volume type {vol.volume_type_id} is not supported "
                                 f"by the group.")
            if vol.status not in ("available", "in-use"):
                raise BadRequest(f"Invalid volume: Cannot add volume {vid} to group {g.id} "
                                 f"because volume is in an invalid state: {vol.status}.")
            changes.append((vol, g.id))
        for vid in remove:
            vol = s.get(Volume, vid) if is_uuid(vid) else None
            if vol is None or vol.group_id != g.id:
                raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group "
                                 f"{g.id} because it is not in the group.")
            if vol.status not in ("available", "in-use", "error", "error_deleting"):
                raise BadRequest(f"Invalid volume: Cannot remove volume {vid} from group "
                                 f"{g.id} because volume is in an invalid state: "
                                 f"{vol.status}.")
            changes.append((vol, None))
        for vol, gid in changes:
            vol.group_id = gid
        g.updated_at = utcnow()
        s.flush()
        return g


def delete(svc, ctx: RequestContext, group_id: str, body: Any) -> None:  # noqa: ANN001
    from pocketstack.services.volume import volumes

    delete_volumes = parse_bool((body or {}).get("delete-volumes", False), "delete-volumes") \
        if isinstance(body, dict) or body is None else None
    if delete_volumes is None:
        raise BadRequest("Invalid input for field/attribute delete.")
    with svc.db.write() as s:
        g = load(s, ctx, group_id, "delete")
        if g.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid group: Group status must be available or error, but "
                             f"current status is: {g.status}.")
        vols = members(s, g.id)
        if vols and not delete_volumes:
            raise BadRequest("Invalid group: Group has volumes; delete them with "
                             "delete-volumes or remove them first.")
        if s.scalar(select(GroupSnapshot.id).where(GroupSnapshot.group_id == g.id).limit(1)):
            raise BadRequest("Invalid group: Group has existing snapshots.")
        for vol in vols:
            if any(a.attach_status == "attached" for a in vol.attachments) or \
                    vol.status == "in-use":
                raise BadRequest(f"Invalid volume: Volume {vol.id} in the group is attached.")
        ids = [v.id for v in vols]
        g.status = "deleting"
        g.task = {"kind": "delete"}
    for vid in ids:
        try:
            volumes.delete(svc, RequestContext.internal(), vid, cascade=True, force=True)
        except NotFound:
            pass
    svc.submit("group", group_id, run_delete, svc, group_id)


def run_delete(svc, group_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        g = s.get(Group, group_id)
        if g is None or g.status != "deleting":
            return
        left = members(s, group_id)
        if not left:
            s.delete(g)
            return
        if all(v.status.startswith("error") for v in left):
            g.status, g.task = "error_deleting", None
            return
    _later(svc, "group", group_id, run_delete)


def reset_status(svc, ctx: RequestContext, group_id: str, body: Any) -> None:  # noqa: ANN001
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("creating", "available", "error", "deleting", "error_deleting",
                      "updating", "in-use"):
        raise BadRequest(f"Invalid group status: {status!r}.")
    with svc.db.write() as s:
        g = load(s, ctx, group_id, "reset_status")
        g.status, g.task = status, None
        g.updated_at = utcnow()


def create_from_source(svc, ctx: RequestContext, body: Any) -> Group:  # noqa: ANN001
    """``create-from-src``: a new group whose volumes are clones of a group's volumes or
    are made from a group snapshot's snapshots."""
    from pocketstack.services.volume import volumes

    policy.enforce(ctx, "group:create", {"project_id": ctx.project_id})
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute create-from-src.")
    src_group, src_snap = body.get("source_group_id"), body.get("group_snapshot_id")
    if bool(src_group) == bool(src_snap):
        raise BadRequest("Invalid input: give exactly one of source_group_id and "
                         "group_snapshot_id.")
    with svc.db.write() as s:
        if src_group:
            source = load(s, ctx, str(src_group))
            gtype, vtypes = source.group_type_id, list(source.volume_type_ids or [])
            plan = [{"source_volid": v.id, "volume_type": v.volume_type_id, "size": v.size}
                    for v in members(s, source.id)]
        else:
            gs = load_snapshot(s, ctx, str(src_snap))
            if gs.status != "available":
                raise BadRequest(f"Invalid group snapshot: status must be available, not "
                                 f"{gs.status}.")
            origin = s.get(Group, gs.group_id)
            gtype = gs.group_type_id
            vtypes = list(origin.volume_type_ids or []) if origin else []
            plan = []
            for snap in s.scalars(select(Snapshot).where(Snapshot.group_snapshot_id == gs.id)):
                vol = s.get(Volume, snap.volume_id)
                plan.append({"snapshot_id": snap.id, "size": snap.size,
                             "volume_type": vol.volume_type_id if vol else None})
                if vol is not None and vol.volume_type_id not in vtypes:
                    vtypes.append(vol.volume_type_id)
        _check_quota(s, ctx.project_id or "")
        g = Group(project_id=ctx.project_id or "", user_id=ctx.user_id or "",
                  name=check_name(body.get("name")),
                  description=check_name(body.get("description"), "description"),
                  status="creating", group_type_id=gtype, volume_type_ids=vtypes,
                  availability_zone=svc.az, source_group_id=src_group or None,
                  group_snapshot_id=src_snap or None, task={"kind": "create"})
        s.add(g)
        s.flush()
        gid = g.id
    made = []
    try:
        for item in plan:
            vol = volumes.create(svc, ctx, {k: v for k, v in item.items() if v is not None})
            made.append(vol.id)
            with svc.db.write() as s:
                s.get(Volume, vol.id).group_id = gid
    except Exception as exc:  # noqa: BLE001 - the group records why it failed
        with svc.db.write() as s:
            row = s.get(Group, gid)
            row.status, row.task = "error", None
        log.warning("group %s from source failed: %s", gid, exc)
        raise
    svc.submit("group", gid, run_create, svc, gid)
    with svc.db.read() as s:
        return s.get(Group, gid)


def run_create(svc, group_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        g = s.get(Group, group_id)
        if g is None or g.status != "creating":
            return
        vols = members(s, group_id)
        if any(v.status.startswith("error") for v in vols):
            g.status, g.task = "error", None
            return
        if all(v.status == "available" for v in vols):
            g.status, g.task = "available", None
            return
    _later(svc, "group", group_id, run_create)


# -- group snapshots ---------------------------------------------------------------------
def load_snapshot(s: Session, ctx: RequestContext, gs_id: str,
                  action: str = "get_group_snapshot") -> GroupSnapshot:
    gs = s.get(GroupSnapshot, gs_id) if is_uuid(gs_id) else None
    if gs is None or not (ctx.is_admin or gs.project_id == ctx.project_id):
        raise NotFound(f"GroupSnapshot {gs_id} could not be found.",
                       kind="GroupSnapshotNotFound")
    policy.enforce(ctx, f"group:{action}", {"project_id": gs.project_id})
    return gs


def list_snapshots(s: Session, ctx: RequestContext, query: Any, *, all_projects: bool,
                   project_id: str | None, sort: list) -> list[GroupSnapshot]:
    policy.enforce(ctx, "group:get_all_group_snapshots", {"project_id": ctx.project_id})
    stmt = scoped_select(GroupSnapshot, ctx, all_projects=all_projects, project_id=project_id,
                         query=query, equal=("name", "status", "group_id"))
    return list(s.scalars(apply_sort(stmt, GroupSnapshot, sort)))


def create_snapshot(svc, ctx: RequestContext, body: Any) -> GroupSnapshot:  # noqa: ANN001
    from pocketstack.services.volume import quotas, snapshots

    policy.enforce(ctx, "group:create_group_snapshot", {"project_id": ctx.project_id})
    if not isinstance(body, dict) or not body.get("group_id"):
        raise BadRequest("Missing required element 'group_id' in request body.")
    with svc.db.write() as s:
        g = load(s, ctx, str(body["group_id"]))
        if g.status != "available":
            raise BadRequest(f"Invalid group: Group status must be available, but current "
                             f"status is: {g.status}.")
        vols = members(s, g.id)
        for vol in vols:
            if vol.status not in ("available", "in-use"):
                raise BadRequest(f"Invalid volume: Volume {vol.id} is {vol.status}.")
        quotas.check(s, g.project_id, snapshots=len(vols),
                     gigabytes=sum(v.size for v in vols))
        gs = GroupSnapshot(project_id=g.project_id, user_id=ctx.user_id or "", group_id=g.id,
                           group_type_id=g.group_type_id, name=check_name(body.get("name")),
                           description=check_name(body.get("description"), "description"),
                           status="creating", task={"kind": "create"})
        s.add(gs)
        s.flush()
        snap_ids = []
        for vol in vols:
            snap = Snapshot(volume_id=vol.id, project_id=g.project_id,
                            user_id=ctx.user_id or "", name=f"group-snapshot-{gs.id}",
                            status="creating", progress="0%", size=vol.size, metadata_={},
                            group_snapshot_id=gs.id, task={"kind": "create"})
            s.add(snap)
            s.flush()
            snap_ids.append(snap.id)
        gs_id = gs.id
    for sid in snap_ids:
        svc.submit("snapshot", sid, snapshots.run_create, svc, sid)
    svc.submit("group_snapshot", gs_id, run_snapshot_wait, svc, gs_id)
    return gs


def run_snapshot_wait(svc, gs_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        gs = s.get(GroupSnapshot, gs_id)
        if gs is None or gs.status not in ("creating", "deleting"):
            return
        snaps = list(s.scalars(select(Snapshot).where(Snapshot.group_snapshot_id == gs_id)))
        if gs.status == "deleting":
            if not snaps:
                s.delete(gs)
                return
            if all(x.status.startswith("error") for x in snaps):
                gs.status, gs.task = "error_deleting", None
                return
        else:
            if any(x.status.startswith("error") for x in snaps):
                gs.status, gs.task = "error", None
                return
            if all(x.status == "available" for x in snaps):
                gs.status, gs.task = "available", None
                return
    _later(svc, "group_snapshot", gs_id, run_snapshot_wait)


def delete_snapshot(svc, ctx: RequestContext, gs_id: str) -> None:  # noqa: ANN001
    from pocketstack.services.volume import snapshots

    with svc.db.write() as s:
        gs = load_snapshot(s, ctx, gs_id, "delete_group_snapshot")
        if gs.status not in ("available", "error", "error_deleting"):
            raise BadRequest(f"Invalid group snapshot: status must be available or error, "
                             f"not {gs.status}.")
        if s.scalar(select(Group.id).where(Group.group_snapshot_id == gs.id,
                                           Group.status == "creating").limit(1)):
            raise BadRequest("Invalid group snapshot: a group is being created from it.")
        sids = list(s.scalars(select(Snapshot.id).where(Snapshot.group_snapshot_id == gs.id)))
        gs.status, gs.task = "deleting", {"kind": "delete"}
    for sid in sids:
        try:
            snapshots.delete(svc, RequestContext.internal(), sid, force=True)
        except NotFound:
            pass
    svc.submit("group_snapshot", gs_id, run_snapshot_wait, svc, gs_id)


def reset_snapshot_status(svc, ctx: RequestContext, gs_id: str, body: Any) -> None:  # noqa: ANN001
    status = body.get("status") if isinstance(body, dict) else None
    if status not in ("creating", "available", "error", "deleting", "error_deleting"):
        raise BadRequest(f"Invalid group snapshot status: {status!r}.")
    with svc.db.write() as s:
        gs = load_snapshot(s, ctx, gs_id, "reset_group_snapshot_status")
        gs.status, gs.task = status, None


def recover(svc) -> None:  # noqa: ANN001
    """At start: resume waiting for the members of groups and group snapshots in flight."""
    with svc.db.read() as s:
        groups = [(g.id, g.status) for g in s.scalars(select(Group).where(
            Group.status.in_(("creating", "deleting"))))]
        gsnaps = [x.id for x in s.scalars(select(GroupSnapshot).where(
            GroupSnapshot.status.in_(("creating", "deleting"))))]
    for gid, status in groups:
        svc.submit("group", gid, run_create if status == "creating" else run_delete, svc, gid)
    for gs_id in gsnaps:
        svc.submit("group_snapshot", gs_id, run_snapshot_wait, svc, gs_id)
