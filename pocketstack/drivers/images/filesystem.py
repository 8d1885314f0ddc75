"""Image store on the local file system: ``<root>/images/<id>`` and ``<root>/staging/<id>``.

Writers create ``<root>/tmp/<id>.<pid>.<random>.part`` with O_EXCL, and ``commit`` does
write -> fsync(file) -> rename -> fsync(dir). The pid in the temp name lets ``sweep`` tell
an abandoned upload (its process is gone) from one a sibling process is still writing.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from pocketstack.drivers.images.base import (AREAS, ImageStore, ImageStoreCapabilities,
                                             ImageWriter)


HOLE_BLOCK = 1 << 20
ZEROS = bytes(HOLE_BLOCK)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWriter(ImageWriter):
    def __init__(self, tmp: Path, final: Path) -> None:
        self._tmp = tmp
        self._final = final
        self._fh = open(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600), "r+b",
                        buffering=0)
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        # Whole blocks of zeros become holes: a sparse raw image stays sparse on disk.
        view = memoryview(data)
        for start in range(0, len(view), HOLE_BLOCK):
            block = view[start:start + HOLE_BLOCK]
            if len(block) == HOLE_BLOCK and block[0] == 0 and block[-1] == 0 \
                    and bytes(block) == ZEROS:
                self._fh.seek(HOLE_BLOCK, os.SEEK_CUR)
                continue
            while block:
                n = self._fh.write(block)
                block = block[n:]
        self._size += len(data)

    @property
    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if offset < 0 or offset >= self._size or n <= 0:
            return b""
        return os.pread(self._fh.fileno(), min(n, self._size - offset), offset)

    def commit(self) -> str:
        try:
            os.ftruncate(self._fh.fileno(), self._size)  # a trailing hole still counts
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self._final)
            _fsync_dir(self._final.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return self._final.as_uri()

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        try:
            self._fh.close()
        except OSError:
            pass
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass


class FilesystemImageStore(ImageStore):
    capabilities = ImageStoreCapabilities(durable=True, local_files=True)
    store_id = "local"
    description = "Local file system store"

    def __init__(self, root: Path, store_id: str | None = None,
                 description: str | None = None) -> None:
        self.root = Path(root)
        if store_id:
            self.store_id = store_id
        if description:
            self.description = description
        for sub in (*AREAS, "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def _file(self, image_id: str, area: str) -> Path:
        if area not in AREAS or not image_id or "/" in image_id or image_id.startswith("."):
            raise ValueError(f"bad image file reference {area}/{image_id}")
        return self.root / area / image_id

    def location(self, image_id: str) -> str:
        return (self.root / "images" / image_id).as_uri()

    def writer(self, image_id: str, area: str = "images") -> FileWriter:
        final = self._file(image_id, area)
        tmp = self.root / "tmp" / f"{image_id}.{os.getpid()}.{secrets.token_hex(4)}.part"
        return FileWriter(tmp, final)

    def read(self, image_id: str, start: int = 0, end: int | None = None,
             area: str = "images", chunk_size: int = 1 << 20) -> Iterator[bytes]:
        fh = open(self._file(image_id, area), "rb")  # FileNotFoundError before the first yield

        def chunks() -> Iterator[bytes]:
            with fh:
                fh.seek(start)
                remaining = None if end is None else max(0, end - start)
                while remaining is None or remaining > 0:
                    want = chunk_size if remaining is None else min(chunk_size, remaining)
                    data = fh.read(want)
                    if not data:
                        return
                    if remaining is not None:
                        remaining -= len(data)
                    yield data
        return chunks()

    def size(self, image_id: str, area: str = "images") -> int:
        return self._file(image_id, area).stat().st_size

    def path(self, image_id: str, area: str = "images") -> Path:
        p = self._file(image_id, area)
        if not p.is_file():
            raise FileNotFoundError(str(p))
        return p

    def promote(self, image_id: str) -> str:
        src, dst = self._file(image_id, "staging"), self._file(image_id, "images")
        os.replace(src, dst)  # same file system: atomic
        _fsync_dir(dst.parent)
        _fsync_dir(src.parent)
        return dst.as_uri()

    def adopt(self, image_id: str, source: Path, *, move: bool) -> str:
        final = self._file(image_id, "images")
        if move:
            try:
                os.replace(source, final)
                _fsync_dir(final.parent)
                return final.as_uri()
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        w = self.writer(image_id)
        try:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, w._fh, 1 << 20)  # noqa: SLF001 - our own writer
            w._size = w._fh.tell()  # noqa: SLF001
            location = w.commit()
        except BaseException:
            w.abort()
            raise
        if move:
            Path(source).unlink(missing_ok=True)
        return location

    def delete(self, image_id: str, area: str = "images") -> None:
        try:
            self._file(image_id, area).unlink()
        except FileNotFoundError:
            pass

    def list_ids(self, area: str = "images") -> list[str]:
        if area not in AREAS:
            raise ValueError(area)
        return [p.name for p in (self.root / area).iterdir()
                if p.is_file() and not p.name.startswith(".")]

    def sweep(self) -> int:
        removed = 0
        for part in (self.root / "tmp").glob("*.part"):
            try:
                pid = int(part.name.split(".")[-3])
            except (ValueError, IndexError):
                pid = -1
            if pid > 0 and _alive(pid):
                continue
            part.unlink(missing_ok=True)
            removed += 1
        return removed

    def usage(self) -> tuple[int, int]:
        used = sum(p.stat().st_size for area in AREAS for p in (self.root / area).iterdir()
                   if p.is_file())
        st = os.statvfs(self.root)
        return used, st.f_bavail * st.f_frsize


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
