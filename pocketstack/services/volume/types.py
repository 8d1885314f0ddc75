"""Volume types, their extra specs and project access (private types)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.volume.common import check_name, is_uuid, parse_bool
from pocketstack.services.volume.models import (ProjectDefaultType, Volume, VolumeType,
                                                VolumeTypeProject)

DEFAULT_TYPE = "__DEFAULT__"


def _visible(s: Session, ctx: RequestContext, vt: VolumeType) -> bool:
    if vt.is_public or ctx.is_admin:
        return True
    return s.get(VolumeTypeProject, (vt.id, ctx.project_id or "")) is not None


def find(s: Session, ctx: RequestContext, ref: Any, *, quiet: bool = False) -> VolumeType | None:
    """A type by id or name that ctx may use."""
    ref = str(ref)
    vt = s.get(VolumeType, ref) if is_uuid(ref) else None
    if vt is None:
        vt = s.scalar(select(VolumeType).where(VolumeType.name == ref))
    if vt is None or not _visible(s, ctx, vt):
        if quiet:
            return None
        if is_uuid(ref):
            raise NotFound(f"Volume type {ref} could not be found.", kind="VolumeTypeNotFound")
        raise NotFound(f"Volume type with name {ref} could not be found.",
                       kind="VolumeTypeNotFoundByName")
    return vt


def get_row(s: Session, type_id: str | None) -> VolumeType | None:
    return s.get(VolumeType, type_id) if type_id else None


def default(s: Session) -> VolumeType | None:
    return s.scalar(select(VolumeType).where(VolumeType.name == DEFAULT_TYPE))


def project_default(s: Session, project_id: str | None) -> VolumeType | None:
    """The project's own default type (3.62 default-types), else the cloud's."""
    row = s.get(ProjectDefaultType, project_id) if project_id else None
    vt = s.get(VolumeType, row.volume_type_id) if row is not None else None
    return vt if vt is not None else default(s)


def resolve_for_create(s: Session, ctx: RequestContext, ref: Any) -> VolumeType | None:
    vt = project_default(s, ctx.project_id) if ref in (None, "") else find(s, ctx, ref)
    if vt is not None and vt.encryption:
        raise BadRequest(f"Invalid volume type {vt.name}: encrypted volumes need a key "
                         "manager, which this cloud does not have.")
    return vt


def list_types(s: Session, ctx: RequestContext, is_public: str | None) -> list[VolumeType]:
    policy.enforce(ctx, "volume_type:get_all", {})
    stmt = select(VolumeType).order_by(VolumeType.created_at, VolumeType.name)
    if ctx.is_admin:
        if is_public is not None and is_public.lower() != "none":
            stmt = stmt.where(VolumeType.is_public.is_(parse_bool(is_public, "is_public")))
    else:
        access = exists().where(VolumeTypeProject.type_id == VolumeType.id,
                                VolumeTypeProject.project_id == (ctx.project_id or ""))
        stmt = stmt.where(or_(VolumeType.is_public.is_(True), access))
    return list(s.scalars(stmt))


def _check_specs(specs: Any) -> dict[str, str]:
    if not isinstance(specs, dict):
        raise BadRequest("Invalid input for field/attribute extra_specs. Value: "
                         f"{specs}. {specs!r} is not of type 'object'")
    out = {}
    for k, v in specs.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise BadRequest("Invalid input for field/attribute extra_specs: keys must be "
                             "strings of 1 to 255 characters.")
        if v is None or isinstance(v, (dict, list)):
            raise BadRequest(f"Invalid input for field/attribute extra_specs: value of {k} "
                             "must be a string.")
        v = str(v) if not isinstance(v, bool) else str(v)
        if len(v) > 255:
            raise BadRequest("Invalid input for field/attribute extra_specs: values must be "
                             "at most 255 characters.")
        out[k] = v
    return out


def create(s: Session, ctx: RequestContext, body: Any) -> VolumeType:
    policy.enforce(ctx, "volume_type:create", {})
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute volume_type.")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("Volume type name can not be empty.")
    check_name(name)
    description = check_name(body.get("description"), "description")
    is_public = parse_bool(body.get("os-volume-type-access:is_public", True), "is_public")
    specs = _check_specs(body.get("extra_specs") or {})
    if s.scalar(select(VolumeType).where(VolumeType.name == name.strip())) is not None:
        raise Conflict(f"Volume Type {name} already exists.", kind="VolumeTypeExists")
    vt = VolumeType(name=name.strip(), description=description, is_public=is_public,
                    extra_specs=specs)
    s.add(vt)
    s.flush()
    return vt


def _load(s: Session, ctx: RequestContext, type_id: str) -> VolumeType:
    vt = s.get(VolumeType, type_id) if is_uuid(type_id) else None
    if vt is None or not _visible(s, ctx, vt):
        raise NotFound(f"Volume type {type_id} could not be found.", kind="VolumeTypeNotFound")
    return vt


def show(s: Session, ctx: RequestContext, type_id: str) -> VolumeType:
    policy.enforce(ctx, "volume_type:get", {})
    if type_id == "default":
        vt = default(s)
        if vt is None:
            raise NotFound("Default volume type can not be found.")
        return vt
    return _load(s, ctx, type_id)


def update(s: Session, ctx: RequestContext, type_id: str, body: Any) -> VolumeType:
    policy.enforce(ctx, "volume_type:update", {})
    vt = _load(s, ctx, type_id)
    if not isinstance(body, dict) or not ({"name", "description",
                                           "is_public"} & set(body)):
        raise BadRequest("Specify volume type name, description, is_public or a combination "
                         "thereof.")
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("Volume type name can not be empty.")
        if vt.name == DEFAULT_TYPE and name != vt.name:
            raise BadRequest("The default volume type cannot be renamed.")
        clash = s.scalar(select(VolumeType).where(VolumeType.name == name.strip(),
                                                  VolumeType.id != vt.id))
        if clash is not None:
            raise Conflict(f"Volume Type {name} already exists.", kind="VolumeTypeExists")
        vt.name = name.strip()
    if "description" in body:
        vt.description = check_name(body["description"], "description")
    if "is_public" in body:
        vt.is_public = parse_bool(body["is_public"], "is_public")
    s.flush()
    return vt


def delete(s: Session, ctx: RequestContext, type_id: str) -> None:
    policy.enforce(ctx, "volume_type:delete", {})
    vt = _load(s, ctx, type_id)
    if vt.name == DEFAULT_TYPE:
        raise BadRequest("The default volume type cannot be deleted.")
    if s.scalar(select(ProjectDefaultType.project_id).where(
            ProjectDefaultType.volume_type_id == vt.id).limit(1)) is not None:
        raise BadRequest(f"The volume type {vt.id} is a default volume type and cannot be "
                         "deleted.", kind="VolumeTypeDefaultDeletionError")
    if s.scalar(select(Volume.id).where(Volume.volume_type_id == vt.id).limit(1)):
        raise BadRequest("Target volume type is still in use.", kind="VolumeTypeInUse")
    for row in s.scalars(select(VolumeTypeProject).where(VolumeTypeProject.type_id == vt.id)):
        s.delete(row)
    s.delete(vt)


# -- extra specs ------------------------------------------------------------------------------
def specs(s: Session, ctx: RequestContext, type_id: str) -> dict[str, str]:
    policy.enforce(ctx, "volume_type:extra_specs_get", {})
    return dict(_load(s, ctx, type_id).extra_specs)


def set_specs(s: Session, ctx: RequestContext, type_id: str, values: Any) -> dict[str, str]:
    policy.enforce(ctx, "volume_type:extra_specs_update", {})
    vt = _load(s, ctx, type_id)
    clean = _check_specs(values)
    if not clean:
        raise BadRequest("Invalid input for field/attribute extra_specs: must not be empty.")
    merged = dict(vt.extra_specs)
    merged.update(clean)
    vt.extra_specs = merged
    return clean


def spec(s: Session, ctx: RequestContext, type_id: str, key: str) -> dict[str, str]:
    values = specs(s, ctx, type_id)
    if key not in values:
        raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.",
                       kind="VolumeTypeExtraSpecsNotFound")
    return {key: values[key]}


def set_spec(s: Session, ctx: RequestContext, type_id: str, key: str, body: Any) -> dict:
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Request body contains too many items." if isinstance(body, dict)
                         and body else "Request body empty.")
    if key not in body:
        raise BadRequest("Request body and URI mismatch.")
    return set_specs(s, ctx, type_id, body)


def delete_spec(s: Session, ctx: RequestContext, type_id: str, key: str) -> None:
    policy.enforce(ctx, "volume_type:extra_specs_delete", {})
    vt = _load(s, ctx, type_id)
    if key not in vt.extra_specs:
        raise NotFound(f"Volume Type {type_id} has no extra specs with key {key}.",
                       kind="VolumeTypeExtraSpecsNotFound")
    merged = dict(vt.extra_specs)
    merged.pop(key)
    vt.extra_specs = merged


# -- access -----------------------------------------------------------------------------------
def access_list(s: Session, ctx: RequestContext, type_id: str) -> list[dict[str, str]]:
    policy.enforce(ctx, "volume_type:access_list", {})
    vt = _load(s, ctx, type_id)
    if vt.is_public:
        raise NotFound("Access list not available for public volume types.",
                       kind="VolumeTypeAccessNotFound")
    return [{"volume_type_id": vt.id, "project_id": p} for p in s.scalars(
        select(VolumeTypeProject.project_id).where(VolumeTypeProject.type_id == vt.id))]


def add_access(s: Session, ctx: RequestContext, type_id: str, body: Any) -> None:
    policy.enforce(ctx, "volume_type:access_manage", {})
    vt = _load(s, ctx, type_id)
    project = body.get("project") if isinstance(body, dict) else None
    if not project or not isinstance(project, str):
        raise BadRequest("Missing required element 'project' in request body.")
    if vt.is_public:
        raise BadRequest("Invalid volume type: Type access modification is not applicable "
                         "to public volume type.")
    if s.get(VolumeTypeProject, (vt.id, project)) is not None:
        raise Conflict(f"Volume type access for {vt.id} / {project} combination already "
                       "exists.", kind="VolumeTypeAccessExists")
    s.add(VolumeTypeProject(type_id=vt.id, project_id=project))


def remove_access(s: Session, ctx: RequestContext, type_id: str, body: Any) -> None:
    policy.enforce(ctx, "volume_type:access_manage", {})
    vt = _load(s, ctx, type_id)
    project = body.get("project") if isinstance(body, dict) else None
    if not project or not isinstance(project, str):
        raise BadRequest("Missing required element 'project' in request body.")
    row = s.get(VolumeTypeProject, (vt.id, project))
    if row is None:
        raise NotFound(f"Volume type access not found for {vt.id} / {project} combination.",
                       kind="VolumeTypeAccessNotFound")
    s.delete(row)


# -- encryption -------------------------------------------------------------------------------
ENCRYPTION_KEYS = {"provider", "cipher", "key_size", "control_location"}


def set_encryption(s: Session, ctx: RequestContext, type_id: str, body: Any,
                   encryption_id: str | None) -> VolumeType:
    import uuid

    from pocketstack.db.base import utcnow
    from pocketstack.services.volume.views import ts

    policy.enforce(ctx, "volume_type:encryption", {})
    vt = _load(s, ctx, type_id)
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute encryption.")
    bad = set(body) - ENCRYPTION_KEYS
    if bad:
        raise BadRequest(f"Invalid input for field/attribute encryption: unexpected "
                         f"{', '.join(sorted(bad))}.")
    if "control_location" in body and body["control_location"] not in ("front-end",
                                                                       "back-end"):
        raise BadRequest("Invalid input for field/attribute control_location: must be "
                         "front-end or back-end.")
    if "key_size" in body and body["key_size"] is not None and (
            isinstance(body["key_size"], bool) or not isinstance(body["key_size"], int)
            or body["key_size"] < 0):
        raise BadRequest("Invalid input for field/attribute key_size: must be an integer.")
    if s.scalar(select(Volume.id).where(Volume.volume_type_id == vt.id).limit(1)):
        raise BadRequest("Cannot create or update the encryption of a volume type that is "
                         "in use.", kind="VolumeTypeInUse")
    if encryption_id is None:
        if vt.encryption:
            raise BadRequest(f"Volume type encryption for type {vt.id} already exists.",
                             kind="VolumeTypeEncryptionExists")
        if not body.get("provider"):
            raise BadRequest("Invalid input for field/attribute provider: is a required "
                             "property")
        enc = {"encryption_id": str(uuid.uuid4()), "created_at": ts(utcnow()),
               "control_location": "front-end"}
    else:
        if not vt.encryption or vt.encryption.get("encryption_id") != encryption_id:
            raise NotFound(f"Volume type encryption for type {vt.id} does not exist.",
                           kind="VolumeTypeEncryptionNotFound")
        enc = {**vt.encryption, "updated_at": ts(utcnow())}
    enc.update(body)
    vt.encryption = enc
    s.flush()
    return vt


def delete_encryption(s: Session, ctx: RequestContext, type_id: str, encryption_id: str) -> None:
    policy.enforce(ctx, "volume_type:encryption", {})
    vt = _load(s, ctx, type_id)
    if not vt.encryption or vt.encryption.get("encryption_id") != encryption_id:
        raise NotFound(f"Volume type encryption for type {vt.id} does not exist.",
                       kind="VolumeTypeEncryptionNotFound")
    if s.scalar(select(Volume.id).where(Volume.volume_type_id == vt.id).limit(1)):
        raise BadRequest("Cannot delete encryption specs. Volume type in use.",
                         kind="VolumeTypeInUse")
    vt.encryption = None
