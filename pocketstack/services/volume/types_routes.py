"""Cinder v3 volume types API: types, extra specs, project access and encryption (HTTP and
rendering only; logic in ``types``). Split out of ``routes`` as its own resource, like
``backups_routes`` and ``groups_routes``: the type handlers use none of the volume rendering
helpers there, only the ``add`` wrapper (microversion header, project check) that ``routes``
passes in, and each runs its logic inside one write transaction (``in_tx``)."""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import types, views

Mv = tuple[int, int]


def _body(data: Any, key: str) -> Any:
    if not isinstance(data, dict) or key not in data:
        raise BadRequest(f"Missing required element '{key}' in request body.")
    return data[key]


def register_types(svc: Any, add: Any, base: str) -> None:
    def in_tx(fn, *args):  # noqa: ANN001, ANN202
        def call():  # noqa: ANN202
            with svc.db.write() as s:
                return fn(s, *args)
        return call

    async def type_index(req: Req, mv: Mv) -> Response:
        rows = await run(in_tx(types.list_types, req.ctx, req.query.get("is_public")))
        return json({"volume_types": [views.volume_type(t, req.ctx) for t in rows]})

    async def type_create(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "volume_type")
        vt = await run(in_tx(types.create, req.ctx, body))
        return json({"volume_type": views.volume_type(vt, req.ctx, core=True)})

    async def type_show(req: Req, mv: Mv) -> Response:
        vt = await run(in_tx(types.show, req.ctx, req.params["type_id"]))
        return json({"volume_type": views.volume_type(vt, req.ctx)})

    async def type_update(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "volume_type")
        vt = await run(in_tx(types.update, req.ctx, req.params["type_id"], body))
        return json({"volume_type": views.volume_type(vt, req.ctx, core=True, updated=True)})

    async def type_delete(req: Req, mv: Mv) -> Response:
        await run(in_tx(types.delete, req.ctx, req.params["type_id"]))
        return empty(202)

    async def type_specs(req: Req, mv: Mv) -> Response:
        return json({"extra_specs": await run(in_tx(types.specs, req.ctx,
                                                    req.params["type_id"]))})

    async def type_specs_create(req: Req, mv: Mv) -> Response:
        values = _body(await req.json(), "extra_specs")
        return json({"extra_specs": await run(in_tx(types.set_specs, req.ctx,
                                                    req.params["type_id"], values))})

    async def type_spec_show(req: Req, mv: Mv) -> Response:
        return json(await run(in_tx(types.spec, req.ctx, req.params["type_id"],
                                    req.params["key"])))

    async def type_spec_put(req: Req, mv: Mv) -> Response:
        body = await req.json()
        return json(await run(in_tx(types.set_spec, req.ctx, req.params["type_id"],
                                    req.params["key"], body)))

    async def type_spec_delete(req: Req, mv: Mv) -> Response:
        await run(in_tx(types.delete_spec, req.ctx, req.params["type_id"], req.params["key"]))
        return empty(202)

    async def type_action(req: Req, mv: Mv) -> Response:
        data = await req.json()
        if not isinstance(data, dict) or len(data) != 1:
            raise BadRequest("There is no such action.")
        (action, body), = data.items()
        if action == "addProjectAccess":
            await run(in_tx(types.add_access, req.ctx, req.params["type_id"], body))
        elif action == "removeProjectAccess":
            await run(in_tx(types.remove_access, req.ctx, req.params["type_id"], body))
        else:
            raise BadRequest(f"There is no such action: {action}")
        return empty(202)

    async def type_access(req: Req, mv: Mv) -> Response:
        rows = await run(in_tx(types.access_list, req.ctx, req.params["type_id"]))
        return json({"volume_type_access": rows})

    async def encryption_show(req: Req, mv: Mv) -> Response:
        vt = await run(in_tx(types.show, req.ctx, req.params["type_id"]))
        policy.enforce(req.ctx, "volume_type:encryption", {})
        return json(views.encryption(vt) if vt.encryption else {})

    async def encryption_create(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "encryption")
        vt = await run(in_tx(types.set_encryption, req.ctx, req.params["type_id"], body, None))
        enc = views.encryption(vt)
        return json({"encryption": {k: enc[k] for k in (
            "volume_type_id", "encryption_id", "key_size", "provider", "control_location",
            "cipher")}})

    async def encryption_update(req: Req, mv: Mv) -> Response:
        body = _body(await req.json(), "encryption")
        await run(in_tx(types.set_encryption, req.ctx, req.params["type_id"], body,
                        req.params["key"]))
        return json({"encryption": body})

    async def encryption_item(req: Req, mv: Mv) -> Response:
        vt = await run(in_tx(types.show, req.ctx, req.params["type_id"]))
        policy.enforce(req.ctx, "volume_type:encryption", {})
        enc = views.encryption(vt) if vt.encryption else {}
        key = req.params["key"]
        if key not in enc:
            raise NotFound(f"Volume type encryption for type {vt.id} has no {key}.")
        return json({key: enc[key]})

    async def encryption_delete(req: Req, mv: Mv) -> Response:
        await run(in_tx(types.delete_encryption, req.ctx, req.params["type_id"],
                        req.params["key"]))
        return empty(202)

    T = "/types/{type_id}"
    table = [
        ("GET", "/types", type_index), ("POST", "/types", type_create),
        ("GET", T, type_show), ("PUT", T, type_update), ("DELETE", T, type_delete),
        ("GET", T + "/extra_specs", type_specs), ("POST", T + "/extra_specs", type_specs_create),
        ("GET", T + "/extra_specs/{key}", type_spec_show),
        ("PUT", T + "/extra_specs/{key}", type_spec_put),
        ("DELETE", T + "/extra_specs/{key}", type_spec_delete),
        ("POST", T + "/action", type_action),
        ("GET", T + "/os-volume-type-access", type_access),
        ("GET", T + "/encryption", encryption_show),
        ("POST", T + "/encryption", encryption_create),
        ("GET", T + "/encryption/{key}", encryption_item),
        ("PUT", T + "/encryption/{key}", encryption_update),
        ("DELETE", T + "/encryption/{key}", encryption_delete),
    ]
    for method, path, handler in table:
        add(method, path, handler)
