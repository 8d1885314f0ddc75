"""How Glance v2 resources look on the wire."""

from __future__ import annotations

from typing import Any

from pocketstack.db.base import isotime
from pocketstack.services.image.models import Image, ImageMember, ImageTask


def image(row: Image, props: dict[str, str], tags: list[str], svc: Any
          ) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": row.name,
        "disk_format": row.disk_format,
        "container_format": row.container_format,
        "visibility": row.visibility,
        "size": row.size,
        "virtual_size": row.virtual_size,
        "status": row.status,
        "checksum": row.checksum,
        "protected": row.protected,
        "min_ram": row.min_ram,
        "min_disk": row.min_disk,
        "owner": row.owner,
        "os_hidden": row.os_hidden,
        "os_hash_algo": row.os_hash_algo,
        "os_hash_value": row.os_hash_value,
        "id": row.id,
        "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at or row.created_at),
        "tags": sorted(tags),
        "self": f"/v2/images/{row.id}",
        "file": f"/v2/images/{row.id}/file",
        "schema": "/v2/schemas/image",
    }
    stores = svc.stores_of(row)
    if stores:
        body["stores"] = ",".join(stores)
    if svc.settings.image.show_multiple_locations:
        body["locations"] = locations(row, svc)
    for key, value in props.items():
        body.setdefault(key, value)
    return body


def locations(row: Image, svc: Any) -> list[dict[str, Any]]:
    """Glance's ``locations``: our copies (store URLs; ``metadata.store`` names the store
    when there are several), then the http locations in the order they were added."""
    multi = len(svc.stores) > 1
    out = []
    for sid in (row.stores.split(",") if row.stores else
                [svc.store.store_id] if row.location else []):
        store = svc.stores.get(sid)
        if store is not None:
            out.append({"url": store.location(row.id),
                        "metadata": {"store": sid} if multi else {}})
    for loc in row.http_locations or []:
        out.append({"url": loc["url"], "metadata": dict(loc.get("metadata") or {})})
    return out


def member(row: ImageMember) -> dict[str, Any]:
    return {
        "status": row.status,
        "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at or row.created_at),
        "image_id": row.image_id,
        "member_id": row.member,
        "schema": "/v2/schemas/member",
    }


def task(row: ImageTask, *, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "type": row.type,
        "status": row.status,
        "owner": row.owner,
        "image_id": row.image_id,
        "request_id": row.request_id,
        "user_id": row.user_id,
        "expires_at": isotime(row.expires_at),
        "created_at": isotime(row.created_at),
        "updated_at": isotime(row.updated_at or row.created_at),
        "self": f"/v2/tasks/{row.id}",
        "schema": "/v2/schemas/task",
    }
    if full:
        body["input"] = row.input
        body["result"] = row.result
        body["message"] = row.message or ""
    return body
