"""Swift v1 object storage at /object-store (the S3 API in services/s3 shares its store)."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.object_store.routes import SwiftApp
from pocketstack.services.object_store.service import ObjectStorageService


async def _start(service: ObjectStorageService) -> None:
    await service.start()


async def _stop(service: ObjectStorageService) -> None:
    await service.stop()


SPEC = ServiceSpec(
    name="swift", type="object-store", path="/object-store", fault_style="swift",
    create=ObjectStorageService, routes=lambda service, table: None,
    catalog=[CatalogEntry("object-store", "swift", "/object-store/v1/AUTH_$(project_id)s",
                          "Swift Object Storage")],
    start=_start, stop=_stop, raw_app=SwiftApp,
)
