"""Resource plugins: one module per resource family, collected into one explicit registry."""

from __future__ import annotations

from typing import Any

from pocketstack.services.orchestration.resources import heat, software
from pocketstack.services.orchestration.resources.base import NoneResource


def registry() -> dict[str, Any]:
    plugins: list[Any] = [NoneResource, *heat.PLUGINS, *software.PLUGINS]
    for module in _service_modules():
        plugins.extend(module.PLUGINS)
    return {p.type_name: p for p in plugins}


def _service_modules() -> list[Any]:
    from pocketstack.services.orchestration.resources import (cinder, glance, neutron,
                                                               neutron_secgroups, nova, swift)

    return [nova, neutron, neutron_secgroups, cinder, swift, glance]
