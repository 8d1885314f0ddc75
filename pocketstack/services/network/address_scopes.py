"""Address scopes (api-ref v2 "Address scopes"): a name, an IP version and a sharing flag;
subnet pools join one through ``address_scope_id`` (same IP version), and a network shows
the scopes of its subnets' pools as ``ipv4_address_scope`` / ``ipv6_address_scope``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.resource import Resource, owner_for

KEYS = {"id", "name", "ip_version", "shared", "tenant_id", "project_id"}


def address_scope(row: m.AddressScope) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "ip_version": row.ip_version,
            "shared": row.shared, "tenant_id": row.project_id, "project_id": row.project_id}


class AddressScopes(Resource):
    singular, plural, model, keys = "address_scope", "address_scopes", m.AddressScope, KEYS
    not_found_kind, label = "AddressScopeNotFound", "Address scope"
    ordering = ("id",)

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = select(m.AddressScope)
        if not ctx.is_admin:
            stmt = stmt.where(or_(m.AddressScope.project_id == ctx.project_id,
                                  m.AddressScope.shared.is_(True)))
        return list(s.scalars(stmt.order_by(m.AddressScope.id)))

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return ctx.is_admin or row.project_id == ctx.project_id or row.shared

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [address_scope(r) for r in rows]

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> Any:
        policy.enforce(ctx, "network:create_address_scope", ctx.as_target())
        if attrs.get("shared"):
            policy.enforce(ctx, "network:create_address_scope:shared", ctx.as_target())
        row = m.AddressScope(project_id=owner_for(ctx, attrs), name=attrs.get("name", ""),
                             ip_version=attrs["ip_version"], shared=attrs.get("shared", False))
        s.add(row)
        s.flush()
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_address_scope")
            if "shared" in attrs:  # Neutron checks the attribute whenever it is given
                policy.enforce(ctx, "network:update_address_scope:shared",
                               {"project_id": row.project_id})
            if "shared" in attrs and attrs["shared"] != row.shared:
                if row.shared and not attrs["shared"]:
                    # Neutron: a shared scope cannot be made private again
                    raise BadRequest(f"Unable to complete operation on address scope "
                                     f"{row.id}: a shared address scope cannot be unshared.",
                                     kind="AddressScopeUpdateError")
                row.shared = attrs["shared"]
            if "name" in attrs:
                row.name = attrs["name"]
            s.flush()
            return address_scope(row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_address_scope")
            if s.scalar(select(m.SubnetPool.id).where(
                    m.SubnetPool.address_scope_id == row.id).limit(1)):
                raise Conflict(f"Unable to complete operation on address scope {row.id}. "
                               "There are one or more subnet pools in use on the address "
                               "scope.", kind="AddressScopeInUse")
            s.delete(row)

    # -- used by subnet pools -------------------------------------------------------------
    def check_for_pool(self, s: Session, ctx: RequestContext, scope_id: str | None,
                       ip_version: int) -> None:
        """A pool may join a scope its caller can see, of the pool's IP version."""
        if scope_id is None:
            return
        row = s.get(m.AddressScope, scope_id)
        if row is None or not self.visible(s, ctx, row):
            raise NotFound(f"Address scope {scope_id} could not be found.",
                           kind="AddressScopeNotFound")
        if row.ip_version != ip_version:
            raise BadRequest(f"Illegal subnetpool association: subnetpool cannot be "
                             f"associated with address scope {scope_id} because subnetpool "
                             f"ip_version is not {row.ip_version}.",
                             kind="IllegalSubnetPoolIpVersionAssociationToAddressScope")

    def scopes_of_networks(self, s: Session, network_ids: list[str]) -> dict[str, dict]:
        """{network_id: {4: scope_id, 6: scope_id}} through the subnets' pools (one query)."""
        out: dict[str, dict] = {}
        if not network_ids:
            return out
        q = select(m.Subnet.network_id, m.SubnetPool.ip_version,
                   m.SubnetPool.address_scope_id).join(
            m.SubnetPool, m.SubnetPool.id == m.Subnet.subnetpool_id).where(
            m.Subnet.network_id.in_(network_ids), m.SubnetPool.address_scope_id.is_not(None))
        for net_id, version, scope in s.execute(q):
            out.setdefault(net_id, {})[version] = scope
        return out
