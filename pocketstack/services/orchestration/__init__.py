"""Heat v1 (orchestration): stacks of resources from HOT templates, built by the engine
through the same in-process services the other APIs use."""

from pocketstack.app import ServiceSpec
from pocketstack.services.identity.bootstrap import CatalogEntry
from pocketstack.services.orchestration import routes
from pocketstack.services.orchestration.service import OrchestrationService


async def _start(svc: OrchestrationService) -> None:
    await svc.start()


SPEC = ServiceSpec(
    name="heat", type="orchestration", path="/orchestration", fault_style="heat",
    create=OrchestrationService, routes=routes.register,
    catalog=[CatalogEntry("orchestration", "heat", "/orchestration/v1/$(project_id)s",
                          "Heat Orchestration Service")],
    start=_start,
)
