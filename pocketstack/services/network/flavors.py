"""Network flavors and service profiles (api-ref v2 "Networking Flavors Framework"):
admin-made, cloud-wide (no project); a flavor names a service type and binds profiles.

Nothing picks a driver by flavor here (one L3 implementation): the records are what
operators and clients manage, as with Neutron's flavors plugin and no extra providers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.resource import Resource

FLAVOR_KEYS = {"id", "name", "description", "service_type", "enabled", "service_profiles"}
PROFILE_KEYS = {"id", "description", "driver", "enabled", "metainfo"}
# the service plugins this cloud has (Neutron accepts the types of its loaded plugins)
SERVICE_TYPES = ("L3_ROUTER_NAT", "FLAVORS", "QOS", "TRUNK", "METERING")


class Flavors(Resource):
    singular, plural, model, keys = "flavor", "flavors", m.NetworkFlavor, FLAVOR_KEYS
    not_found_kind, label = "FlavorNotFound", "Flavor"
    ordering = ("id",)

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        return list(s.scalars(select(m.NetworkFlavor).order_by(m.NetworkFlavor.id)))

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return True  # flavors are cloud-wide; everyone may read them

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        bound: dict[str, list[str]] = {r.id: [] for r in rows}
        if rows:
            for b in s.scalars(select(m.FlavorProfileBinding).where(
                    m.FlavorProfileBinding.flavor_id.in_(list(bound)))):
                bound[b.flavor_id].append(b.service_profile_id)
        return [{"id": r.id, "name": r.name, "description": r.description,
                 "service_type": r.service_type, "enabled": r.enabled,
                 "service_profiles": sorted(bound[r.id])} for r in rows]

    def owned(self, s: Session, ctx: RequestContext, id_: str, action: str) -> Any:
        row = self.load(s, ctx, id_)
        policy.enforce(ctx, f"network:{action}", ctx.as_target())
        return row

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> Any:
        policy.enforce(ctx, "network:create_flavor", ctx.as_target())
        if attrs["service_type"] not in SERVICE_TYPES:
            raise BadRequest(f"Invalid input for operation: Service type "
                             f"{attrs['service_type']} is not supported; choose from "
                             f"{', '.join(SERVICE_TYPES)}.", kind="InvalidFlavorServiceType")
        row = m.NetworkFlavor(name=attrs.get("name", ""),
                              description=attrs.get("description", ""),
                              service_type=attrs["service_type"],
                              enabled=attrs.get("enabled", True))
        s.add(row)
        s.flush()
        for profile_id in attrs.get("service_profiles") or []:
            self._bind(s, row.id, profile_id)
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_flavor")
            for key in ("name", "description", "enabled"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            if "service_profiles" in attrs:
                for b in s.scalars(select(m.FlavorProfileBinding).where(
                        m.FlavorProfileBinding.flavor_id == row.id)):
                    s.delete(b)
                s.flush()
                for profile_id in attrs["service_profiles"]:
                    self._bind(s, row.id, profile_id)
            s.flush()
            return self.show_one(s, ctx, row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_flavor")
            for b in s.scalars(select(m.FlavorProfileBinding).where(
                    m.FlavorProfileBinding.flavor_id == row.id)):
                s.delete(b)
            s.flush()
            s.delete(row)

    # -- /flavors/{id}/service_profiles ---------------------------------------------------
    def _bind(self, s: Session, flavor_id: str, profile_id: str) -> None:
        if s.get(m.ServiceProfile, profile_id) is None:
            raise NotFound(f"Service Profile {profile_id} could not be found.",
                           kind="ServiceProfileNotFound")
        if s.get(m.FlavorProfileBinding, (flavor_id, profile_id)) is not None:
            raise Conflict(f"Service Profile {profile_id} is already associated with flavor "
                           f"{flavor_id}.", kind="FlavorServiceProfileBindingExists")
        s.add(m.FlavorProfileBinding(flavor_id=flavor_id, service_profile_id=profile_id))
        s.flush()

    def associate(self, ctx: RequestContext, flavor_id: str, body: Any) -> dict:
        policy.enforce(ctx, "network:create_flavor_service_profile", ctx.as_target())
        ref = body.get("service_profile") if isinstance(body, dict) else None
        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise BadRequest("Invalid input: expected {'service_profile': {'id': ...}}",
                             kind="HTTPBadRequest")
        with self.db.write() as s:
            row = self.load(s, ctx, flavor_id)
            self._bind(s, row.id, ref["id"])
        return {"id": ref["id"]}

    def disassociate(self, ctx: RequestContext, flavor_id: str, profile_id: str) -> None:
        policy.enforce(ctx, "network:delete_flavor_service_profile", ctx.as_target())
        with self.db.write() as s:
            row = self.load(s, ctx, flavor_id)
            binding = s.get(m.FlavorProfileBinding, (row.id, profile_id))
            if binding is None:
                raise NotFound(f"Service Profile {profile_id} is not associated with flavor "
                               f"{row.id}.", kind="FlavorServiceProfileBindingNotFound")
            s.delete(binding)


class ServiceProfiles(Resource):
    singular, plural, model, keys = ("service_profile", "service_profiles", m.ServiceProfile,
                                     PROFILE_KEYS)
    not_found_kind, label = "ServiceProfileNotFound", "Service Profile"
    ordering = ("id",)

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        return list(s.scalars(select(m.ServiceProfile).order_by(m.ServiceProfile.id)))

    def visible(self, s: Session, ctx: RequestContext, row: Any) -> bool:
        return policy.check(ctx, "network:get_service_profile", ctx.as_target())

    # Neutron's admin-only read policy: others list nothing and get 404 for one
    def list(self, ctx: RequestContext, query: Any, url: str) -> dict[str, Any]:
        if not policy.check(ctx, "network:get_service_profile", ctx.as_target()):
            return {self.plural: []}
        return super().list(ctx, query, url)

    def get(self, ctx: RequestContext, id_: str, fields: list[str] | None = None) -> dict:
        if not policy.check(ctx, "network:get_service_profile", ctx.as_target()):
            raise self.not_found(id_)
        return super().get(ctx, id_, fields)

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        return [{"id": r.id, "description": r.description, "driver": r.driver,
                 "enabled": r.enabled, "metainfo": r.metainfo} for r in rows]

    def owned(self, s: Session, ctx: RequestContext, id_: str, action: str) -> Any:
        row = self.load(s, ctx, id_)
        policy.enforce(ctx, f"network:{action}", ctx.as_target())
        return row

    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> Any:
        policy.enforce(ctx, "network:create_service_profile", ctx.as_target())
        if not attrs.get("driver") and not attrs.get("metainfo"):
            raise BadRequest("Service Profile needs either a driver or metainfo.",
                             kind="ServiceProfileEmpty")
        if attrs.get("driver"):
            # no provider drivers to pick from (see the service providers list)
            raise NotFound(f"Service Profile driver {attrs['driver']} could not be found.",
                           kind="ServiceProfileDriverNotFound")
        row = m.ServiceProfile(description=attrs.get("description", ""),
                               driver="", enabled=attrs.get("enabled", True),
                               metainfo=attrs.get("metainfo", ""))
        s.add(row)
        s.flush()
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_service_profile")
            if attrs.get("driver"):
                raise NotFound(f"Service Profile driver {attrs['driver']} could not be found.",
                               kind="ServiceProfileDriverNotFound")
            for key in ("description", "enabled", "metainfo"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            s.flush()
            return self.show_one(s, ctx, row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_service_profile")
            if s.scalar(select(m.FlavorProfileBinding.flavor_id).where(
                    m.FlavorProfileBinding.service_profile_id == row.id).limit(1)):
                raise Conflict(f"Service Profile {row.id} is used by some service instance.",
                               kind="ServiceProfileInUse")
            s.delete(row)
