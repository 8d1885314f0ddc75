"""`pocketstack down --purge`: remove what this cloud created on the host, and only that.

Each service that creates host resources (namespaces, bridges, loop devices, processes)
exposes ``purge()`` which removes its own resources by the names it recorded.
"""

from __future__ import annotations

from pocketstack.config import Settings


def purge_host_resources(settings: Settings) -> None:
    if not (settings.data_dir / "pocketstack.db").exists() and not settings.database.url:
        return
    from pocketstack.app import Cloud

    cloud = Cloud(settings)
    for spec in reversed(cloud.specs):
        purge = getattr(cloud.services[spec.type], "purge", None)
        if purge is not None:
            purge()
