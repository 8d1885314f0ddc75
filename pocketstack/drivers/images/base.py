"""The image store contract (glance_store's job, reduced to what pocketstack needs).

Image data is a set of immutable files, one per image and *area*: ``"images"`` holds the
data of active images, ``"staging"`` the data staged for interoperable import
(glance-direct). Files are named by the image id only, which the service has validated
as a UUID, so no request can ever choose a path on the host.

Every write goes to a temp file first; ``commit`` fsyncs and renames it into place, so a
reader never sees a half-written image and a crash leaves at most a temp file that
``sweep`` removes at the next start.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

AREAS = ("images", "staging")


@dataclass(frozen=True)
class ImageStoreCapabilities:
    durable: bool  # commit() survives kill -9 and power loss (fsync of file and directory)
    local_files: bool  # path() gives a file on this host that drivers may read


class ImageWriter(abc.ABC):
    """An open, not yet visible image file. ``write`` bytes, then ``commit`` or ``abort``."""

    @abc.abstractmethod
    def write(self, data: bytes) -> None:
        """Append data. Cheap: must not fsync."""

    @property
    @abc.abstractmethod
    def size(self) -> int: ...

    @abc.abstractmethod
    def read_at(self, offset: int, n: int) -> bytes:
        """Up to ``n`` bytes written so far, from ``offset`` (format inspection before
        commit reads headers, footers and metadata tables this way)."""

    @abc.abstractmethod
    def commit(self) -> str:
        """Make the file durable and visible; return its location URL.

        Replaces an existing file of the same image and area atomically. After commit
        returns, a crash at any moment keeps the whole file; if it raises, nothing is
        left behind.
        """

    @abc.abstractmethod
    def abort(self) -> None:
        """Discard the data; idempotent; safe after a failed commit."""


class ImageStore(abc.ABC):
    """One named store (glance multi-store "backend"). A cloud may have several; each is
    an independent instance with its own root, so the same image id may have a file in
    more than one of them (copies made by import to several stores or copy-image)."""

    capabilities: ImageStoreCapabilities
    store_id: str = "local"
    description: str = ""
    read_only: bool = False  # True: never a target of uploads, imports or copies

    def location(self, image_id: str) -> str:
        """The URL shown for this store's copy of ``image_id`` (image ``locations``)."""
        return f"{self.store_id}://{image_id}"

    @abc.abstractmethod
    def writer(self, image_id: str, area: str = "images") -> ImageWriter:
        """Start writing the data of ``image_id`` in ``area``."""

    @abc.abstractmethod
    def read(self, image_id: str, start: int = 0, end: int | None = None,
             area: str = "images", chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes [start, end) of a committed file. Raises FileNotFoundError."""

    @abc.abstractmethod
    def size(self, image_id: str, area: str = "images") -> int:
        """Size of a committed file. Raises FileNotFoundError."""

    @abc.abstractmethod
    def path(self, image_id: str, area: str = "images") -> Path:
        """The local file of a committed image (only when capabilities.local_files).

        Raises FileNotFoundError when there is none; NotImplementedError for stores
        without local files.
        """

    @abc.abstractmethod
    def promote(self, image_id: str) -> str:
        """Move staged data into the images area atomically; return its location."""

    @abc.abstractmethod
    def adopt(self, image_id: str, source: Path, *, move: bool) -> str:
        """Take an existing local file as the data of ``image_id`` (snapshots).

        ``move`` renames it when it is on the same file system (else copies); without
        ``move`` the source is copied and left alone. Atomic like ``commit``.
        """

    @abc.abstractmethod
    def delete(self, image_id: str, area: str = "images") -> None:
        """Remove a file; a missing file is not an error (idempotent)."""

    @abc.abstractmethod
    def list_ids(self, area: str = "images") -> list[str]:
        """Ids of the committed files in ``area`` (start-up removes those without a record)."""

    @abc.abstractmethod
    def sweep(self) -> int:
        """Remove temp files left by writers of processes that no longer run; return
        how many were removed."""

    @abc.abstractmethod
    def usage(self) -> tuple[int, int]:
        """(used bytes, free bytes) of the backing storage, for /v2/info/usage."""
