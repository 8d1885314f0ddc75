"""The volume driver contract: what Cinder's volume manager asks of a storage backend.

A driver owns the bytes of volumes and snapshots on one backend (one "pool") and the host
block devices that expose them. It knows nothing of HTTP, projects, quotas or the
database: the volume service records intent in the database first and then calls the
driver, so every method must be **idempotent** (the service re-runs it after a crash) and
must **clean up after itself on failure** (a failed create leaves nothing behind).

Names on the host are derived from ids (``volume-<uuid>``, ``snapshot-<uuid>``) so that
recovery and purge can find exactly what a cloud created, by name, and nothing else.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

GiB = 1024 ** 3


class VolumeDriverError(Exception):
    """A backend operation failed; the message is the real reason (shown in the fault)."""


@dataclass(frozen=True)
class VolumeCapabilities:
    """What a backend can do; the service checks these before promising an operation."""

    thin_provisioning: bool = False
    snapshots: bool = True
    clone: bool = True
    revert_to_snapshot: bool = True
    extend_attached: bool = False  # online extend while exported
    host_block_device: bool = False  # export() yields a real /dev node on this host
    multiattach: bool = False


@dataclass(frozen=True)
class PoolStats:
    """Capacity as ``cinder get-pools --detail`` reports it (GiB, floats like Cinder)."""

    pool_name: str
    total_capacity_gb: float
    free_capacity_gb: float
    provisioned_capacity_gb: float = 0.0
    allocated_capacity_gb: float = 0.0
    max_over_subscription_ratio: float = 1.0
    storage_protocol: str = "local"
    vendor_name: str = "pocketstack"
    driver_version: str = "1.0"


class VolumeDriver(abc.ABC):
    """One storage backend. Sizes are whole GiB, as in the Cinder API."""

    name: str = "base"
    capabilities: VolumeCapabilities = VolumeCapabilities()

    @abc.abstractmethod
    def setup(self) -> None:
        """Prepare the backend (directories, thin pool). Idempotent; raises
        VolumeDriverError with the reason when the backend cannot work here."""

    @abc.abstractmethod
    def stats(self) -> PoolStats:
        """Real capacity of the backing store (free space of the file system or VG)."""

    # -- volumes ----------------------------------------------------------------------
    @abc.abstractmethod
    def create_volume(self, volume_id: str, size_gb: int) -> None:
        """Create an empty volume of ``size_gb``. If it already exists with that size
        (a re-run after a crash), succeed. On failure remove any partial volume."""

    @abc.abstractmethod
    def create_volume_from_image(self, volume_id: str, size_gb: int, image_path: Path,
                                 disk_format: str) -> None:
        """Create a volume holding the image's bytes (converted to the volume format),
        grown to ``size_gb``. Raises VolumeDriverError if the image does not fit."""

    @abc.abstractmethod
    def create_volume_from_snapshot(self, volume_id: str, size_gb: int, snapshot_id: str,
                                    source_volume_id: str) -> None:
        """Create a volume holding the snapshot's bytes, grown to ``size_gb``."""

    @abc.abstractmethod
    def clone_volume(self, volume_id: str, size_gb: int, source_volume_id: str) -> None:
        """Create a volume holding a copy of the source volume's current bytes."""

    @abc.abstractmethod
    def delete_volume(self, volume_id: str) -> None:
        """Remove the volume and any export of it. A missing volume is success."""

    @abc.abstractmethod
    def extend_volume(self, volume_id: str, new_size_gb: int) -> None:
        """Grow the volume; an export of it sees the new size."""

    @abc.abstractmethod
    def volume_exists(self, volume_id: str) -> bool:
        """True if the backend holds this volume."""

    @abc.abstractmethod
    def list_volumes(self) -> set[str]:
        """Ids of every volume this backend holds (for recovery and purge)."""

    # -- snapshots ----------------------------------------------------------------------
    @abc.abstractmethod
    def create_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        """Record the volume's current bytes as a snapshot. Idempotent."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot_id: str, volume_id: str) -> None:
        """Remove the snapshot. A missing snapshot is success."""

    @abc.abstractmethod
    def revert_to_snapshot(self, volume_id: str, snapshot_id: str) -> None:
        """Make the volume's bytes those of the snapshot again."""

    # -- exports (attachments) -------------------------------------------------------------
    @abc.abstractmethod
    def export(self, volume_id: str, readonly: bool = False) -> str:
        """Expose the volume as a block device on this host and return its path
        (``/dev/loop7``, ``/dev/cinder-volumes/volume-<id>``). Returns the existing
        export if there is one, so a re-run never leaks a second device."""

    @abc.abstractmethod
    def unexport(self, volume_id: str) -> None:
        """Remove every host export of the volume (e.g. detach its loop devices).
        Nothing exported is success."""

    @abc.abstractmethod
    def exports(self) -> dict[str, str]:
        """volume id -> host device path for every live export this backend made."""

    # -- data -----------------------------------------------------------------------------
    @abc.abstractmethod
    def copy_volume_to_file(self, volume_id: str, dest: Path, disk_format: str) -> None:
        """Write the volume's bytes to ``dest`` (``raw`` or ``qcow2``), atomically."""

    @abc.abstractmethod
    def read_bytes(self, volume_id: str, offset: int, length: int) -> bytes:
        """Read bytes straight from the volume (tests, diagnostics, backups read a
        volume chunk by chunk with it). Past the end reads short."""

    def write_bytes(self, volume_id: str, offset: int, data: bytes) -> None:
        """Write ``data`` at ``offset`` into the volume (backup restore, chunk by chunk).
        Raises VolumeDriverError if this backend cannot write volumes in place."""
        raise VolumeDriverError(f"the {self.name} backend cannot write volume bytes")

    def purge(self) -> None:
        """Remove every volume, snapshot and export this backend made (``down --purge``)."""
        for volume_id in self.list_volumes():
            self.unexport(volume_id)
            self.delete_volume(volume_id)
