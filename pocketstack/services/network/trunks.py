"""Trunks (api-ref v2 "Trunk networking"): a parent port and subports, each subport with a
segmentation type and id; ``trunk_details`` on the parent port.

The API and its invariants are complete (a port is the parent of one trunk or a subport of
one trunk, a (type, id) pair once per trunk, a disabled trunk is locked); the linux data
plane does not wire VLAN subinterfaces for subports yet, so traffic of a subport does not
reach a guest through its parent.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.common import bump, standard
from pocketstack.services.network.resource import Resource, owner_for
from pocketstack.services.network.schemas import parse_body, subports as check_subports

KEYS = {"id", "name", "description", "admin_state_up", "status", "port_id", "sub_ports",
        "tenant_id", "project_id", "tags", "created_at", "updated_at", "revision_number"}
SUBPORT_OWNER = "trunk:subport"


class Trunks(Resource):
    singular, plural, model, keys = "trunk", "trunks", m.Trunk, KEYS
    not_found_kind, label = "TrunkNotFound", "Trunk"

    def rows(self, s: Session, ctx: RequestContext, query: Any) -> list[Any]:
        stmt = select(m.Trunk)
        if not ctx.is_admin:
            stmt = stmt.where(m.Trunk.project_id == ctx.project_id)
        return list(s.scalars(stmt.order_by(m.Trunk.created_at, m.Trunk.id)))

    def subports(self, s: Session, trunk_ids: list[str]) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {t: [] for t in trunk_ids}
        if not trunk_ids:
            return out
        q = select(m.SubPort, m.Port.mac_address).join(
            m.Port, m.Port.id == m.SubPort.port_id).where(m.SubPort.trunk_id.in_(trunk_ids))
        for sub, mac in s.execute(q.order_by(m.SubPort.segmentation_id, m.SubPort.port_id)):
            out[sub.trunk_id].append({"port_id": sub.port_id, "mac_address": mac,
                                      "segmentation_type": sub.segmentation_type,
                                      "segmentation_id": sub.segmentation_id})
        return out

    def render(self, s: Session, ctx: RequestContext, rows: list[Any]) -> list[dict]:
        subs = self.subports(s, [r.id for r in rows])
        statuses = dict(s.execute(select(m.Port.id, m.Port.status).where(
            m.Port.id.in_([r.port_id for r in rows]))).all()) if rows else {}
        return [{"id": r.id, "name": r.name, "admin_state_up": r.admin_state_up,
                 "status": _status(r, statuses.get(r.port_id)), "port_id": r.port_id,
                 "sub_ports": [{k: v for k, v in sp.items() if k != "mac_address"}
                               for sp in subs[r.id]], **standard(r)} for r in rows]

    # -- create, update, delete -----------------------------------------------------------
    def create_in(self, s: Session, ctx: RequestContext, attrs: dict[str, Any]) -> Any:
        policy.enforce(ctx, "network:create_trunk", ctx.as_target())
        project = owner_for(ctx, attrs)
        parent = self._port(s, ctx, attrs["port_id"])
        if s.scalar(select(m.Trunk.id).where(m.Trunk.port_id == parent.id)):
            raise Conflict(f"Port {parent.id} is currently in use and is not eligible for use "
                           "as a parent port.", kind="ParentPortInUse")
        if s.get(m.SubPort, parent.id) is not None:
            raise Conflict(f"Port {parent.id} is currently a subport for another trunk.",
                           kind="PortInUseAsSubPort")
        row = m.Trunk(project_id=project, name=attrs.get("name", ""),
                      description=attrs.get("description", ""),
                      admin_state_up=attrs.get("admin_state_up", True), port_id=parent.id)
        s.add(row)
        s.flush()
        self._add(s, ctx, row, attrs.get("sub_ports") or [])
        return row

    def update(self, ctx: RequestContext, id_: str, attrs: dict[str, Any]) -> dict:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "update_trunk")
            for key in ("name", "description", "admin_state_up"):
                if key in attrs:
                    setattr(row, key, attrs[key])
            bump(row)
            s.flush()
            return self.show_one(s, ctx, row)

    def delete(self, ctx: RequestContext, id_: str) -> None:
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "delete_trunk")
            self._check_enabled(row)
            for sub in s.scalars(select(m.SubPort).where(m.SubPort.trunk_id == row.id)):
                self._release(s, sub)
            s.flush()
            s.delete(row)
        self.svc.changed()

    # -- subports -------------------------------------------------------------------------
    def get_subports(self, ctx: RequestContext, id_: str) -> list[dict]:
        policy.enforce(ctx, "network:get_trunk", ctx.as_target())
        with self.db.read() as s:
            row = self.load(s, ctx, id_)
            return [{k: v for k, v in sp.items() if k != "mac_address"}
                    for sp in self.subports(s, [row.id])[row.id]]

    def add_subports(self, ctx: RequestContext, id_: str, body: Any) -> dict:
        subs = _sub_ports_body(body)
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "add_subports")
            self._check_enabled(row)
            self._add(s, ctx, row, subs)
            bump(row)
            s.flush()
            out = self.show_one(s, ctx, row)
        self.svc.changed()
        return out

    def remove_subports(self, ctx: RequestContext, id_: str, body: Any) -> dict:
        subs = _sub_ports_body(body, removing=True)
        with self.db.write() as s:
            row = self.owned(s, ctx, id_, "remove_subports")
            self._check_enabled(row)
            for item in subs:
                sub = s.get(m.SubPort, item["port_id"])
                if sub is None or sub.trunk_id != row.id:
                    raise NotFound(f"SubPort {item['port_id']} could not be found on trunk "
                                   f"{row.id}.", kind="SubPortNotFound")
                self._release(s, sub)
            bump(row)
            s.flush()
            out = self.show_one(s, ctx, row)
        self.svc.changed()
        return out

    def _add(self, s: Session, ctx: RequestContext, row: m.Trunk, subs: list[dict]) -> None:
        seen: set[tuple[str, int]] = set()
        for item in subs:
            port = self._port(s, ctx, item["port_id"])
            if port.id == row.port_id or s.scalar(select(m.Trunk.id).where(
                    m.Trunk.port_id == port.id)):
                raise Conflict(f"Port {port.id} is currently a parent port for a trunk.",
                               kind="ParentPortInUse")
            if s.get(m.SubPort, port.id) is not None:
                raise Conflict(f"Port {port.id} is currently a subport for another trunk.",
                               kind="PortInUseAsSubPort")
            if port.device_id and port.device_owner != SUBPORT_OWNER:
                raise Conflict(f"Port {port.id} is in use by {port.device_owner} and cannot "
                               "be a subport.", kind="PortInUse")
            seg_type = item.get("segmentation_type", "vlan")
            seg_id = item.get("segmentation_id")
            if seg_type == "inherit":
                net = s.get(m.Network, port.network_id)
                if net is None or net.network_type != "vlan" or net.segmentation_id is None:
                    raise BadRequest(f"Segmentation type 'inherit' needs a VLAN network; port "
                                     f"{port.id}'s network has none.", kind="InvalidInput")
                seg_id = net.segmentation_id
            elif seg_id is None:
                raise BadRequest("Invalid input for operation: segmentation_id is required "
                                 "for segmentation_type vlan.", kind="InvalidInput")
            if (seg_type, seg_id) in seen or s.scalar(select(m.SubPort.port_id).where(
                    m.SubPort.trunk_id == row.id, m.SubPort.segmentation_type == seg_type,
                    m.SubPort.segmentation_id == seg_id)):
                raise Conflict(f"segmentation_type {seg_type} and segmentation_id {seg_id} "
                               f"already in use on trunk {row.id}.", kind="DuplicateSubPort")
            seen.add((seg_type, seg_id))
            s.add(m.SubPort(port_id=port.id, trunk_id=row.id, segmentation_type=seg_type,
                            segmentation_id=seg_id))
            port.device_owner, port.device_id = SUBPORT_OWNER, row.id
            bump(port)
        s.flush()

    def _release(self, s: Session, sub: m.SubPort) -> None:
        port = s.get(m.Port, sub.port_id)
        if port is not None and port.device_owner == SUBPORT_OWNER:
            port.device_owner = port.device_id = ""
            bump(port)
        s.delete(sub)

    def _port(self, s: Session, ctx: RequestContext, port_id: str) -> m.Port:
        port = s.get(m.Port, port_id)
        if port is None or not self.svc.ports.visible(s, ctx, port):
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        return port

    @staticmethod
    def _check_enabled(row: m.Trunk) -> None:
        if not row.admin_state_up:
            raise Conflict(f"Trunk {row.id} is currently disabled.", kind="TrunkDisabled")

    # -- used by ports --------------------------------------------------------------------
    def details(self, s: Session, port_ids: list[str]) -> dict[str, dict]:
        """{parent port id: trunk_details} for those of ``port_ids`` that are trunk parents."""
        if not port_ids:
            return {}
        trunks = {t.id: t.port_id for t in s.scalars(select(m.Trunk).where(
            m.Trunk.port_id.in_(port_ids)))}
        subs = self.subports(s, list(trunks))
        return {port_id: {"trunk_id": tid, "sub_ports": subs[tid]}
                for tid, port_id in trunks.items()}

    def check_port_delete(self, s: Session, port_id: str) -> None:
        """A parent or subport cannot go while its trunk holds it (Neutron's 409s)."""
        trunk = s.scalar(select(m.Trunk.id).where(m.Trunk.port_id == port_id))
        if trunk:
            raise Conflict(f"Port {port_id} is currently in use and is not eligible for "
                           f"deletion: it is the parent port of trunk {trunk}.",
                           kind="PortInUseAsTrunkParent")
        sub = s.get(m.SubPort, port_id)
        if sub is not None:
            raise Conflict(f"Port {port_id} is currently a subport for trunk {sub.trunk_id}.",
                           kind="PortInUseAsSubPort")


    def forget_port(self, s: Session, port_id: str) -> None:
        """The port is going: its trunk (if it is a parent) or its subport entry go too."""
        for trunk in s.scalars(select(m.Trunk).where(m.Trunk.port_id == port_id)):
            for sub in s.scalars(select(m.SubPort).where(m.SubPort.trunk_id == trunk.id)):
                self._release(s, sub)
            s.flush()
            s.delete(trunk)
        sub = s.get(m.SubPort, port_id)
        if sub is not None:
            s.delete(sub)
        s.flush()


def _status(row: m.Trunk, parent_status: str | None) -> str:
    if not row.admin_state_up:
        return "DOWN"
    return "ACTIVE" if parent_status == "ACTIVE" else "DOWN"


def _sub_ports_body(body: Any, *, removing: bool = False) -> list[dict]:
    if not isinstance(body, dict) or not isinstance(body.get("sub_ports"), list):
        raise BadRequest("Invalid input: expected {'sub_ports': [...]}", kind="HTTPBadRequest")
    if removing:
        return [parse_body("subport_ref", item) for item in body["sub_ports"]]
    return check_subports("sub_ports", body["sub_ports"])

