"""Fernet key repositories (tokens, credentials), laid out and rotated as Keystone does.

Files ``0``, ``1``, ... in a 0700 directory; ``0`` is the staged key, the highest number is
the primary (encrypts), every key decrypts. ``rotate`` promotes the staged key to primary,
stages a new ``0`` and prunes down to ``max_active_keys``. Writes are atomic.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet


def _atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class KeyRepository:
    def __init__(self, path: Path, max_active_keys: int = 3) -> None:
        self.path = path
        self.max_active_keys = max(2, max_active_keys)

    def _keys(self) -> dict[int, bytes]:
        keys = {}
        if self.path.is_dir():
            for entry in self.path.iterdir():
                if entry.name.isdigit():
                    keys[int(entry.name)] = entry.read_bytes().strip()
        return keys

    def setup(self) -> None:
        """Create the repository with a staged and a primary key if it is empty."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)
        if not self._keys():
            _atomic_write(self.path / "0", Fernet.generate_key())
            _atomic_write(self.path / "1", Fernet.generate_key())

    def rotate(self) -> int:
        """Promote the staged key, stage a new one, prune the oldest; returns the new primary."""
        self.setup()
        keys = self._keys()
        primary = max(keys) + 1
        os.replace(self.path / "0", self.path / str(primary))
        _atomic_write(self.path / "0", Fernet.generate_key())
        secondaries = sorted(k for k in keys if k not in (0,))
        excess = len(secondaries) + 2 - self.max_active_keys
        for old in secondaries[:max(0, excess)]:
            (self.path / str(old)).unlink(missing_ok=True)
        return primary

    def fernet(self) -> MultiFernet:
        keys = self._keys()
        if not keys:
            raise RuntimeError(f"no Fernet keys in {self.path}")
        ordered = [keys[k] for k in sorted(keys, reverse=True) if k != 0]
        if 0 in keys:
            ordered.append(keys[0])
        return MultiFernet([Fernet(k) for k in ordered])
