"""Image stores, chosen from an explicit registry (``[image] store``)."""

from __future__ import annotations

from pathlib import Path

from pocketstack.drivers.images.base import ImageStore


def create_store(name: str, root: Path, store_id: str | None = None,
                 description: str | None = None) -> ImageStore:
    from pocketstack.drivers.images.fake import FakeImageStore
    from pocketstack.drivers.images.filesystem import FilesystemImageStore
    from pocketstack.drivers.images.http import HttpImageStore

    registry: dict[str, type[ImageStore]] = {
        "filesystem": FilesystemImageStore,
        "fake": FakeImageStore,
        "http": HttpImageStore,  # read-only: data stays at http(s) locations
    }
    try:
        cls = registry[name]
    except KeyError:
        raise ValueError(f"unknown image store {name!r}; choose one of {sorted(registry)}") from None
    return cls(root, store_id=store_id, description=description)
