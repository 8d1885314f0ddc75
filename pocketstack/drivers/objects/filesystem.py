"""Blobs as files: <root>/<2 hex>/<32 hex>, each written once under a fresh uuid.

Write path: create the blob's file (O_EXCL, a name nobody references yet), write, fsync
the file, fsync the directory; only then does the store's database row point at it. The
uuid file *is* the temp file: nothing can read it before that commit, so there is no
rename, and the directory fsync finds nothing left to commit in ext4's journal (the
create went out with the file's fsync) instead of forcing a second journal commit for a
rename (one fsync-bound commit per PUT instead of two). Either the row commits and the
blob is durable, or the unreferenced file is swept at the next start. ``.tmp-`` files
are what older versions left mid-write; the sweep still removes them.
"""

from __future__ import annotations

import hashlib
import os
import random

from collections.abc import Iterator
from pathlib import Path

from pocketstack.drivers.objects.base import (BlobInfo, BlobWriter, ObjectDriver,
                                              ObjectDriverCapabilities)

TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_blob_id() -> str:
    """128 random bits as 32 hex, like uuid4().hex: unique, not secret (a blob's name is
    never a capability), and drawn without os.urandom's syscall, which drops the GIL."""
    return f"{random.getrandbits(128):032x}"


def _valid_id(file_id: str) -> bool:
    return len(file_id) == 32 and all(c in "0123456789abcdef" for c in file_id)


class _FileWriter(BlobWriter):
    # Paths are plain strings: pathlib's joins and conversions were a visible share of a
    # small PUT's CPU time.
    def __init__(self, driver: "FilesystemObjectDriver") -> None:
        self.file_id = new_blob_id()
        self.dir = driver.subdir_str(self.file_id)
        self.final = f"{self.dir}/{self.file_id}"
        self.fd = os.open(self.final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                          0o666)
        self.md5 = hashlib.md5(usedforsecurity=False)
        self._size = 0
        self.fsync = driver.fsync

    def write(self, data: bytes) -> None:
        self.md5.update(data)
        self._size += len(data)
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    @property
    def size(self) -> int:
        return self._size

    def commit(self) -> BlobInfo:
        try:
            if self.fsync:
                os.fsync(self.fd)
            self._close()
            if self.fsync:
                _fsync_dir(self.dir)
        except BaseException:
            self.abort()
            raise
        return BlobInfo(self.file_id, self._size, self.md5.hexdigest())

    def _close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def abort(self) -> None:
        self._close()
        try:
            os.unlink(self.final)
        except FileNotFoundError:
            pass


class FilesystemObjectDriver(ObjectDriver):
    capabilities = ObjectDriverCapabilities(durable=True, cheap_copy=True)

    def __init__(self, root: Path, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._root = str(root)
        self._dirs: set[str] = set()

    def subdir(self, file_id: str) -> Path:
        """The (existing) directory of a blob; created once, then remembered."""
        name = file_id[:2]
        path = self.root / name
        if name not in self._dirs:
            path.mkdir(exist_ok=True)
            self._dirs.add(name)
        return path

    def subdir_str(self, file_id: str) -> str:
        """``subdir`` as a plain string (the write path's hot loop)."""
        name = file_id[:2]
        if name not in self._dirs:
            self.subdir(file_id)
        return f"{self._root}/{name}"

    def _path(self, file_id: str) -> Path:
        if not _valid_id(file_id):
            raise FileNotFoundError(file_id)
        return self.root / file_id[:2] / file_id

    def writer(self) -> BlobWriter:
        return _FileWriter(self)

    def read(self, file_id: str, start: int = 0, end: int | None = None,
             chunk_size: int = 1 << 20) -> Iterator[bytes]:
        fh = open(self._path(file_id), "rb")  # noqa: SIM115 - generator closes it
        return self._iter(fh, start, end, chunk_size)

    @staticmethod
    def _iter(fh, start: int, end: int | None, chunk_size: int) -> Iterator[bytes]:  # noqa: ANN001
        with fh:
            if start:
                fh.seek(start)
            remaining = None if end is None else max(0, end - start)
            while remaining is None or remaining > 0:
                n = chunk_size if remaining is None else min(chunk_size, remaining)
                data = fh.read(n)
                if not data:
                    return
                if remaining is not None:
                    remaining -= len(data)
                yield data

    def size(self, file_id: str) -> int:
        return self._path(file_id).stat().st_size

    def copy(self, file_id: str) -> BlobInfo:
        src = self._path(file_id)
        new_id = new_blob_id()
        dst_dir = self.subdir(new_id)
        # Blobs are immutable, so a hard link is a correct (and instant) copy.
        os.link(src, dst_dir / new_id)
        if self.fsync:
            _fsync_dir(dst_dir)
        return BlobInfo(new_id, src.stat().st_size, "")

    def delete(self, file_id: str) -> None:
        if not _valid_id(file_id):
            return
        try:
            os.unlink(f"{self._root}/{file_id[:2]}/{file_id}")
        except FileNotFoundError:
            pass

    def sweep(self, referenced: set[str], older_than: float) -> int:
        removed = 0
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub):
                name = entry.name
                try:
                    if entry.stat().st_mtime >= older_than:
                        continue
                except FileNotFoundError:
                    continue
                if name.startswith(TMP_PREFIX) or (_valid_id(name) and name not in referenced):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed


