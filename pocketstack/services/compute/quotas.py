"""Compute quotas: limits per project (defaults from the 'default' class), usage counted
from the servers themselves, checked and consumed under a per-project row lock so that
concurrent creates never overshoot (Nova's counting quotas, made atomic)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, NotFound, OverQuota
from pocketstack.services.compute.models import (KeyPair, ProjectLock, Quota, Server,
                                                 ServerGroup)

DEFAULTS: dict[str, int] = {
    "instances": 10, "cores": 20, "ram": 51200, "metadata_items": 128, "key_pairs": 100,
    "server_groups": 10, "server_group_members": 10, "injected_files": 5,
    "injected_file_content_bytes": 10240, "injected_file_path_bytes": 255,
    # Proxied to Neutron in Nova before 2.36; shown for old microversions only.
    "floating_ips": 10, "fixed_ips": -1, "security_groups": 10, "security_group_rules": 20,
}
NETWORK = ("floating_ips", "fixed_ips", "security_groups", "security_group_rules")
INJECTED = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def visible_resources(ver) -> list[str]:  # noqa: ANN001
    out = []
    for r in DEFAULTS:
        if r in NETWORK and ver.has("no_proxy_quotas"):
            continue
        if r in INJECTED and ver.has("no_personality"):
            continue
        out.append(r)
    return out


class Quotas:
    def __init__(self, db: Any) -> None:
        self.db = db

    # -- limits -------------------------------------------------------------------------
    def defaults(self, s) -> dict[str, int]:  # noqa: ANN001
        values = dict(DEFAULTS)
        for row in s.execute(select(Quota).where(Quota.project_id == "")).scalars():
            values[row.resource] = row.hard_limit
        return values

    def limits(self, s, project_id: str) -> dict[str, int]:  # noqa: ANN001
        values = self.defaults(s)
        for row in s.execute(select(Quota).where(Quota.project_id == project_id)).scalars():
            values[row.resource] = row.hard_limit
        return values

    def limit_for(self, s, project_id: str, resource: str) -> int:  # noqa: ANN001
        return self.limits(s, project_id)[resource]

    # -- usage ----------------------------------------------------------------------------
    def usage(self, s, project_id: str, user_id: str | None = None) -> dict[str, int]:  # noqa: ANN001
        n, cores, ram = s.execute(
            select(func.count(), func.coalesce(func.sum(Server.vcpus), 0),
                   func.coalesce(func.sum(Server.memory_mb), 0))
            .where(Server.project_id == project_id, Server.deleted.is_(False))).one()
        groups = s.execute(select(func.count()).select_from(ServerGroup).where(
            ServerGroup.project_id == project_id)).scalar() or 0
        usage = {r: 0 for r in DEFAULTS}
        usage.update(instances=int(n), cores=int(cores), ram=int(ram), server_groups=int(groups))
        if user_id:
            usage["key_pairs"] = s.execute(select(func.count()).select_from(KeyPair).where(
                KeyPair.user_id == user_id)).scalar() or 0
        return usage

    def lock_project(self, s, project_id: str) -> None:  # noqa: ANN001
        """Serialise quota checks of one project (FOR UPDATE; SQLite's writer lock already
        serialises every write transaction)."""
        row = s.execute(select(ProjectLock).where(ProjectLock.project_id == project_id)
                        .with_for_update()).scalar_one_or_none()
        if row is None:
            s.add(ProjectLock(project_id=project_id, generation=0))
            s.flush()
        else:
            row.generation += 1

    def allowed_instances(self, s, project_id: str, vcpus: int, ram: int, min_count: int,  # noqa: ANN001
                          max_count: int) -> int:
        """How many of [min_count, max_count] instances fit; raises OverQuota below min."""
        self.lock_project(s, project_id)
        limits = self.limits(s, project_id)
        used = self.usage(s, project_id)
        best = max_count
        for resource, per in (("instances", 1), ("cores", vcpus), ("ram", ram)):
            limit = limits[resource]
            if limit < 0 or per == 0:
                continue
            fits = (limit - used[resource]) // per
            if fits < best:
                best = fits
            if fits < min_count:
                requested = per * min_count
                raise OverQuota(f"Quota exceeded for {resource}: Requested {requested}, but "
                                f"already used {used[resource]} of {limit} {resource}")
        return best

    def check_delta(self, s, project_id: str, cores: int, ram: int) -> None:  # noqa: ANN001
        """For resize: can the project take ``cores``/``ram`` more?"""
        self.lock_project(s, project_id)
        limits, used = self.limits(s, project_id), self.usage(s, project_id)
        for resource, more in (("cores", cores), ("ram", ram)):
            if more > 0 and limits[resource] >= 0 and used[resource] + more > limits[resource]:
                raise OverQuota(f"Quota exceeded for {resource}: Requested {more}, but already "
                                f"used {used[resource]} of {limits[resource]} {resource}")

    # -- API ------------------------------------------------------------------------------
    def show(self, ctx: RequestContext, project_id: str, detail: bool, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:quota_show", {"project_id": project_id})
        with self.db.read() as s:
            limits = self.limits(s, project_id)
            used = self.usage(s, project_id, ctx.user_id) if detail else {}
        body: dict[str, Any] = {"id": project_id}
        for r in visible_resources(ver):
            body[r] = ({"limit": limits[r], "in_use": used.get(r, 0), "reserved": 0}
                       if detail else limits[r])
        return body

    def show_defaults(self, ctx: RequestContext, project_id: str, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:quota_show", {"project_id": project_id})
        with self.db.read() as s:
            limits = self.defaults(s)
        return {"id": project_id, **{r: limits[r] for r in visible_resources(ver)}}

    def _values(self, body: Any, ver) -> tuple[dict[str, int], bool]:  # noqa: ANN001
        if not isinstance(body, dict):
            raise BadRequest("Invalid input for field/attribute quota_set: must be an object")
        force = body.get("force", False)
        if isinstance(force, str):
            force = force.lower() in ("true", "1", "yes")
        allowed = set(visible_resources(ver))
        values = {}
        for key, value in body.items():
            if key == "force":
                continue
            if key not in allowed:
                raise BadRequest("Invalid input for field/attribute quota_set. Additional "
                                 f"properties are not allowed ('{key}' was unexpected)")
            if isinstance(value, str) and value.lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or value < -1 or (
                    value > 2147483647):
                raise BadRequest(f"Invalid input for field/attribute {key}. Value: {value}. "
                                 "must be an integer >= -1")
            values[key] = value
        return values, bool(force)

    def update(self, ctx: RequestContext, project_id: str, body: Any, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:quota_update", {"project_id": project_id})
        values, force = self._values(body, ver)
        with self.db.write() as s:
            self.lock_project(s, project_id)
            if not force:
                used = self.usage(s, project_id)
                for key, value in values.items():
                    if value >= 0 and used.get(key, 0) > value:
                        raise BadRequest(f"Quota limit {value} for {key} must be greater than "
                                         f"or equal to already used and reserved "
                                         f"{used[key]}.")
            for key, value in values.items():
                row = s.get(Quota, (project_id, key))
                if row is None:
                    s.add(Quota(project_id=project_id, resource=key, hard_limit=value))
                else:
                    row.hard_limit = value
            s.flush()
            limits = self.limits(s, project_id)
        return {r: limits[r] for r in visible_resources(ver)}

    def delete(self, ctx: RequestContext, project_id: str) -> None:
        policy.enforce(ctx, "compute:quota_delete", {"project_id": project_id})
        with self.db.write() as s:
            s.query(Quota).filter(Quota.project_id == project_id).delete()

    def class_show(self, ctx: RequestContext, name: str, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:quota_class")
        with self.db.read() as s:
            limits = self.defaults(s) if name == "default" else dict(DEFAULTS)
        return {"id": name, **{r: limits[r] for r in visible_resources(ver)}}

    def class_update(self, ctx: RequestContext, name: str, body: Any, ver) -> dict:  # noqa: ANN001
        policy.enforce(ctx, "compute:quota_class")
        if name != "default":
            raise NotFound(f"Quota class {name} could not be found; only 'default' is used.")
        values, _ = self._values(body, ver)
        with self.db.write() as s:
            for key, value in values.items():
                row = s.get(Quota, ("", key))
                if row is None:
                    s.add(Quota(project_id="", resource=key, hard_limit=value))
                else:
                    row.hard_limit = value
            s.flush()
            limits = self.defaults(s)
        return {r: limits[r] for r in visible_resources(ver)}
