"""The S3 API at /s3, on the same store as Swift (``cloud.services["object-store"]``)."""

from typing import Any

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.s3.routes import S3App


class S3Service:
    """Holds the shared object store service; S3 has no state of its own."""

    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.store_service = cloud.services["object-store"]


SPEC = ServiceSpec(
    name="s3", type="s3", path="/s3", fault_style="s3",
    create=S3Service, routes=lambda service, table: None,
    catalog=[CatalogEntry("s3", "s3", "/s3", "S3 API on the object store")],
    raw_app=S3App,
)
