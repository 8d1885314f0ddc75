"""Volume backends, chosen from an explicit registry (``[volume] driver``)."""

from __future__ import annotations

import os
from pathlib import Path

from pocketstack.drivers.volume import _host
from pocketstack.drivers.volume.base import VolumeDriver, VolumeDriverError


def _fake(settings) -> VolumeDriver:  # noqa: ANN001
    from pocketstack.drivers.volume.fake import FakeVolumeDriver

    return FakeVolumeDriver(capacity_gb=settings.volume.fake_capacity_gb)


def _file(settings) -> VolumeDriver:  # noqa: ANN001
    from pocketstack.drivers.volume.file import FileVolumeDriver

    return FileVolumeDriver(Path(settings.data_dir) / "volumes", settings.volume.file_format)


def _lvm(settings) -> VolumeDriver:  # noqa: ANN001
    from pocketstack.drivers.volume.lvm import LVMVolumeDriver

    return LVMVolumeDriver(settings.volume.volume_group, settings.volume.thin_pool)


REGISTRY = {"fake": _fake, "file": _file, "lvm": _lvm}


def load(settings) -> tuple[VolumeDriver, str | None]:  # noqa: ANN001
    """Build and set up the configured driver; returns (driver, degraded note or None).

    "auto" picks "file" when this process is root and losetup/qemu-img exist, else "fake".
    A configured real driver that cannot work here falls back to "fake", loudly.
    """
    wanted = settings.volume.driver
    note = None
    if wanted == "auto":
        if os.geteuid() == 0 and _host.have("losetup", "qemu-img"):
            wanted = "file"
        else:
            return _fake(settings), ("volume: fake driver (file driver needs root, losetup "
                                     "and qemu-img)")
    if wanted not in REGISTRY:
        raise ValueError(f"unknown volume driver {wanted!r}; choose one of {sorted(REGISTRY)}")
    driver = REGISTRY[wanted](settings)
    try:
        driver.setup()
    except VolumeDriverError as exc:
        if wanted == "fake":
            raise
        note = f"volume: fake driver ({wanted} driver unavailable: {exc})"
        driver = _fake(settings)
    return driver, note
