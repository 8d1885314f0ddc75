"""Shared pieces of the Neutron slice: list queries (filters, fields, sort, paging), tags,
standard attributes, quotas and the resource base class.

Neutron's list semantics (api-ref "Filtering and column selection", "Sorting",
"Pagination"): any attribute may be a filter (repeated = any of), ``fields`` selects
columns, ``sort_key``/``sort_dir`` pair up, ``limit``/``marker``/``page_reverse`` page, and
``tags``/``tags-any``/``not-tags``/``not-tags-any`` take comma separated lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from pocketstack.db.base import isotime
from pocketstack.errors import BadRequest

RESERVED = {"fields", "sort_key", "sort_dir", "limit", "marker", "page_reverse", "tags",
            "tags-any", "not-tags", "not-tags-any"}
TRUE = {"true", "1", "yes", "on"}


def standard(row: Any) -> dict[str, Any]:
    return {"tenant_id": row.project_id, "project_id": row.project_id,
            "description": row.description, "tags": list(row.tags or []),
            "created_at": isotime(row.created_at),
            "updated_at": isotime(row.updated_at or row.created_at),
            "revision_number": row.revision_number}


def bump(row: Any) -> None:
    row.revision_number = (row.revision_number or 0) + 1


def _matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        return any((w.lower() in TRUE) == value for w in wanted)
    if isinstance(value, list):
        return any(str(v) in wanted for v in value) if value else "" in wanted
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    return str(value) in wanted


def _tag_filter(items: list[dict], query: Any) -> list[dict]:
    def split(key: str) -> set[str] | None:
        raw = query.getlist(key)
        if not raw:
            return None
        return {t for v in raw for t in v.split(",") if t}

    tags, any_, not_, not_any = (split(k) for k in ("tags", "tags-any", "not-tags",
                                                    "not-tags-any"))
    out = []
    for item in items:
        have = set(item.get("tags") or [])
        if tags is not None and not tags <= have:
            continue
        if any_ is not None and not (any_ & have):
            continue
        if not_ is not None and not_ <= have:
            continue
        if not_any is not None and (not_any & have):
            continue
        out.append(item)
    return out


def select(items: list[dict], query: Any, *, known: Iterable[str], url: str,
           collection: str, special: dict[str, Any] | None = None) -> dict[str, Any]:
    """Filter, sort, page and project ``items`` (already rendered, already visible)."""
    known = set(known)
    special = special or {}
    for key in query.keys():
        if key in RESERVED:
            continue
        if key not in known and key not in special:
            raise BadRequest(f"{key} is an invalid filter; it is not an attribute of "
                             f"{collection}.", kind="HTTPBadRequest")
        wanted = query.getlist(key)
        if key in special:
            items = [i for i in items if special[key](i, wanted)]
        else:
            items = [i for i in items if _matches(i.get(key), wanted)]
    if any(k in query for k in ("tags", "tags-any", "not-tags", "not-tags-any")):
        items = _tag_filter(items, query)

    keys, dirs = query.getlist("sort_key"), query.getlist("sort_dir")
    if dirs and len(dirs) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same",
                         kind="HTTPBadRequest")
    for key in keys:
        if key not in known:
            raise BadRequest(f"{key} is an invalid attribute for sort_keys",
                             kind="HTTPBadRequest")
    for d in dirs:
        if d not in ("asc", "desc"):
            raise BadRequest(f"{d} is an invalid value for sort_dirs, valid values are "
                             "'asc' and 'desc'", kind="HTTPBadRequest")
    if keys:
        pairs = list(zip(keys, dirs or ["asc"] * len(keys)))
        if "id" not in keys:
            pairs.append(("id", pairs[0][1]))
        for key, direction in reversed(pairs):
            items.sort(key=lambda i, k=key: _sort_value(i.get(k)), reverse=direction == "desc")
    else:
        pairs = [("id", "asc")]

    body: dict[str, Any] = {}
    limit_raw = query.get("limit")
    marker = query.get("marker")
    reverse = query.get("page_reverse", "").lower() in TRUE
    try:
        limit = int(limit_raw) if limit_raw not in (None, "") else 0
    except ValueError:
        raise BadRequest(f"Invalid input for limit: '{limit_raw}' is not an integer",
                         kind="HTTPBadRequest") from None
    if limit < 0:
        raise BadRequest("Limit must be an integer 0 or greater and not '%d'" % limit,
                         kind="HTTPBadRequest")
    if limit:  # Neutron pages only with a limit; without one the marker is ignored
        ids = [i["id"] for i in items]
        if reverse:
            end = ids.index(marker) if marker in ids else len(items)
            page = items[max(0, end - limit):end]
        else:
            first = ids.index(marker) + 1 if marker in ids else 0
            page = items[first:first + limit]
        body[f"{collection}_links"] = _page_links(query, url, page, limit, reverse)
        items = page
    fields = [f for f in query.getlist("fields") if f]
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    body[collection] = items
    return body


def _page_links(query: Any, url: str, page: list[dict], limit: int,
                reverse: bool) -> list[dict]:
    """neutron.api.api_common.get_pagination_links: a full page (or any page read
    backwards) has a next link, any page read forwards (or a full one read backwards) a
    previous link; an empty page's links carry no marker."""
    params = [(k, v) for k, v in query.multi_items() if k != "marker"]
    links = []
    if not (len(page) < limit and not reverse):
        nxt = [(k, v) for k, v in params if k != "page_reverse"]
        if page:
            nxt.append(("marker", page[-1]["id"]))
        links.append({"rel": "next", "href": f"{url}?{urlencode(nxt)}"})
    if not (len(page) < limit and reverse):
        prev = [(k, v) for k, v in params if k != "page_reverse"]
        if page:
            prev.append(("marker", page[0]["id"]))
        prev.append(("page_reverse", "True"))
        links.append({"rel": "previous", "href": f"{url}?{urlencode(prev)}"})
    return links


def _sort_value(value: Any) -> tuple:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def project_fields(item: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    fields = [f for f in fields if f]
    return {k: v for k, v in item.items() if k in fields} if fields else item


DEFAULT_QUOTAS: dict[str, int] = {
    "network": 100, "subnet": 100, "subnetpool": -1, "port": 500, "router": 10,
    "floatingip": 50, "security_group": 10, "security_group_rule": 100, "rbac_policy": 10,
}
