"""HTTP routes of the Neutron extensions that are not plain collections: trunk subport
actions, QoS rules under their policy and the rule types, flavor/profile associations,
network IP availabilities and service providers. Parsing and rendering only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.errors import BadRequest
from pocketstack.services.network.ip_availability import service_providers
from pocketstack.services.network.schemas import parse_body

if TYPE_CHECKING:
    from pocketstack.services.network.service import NetworkService


def register(svc: "NetworkService", r: Routes, base: str) -> None:
    _trunks(svc, r)
    _qos(svc, r)
    _flavors(svc, r)
    avail = svc.ip_availabilities

    async def list_availability(req: Req) -> Response:
        return json(await run(avail.list, req.ctx, req.query,
                              f"{base}/v2.0/network-ip-availabilities"))

    async def show_availability(req: Req) -> Response:
        return json({"network_ip_availability": await run(avail.get, req.ctx,
                                                          req.params["id"])})

    async def list_providers(req: Req) -> Response:
        return json(await run(service_providers, req.ctx, req.query,
                              f"{base}/v2.0/service-providers"))

    r.get("/v2.0/network-ip-availabilities", list_availability)
    r.get("/v2.0/network-ip-availabilities/{id}", show_availability)
    r.get("/v2.0/service-providers", list_providers)


def _trunks(svc: "NetworkService", r: Routes) -> None:
    trunks = svc.trunks

    async def add(req: Req) -> Response:
        # Neutron answers the trunk itself, not wrapped in {"trunk": ...}
        return json(await run(trunks.add_subports, req.ctx, req.params["id"],
                              await req.json()))

    async def remove(req: Req) -> Response:
        return json(await run(trunks.remove_subports, req.ctx, req.params["id"],
                              await req.json()))

    async def get(req: Req) -> Response:
        return json({"sub_ports": await run(trunks.get_subports, req.ctx, req.params["id"])})

    r.put("/v2.0/trunks/{id}/add_subports", add)
    r.put("/v2.0/trunks/{id}/remove_subports", remove)
    r.get("/v2.0/trunks/{id}/get_subports", get)


def _body(body: object, key: str, schema: str, *, update: bool = False) -> dict:
    if not isinstance(body, dict) or key not in body:
        raise BadRequest(f"Resource body required: expected '{key}'.", kind="HTTPBadRequest")
    return parse_body(schema, body[key], update=update)


def _qos(svc: "NetworkService", r: Routes) -> None:
    types = svc.qos_rule_types

    async def list_types(req: Req) -> Response:
        return json({"rule_types": await run(types.list, req.ctx, req.query)})

    async def show_type(req: Req) -> Response:
        return json({"rule_type": await run(types.get, req.ctx, req.params["type"])})

    r.get("/v2.0/qos/rule-types", list_types)
    r.get("/v2.0/qos/rule-types/{type}", show_type)

    for segment, rules in svc.qos_rules.items():
        _qos_rules(r, segment, rules)


def _qos_rules(r: Routes, segment: str, rules) -> None:  # noqa: ANN001
    key = rules.singular
    path = f"/v2.0/qos/policies/{{policy_id}}/{segment}"

    async def list_(req: Req) -> Response:
        return json({segment: await run(rules.list, req.ctx, req.params["policy_id"],
                                        req.query)})

    async def create(req: Req) -> Response:
        attrs = _body(await req.json(), key, key)
        return json({key: await run(rules.create, req.ctx, req.params["policy_id"], attrs)},
                    201)

    async def show(req: Req) -> Response:
        return json({key: await run(rules.get, req.ctx, req.params["policy_id"],
                                    req.params["rule_id"])})

    async def update(req: Req) -> Response:
        attrs = _body(await req.json(), key, key, update=True)
        return json({key: await run(rules.update, req.ctx, req.params["policy_id"],
                                    req.params["rule_id"], attrs)})

    async def delete(req: Req) -> Response:
        await run(rules.delete, req.ctx, req.params["policy_id"], req.params["rule_id"])
        return empty(204)

    r.get(path, list_, name=f"list_{segment}")
    r.post(path, create, name=f"create_{segment}")
    r.get(path + "/{rule_id}", show, name=f"show_{segment}")
    r.put(path + "/{rule_id}", update, name=f"update_{segment}")
    r.delete(path + "/{rule_id}", delete, name=f"delete_{segment}")


def _flavors(svc: "NetworkService", r: Routes) -> None:
    flavors = svc.flavors

    async def associate(req: Req) -> Response:
        return json({"service_profile": await run(flavors.associate, req.ctx,
                                                  req.params["id"], await req.json())}, 201)

    async def disassociate(req: Req) -> Response:
        await run(flavors.disassociate, req.ctx, req.params["id"], req.params["profile_id"])
        return empty(204)

    r.post("/v2.0/flavors/{id}/service_profiles", associate)
    r.delete("/v2.0/flavors/{id}/service_profiles/{profile_id}", disassociate)
