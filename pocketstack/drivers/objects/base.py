"""The object data driver contract.

Object data is a set of immutable blobs, each named by an opaque ``file_id`` the driver
chooses. Names of objects never reach the driver, so an object name can never select a
path on the host. The object service keeps the mapping (account, container, name) ->
file_id in the database and commits it only after the driver made the blob durable.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectDriverCapabilities:
    durable: bool  # commit() survives kill -9 and power loss (fsync of file and directory)
    cheap_copy: bool  # copy() shares data instead of duplicating it (hard links)


@dataclass(frozen=True)
class BlobInfo:
    file_id: str
    size: int
    md5: str  # hex
    # A small object kept in the store's database row instead of a file (file_id "",
    # never made by a driver): see services/object_store/store.py, "Inline objects".
    data: bytes | None = None


class BlobWriter(abc.ABC):
    """An open, not yet visible blob. ``write`` bytes, then ``commit`` or ``abort``."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append data. Cheap: must not fsync."""

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @abc.abstractmethod
    def commit(self) -> BlobInfo:
        """Make the blob durable and visible under its file_id.

        After commit returns, a crash at any moment keeps the whole blob. If commit raises,
        nothing is left behind.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the blob; idempotent; safe after a failed commit."""


class ObjectDriver(abc.ABC):
    capabilities: ObjectDriverCapabilities

    @abc.abstractmethod
    def writer(self) -> BlobWriter:
        """Start a new blob. Until commit, a crash leaves at most a temp file that
        ``sweep`` removes."""

    @abc.abstractmethod
    def read(self, file_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes [start, end) of a committed blob. Raises FileNotFoundError."""

    @abc.abstractmethod
    def size(self, file_id: str) -> int:
        """Size of a committed blob. Raises FileNotFoundError."""

    @abc.abstractmethod
    def copy(self, file_id: str) -> BlobInfo:
        """A new durable blob with the same content (new file_id); md5 is ''."""

    @abc.abstractmethod
    def delete(self, file_id: str) -> None:
        """Remove a blob; a missing blob is not an error (idempotent)."""

    @abc.abstractmethod
    def sweep(self, referenced: set[str], older_than: float) -> int:
        """Remove temp files and blobs not in ``referenced`` last modified before
        ``older_than`` (epoch seconds). Returns how many were removed."""
