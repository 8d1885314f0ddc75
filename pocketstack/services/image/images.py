"""Image records: create, show, list (filters, sort, paging), JSON-patch update, delete,
tags, deactivate/reactivate. Data (upload, download, import) is in ``data.py``.

Functions take the ImageService (database, settings, store) and the caller's context.
The rules and messages are glance's (glance/api/v2/images.py, glance/domain).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, exists, func, or_, select
from sqlalchemy.orm import Session

from pocketstack.context import RequestContext
from pocketstack.db.base import new_uuid, utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound, OverQuota
from pocketstack.services.image import access, schemas, views
from pocketstack.services.image.models import Image, ImageMember, ImageProperty, ImageTag

if TYPE_CHECKING:
    from pocketstack.services.image.service import ImageService

# glance/api/v2/images.py RequestDeserializer
DISALLOWED = ("direct_url", "self", "file", "schema", "stores")
READONLY = ("created_at", "updated_at", "status", "checksum", "size", "virtual_size",
            "direct_url", "self", "file", "schema", "id", "os_hash_algo", "os_hash_value")
RESERVED = ("location", "deleted", "deleted_at")
RESERVED_NS = "os_glance"
BASE = ("name", "visibility", "protected", "os_hidden", "owner", "disk_format",
        "container_format", "min_ram", "min_disk")
SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id",
             "created_at", "updated_at")
PROPERTY_QUOTA = 128  # glance image_property_quota
TAG_QUOTA = 128  # glance image_tag_quota
PATCH_TYPES = {"application/openstack-images-v2.0-json-patch": 4,
               "application/openstack-images-v2.1-json-patch": 10}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                     r"[0-9a-fA-F]{12}\Z")


def over_limit(message: str) -> OverQuota:
    return OverQuota(message, status=413, kind="OverLimit")


# -- loading and rendering ---------------------------------------------------------------------

def extras(s: Session, ids: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """Properties and tags of many images: two IN queries, whatever the page size."""
    props: dict[str, dict[str, str]] = {i: {} for i in ids}
    tags: dict[str, list[str]] = {i: [] for i in ids}
    if ids:
        for p in s.scalars(select(ImageProperty).where(ImageProperty.image_id.in_(ids))):
            props[p.image_id][p.name] = p.value
        for t in s.scalars(select(ImageTag).where(ImageTag.image_id.in_(ids))):
            tags[t.image_id].append(t.value)
    return props, tags


def render(svc: "ImageService", s: Session, row: Image) -> dict[str, Any]:
    props, tags = extras(s, [row.id])
    return views.image(row, props[row.id], tags[row.id], svc)


def show(svc: "ImageService", ctx: RequestContext, image_id: str) -> dict[str, Any]:
    access_enforce_read(ctx)
    with svc.db.read() as s:
        return render(svc, s, access.load(s, ctx, image_id))


def access_enforce_read(ctx: RequestContext) -> None:
    from pocketstack import policy

    policy.enforce(ctx, "image:get_image", {"project_id": ctx.project_id})


# -- validation shared by create and update ----------------------------------------------------

def _check_key(key: str) -> None:
    if key in DISALLOWED or key in READONLY:
        raise Forbidden(f"Attribute '{key}' is read-only.")
    if key in RESERVED or key.startswith(RESERVED_NS):
        raise Forbidden(f"Attribute '{key}' is reserved.")
    if len(key) > 255:
        raise BadRequest("Custom property should not be greater than 255 characters.")


def _check_visibility(ctx: RequestContext, owner: str | None, visibility: str) -> None:
    if visibility == "public":
        access.policy.enforce(ctx, "image:publicize_image", {"project_id": owner})
    elif visibility == "community":
        access.policy.enforce(ctx, "image:communitize_image", {"project_id": owner})


def _check_owner(ctx: RequestContext, owner: Any) -> None:
    if owner != ctx.project_id and not ctx.is_admin:
        raise Forbidden("You are not permitted to create images owned by "
                        f"'{owner}'.")


def _count_quota(svc: "ImageService", s: Session, owner: str | None) -> None:
    limit = svc.limit(owner, "image_count_total")
    if limit < 0 or owner is None:
        return
    used = s.scalar(select(func.count()).select_from(Image).where(Image.owner == owner)) or 0
    if used + 1 > limit:
        raise over_limit(f"Resource image_count_total is over limit of {limit} due to "
                         f"current usage {used} and delta 1")


# -- create ----------------------------------------------------------------------------------

def create(svc: "ImageService", ctx: RequestContext, body: Any) -> dict[str, Any]:
    access.policy.enforce(ctx, "image:add_image", {"project_id": ctx.project_id})
    if not isinstance(body, dict):
        raise BadRequest("Body expected in request.")
    body = dict(body)
    for key in DISALLOWED:
        if key in body:
            raise Forbidden(f"Attribute '{key}' is read-only.")
    schemas.validate_image(body)
    tags = body.pop("tags", []) or []
    image_id = body.pop("id", None)
    for key in body:
        if key not in BASE:
            _check_key(key)
    if len(set(tags)) > TAG_QUOTA:
        raise over_limit(f"Maximum number of tags exceeded ({TAG_QUOTA}).")
    owner = body.pop("owner", None) or ctx.project_id
    if owner != ctx.project_id:
        _check_owner(ctx, owner)
    visibility = body.pop("visibility", None) or "shared"
    _check_visibility(ctx, owner, visibility)
    base = {k: body.pop(k) for k in BASE if k in body}
    props = {k: v for k, v in body.items()}
    if len(props) > PROPERTY_QUOTA:
        raise over_limit(f"Maximum number of image properties exceeded ({PROPERTY_QUOTA}).")
    with svc.db.write() as s:
        if image_id is not None and s.get(Image, image_id) is not None:
            raise Conflict(f"An image with identifier {image_id} already exists")
        _count_quota(svc, s, owner)
        row = Image(id=image_id or new_uuid(), status="queued", owner=owner,
                    visibility=visibility,
                    name=base.get("name"), disk_format=base.get("disk_format"),
                    container_format=base.get("container_format"),
                    protected=bool(base.get("protected", False)),
                    os_hidden=bool(base.get("os_hidden", False)),
                    min_ram=base.get("min_ram") or 0, min_disk=base.get("min_disk") or 0)
        s.add(row)
        s.flush()
        for key, value in props.items():
            s.add(ImageProperty(image_id=row.id, name=key, value=value))
        for tag in dict.fromkeys(tags):
            s.add(ImageTag(image_id=row.id, value=tag))
        s.flush()
        return views.image(row, props, list(dict.fromkeys(tags)), svc)


# -- list ------------------------------------------------------------------------------------

def _bool(value: str, name: str) -> bool:
    v = value.lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise BadRequest(f"Invalid value for {name}: {value!r}; a boolean is required.")


def _int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} param must be an integer") from None


_OPS = {"gt": "__gt__", "gte": "__ge__", "lt": "__lt__", "lte": "__le__", "eq": "__eq__",
        "neq": "__ne__"}


def _time_filter(column, raw: str, name: str):  # noqa: ANN001, ANN202
    op, sep, value = raw.partition(":")
    if not sep or op not in _OPS:
        op, value = "eq", raw
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Unable to filter on a {name} with an invalid date: {value!r}") \
            from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return getattr(column, _OPS[op])(when)


def _in_or_eq(column, raw: str):  # noqa: ANN001, ANN202
    if raw.startswith("in:"):
        values = [v.strip('"') for v in raw[3:].split(",")]
        return column.in_(values)
    if raw.startswith("eq:"):
        raw = raw[3:]
    return column == raw


def _sort_spec(query: Mapping[str, Any], multi: Any) -> list[tuple[str, str]]:
    sort = query.get("sort")
    if sort is not None and ("sort_key" in query or "sort_dir" in query):
        raise BadRequest("The 'sort' parameter cannot be combined with 'sort_key' or "
                         "'sort_dir'.")
    spec: list[tuple[str, str]] = []
    if sort is not None:
        for part in sort.split(","):
            key, _, direction = part.strip().partition(":")
            direction = direction or "desc"
            spec.append((key.strip(), direction.strip()))
    else:
        keys = multi.getlist("sort_key") if hasattr(multi, "getlist") else []
        dirs = multi.getlist("sort_dir") if hasattr(multi, "getlist") else []
        if len(dirs) > 1 and len(dirs) != len(keys):
            raise BadRequest("Number of sort dirs does not match the number of sort keys")
        for i, key in enumerate(keys):
            direction = dirs[i] if len(dirs) > 1 else (dirs[0] if dirs else "desc")
            spec.append((key, direction))
        if not keys and dirs:
            spec.append(("created_at", dirs[0]))
    for key, direction in spec:
        if key not in SORT_KEYS:
            raise BadRequest(f"Invalid sort key: {key}. It must be one of the following: "
                             f"{', '.join(SORT_KEYS)}.")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    if not spec:
        spec = [("created_at", "desc")]
    if "id" not in [k for k, _ in spec]:
        spec.append(("id", spec[-1][1]))
    return spec


def _sort_column(key: str):  # noqa: ANN202
    col = getattr(Image, key)
    # NULLs sort the same on every database: as the smallest value.
    if key in ("size", "virtual_size"):
        return func.coalesce(col, -1)
    if key in ("name", "container_format", "disk_format"):
        return func.coalesce(col, "")
    if key == "updated_at":
        return func.coalesce(col, Image.created_at)
    return col


def _sort_value(row: Image, key: str) -> Any:
    value = getattr(row, key)
    if value is None:
        if key in ("size", "virtual_size"):
            return -1
        if key == "updated_at":
            return row.created_at
        return ""
    return value


NON_FILTERS = {"limit", "marker", "sort", "sort_key", "sort_dir", "member_status",
               "visibility"}


def list_images(svc: "ImageService", ctx: RequestContext, query: Any) -> dict[str, Any]:
    """GET /v2/images. ``query`` is Starlette's QueryParams (a multi-dict)."""
    access.policy.enforce(ctx, "image:get_images", {"project_id": ctx.project_id})
    cfg = svc.settings.image
    limit = cfg.limit_param_default
    if "limit" in query:
        limit = _int(query["limit"], "limit")
        if limit < 0:
            raise BadRequest("limit param must be positive")
    limit = min(limit, cfg.api_limit_max)
    visibility = query.get("visibility")
    if visibility is not None and visibility not in ("public", "private", "shared",
                                                     "community", "all"):
        raise BadRequest(f"Invalid visibility value: {visibility}")
    member_status = query.get("member_status", "accepted")
    if member_status not in ("pending", "accepted", "rejected", "all"):
        raise BadRequest(f"Invalid status: {member_status}")
    spec = _sort_spec(query, query)

    conds = []
    cond = access.listed(ctx, visibility, member_status)
    if cond is not None:
        conds.append(cond)
    hidden = query.get("os_hidden")
    conds.append(Image.os_hidden.is_(_bool(hidden, "os_hidden") if hidden else False))
    tags = query.getlist("tag") if hasattr(query, "getlist") else []
    for tag in tags:
        conds.append(exists(select(ImageTag.image_id).where(
            ImageTag.image_id == Image.id, ImageTag.value == tag)))
    for key in dict.fromkeys(query.keys()):
        if key in NON_FILTERS or key in ("tag", "os_hidden"):
            continue
        raw = query[key]
        if key in ("name", "status", "container_format", "disk_format", "id", "owner",
                   "checksum", "os_hash_value"):
            conds.append(_in_or_eq(getattr(Image, key), raw))
        elif key == "size_min":
            conds.append(Image.size >= _int(raw, key))
        elif key == "size_max":
            conds.append(Image.size <= _int(raw, key))
        elif key == "size":
            conds.append(Image.size == _int(raw, key))
        elif key in ("min_ram", "min_disk"):
            conds.append(getattr(Image, key) == _int(raw, key))
        elif key == "protected":
            conds.append(Image.protected.is_(_bool(raw, key)))
        elif key in ("created_at", "updated_at"):
            conds.append(_time_filter(getattr(Image, key), raw, key))
        else:  # any other key filters on an extra property
            conds.append(exists(select(ImageProperty.image_id).where(
                ImageProperty.image_id == Image.id, ImageProperty.name == key,
                ImageProperty.value == raw)))

    with svc.db.read() as s:
        marker_id = query.get("marker")
        if marker_id:
            mq = select(Image).where(Image.id == marker_id)
            vis = access.visible(ctx)
            if vis is not None:
                mq = mq.where(vis)
            marker = s.scalars(mq).first()
            if marker is None:
                raise BadRequest(f"Invalid marker. Image {marker_id} could not be found.")
            # keyset condition over the sort keys: rows strictly after the marker
            ors = []
            for i, (key, direction) in enumerate(spec):
                parts = [_sort_column(k) == _sort_value(marker, k) for k, _ in spec[:i]]
                col, val = _sort_column(key), _sort_value(marker, key)
                parts.append(col > val if direction == "asc" else col < val)
                ors.append(and_(*parts))
            conds.append(or_(*ors))
        stmt = select(Image).where(*conds)
        for key, direction in spec:
            col = _sort_column(key)
            stmt = stmt.order_by(col.asc() if direction == "asc" else col.desc())
        rows = list(s.scalars(stmt.limit(limit)))
        props, tagmap = extras(s, [r.id for r in rows])
        images = [views.image(r, props[r.id], tagmap[r.id], svc) for r in rows]
    body: dict[str, Any] = {"images": images, "first": "/v2/images",
                            "schema": "/v2/schemas/images"}
    if rows and len(rows) == limit:
        from urllib.parse import urlencode

        params = [(k, v) for k, v in query.multi_items() if k != "marker"]
        params.append(("marker", rows[-1].id))
        body["next"] = "/v2/images?" + urlencode(params)
    return body


# -- update (JSON patch) -----------------------------------------------------------------------

def _decode_pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise BadRequest("Pointer must be a string.")
    if not pointer.startswith("/"):
        raise BadRequest(f'Pointer `{pointer}` does not start with "/".')
    if re.search(r"/\s*?/", pointer[1:]):
        raise BadRequest(f'Pointer `{pointer}` contains adjacent "/".')
    if len(pointer) > 1 and pointer.endswith("/"):
        raise BadRequest(f'Pointer `{pointer}` end with "/".')
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise BadRequest(f'Pointer `{pointer}` contains "~" not part of a recognized '
                         "escape sequence.")
    return [p.replace("~1", "/").replace("~0", "~").strip()
            for p in pointer.lstrip("/").split("/")]


def parse_patch(content_type: str | None, body: Any) -> list[dict[str, Any]]:
    """Validate a glance JSON-patch document (draft 4 = v2.0, draft 10 = v2.1 media type)."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in PATCH_TYPES:
        allowed = ", ".join(sorted(PATCH_TYPES))
        from pocketstack.errors import UnsupportedMediaType

        raise UnsupportedMediaType(f"Image PATCH expects Content-Type one of: {allowed}",
                                   headers={"Accept-Patch": allowed})
    draft = PATCH_TYPES[ctype]
    if not isinstance(body, list):
        raise BadRequest("Request body must be a JSON array of operation objects.")
    changes = []
    for raw in body:
        if not isinstance(raw, dict):
            raise BadRequest("Operations must be JSON objects.")
        if draft == 10:
            op = raw.get("op")
            if op is None:
                raise BadRequest("Unable to find `op` in JSON Schema change. It must be one "
                                 "of the following: add, remove, replace.")
            if op not in ("add", "remove", "replace"):
                raise BadRequest(f"Invalid operation: `{op}`. It must be one of the "
                                 "following: add, remove, replace.")
            if "path" not in raw:
                raise BadRequest("Unable to find 'path' in JSON Schema change")
            pointer = raw["path"]
        else:
            ops = [k for k in ("add", "remove", "replace") if k in raw]
            if len(ops) != 1:
                raise BadRequest('Operation objects must contain exactly one member named '
                                 '"add", "remove", or "replace".')
            op = ops[0]
            pointer = raw[op]
        path = _decode_pointer(pointer)
        depth = {"add": 2, "remove": 2, "replace": 1}[op] if path[0] == "locations" else 1
        if len(path) != depth:
            raise BadRequest(f"Invalid JSON pointer for this resource: '/{'/'.join(path)}'")
        change: dict[str, Any] = {"op": op, "path": path, "draft": draft}
        if op != "remove":
            if "value" not in raw:
                raise BadRequest(f'Operation "{op}" requires a member named "value".')
            change["value"] = raw["value"]
        root = path[0]
        if root in READONLY:
            raise Forbidden(f"Attribute '{root}' is read-only.")
        if root in RESERVED or root.startswith(RESERVED_NS):
            raise Forbidden(f"Attribute '{root}' is reserved.")
        if op != "remove" and root != "locations":
            schemas.validate_image({root: change["value"]})
        changes.append(change)
    return changes


def update(svc: "ImageService", ctx: RequestContext, image_id: str,
           changes: list[dict[str, Any]]) -> dict[str, Any]:
    from pocketstack.services.image import locations

    show_locations = svc.settings.image.show_multiple_locations
    if show_locations:
        locations.prepare(svc, changes)  # URL checks and sizes, outside the transaction
    drop: list[tuple[str, str]] = []  # store copies removed from the locations
    view = _update(svc, ctx, image_id, changes, drop)
    for sid, iid in drop:
        svc.stores[sid].delete(iid, "images")
    return view


def _update(svc: "ImageService", ctx: RequestContext, image_id: str,
            changes: list[dict[str, Any]], drop: list[tuple[str, str]]) -> dict[str, Any]:
    from pocketstack.services.image import locations

    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "modify_image", row)
        props, tagmap = extras(s, [row.id])
        props, tags = props[row.id], tagmap[row.id]
        new_props = dict(props)
        new_tags = list(tags)
        base: dict[str, Any] = {k: getattr(row, k) for k in BASE}
        for change in changes:
            op, root = change["op"], change["path"][0]
            value = change.get("value")
            if root == "locations":
                if not svc.settings.image.show_multiple_locations:
                    raise Forbidden("It's not allowed to update locations if locations are "
                                    "invisible.")
                drop.extend(locations.patch(svc, ctx, s, row, change))
                continue
            if root == "tags":
                if op == "remove":
                    raise Forbidden("Property tags may not be removed.")
                new_tags = list(dict.fromkeys(value))
            elif root in BASE:
                if op == "remove":
                    raise Forbidden(f"Property {root} may not be removed.")
                if root == "owner" and not ctx.is_admin:
                    raise Forbidden("Owner can't be updated by non admin.")
                base[root] = value
            else:
                if len(root) > 255:
                    raise BadRequest("Custom property should not be greater than 255 "
                                     "characters.")
                if op == "add":
                    if change["draft"] == 4 and root in new_props:
                        raise Conflict(f"Property {root} already present.")
                    new_props[root] = value
                elif op == "replace":
                    if root not in new_props:
                        raise Conflict(f"Property {root} does not exist.")
                    new_props[root] = value
                else:
                    if root not in new_props:
                        raise Conflict(f"Property {root} does not exist.")
                    del new_props[root]
        # domain rules (glance/domain/__init__.py)
        for key in ("disk_format", "container_format"):
            if base[key] != getattr(row, key) and row.status != "queued":
                raise Forbidden(f"Attribute {key} can be only replaced for a queued image.")
        if base["visibility"] != row.visibility:
            _check_visibility(ctx, base["owner"], base["visibility"])
        if base["owner"] != row.owner:
            access.policy.enforce(ctx, "image:set_owner", {"project_id": row.owner})
        if len(new_props) > PROPERTY_QUOTA and len(new_props) > len(props):
            raise over_limit(f"Maximum number of image properties exceeded "
                             f"({PROPERTY_QUOTA}).")
        if len(new_tags) > TAG_QUOTA and len(new_tags) > len(tags):
            raise over_limit(f"Maximum number of tags exceeded ({TAG_QUOTA}).")
        for key in BASE:
            if base[key] != getattr(row, key):
                value = base[key]
                if key in ("min_ram", "min_disk") and value is None:
                    value = 0
                setattr(row, key, value)
        for key in set(props) - set(new_props):
            s.execute(delete(ImageProperty).where(ImageProperty.image_id == row.id,
                                                  ImageProperty.name == key))
        for key, value in new_props.items():
            if key not in props:
                s.add(ImageProperty(image_id=row.id, name=key, value=value))
            elif props[key] != value:
                prop = s.get(ImageProperty, (row.id, key))
                prop.value = value
        if new_tags != tags:
            s.execute(delete(ImageTag).where(ImageTag.image_id == row.id))
            s.flush()
            for tag in new_tags:
                s.add(ImageTag(image_id=row.id, value=tag))
        row.updated_at = utcnow()
        s.flush()
        return views.image(row, new_props, new_tags, svc)


# -- delete, tags, deactivate ---------------------------------------------------------------

def remove(svc: "ImageService", ctx: RequestContext, image_id: str) -> None:
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "delete_image", row)
        if row.protected:
            raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
        s.execute(delete(ImageMember).where(ImageMember.image_id == row.id))
        s.execute(delete(ImageProperty).where(ImageProperty.image_id == row.id))
        s.execute(delete(ImageTag).where(ImageTag.image_id == row.id))
        s.delete(row)
    # The record is gone first: a failure below leaves an orphan file for sweep, never
    # an image whose data vanished.
    for store in svc.stores.values():  # every copy (multi-store), and the staged data
        store.delete(image_id, "images")
    svc.store.delete(image_id, "staging")
    svc.cache.forget(image_id)


def add_tag(svc: "ImageService", ctx: RequestContext, image_id: str, tag: str) -> None:
    if len(tag) > 255:
        raise BadRequest("Provided object does not match schema 'image': tag is longer than "
                         "255 characters")
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "modify_image", row)
        if s.get(ImageTag, (row.id, tag)) is not None:
            return
        count = s.scalar(select(func.count()).select_from(ImageTag)
                         .where(ImageTag.image_id == row.id)) or 0
        if count + 1 > TAG_QUOTA:
            raise over_limit(f"Maximum number of tags exceeded ({TAG_QUOTA}).")
        s.add(ImageTag(image_id=row.id, value=tag))
        row.updated_at = utcnow()


def delete_tag(svc: "ImageService", ctx: RequestContext, image_id: str, tag: str) -> None:
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "modify_image", row)
        existing = s.get(ImageTag, (row.id, tag))
        if existing is None:
            raise NotFound(f"Tag {tag} not found on image {image_id}")
        s.delete(existing)
        row.updated_at = utcnow()


def set_active(svc: "ImageService", ctx: RequestContext, image_id: str, active: bool) -> None:
    with svc.db.write() as s:
        row = access.load(s, ctx, image_id)
        access.enforce(ctx, "reactivate" if active else "deactivate", row)
        want, source = ("active", "deactivated") if active else ("deactivated", "active")
        if row.status == want:
            return
        if row.status != source:
            verb = "reactivate" if active else "deactivate"
            raise Forbidden(f"Not allowed to {verb} image in status '{row.status}'")
        row.status = want
        row.updated_at = utcnow()


def valid_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(UUID_RE.match(value))
