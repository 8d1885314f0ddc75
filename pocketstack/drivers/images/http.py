"""The read-only HTTP store (glance_store's ``http``): image data that stays at an http(s)
URL and is read from there on demand. Nothing is ever written to it or deleted from it;
images get data here only through locations (``PATCH /locations`` with
show_multiple_locations, or ``POST /v2/images/{id}/locations``).

It is keyed by URL, not by image id: the id-keyed methods of the contract report "no such
file" (reads) or refuse (writes), and ``read_location`` streams a URL.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from pocketstack.drivers.images.base import ImageStore, ImageStoreCapabilities, ImageWriter


class ReadOnlyStore(PermissionError):
    pass


class HttpImageStore(ImageStore):
    capabilities = ImageStoreCapabilities(durable=False, local_files=False)
    store_id = "http"
    description = "Read-only HTTP store"
    read_only = True
    schemes = ("http", "https")

    def __init__(self, root: Path | None = None, store_id: str | None = None,
                 description: str | None = None, timeout: float = 60.0) -> None:
        if store_id:
            self.store_id = store_id
        if description:
            self.description = description
        self.timeout = timeout

    def read_location(self, url: str, start: int = 0, end: int | None = None,
                      chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Yield bytes [start, end) of the data at ``url`` (a Range request when only part
        is wanted). Raises FileNotFoundError for a 404, OSError for other failures; the
        URL was filtered by the caller."""
        headers = {"User-Agent": "pocketstack-glance-http-store"}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                          timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FileNotFoundError(url) from None
            raise OSError(f"{url}: HTTP {exc.code}") from None

        def chunks() -> Iterator[bytes]:
            with resp:
                skip = start if (start and resp.status != 206) else 0  # Range ignored
                remaining = None if end is None else end - start
                while remaining is None or remaining > 0:
                    data = resp.read(chunk_size)
                    if not data:
                        return
                    if skip:
                        cut = min(skip, len(data))
                        data, skip = data[cut:], skip - cut
                        if not data:
                            continue
                    if remaining is not None:
                        data = data[:remaining]
                        remaining -= len(data)
                    yield data
        return chunks()

    def size_of(self, url: str) -> int:
        """The size of the data at ``url`` (HEAD Content-Length, else by reading it)."""
        req = urllib.request.Request(url, method="HEAD",
                                     headers={"User-Agent": "pocketstack-glance-http-store"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                length = resp.headers.get("Content-Length")
                if length and length.isdigit():
                    return int(length)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise FileNotFoundError(url) from None
            if exc.code not in (405, 501):
                raise OSError(f"{url}: HTTP {exc.code}") from None
        return sum(len(c) for c in self.read_location(url))

    # -- the id-keyed contract: nothing is stored here by id ---------------------------------
    def writer(self, image_id: str, area: str = "images") -> ImageWriter:
        raise ReadOnlyStore(f"store {self.store_id} is read-only")

    def read(self, image_id: str, start: int = 0, end: int | None = None,
             area: str = "images", chunk_size: int = 1 << 20) -> Iterator[bytes]:
        raise FileNotFoundError(f"{self.store_id} keeps data by URL, not by image id")

    def size(self, image_id: str, area: str = "images") -> int:
        raise FileNotFoundError(image_id)

    def path(self, image_id: str, area: str = "images") -> Path:
        raise NotImplementedError("the HTTP store has no local files")

    def promote(self, image_id: str) -> str:
        raise ReadOnlyStore(f"store {self.store_id} is read-only")

    def adopt(self, image_id: str, source: Path, *, move: bool) -> str:
        raise ReadOnlyStore(f"store {self.store_id} is read-only")

    def delete(self, image_id: str, area: str = "images") -> None:
        return None  # the data is not ours to delete

    def list_ids(self, area: str = "images") -> list[str]:
        return []

    def sweep(self) -> int:
        return 0

    def usage(self) -> tuple[int, int]:
        return 0, 0
