"""Keystone v3: identity, tokens, catalog."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity import routes
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.identity.service import IdentityService

SPEC = ServiceSpec(
    name="keystone", type="identity", path="/identity", fault_style="keystone",
    create=lambda cloud: IdentityService(cloud.settings, cloud.db),
    routes=routes.register,
    catalog=[CatalogEntry("identity", "keystone", "/identity", "Keystone Identity Service")],
)
