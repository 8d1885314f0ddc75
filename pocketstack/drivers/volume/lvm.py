"""The LVM backend: thin logical volumes in a thin pool of a volume group (Cinder's lvm driver
with ``lvm_type = thin``).

Names follow Cinder: ``volume-<id>`` and ``_snapshot-<id>`` in VG ``cinder-volumes``, thin
pool ``<vg>-pool``. The VG must exist (an operator's disk, or a loop device in tests); the
thin pool is created on first use from the VG's free space. Snapshots are thin snapshots
(instant, copy-on-write); a volume from a snapshot is a thin snapshot of the snapshot,
activated (thin snapshots are created with the "activation skip" flag, hence ``-K``/``-kn``).
Exports are the LV device nodes themselves: ``/dev/<vg>/volume-<id>``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pocketstack.drivers.volume import _host
from pocketstack.drivers.volume._host import sh
from pocketstack.drivers.volume.base import (GiB, PoolStats, VolumeCapabilities,
                                             VolumeDriver, VolumeDriverError)
from pocketstack.drivers.volume.file import QEMU_FORMATS


def device_mapper_available() -> bool:
    try:
        return "device-mapper" in Path("/proc/misc").read_text()
    except OSError:
        return False


class LVMVolumeDriver(VolumeDriver):
    name = "lvm"
    capabilities = VolumeCapabilities(thin_provisioning=True, extend_attached=True,
                                      host_block_device=True)

    def __init__(self, vg: str = "cinder-volumes", pool: str = "") -> None:
        self.vg = vg
        self.pool = pool or f"{vg}-pool"

    def _lv(self, name: str) -> str:
        return f"{self.vg}/{name}"

    def _dev(self, name: str) -> str:
        return f"/dev/{self.vg}/{name}"

    def _lvs(self) -> dict[str, dict]:
        out = sh("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                 "lv_name,lv_size,lv_attr,data_percent", self.vg, check=False)
        try:
            rows = json.loads(out)["report"][0]["lv"]
        except (ValueError, KeyError, IndexError):
            return {}
        return {r["lv_name"]: r for r in rows}

    def setup(self) -> None:
        if not _host.have("lvcreate", "vgs"):
            raise VolumeDriverError("LVM tools are not installed (Debian package lvm2)")
        if not device_mapper_available():
            raise VolumeDriverError("the kernel has no device-mapper (no 'device-mapper' in "
                                    "/proc/misc); LVM cannot work on this machine")
        res = sh("vgs", "--noheadings", "-o", "vg_name", self.vg, check=False)
        if self.vg not in res.split():
            raise VolumeDriverError(f"volume group {self.vg!r} does not exist on this host")
        if self.pool not in self._lvs():
            # 95% of the free space: LVM needs room for the pool's metadata spare.
            sh("lvcreate", "-q", "-y", "--type", "thin-pool", "-l", "95%FREE", "-n", self.pool,
               self.vg)

    def stats(self) -> PoolStats:
        out = sh("vgs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o",
                 "vg_size,vg_free", self.vg)
        vg = json.loads(out)["report"][0]["vg"][0]
        lvs = self._lvs()
        pool = lvs.get(self.pool)
        total = float(pool["lv_size"]) if pool else float(vg["vg_size"])
        used = total * float(pool.get("data_percent") or 0) / 100 if pool else 0.0
        provisioned = sum(float(r["lv_size"]) for n, r in lvs.items() if n.startswith("volume-"))
        return PoolStats(pool_name=self.pool, total_capacity_gb=round(total / GiB, 2),
                         free_capacity_gb=round((total - used) / GiB, 2),
                         provisioned_capacity_gb=round(provisioned / GiB, 2),
                         allocated_capacity_gb=round(used / GiB, 2),
                         max_over_subscription_ratio=20.0, storage_protocol="local")

    def _exists(self, name: str) -> bool:
        return name in self._lvs()

    def _activate(self, name: str) -> None:
        sh("lvchange", "-q", "-ay", "-K", self._lv(name))

    def _grow(self, name: str, size_gb: int) -> None:
        cur = int(self._lvs()[name]["lv_size"])
        if cur < size_gb * GiB:
            sh("lvextend", "-q", "-L", f"{size_gb}g", self._lv(name))

    def create_volume(self, volume_id: str, size_gb: int) -> None:
        name = f"volume-{volume_id}"
        if self._exists(name):
            return
        try:
            sh("lvcreate", "-q", "-y", "-T", self._lv(self.pool), "-V", f"{size_gb}g", "-n", name)
        except VolumeDriverError:
            self.delete_volume(volume_id)
            raise

    def create_volume_from_image(self, volume_id: str, size_gb: int, image_path: Path,
                                 disk_format: str) -> None:
        name = f"volume-{volume_id}"
        if self._exists(name):
            return
        src_fmt = QEMU_FORMATS.get(disk_format or "raw", "raw")
        info = json.loads(sh("qemu-img", "info", "--output=json", "-f", src_fmt, str(image_path)))
        if int(info["virtual-size"]) > size_gb * GiB:
            raise VolumeDriverError(f"Image doesn't fit in a volume of size {size_gb} GiB.")
        self.create_volume(volume_id, size_gb)
        try:
            sh("qemu-img", "convert", "-q", "-n", "-f", src_fmt, "-O", "raw", str(image_path),
               self._dev(name))
        except VolumeDriverError:
            self.delete_volume(volume_id)
            raise

    def _snap_of(self, new: str, origin: str, size_gb: int) -> None:
        if self._exists(new):
            return
        try:
            sh("lvcreate", "-q", "-y", "-s", "-kn", "-n", new, self._lv(origin))
            self._activate(new)
            self._grow(new, size_gb)
        except VolumeDriverError:
            sh("lvremove", "-q", "-f", self._lv(new), check=False)
            raise

    def create_volume_from_snapshot(self, volume_id: str, size_gb: int, snapshot_id: str,
                                    source_volume_id: str) -> None:
        self._snap_of(f"volume-{volume_id}", f"_snapshot-{snapshot_id}", size_gb)

    def clone_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        self._snap_of(f"volume-{volume_id}", f"volume-{source_volume_id}", size_gb)

    def delete_volume(self, volume_id: str) -> None:
        name = f"volume-{volume_id}"
        if self._exists(name):
            sh("lvremove", "-q", "-f", self._lv(name))

    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        self._grow(f"volume-{volume_id}", new_size_gb)

    def volume_exists(self, volume_id: str) -> bool:
        return self._exists(f"volume-{volume_id}")

    def list_volumes(self) -> set[str]:
        return {n[len("volume-"):] for n in self._lvs() if n.startswith("volume-")}

    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        name = f"_snapshot-{snapshot_id}"
        if not self._exists(name):
            sh("lvcreate", "-q", "-y", "-s", "-n", name, self._lv(f"volume-{volume_id}"))

    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        name = f"_snapshot-{snapshot_id}"
        if self._exists(name):
            sh("lvremove", "-q", "-f", self._lv(name))

    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        name = f"volume-{volume_id}"
        size_gb = -(-int(self._lvs()[name]["lv_size"]) // GiB)
        sh("lvremove", "-q", "-f", self._lv(name))
        self._snap_of(name, f"_snapshot-{snapshot_id}", size_gb)

    def export(self, volume_id: str, readonly: bool = False) -> str:
        name = f"volume-{volume_id}"
        if not self._exists(name):
            raise VolumeDriverError(f"volume {volume_id} does not exist in VG {self.vg}")
        self._activate(name)
        return self._dev(name)

    def unexport(self, volume_id: str) -> None:
        return None  # the LV node stays; nothing on the host to release

    def exports(self) -> dict[str, str]:
        return {vid: self._dev(f"volume-{vid}") for vid in self.list_volumes()}

    def copy_volume_to_file(self, volume_id: str, dest: Path, disk_format: str) -> None:
        dest = Path(dest)
        part = dest.with_name(dest.name + ".part")
        sh("qemu-img", "convert", "-q", "-f", "raw", "-O", QEMU_FORMATS.get(disk_format, "raw"),
           self.export(volume_id), str(part))
        part.replace(dest)

    def read_bytes(self, volume_id: str, offset: int, length: int) -> bytes:
        with open(self.export(volume_id), "rb") as fh:
            fh.seek(offset)
            return fh.read(length)

    def write_bytes(self, volume_id: str, offset: int, data: bytes) -> None:
        with open(self.export(volume_id), "r+b") as fh:
            fh.seek(offset)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    def purge(self) -> None:
        for name in self._lvs():
            if name.startswith(("volume-", "_snapshot-")):
                sh("lvremove", "-q", "-f", self._lv(name), check=False)
