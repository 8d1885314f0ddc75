"""Neutron v2.0: networks, subnets, ports, routers, floating IPs, security groups, quotas,
RBAC, metering, subnet pools — desired state in the database, a Linux data plane behind."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.network import routes
from pocketstack.services.network.service import NetworkService


async def _start(svc: NetworkService) -> None:
    await svc.start()


async def _stop(svc: NetworkService) -> None:
    await svc.stop()


SPEC = ServiceSpec(
    name="neutron", type="network", path="/network", fault_style="neutron",
    create=NetworkService, routes=routes.register,
    catalog=[CatalogEntry("network", "neutron", "/network", "Neutron Networking Service")],
    start=_start, stop=_stop,
)
