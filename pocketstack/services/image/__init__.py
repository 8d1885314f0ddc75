"""Glance v2: images, their data (streamed, inspected), members, tags, import, schemas."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.image import routes
from pocketstack.services.image.service import ImageService

SPEC = ServiceSpec(
    name="glance", type="image", path="/image", fault_style="glance",
    create=ImageService,
    routes=routes.register,
    catalog=[CatalogEntry("image", "glance", "/image", "Glance Image Service")],
)
