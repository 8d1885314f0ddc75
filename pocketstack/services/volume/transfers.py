"""Volume transfers: hand a volume (and its snapshots) to another project with an auth key."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.volume import quotas, types, volumes
from pocketstack.services.volume.common import check_name, is_uuid, parse_bool
from pocketstack.services.volume.models import Snapshot, Transfer, Volume


def _hash(salt: str, key: str) -> str:
    return hashlib.sha256((salt + key).encode()).hexdigest()


def not_found(transfer_id: str) -> NotFound:
    return NotFound(f"Transfer {transfer_id} could not be found.", kind="TransferNotFound")


def create(svc, ctx: RequestContext, body: Any) -> tuple[Transfer, str]:  # noqa: ANN001
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute transfer.")
    volume_id = body.get("volume_id")
    if not volume_id:
        raise BadRequest("Invalid input for field/attribute transfer. 'volume_id' is a "
                         "required property")
    name = check_name(body.get("name"))
    no_snapshots = parse_bool(body.get("no_snapshots", False), "no_snapshots")
    policy.enforce(ctx, "volume:create_transfer", {"project_id": ctx.project_id})
    with svc.db.write() as s:
        vol = volumes.load(s, ctx, str(volume_id))
        if vol.status != "available":
            raise BadRequest(f"Invalid volume: status must be available (is {vol.status}).")
        key = secrets.token_hex(8)
        salt = secrets.token_hex(8)
        tr = Transfer(volume_id=vol.id, project_id=vol.project_id, name=name, salt=salt,
                      crypt_hash=_hash(salt, key), no_snapshots=no_snapshots)
        s.add(tr)
        vol.status = "awaiting-transfer"
        s.flush()
        return tr, key


def _load(s, ctx: RequestContext, transfer_id: str, *, any_project: bool = False) -> Transfer:  # noqa: ANN001
    tr = s.get(Transfer, transfer_id) if is_uuid(transfer_id) else None
    if tr is None or not (any_project or ctx.is_admin or tr.project_id == ctx.project_id):
        raise not_found(transfer_id)
    return tr


def show(svc, ctx: RequestContext, transfer_id: str) -> Transfer:  # noqa: ANN001
    with svc.db.read() as s:
        return _load(s, ctx, transfer_id)


def list_transfers(svc, ctx: RequestContext, query: Any) -> list[Transfer]:  # noqa: ANN001
    policy.enforce(ctx, "volume:get_all_transfers", {"project_id": ctx.project_id})
    stmt = select(Transfer).order_by(Transfer.created_at.desc(), Transfer.id.desc())
    all_tenants = ctx.is_admin and str(query.get("all_tenants", "")).lower() in ("1", "true")
    if not all_tenants:
        stmt = stmt.where(Transfer.project_id == ctx.project_id)
    with svc.db.read() as s:
        return list(s.scalars(stmt))


def delete(svc, ctx: RequestContext, transfer_id: str) -> None:  # noqa: ANN001
    with svc.db.write() as s:
        tr = _load(s, ctx, transfer_id)
        policy.enforce(ctx, "volume:delete_transfer", {"project_id": tr.project_id})
        vol = s.get(Volume, tr.volume_id)
        if vol is not None and vol.status == "awaiting-transfer":
            vol.status = "available"
        s.delete(tr)


def accept(svc, ctx: RequestContext, transfer_id: str, body: Any) -> Transfer:  # noqa: ANN001
    key = body.get("auth_key") if isinstance(body, dict) else None
    if not key or not isinstance(key, str):
        raise BadRequest("Invalid input for field/attribute accept. 'auth_key' is a "
                         "required property")
    policy.enforce(ctx, "volume:accept_transfer", {"project_id": ctx.project_id})
    with svc.db.write() as s:
        tr = _load(s, ctx, transfer_id, any_project=True)
        if not hmac.compare_digest(tr.crypt_hash, _hash(tr.salt, key)):
            raise BadRequest(f"Invalid auth key: Attempt to transfer {transfer_id} with invalid "
                             "auth key.", kind="InvalidAuthKey")
        vol = s.get(Volume, tr.volume_id)
        if vol is None:
            raise volumes.not_found(tr.volume_id)
        snaps = [] if tr.no_snapshots else list(
            s.scalars(select(Snapshot).where(Snapshot.volume_id == vol.id)))
        vtype = types.get_row(s, vol.volume_type_id)
        target = ctx.project_id or ""
        quotas.check(s, target, volumes=1, snapshots=len(snaps),
                     gigabytes=vol.size + sum(x.size for x in snaps),
                     type_name=vtype.name if vtype else None)
        vol.project_id = target
        vol.user_id = ctx.user_id or ""
        vol.status = "available"
        for snap in snaps:
            snap.project_id = target
            snap.user_id = ctx.user_id or ""
        s.delete(tr)
        return tr
