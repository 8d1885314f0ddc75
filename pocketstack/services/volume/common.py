"""Helpers the volume modules share: visibility, paging, sorting, body checks."""

from __future__ import annotations

import ast
import uuid
from typing import Any

from sqlalchemy import Select, select

from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest

MAX_LIMIT = 1000  # Cinder's osapi_max_limit


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "t", "yes", "y", "on")


def parse_bool(value: Any, field: str) -> bool:
    """Cinder's strict boolean parsing (strutils.bool_from_string(strict=True))."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "t", "true", "on", "y", "yes"):
        return True
    if text in ("0", "f", "false", "off", "n", "no"):
        return False
    raise BadRequest(f"Invalid value '{value}' for {field}: must be a boolean.")


def parse_size(value: Any, field: str = "size", *, required: bool = True) -> int | None:
    if value is None:
        if required:
            raise BadRequest(f"Invalid input for field/attribute {field}. Value: None. "
                             "None is not of type 'integer', 'string'")
        return None
    if isinstance(value, bool):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}.")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and value.strip().isdigit():
        size = int(value.strip())
    else:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"'{value}' does not match '^[0-9]+$'")
    if size < 1:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value} is less than the minimum of 1")
    if size > 2 ** 31 - 1:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value} is greater than the maximum of 2147483647")
    return size


def check_name(value: Any, field: str = "name") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value!r} is not of type 'string', 'null'")
    if len(value) > 255:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         "is too long (maximum 255 characters)")
    return value


def check_metadata(value: Any, field: str = "metadata") -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value!r} is not of type 'object'")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise BadRequest(f"Invalid input for field/attribute {field}. Metadata keys must "
                             "be strings of 1 to 255 characters.")
        if v is None:
            v = ""
        if not isinstance(v, (str, int, float, bool)):
            raise BadRequest(f"Invalid input for field/attribute {field}. Value of key {k!r} "
                             "must be a string.")
        v = str(v)
        if len(v) > 255:
            raise BadRequest(f"Invalid input for field/attribute {field}. Metadata values "
                             "must be at most 255 characters.")
        out[k] = v
    return out


def parse_dict_param(value: str, field: str) -> dict[str, Any]:
    """Query parameters like ``metadata={'k': 'v'}`` (Cinder literal_evals them)."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        import orjson

        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise BadRequest(f"Invalid filter {field}: {value}") from None
    if not isinstance(parsed, dict):
        raise BadRequest(f"Invalid filter {field}: {value}")
    return {str(k): str(v) for k, v in parsed.items()}


def parse_limit(query: Any) -> int | None:
    raw = query.get("limit")
    if raw is None:
        return None
    try:
        limit = int(raw)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, MAX_LIMIT)


def parse_offset(query: Any) -> int:
    raw = query.get("offset")
    if raw is None:
        return 0
    try:
        offset = int(raw)
    except ValueError:
        raise BadRequest("offset param must be an integer") from None
    if offset < 0:
        raise BadRequest("offset param must be positive")
    return offset


def parse_sort(query: Any, allowed: set[str]) -> list[tuple[str, str]]:
    """``sort=k1:asc,k2`` or ``sort_key``/``sort_dir``; default created_at desc, id desc."""
    keys: list[tuple[str, str]] = []
    if query.get("sort"):
        if query.get("sort_key") or query.get("sort_dir"):
            raise BadRequest("The 'sort_key' and 'sort_dir' parameters are deprecated and "
                             "cannot be used with the 'sort' parameter.")
        for part in query["sort"].split(","):
            key, _, direction = part.strip().partition(":")
            keys.append((key.strip(), (direction or "desc").strip().lower()))
    elif query.get("sort_key") or query.get("sort_dir"):
        sk = [k.strip() for k in (query.get("sort_key") or "created_at").split(",")]
        sd = [d.strip().lower() for d in (query.get("sort_dir") or "desc").split(",")]
        for i, key in enumerate(sk):
            keys.append((key, sd[i] if i < len(sd) else sd[-1]))
    # Cinder still accepts the v1 names (tempest sorts snapshots by display_name)
    keys = [({"display_name": "name", "display_description": "description"}.get(k, k), d)
            for k, d in keys]
    for key, direction in keys:
        if key not in allowed:
            raise BadRequest(f"Invalid sort key: {key}")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction: {direction}")
    if not keys:
        keys = [("created_at", "desc")]
    if "id" not in [k for k, _ in keys]:
        keys.append(("id", keys[0][1]))
    return keys


def scoped_select(model: Any, ctx: Any, *, all_projects: bool, project_id: str | None,
                  query: Any = None, equal: tuple[str, ...] = ()) -> Select:
    """``select(model)`` for a list call: the asked project's rows, or every project's
    (``all_tenants``, which the caller's policy check allowed), or the caller's own; plus
    an equality filter for each ``equal`` key present in ``query``."""
    stmt = select(model)
    if project_id is not None:
        stmt = stmt.where(model.project_id == project_id)
    elif not all_projects:
        stmt = stmt.where(model.project_id == ctx.project_id)
    for key in equal:
        if key in query:
            stmt = stmt.where(getattr(model, key) == query[key])
    return stmt


def apply_sort(stmt: Select, model: Any, keys: list[tuple[str, str]]) -> Select:
    columns = {"name": "name", "metadata": "metadata_"}
    order = []
    for key, direction in keys:
        col = getattr(model, columns.get(key, key))
        order.append(col.asc() if direction == "asc" else col.desc())
    return stmt.order_by(*order)


def page(rows: list[Any], keys: list[tuple[str, str]], marker: str | None,
         limit: int | None, offset: int) -> tuple[list[Any], bool]:
    """Cut ``rows`` (already sorted) after the marker; return (page, more)."""
    if marker is not None:
        idx = next((i for i, r in enumerate(rows) if r.id == marker), None)
        if idx is None:
            from pocketstack.errors import NotFound

            raise NotFound(f"Marker {marker} could not be found.")
        rows = rows[idx + 1:]
    if offset:
        rows = rows[offset:]
    if limit is None:
        limit = MAX_LIMIT
    return rows[:limit], len(rows) >= limit and limit > 0


def project_scope(ctx: RequestContext, query: Any) -> tuple[bool, str | None]:
    """(all projects?, project filter) for list calls: admins may pass all_tenants/project_id."""
    if ctx.is_admin:
        if truthy(query.get("all_tenants", "0")) or "all_tenants" in query and \
                query.get("all_tenants") == "":
            return True, query.get("project_id")
        if query.get("project_id"):
            return True, query["project_id"]
    return False, ctx.project_id


def next_link(base: str, query: Any, last_id: str) -> list[dict[str, str]]:
    from urllib.parse import urlencode

    params = [(k, v) for k, v in query.multi_items() if k != "marker"]
    params.append(("marker", last_id))
    return [{"href": f"{base}?{urlencode(params)}", "rel": "next"}]
