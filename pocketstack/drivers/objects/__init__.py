"""Object data backends (see base.py for the contract). Chosen from ``DRIVERS``."""

from pocketstack.drivers.objects.base import ObjectDriver, ObjectDriverCapabilities
from pocketstack.drivers.objects.filesystem import FilesystemObjectDriver

DRIVERS: dict[str, type[ObjectDriver]] = {
    "filesystem": FilesystemObjectDriver,
}

__all__ = ["DRIVERS", "ObjectDriver", "ObjectDriverCapabilities"]
