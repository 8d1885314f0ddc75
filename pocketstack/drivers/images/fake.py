"""An in-memory image store for unit tests and scale runs; documents the semantics.

Data lives in a dict keyed by (area, image_id); writers buffer until commit, so an
aborted or crashed write leaves nothing. It has no local files: ``path`` raises
NotImplementedError, which is what the compute drivers must expect from a remote store.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from pocketstack.drivers.images.base import (AREAS, ImageStore, ImageStoreCapabilities,
                                             ImageWriter)


class MemoryWriter(ImageWriter):
    def __init__(self, store: "FakeImageStore", key: tuple[str, str]) -> None:
        self._store, self._key = store, key
        self._buf = bytearray()
        self._done = False

    def write(self, data: bytes) -> None:
        self._buf += data

    @property
    def size(self) -> int:
        return len(self._buf)

    def read_at(self, offset: int, n: int) -> bytes:
        return bytes(self._buf[offset:offset + n]) if offset >= 0 and n > 0 else b""

    def commit(self) -> str:
        with self._store.lock:
            self._store.blobs[self._key] = bytes(self._buf)
        self._done = True
        return f"fake://{self._key[0]}/{self._key[1]}"

    def abort(self) -> None:
        self._buf = bytearray()
        self._done = True


class FakeImageStore(ImageStore):
    capabilities = ImageStoreCapabilities(durable=False, local_files=False)
    store_id = "fake"
    description = "In-memory store (tests)"

    def __init__(self, root: Path | None = None, store_id: str | None = None,
                 description: str | None = None) -> None:
        if store_id:
            self.store_id = store_id
        if description:
            self.description = description
        self.blobs: dict[tuple[str, str], bytes] = {}
        self.lock = threading.Lock()

    def _key(self, image_id: str, area: str) -> tuple[str, str]:
        if area not in AREAS:
            raise ValueError(area)
        return area, image_id

    def location(self, image_id: str) -> str:
        return f"fake://images/{image_id}"

    def writer(self, image_id: str, area: str = "images") -> MemoryWriter:
        return MemoryWriter(self, self._key(image_id, area))

    def _get(self, image_id: str, area: str) -> bytes:
        try:
            return self.blobs[self._key(image_id, area)]
        except KeyError:
            raise FileNotFoundError(f"{area}/{image_id}") from None

    def read(self, image_id: str, start: int = 0, end: int | None = None,
             area: str = "images", chunk_size: int = 1 << 20) -> Iterator[bytes]:
        data = self._get(image_id, area)[start:end]
        return iter([data[i:i + chunk_size] for i in range(0, len(data), chunk_size)])

    def size(self, image_id: str, area: str = "images") -> int:
        return len(self._get(image_id, area))

    def path(self, image_id: str, area: str = "images") -> Path:
        raise NotImplementedError("the fake image store has no local files")

    def promote(self, image_id: str) -> str:
        with self.lock:
            self.blobs[("images", image_id)] = self._get(image_id, "staging")
            del self.blobs[("staging", image_id)]
        return f"fake://images/{image_id}"

    def adopt(self, image_id: str, source: Path, *, move: bool) -> str:
        data = Path(source).read_bytes()
        with self.lock:
            self.blobs[("images", image_id)] = data
        if move:
            Path(source).unlink(missing_ok=True)
        return f"fake://images/{image_id}"

    def delete(self, image_id: str, area: str = "images") -> None:
        with self.lock:
            self.blobs.pop(self._key(image_id, area), None)

    def list_ids(self, area: str = "images") -> list[str]:
        return [i for (a, i) in list(self.blobs) if a == area]

    def sweep(self) -> int:
        return 0

    def usage(self) -> tuple[int, int]:
        return sum(len(b) for b in self.blobs.values()), 1 << 40
