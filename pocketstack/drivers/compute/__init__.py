"""Compute drivers, chosen from an explicit registry."""

from __future__ import annotations

import os
import shutil
from typing import Any

from pocketstack.drivers.compute.base import ComputeDriver


def _fake(settings: Any) -> ComputeDriver:
    from pocketstack.drivers.compute.fake import FakeDriver

    c = settings.compute
    return FakeDriver(hosts=c.fake_hosts, vcpus=c.fake_host_vcpus, memory_mb=c.fake_host_memory_mb,
                      disk_gb=c.fake_host_disk_gb, pci_devices=c.fake_pci_devices)


def _container(settings: Any) -> ComputeDriver:
    from pocketstack.drivers.compute.container import ContainerDriver

    return ContainerDriver(settings)


def _qemu(settings: Any) -> ComputeDriver:
    from pocketstack.drivers.compute.qemu import QemuDriver

    return QemuDriver(settings)


REGISTRY = {"fake": _fake, "container": _container, "qemu": _qemu}
# Where each real driver keeps its servers, under the data dir: what says it ran here.
STATE_DIRS = {"container": "compute/instances", "qemu": "compute/qemu"}


def purge_others(settings: Any, current: str) -> None:
    """``down --purge`` of every other real driver that has servers in this data dir: a
    cloud's servers outlive it by design, and the purge may run from a shell without the
    ``POCKETSTACK_COMPUTE__DRIVER`` the cloud was started with."""
    from pathlib import Path

    for name, sub in STATE_DIRS.items():
        if name != current and (Path(settings.data_dir) / sub).is_dir():
            REGISTRY[name](settings).purge()


def container_unavailable_reason() -> str | None:
    """Why the container driver cannot run here, or None if it can."""
    if os.geteuid() != 0:
        return "not running as root"
    if not shutil.which("runc"):
        return "runc not found (Debian package runc)"
    for ns in ("pid", "user", "cgroup", "net"):
        if not os.path.exists(f"/proc/self/ns/{ns}"):
            return f"no {ns} namespaces in this kernel"
    try:
        with open("/proc/sys/user/max_user_namespaces") as fh:
            if int(fh.read().strip() or 0) == 0:
                return "user namespaces are disabled (user.max_user_namespaces = 0)"
    except (OSError, ValueError):
        pass
    return None


def load(settings: Any) -> tuple[ComputeDriver, str | None]:
    """The configured driver, and a note if we fell back to the fake one."""
    name = settings.compute.driver
    if name == "auto":
        reason = container_unavailable_reason()
        if reason is None:
            try:
                return REGISTRY["container"](settings), None
            except ImportError as exc:
                reason = f"container driver unavailable: {exc}"
        return REGISTRY["fake"](settings), f"compute: fake driver ({reason}; no real servers)"
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown compute driver {name!r}; choose from {sorted(REGISTRY)}") from None
    return factory(settings), None
