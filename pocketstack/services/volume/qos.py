"""QoS specs: named key/value sets a volume type can be associated with (admin only).

One backend applies no throttling itself; the specs are stored and associated exactly as
Cinder does, for the clients and for front-end consumers that read them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from starlette.responses import Response

from pocketstack import policy
from pocketstack.api.http import Req, empty, json, run
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.volume.common import is_uuid, truthy
from pocketstack.services.volume.models import QosSpec, VolumeType

CONSUMERS = ("front-end", "back-end", "both")


def view(q: QosSpec) -> dict[str, Any]:
    return {"id": q.id, "name": q.name, "consumer": q.consumer, "specs": dict(q.specs)}


def _load(s, qos_id: str) -> QosSpec:  # noqa: ANN001
    q = s.get(QosSpec, qos_id) if is_uuid(qos_id) else None
    if q is None:
        raise NotFound(f"No such QoS spec {qos_id}.", kind="QoSSpecsNotFound")
    return q


def _specs(values: dict[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in values.items():
        if not isinstance(k, str) or not k or len(k) > 255 or isinstance(v, (dict, list)) \
                or v is None:
            raise BadRequest(f"Invalid QoS spec {k!r}: keys and values must be strings.")
        out[k] = str(v)
    return out


def register_qos(svc: Any, add: Callable, base: str) -> None:
    Mv = tuple[int, int]

    def tx(fn):  # noqa: ANN001, ANN202
        def call(*args):  # noqa: ANN002, ANN202
            with svc.db.write() as s:
                return fn(s, *args)
        return call

    def links(qos_id: str, project: str) -> list[dict[str, str]]:
        return [{"href": f"{base}/{project}/qos-specs/{qos_id}", "rel": "self"},
                {"href": f"{base.rsplit('/v3', 1)[0]}/{project}/qos-specs/{qos_id}",
                 "rel": "bookmark"}]

    def admin(req: Req) -> None:
        policy.enforce(req.ctx, "volume:manage_qos", {})

    async def create(req: Req, mv: Mv) -> Response:
        admin(req)
        data = await req.json()
        body = data.get("qos_specs") if isinstance(data, dict) else None
        if not isinstance(body, dict):
            raise BadRequest("Missing required element 'qos_specs' in request body.")
        body = dict(body)
        name = body.pop("name", None)
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise BadRequest("Please specify a name for QoS specs.")
        consumer = body.pop("consumer", "back-end")
        if consumer not in CONSUMERS:
            raise BadRequest(f"Invalid consumer {consumer}: use one of {', '.join(CONSUMERS)}.")
        specs = _specs(body)

        def do(s):  # noqa: ANN001, ANN202
            if s.scalar(select(QosSpec).where(QosSpec.name == name.strip())) is not None:
                raise Conflict(f"QoS Specs {name} already exists.", kind="QoSSpecsExists")
            q = QosSpec(name=name.strip(), consumer=consumer, specs=specs)
            s.add(q)
            s.flush()
            return view(q)

        q = await run(tx(do))
        return json({"qos_specs": q, "links": links(q["id"], req.ctx.project_id or "")})

    async def index(req: Req, mv: Mv) -> Response:
        admin(req)

        def do(s):  # noqa: ANN001, ANN202
            return [view(q) for q in s.scalars(select(QosSpec).order_by(QosSpec.created_at))]

        return json({"qos_specs": await run(tx(do))})

    async def show(req: Req, mv: Mv) -> Response:
        admin(req)
        q = await run(tx(lambda s: view(_load(s, req.params["qos_id"]))))
        return json({"qos_specs": q, "links": links(q["id"], req.ctx.project_id or "")})

    async def set_keys(req: Req, mv: Mv) -> Response:
        admin(req)
        data = await req.json()
        body = data.get("qos_specs") if isinstance(data, dict) else None
        if not isinstance(body, dict) or not body:
            raise BadRequest("Missing required element 'qos_specs' in request body.")
        specs = _specs(body)

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            q.specs = {**q.specs, **specs}
            return specs

        return json({"qos_specs": await run(tx(do))})

    async def delete_keys(req: Req, mv: Mv) -> Response:
        admin(req)
        data = await req.json()
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list) or not keys:
            raise BadRequest("Missing required element 'keys' in request body.")

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            missing = [k for k in keys if k not in q.specs]
            if missing:
                raise NotFound(f"QoS spec {q.id} has no key {missing[0]}.",
                               kind="QoSSpecsKeyNotFound")
            q.specs = {k: v for k, v in q.specs.items() if k not in keys}

        await run(tx(do))
        return empty(202)

    async def delete(req: Req, mv: Mv) -> Response:
        admin(req)
        force = truthy(req.query.get("force", "false"))

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            users = list(s.scalars(select(VolumeType).where(VolumeType.qos_specs_id == q.id)))
            if users and not force:
                raise BadRequest(f"QoS Specs {q.id} is still associated with entities.",
                                 kind="QoSSpecsInUse")
            for vt in users:
                vt.qos_specs_id = None
            s.delete(q)

        await run(tx(do))
        return empty(202)

    def _type(s, type_id: str | None) -> VolumeType:  # noqa: ANN001
        vt = s.get(VolumeType, type_id) if type_id and is_uuid(type_id) else None
        if vt is None:
            raise NotFound(f"Volume type {type_id} could not be found.",
                           kind="VolumeTypeNotFound")
        return vt

    async def associate(req: Req, mv: Mv) -> Response:
        admin(req)
        type_id = req.query.get("vol_type_id")
        if not type_id:
            raise BadRequest("Volume Type id must not be None.")

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            vt = _type(s, type_id)
            if vt.qos_specs_id not in (None, q.id):
                raise BadRequest(f"Type {vt.id} is already associated with another qos specs: "
                                 f"{vt.qos_specs_id}", kind="InvalidVolumeType")
            vt.qos_specs_id = q.id

        await run(tx(do))
        return empty(202)

    async def associations(req: Req, mv: Mv) -> Response:
        admin(req)

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            return [{"association_type": "volume_type", "name": vt.name, "id": vt.id}
                    for vt in s.scalars(select(VolumeType).where(VolumeType.qos_specs_id == q.id))]

        return json({"qos_associations": await run(tx(do))})

    async def disassociate(req: Req, mv: Mv) -> Response:
        admin(req)
        type_id = req.query.get("vol_type_id")
        if not type_id:
            raise BadRequest("Volume Type id must not be None.")

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            vt = _type(s, type_id)
            if vt.qos_specs_id == q.id:
                vt.qos_specs_id = None

        await run(tx(do))
        return empty(202)

    async def disassociate_all(req: Req, mv: Mv) -> Response:
        admin(req)

        def do(s):  # noqa: ANN001, ANN202
            q = _load(s, req.params["qos_id"])
            for vt in s.scalars(select(VolumeType).where(VolumeType.qos_specs_id == q.id)):
                vt.qos_specs_id = None

        await run(tx(do))
        return empty(202)

    Q = "/qos-specs/{qos_id}"
    for method, path, handler in [
        ("GET", "/qos-specs", index), ("POST", "/qos-specs", create),
        ("GET", Q, show), ("PUT", Q, set_keys), ("DELETE", Q, delete),
        ("PUT", Q + "/delete_keys", delete_keys),
        ("GET", Q + "/associate", associate), ("GET", Q + "/associations", associations),
        ("GET", Q + "/disassociate", disassociate),
        ("GET", Q + "/disassociate_all", disassociate_all),
    ]:
        add(method, path, handler)
