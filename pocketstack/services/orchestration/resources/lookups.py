"""Find things in other services by name or id, as Heat's client plugins do.

Each finder calls the owning slice's own functions with the caller's context, so what a
template can name is exactly what that user could see through the API. Returns the id,
None when nothing matches, and raises LookupError when a name is ambiguous.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import QueryParams

from pocketstack.context import RequestContext
from pocketstack.errors import NotFound

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}$")


def _one(matches: list[Any], noun: str, value: str) -> Any:
    if len(matches) > 1:
        raise LookupError(f"Multiple {noun} matches found for '{value}', use an ID to be "
                          "more specific.")
    return matches[0] if matches else None


def flavor(cloud: Any, ctx: RequestContext, value: str) -> str | None:
    from pocketstack.services.compute import flavors

    svc = cloud.services["compute"]
    try:
        return flavors.get(svc, ctx, value).id
    except NotFound:
        pass
    rows = flavors.list_(svc, ctx, QueryParams({}))
    return _one([f.id for f in rows if f.name == value], "flavor", value)


def image(cloud: Any, ctx: RequestContext, value: str) -> str | None:
    from pocketstack.services.image import images

    svc = cloud.services["image"]
    if _UUID.match(value):
        try:
            return images.show(svc, ctx, value)["id"]
        except NotFound:
            pass
    found = images.list_images(svc, ctx, QueryParams({"name": value}))
    return _one([i["id"] for i in found.get("images", []) if i.get("name") == value],
                "image", value)


def keypair(cloud: Any, ctx: RequestContext, value: str) -> str | None:
    from pocketstack.services.compute import keypairs

    try:
        return keypairs.get(cloud.services["compute"], ctx, value).name
    except NotFound:
        return None


def server(cloud: Any, ctx: RequestContext, value: str) -> str | None:
    svc = cloud.services["compute"]
    try:
        return svc.servers.get(ctx, value).id
    except NotFound:
        return None


def volume(cloud: Any, ctx: RequestContext, value: str) -> str | None:
    svc = cloud.services["volume"]
    try:
        return svc.get_volume(ctx, value)["id"]
    except NotFound:
        return None


def neutron(collection: str) -> Any:
    def find(cloud: Any, ctx: RequestContext, value: str) -> str | None:
        api = getattr(cloud.services["network"], collection)
        if _UUID.match(value):
            try:
                return api.get(ctx, value)["id"]
            except NotFound:
                pass
        found = api.list(ctx, QueryParams({"name": value}), "")
        items = next((v for v in found.values() if isinstance(v, list)), [])
        return _one([i["id"] for i in items if i.get("name") == value], collection, value)

    return find


FINDERS = {
    "nova.flavor": flavor, "glance.image": image, "nova.keypair": keypair,
    "nova.server": server, "cinder.volume": volume,
    "neutron.network": neutron("networks"), "neutron.subnet": neutron("subnets"),
    "neutron.port": neutron("ports"), "neutron.router": neutron("routers"),
    "neutron.security_group": neutron("security_groups"),
}


def find(cloud: Any, ctx: RequestContext, constraint: str, value: str) -> Any:
    finder = FINDERS.get(constraint)
    if finder is None:
        raise LookupError(f"{constraint} lookups are not supported by this server")
    return finder(cloud, ctx, value)


def require(cloud: Any, ctx: RequestContext, constraint: str, value: Any, noun: str) -> str:
    """The id a property names, or a clear failure."""
    from pocketstack.services.orchestration.engine.errors import ResourceFailure

    service = {"nova": "compute", "glance": "image", "cinder": "volume",
               "neutron": "network"}[constraint.split(".")[0]]
    if service not in cloud.services:
        raise ResourceFailure(f"The {service} service needed to find {noun} '{value}' is not "
                              "enabled in this cloud")
    try:
        found = find(cloud, ctx, constraint, str(value))
    except LookupError as exc:
        raise ResourceFailure(str(exc)) from None
    if found is None:
        raise NotFound(f"The {noun} ({value}) could not be found.")
    return found
