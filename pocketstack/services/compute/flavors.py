"""Flavors, their extra specs and access lists (nova/api/openstack/compute/flavor*.py)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.compute.models import Flavor, FlavorAccess

# DevStack's flavors (lib/nova create_flavors), created at first start.
DEVSTACK_FLAVORS = [
    ("1", "m1.tiny", 512, 1, 1, {}), ("2", "m1.small", 2048, 20, 1, {}),
    ("3", "m1.medium", 4096, 40, 2, {}), ("4", "m1.large", 8192, 80, 4, {}),
    ("5", "m1.xlarge", 16384, 160, 8, {}),
    ("c1", "cirros256", 256, 1, 1, {"hw_rng:allowed": "True"}),
    ("d1", "ds512M", 512, 5, 1, {"hw_rng:allowed": "True"}),
    ("d2", "ds1G", 1024, 10, 1, {"hw_rng:allowed": "True"}),
    ("d3", "ds2G", 2048, 10, 2, {"hw_rng:allowed": "True"}),
    ("d4", "ds4G", 4096, 20, 4, {"hw_rng:allowed": "True"}),
]

_ID_RE = re.compile(r"^(?! )[a-zA-Z0-9. _-]+(?<! )\Z")
_SPEC_KEY_RE = re.compile(r"^[\w.:\- ]+\Z")
INT_MAX = 2147483647


def seed_defaults(s) -> None:  # noqa: ANN001
    for i, (fid, name, ram, disk, vcpus, specs) in enumerate(DEVSTACK_FLAVORS):
        s.add(Flavor(id=fid, name=name, memory_mb=ram, root_gb=disk, vcpus=vcpus,
                     extra_specs=specs, seq=i + 1))


def _int(body: dict, key: str, lo: int, hi: int = INT_MAX, default: Any = None) -> int:
    value = body.get(key, default)
    if value is None:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: None. "
                         "None is not of type 'integer', 'string'")
    if isinstance(value, bool):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                         f"{value} is not of type 'integer', 'string'")
    if isinstance(value, str):
        if not re.fullmatch(r"\s*-?\d+\s*", value):
            raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                             f"'{value}' does not match '^[0-9]+$'")
        value = int(value)
    if not isinstance(value, int):
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                         f"{value!r} is not of type 'integer', 'string'")
    if value < lo:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                         f"{value} is less than the minimum of {lo}")
    if value > hi:
        raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                         f"{value} is greater than the maximum of {hi}")
    return value


def create(svc, ctx: RequestContext, body: Any, allow_description: bool) -> Flavor:
    policy.enforce(ctx, "compute:flavor_manage")
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute flavor: must be an object")
    allowed = {"name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public"} | ({"description"} if allow_description
                                                                else set())
    extra = set(body) - allowed
    if extra:
        raise BadRequest("Invalid input for field/attribute flavor. Additional properties are "
                         f"not allowed ({', '.join(repr(e) for e in sorted(extra))} were "
                         "unexpected)")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("Invalid input for field/attribute name: a non-empty string of at "
                         "most 255 characters is required")
    if name != name.strip():
        raise BadRequest("Invalid input for field/attribute name: leading or trailing "
                         "whitespace is not allowed")
    fid = body.get("id")
    if fid is None or fid == "auto":
        fid = str(uuid.uuid4())
    else:
        if isinstance(fid, bool) or not isinstance(fid, (str, int)):
            raise BadRequest("Invalid input for field/attribute id: must be a string")
        fid = str(fid)
        if not _ID_RE.match(fid) or len(fid) > 255:
            raise BadRequest(f"Invalid input for field/attribute id. Value: {fid}. "
                             "Flavor id may only contain letters, digits, '.', '-', '_' and "
                             "spaces, and may not start or end with a space")
    ram = _int(body, "ram", 1)
    vcpus = _int(body, "vcpus", 1)
    disk = _int(body, "disk", 0)
    eph = _int(body, "OS-FLV-EXT-DATA:ephemeral", 0, default=0)
    swap = _int(body, "swap", 0, default=0)
    rxtx = body.get("rxtx_factor", 1.0)
    if isinstance(rxtx, bool) or not isinstance(rxtx, (int, float, str)):
        raise BadRequest("Invalid input for field/attribute rxtx_factor: must be a number")
    try:
        rxtx = float(rxtx)
    except ValueError:
        raise BadRequest(f"Invalid input for field/attribute rxtx_factor. Value: {rxtx}") from None
    if not (0 < rxtx <= 3.40282e38):
        raise BadRequest("Invalid input for field/attribute rxtx_factor: must be greater than 0")
    is_public = body.get("os-flavor-access:is_public", True)
    if isinstance(is_public, str) and is_public.lower() in ("true", "false", "1", "0", "yes", "no"):
        is_public = is_public.lower() in ("true", "1", "yes")
    if not isinstance(is_public, bool):
        raise BadRequest("Invalid input for field/attribute os-flavor-access:is_public: must "
                         "be a boolean")
    desc = body.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 65535):
        raise BadRequest("Invalid input for field/attribute description: must be a string")
    with svc.db.write() as s:
        if s.execute(select(Flavor.id).where(Flavor.name == name)).first():
            raise Conflict(f"Flavor with name {name} already exists.")
        if s.get(Flavor, fid) is not None:
            raise Conflict(f"Flavor with ID {fid} already exists.")
        seq = (s.execute(select(func.max(Flavor.seq))).scalar() or 0) + 1
        flavor = Flavor(id=fid, name=name, memory_mb=ram, vcpus=vcpus, root_gb=disk,
                        ephemeral_gb=eph, swap=swap, rxtx_factor=rxtx, is_public=is_public,
                        description=desc, extra_specs={}, seq=seq)
        s.add(flavor)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict(f"Flavor with name {name} already exists.") from None
        return flavor


def _visible(ctx: RequestContext, s, flavor: Flavor) -> bool:  # noqa: ANN001
    if flavor.is_public or ctx.is_admin:
        return True
    return s.get(FlavorAccess, (flavor.id, ctx.project_id or "")) is not None


def get(svc, ctx: RequestContext, flavor_id: str, s=None) -> Flavor:  # noqa: ANN001
    def find(sess):  # noqa: ANN001, ANN202
        f = sess.get(Flavor, flavor_id)
        if f is None or not _visible(ctx, sess, f):
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        return f
    if s is not None:
        return find(s)
    with svc.db.read() as sess:
        return find(sess)


def list_(svc, ctx: RequestContext, query) -> list[Flavor]:  # noqa: ANN001
    is_public = query.get("is_public")
    with svc.db.read() as s:
        stmt = select(Flavor)
        if ctx.is_admin:
            if is_public is None or is_public.lower() in ("true", "t", "1", "yes", "y", "on"):
                stmt = stmt.where(Flavor.is_public.is_(True))
            elif is_public.lower() in ("false", "f", "0", "no", "n", "off"):
                stmt = stmt.where(Flavor.is_public.is_(False))
            elif is_public.lower() != "none":
                raise BadRequest(f"Invalid is_public filter [{is_public}]")
        else:
            access = select(FlavorAccess.flavor_id).where(
                FlavorAccess.project_id == (ctx.project_id or ""))
            stmt = stmt.where(Flavor.is_public.is_(True) | Flavor.id.in_(access))
        for key, col in (("minRam", Flavor.memory_mb), ("minDisk", Flavor.root_gb)):
            if key in query:
                try:
                    stmt = stmt.where(col >= int(query[key]))
                except ValueError:
                    raise BadRequest(f"Invalid {key} filter [{query[key]}]") from None
        rows = list(s.execute(stmt).scalars())
    sort_key = query.get("sort_key", "flavorid")
    sort_dir = query.get("sort_dir", "asc")
    keys = {"flavorid": lambda f: f.id, "id": lambda f: f.seq, "name": lambda f: f.name,
            "memory_mb": lambda f: f.memory_mb, "vcpus": lambda f: f.vcpus,
            "root_gb": lambda f: f.root_gb, "created_at": lambda f: (f.created_at, f.seq),
            "ephemeral_gb": lambda f: f.ephemeral_gb, "swap": lambda f: f.swap,
            "rxtx_factor": lambda f: f.rxtx_factor}
    if sort_key not in keys:
        raise BadRequest(f"Invalid sort_key {sort_key}")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort_dir {sort_dir}")
    rows.sort(key=keys[sort_key], reverse=sort_dir == "desc")
    marker = query.get("marker")
    if marker is not None:
        ids = [f.id for f in rows]
        if marker not in ids:
            raise BadRequest(f"Marker {marker} could not be found.")
        rows = rows[ids.index(marker) + 1:]
    limit = query.get("limit")
    if limit is not None:
        try:
            n = int(limit)
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if n < 0:
            raise BadRequest("limit param must be positive")
        rows = rows[:n]
    return rows


def delete(svc, ctx: RequestContext, flavor_id: str) -> None:
    policy.enforce(ctx, "compute:flavor_manage")
    with svc.db.write() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        s.query(FlavorAccess).filter(FlavorAccess.flavor_id == flavor_id).delete()
        s.delete(f)


def update(svc, ctx: RequestContext, flavor_id: str, body: Any) -> Flavor:
    policy.enforce(ctx, "compute:flavor_manage")
    if not isinstance(body, dict) or set(body) != {"description"}:
        raise BadRequest("Invalid input for field/attribute flavor: only 'description' may "
                         "be updated")
    desc = body["description"]
    if desc is not None and (not isinstance(desc, str) or len(desc) > 65535):
        raise BadRequest("Invalid input for field/attribute description: must be a string")
    with svc.db.write() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        f.description = desc
        return f


# -- extra specs ----------------------------------------------------------------------------
def _check_spec(key: str, value: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 255 or not _SPEC_KEY_RE.match(key):
        raise BadRequest(f"Invalid input for field/attribute extra_specs. Key '{key}' may only "
                         "contain letters, digits, '_', '-', '.', ':' and spaces")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise BadRequest(f"Invalid input for field/attribute {key}: value must be a string")
    value = str(value)
    if len(value) > 255:
        raise BadRequest(f"Invalid input for field/attribute {key}: value is too long")
    if key == "pci_passthrough:alias":
        for part in value.split(","):
            bits = part.strip().split(":")
            if len(bits) != 2 or not bits[0] or not bits[1].isdigit() or int(bits[1]) < 1:
                raise BadRequest(f"Invalid extra spec pci_passthrough:alias={value}: use "
                                 "'<alias>:<count>[, <alias>:<count>]'")
    return value


def set_extra_specs(svc, ctx: RequestContext, flavor_id: str, specs: Any,
                    only_key: str | None = None, validate: bool = False) -> dict[str, str]:
    """``validate`` is 2.86: the specs Nova knows must be valid (see extra_specs.py)."""
    policy.enforce(ctx, "compute:flavor_extra_specs_manage")
    if not isinstance(specs, dict) or not specs:
        raise BadRequest("Invalid input for field/attribute extra_specs: a non-empty object "
                         "is required")
    if only_key is not None and (len(specs) != 1 or only_key not in specs):
        raise BadRequest("Request body and URI mismatch")
    clean = {k: _check_spec(k, v) for k, v in specs.items()}
    if validate:
        from pocketstack.services.compute.extra_specs import validate as validate_known

        for key, value in clean.items():
            validate_known(key, value)
    with svc.db.write() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        f.extra_specs = {**(f.extra_specs or {}), **clean}
    return clean


def get_extra_specs(svc, ctx: RequestContext, flavor_id: str) -> dict[str, str]:
    return dict(get(svc, ctx, flavor_id).extra_specs or {})


def delete_extra_spec(svc, ctx: RequestContext, flavor_id: str, key: str) -> None:
    policy.enforce(ctx, "compute:flavor_extra_specs_manage")
    with svc.db.write() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        specs = dict(f.extra_specs or {})
        if key not in specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        del specs[key]
        f.extra_specs = specs


# -- access ---------------------------------------------------------------------------------
def list_access(svc, ctx: RequestContext, flavor_id: str) -> list[dict[str, str]]:
    policy.enforce(ctx, "compute:flavor_access_list")
    with svc.db.read() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        if f.is_public:
            raise NotFound("Access list not available for public flavors.")
        rows = s.execute(select(FlavorAccess.project_id).where(
            FlavorAccess.flavor_id == flavor_id)).scalars()
        return [{"flavor_id": flavor_id, "tenant_id": p} for p in rows]


def change_access(svc, ctx: RequestContext, flavor_id: str, project_id: Any, add: bool) -> list:
    policy.enforce(ctx, "compute:flavor_access_manage")
    if not isinstance(project_id, str) or not project_id:
        raise BadRequest("Invalid input for field/attribute tenant: a project id is required")
    with svc.db.write() as s:
        f = s.get(Flavor, flavor_id)
        if f is None:
            raise NotFound(f"Flavor {flavor_id} could not be found.")
        if f.is_public:
            raise Conflict("Can not add access to a public flavor.")
        row = s.get(FlavorAccess, (flavor_id, project_id))
        if add:
            if row is not None:
                raise Conflict(f"Flavor access already exists for flavor {flavor_id} and "
                               f"project {project_id} combination.")
            s.add(FlavorAccess(flavor_id=flavor_id, project_id=project_id))
        else:
            if row is None:
                raise NotFound(f"Flavor access not found for {flavor_id} / {project_id} "
                               "combination.")
            s.delete(row)
    return list_access(svc, ctx, flavor_id)
