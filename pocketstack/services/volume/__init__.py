"""Cinder v3: volumes, snapshots, types, quotas, attachments, transfers."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry


def _create(cloud):  # noqa: ANN001, ANN202
    from pocketstack.services.volume.service import VolumeService

    return VolumeService(cloud)


def _routes(svc, r):  # noqa: ANN001, ANN202
    from pocketstack.services.volume import info, routes

    info.register_versions(svc, r)
    routes.register(svc, r)


async def _start(svc):  # noqa: ANN001, ANN202
    await svc.start()


async def _stop(svc):  # noqa: ANN001, ANN202
    await svc.stop()


PATH = "/volume/v3/$(project_id)s"

SPEC = ServiceSpec(
    name="cinder", type="volume", path="/volume", fault_style="cinder",
    create=_create, routes=_routes, start=_start, stop=_stop,
    catalog=[
        CatalogEntry("block-storage", "cinder", PATH, "Cinder Volume Service"),
        CatalogEntry("volumev3", "cinderv3", PATH, "Cinder Volume Service V3"),
    ],
)
