"""Plain records the store hands out (no ORM objects leave a session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pocketstack.errors import PocketError
from pocketstack.services.object_store.models import SwiftContainer, SwiftObject


class OverQuota(PocketError):
    status = 413
    kind = "EntityTooLarge"


@dataclass
class ObjectRecord:
    account: str
    container: str
    name: str
    file_id: str
    size: int
    etag: str
    content_type: str
    timestamp: float
    delete_at: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    # An inline object's bytes when they were read with the row (file_id is then "");
    # None for a file-backed object, or for an inline one read without them (listings):
    # ObjectStore.read fetches them.
    data: bytes | None = None

    @classmethod
    def of(cls, row: SwiftObject) -> "ObjectRecord":
        # row.data is a deferred column: touching it here would load it for every row
        return cls(row.account, row.container, row.name, row.file_id, row.size, row.etag,
                   row.content_type, row.timestamp, row.delete_at, dict(row.meta or {}))

    @property
    def inline(self) -> bool:
        return not self.file_id

    @property
    def is_slo(self) -> bool:
        return self.meta.get("X-Static-Large-Object") == "True"

    @property
    def dlo_manifest(self) -> str | None:
        return self.meta.get("X-Object-Manifest")


@dataclass
class ContainerRecord:
    account: str
    name: str
    created: float
    put_timestamp: float
    object_count: int
    bytes_used: int
    meta: dict[str, Any]

    @classmethod
    def of(cls, row: SwiftContainer) -> "ContainerRecord":
        return cls(row.account, row.name, row.created, row.put_timestamp, row.object_count,
                   row.bytes_used, dict(row.meta or {}))


@dataclass
class AccountRecord:
    name: str
    created: float
    put_timestamp: float
    container_count: int
    object_count: int
    bytes_used: int
    meta: dict[str, Any]
    exists: bool
