"""The fake backend: volumes as byte maps in memory, for unit tests and scale runs.

It keeps the semantics a real backend must have (sizes, snapshot contents, copies,
idempotent create/delete, exports that appear and disappear) so tests exercise the same
state machine; it only never touches the host.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pocketstack.drivers.volume.base import (GiB, PoolStats, VolumeCapabilities,
                                             VolumeDriver, VolumeDriverError)


class FakeVolumeDriver(VolumeDriver):
    name = "fake"
    capabilities = VolumeCapabilities(thin_provisioning=True, extend_attached=True,
                                      multiattach=True)

    def __init__(self, capacity_gb: int = 10240, delay: float = 0.0) -> None:
        self.capacity_gb = capacity_gb
        self.delay = delay  # seconds per create, to make "creating" observable in tests
        self.volumes: dict[str, dict] = {}  # id -> {"size": gb, "data": {offset: bytes}}
        self.snapshots: dict[str, dict] = {}
        self._exports: dict[str, str] = {}
        self._lock = threading.Lock()
        self._next_dev = 0

    def setup(self) -> None:
        return None

    def stats(self) -> PoolStats:
        used = sum(v["size"] for v in self.volumes.values())
        return PoolStats(pool_name="fake", total_capacity_gb=float(self.capacity_gb),
                         free_capacity_gb=float(self.capacity_gb),
                         provisioned_capacity_gb=float(used),
                         allocated_capacity_gb=float(used), max_over_subscription_ratio=20.0)

    def _wait(self) -> None:
        if self.delay:
            import time

            time.sleep(self.delay)

    def _put(self, volume_id: str, size_gb: int, data: dict[int, bytes]) -> None:
        with self._lock:
            if volume_id in self.volumes:
                return
            self.volumes[volume_id] = {"size": size_gb, "data": dict(data)}

    def create_volume(self, volume_id: str, size_gb: int) -> None:
        self._wait()
        self._put(volume_id, size_gb, {})

    def create_volume_from_image(self, volume_id: str, size_gb: int, image_path: Path,
                                 disk_format: str) -> None:
        self._wait()
        data = Path(image_path).read_bytes() if Path(image_path).exists() else b""
        if len(data) > size_gb * GiB:
            raise VolumeDriverError(f"image is {len(data)} bytes, larger than {size_gb} GiB")
        self._put(volume_id, size_gb, {0: data} if data else {})

    def create_volume_from_snapshot(self, volume_id: str, size_gb: int, snapshot_id: str,
                                    source_volume_id: str) -> None:
        self._wait()
        snap = self.snapshots.get(snapshot_id)
        if snap is None:
            raise VolumeDriverError(f"snapshot {snapshot_id} is not on this backend")
        self._put(volume_id, size_gb, snap["data"])

    def clone_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        self._wait()
        src = self.volumes.get(source_volume_id)
        if src is None:
            raise VolumeDriverError(f"volume {source_volume_id} is not on this backend")
        self._put(volume_id, size_gb, src["data"])

    def delete_volume(self, volume_id: str) -> None:
        with self._lock:
            self._exports.pop(volume_id, None)
            self.volumes.pop(volume_id, None)

    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise VolumeDriverError(f"volume {volume_id} is not on this backend")
        vol["size"] = max(vol["size"], new_size_gb)

    def volume_exists(self, volume_id: str) -> bool:
        return volume_id in self.volumes

    def list_volumes(self) -> set[str]:
        return set(self.volumes)

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise VolumeDriverError(f"volume {volume_id} is not on this backend")
        with self._lock:
            self.snapshots.setdefault(snapshot_id, {"volume_id": volume_id,
                                                    "data": dict(vol["data"])})

    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        self.snapshots.pop(snapshot_id, None)

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        snap = self.snapshots.get(snapshot_id)
        if snap is None or volume_id not in self.volumes:
            raise VolumeDriverError("snapshot or volume is not on this backend")
        self.volumes[volume_id]["data"] = dict(snap["data"])

    def export(self, volume_id: str, readonly: bool = False) -> str:
        if volume_id not in self.volumes:
            raise VolumeDriverError(f"volume {volume_id} is not on this backend")
        with self._lock:
            if volume_id not in self._exports:
                self._exports[volume_id] = f"/dev/fake{self._next_dev}"
                self._next_dev += 1
            return self._exports[volume_id]

    def unexport(self, volume_id: str) -> None:
        with self._lock:
            self._exports.pop(volume_id, None)

    def exports(self) -> dict[str, str]:
        return dict(self._exports)

    def copy_volume_to_file(self, volume_id: str, dest: Path, disk_format: str) -> None:
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise VolumeDriverError(f"volume {volume_id} is not on this backend")
        tmp = Path(dest).with_name(Path(dest).name + ".part")
        tmp.write_bytes(vol["data"].get(0, b""))
        tmp.replace(dest)

    def write_bytes(self, volume_id: str, offset: int, data: bytes) -> None:
        """Test helper: what a guest writing to the device would do."""
        self.volumes[volume_id]["data"][offset] = data

    def write_bytes(self, volume_id: str, offset: int, data: bytes) -> None:
        # chunks are kept keyed by offset; a write replaces any chunk it overlaps
        with self._lock:
            vol = self.volumes.get(volume_id)
            if vol is None:
                raise VolumeDriverError(f"volume {volume_id} is not on this backend")
            end = offset + len(data)
            chunks = {k: v for k, v in vol["data"].items()
                      if k + len(v) <= offset or k >= end}
            if data.count(0) != len(data):
                chunks[offset] = bytes(data)
            vol["data"] = chunks

    def read_bytes(self, volume_id: str, offset: int, length: int) -> bytes:
        vol = self.volumes.get(volume_id)
        if vol is None:
            raise VolumeDriverError(f"volume {volume_id} is not on this backend")
        for start, chunk in vol["data"].items():
            if start <= offset < start + len(chunk):
                piece = chunk[offset - start: offset - start + length]
                return piece + b"\0" * (length - len(piece))
        return b"\0" * length
