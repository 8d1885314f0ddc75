"""Nova v2.1: flavors, keypairs, servers and their actions, scheduling, quotas, hosts."""

from pocketstack.app import ServiceSpec
from pocketstack.services.compute import routes
from pocketstack.services.identity.bootstrap import CatalogEntry


def _create(cloud):  # noqa: ANN001, ANN202
    from pocketstack.services.compute.hosts import Hosts
    from pocketstack.services.compute.server_actions import ServerActions
    from pocketstack.services.compute.server_groups import ServerGroups
    from pocketstack.services.compute.servers import Servers
    from pocketstack.services.compute.service import ComputeService

    svc = ComputeService(cloud)
    svc.servers = Servers(svc)
    svc.actions_api = ServerActions(svc)
    svc.groups_api = ServerGroups(svc)
    svc.hosts_api = Hosts(svc)
    return svc


async def _start(svc) -> None:  # noqa: ANN001
    await svc.start()


async def _stop(svc) -> None:  # noqa: ANN001
    await svc.stop()


SPEC = ServiceSpec(
    name="nova", type="compute", path="/compute", fault_style="nova",
    create=_create, routes=routes.register, start=_start, stop=_stop,
    catalog=[CatalogEntry("compute", "nova", "/compute/v2.1", "Nova Compute Service")],
)
