"""Software configs and deployments (OS::Heat::SoftwareConfig / SoftwareDeployment
APIs) and the per-server deployment metadata they feed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, NotFound
from pocketstack.services.orchestration.models import SoftwareConfig, Stack


class SoftwareMixin:
    """Part of OrchestrationService (see service.py); relies on its db, engine and
    lookup helpers."""

    # -- software configs ---------------------------------------------------------------
    def create_software_config(self, ctx: RequestContext, body: dict[str, Any]) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_configs:create",
                       {"project_id": ctx.project_id})
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        cfg = {"config": body.get("config") or "", "options": body.get("options") or {},
               "inputs": body.get("inputs") or [], "outputs": body.get("outputs") or []}
        with self.db.write() as s:
            row = SoftwareConfig(project_id=ctx.project_id, name=str(body.get("name") or ""),
                                 group=str(body.get("group") or "Heat::Ungrouped"), config=cfg)
            s.add(row)
            s.flush()
            return self._config_view(row)

    @staticmethod
    def _config_view(row: SoftwareConfig) -> dict[str, Any]:
        from pocketstack.db.base import isotime

        return {"id": row.id, "name": row.name, "group": row.group,
                "config": row.config.get("config"), "options": row.config.get("options"),
                "inputs": row.config.get("inputs"), "outputs": row.config.get("outputs"),
                "creation_time": isotime(row.created_at), "project": row.project_id}

    def software_configs(self, ctx: RequestContext) -> list[dict[str, Any]]:
        policy.enforce(ctx, "orchestration:software_configs:index",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            rows = s.scalars(select(SoftwareConfig).where(
                SoftwareConfig.project_id == ctx.project_id)).all()
            return [self._config_view(r) for r in rows]

    def software_config(self, ctx: RequestContext, config_id: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_configs:show",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            row = s.get(SoftwareConfig, config_id)
            if row is None or row.project_id != ctx.project_id:
                raise NotFound(f"Software config with id {config_id} not found",
                               kind="NotFound")
            return self._config_view(row)

    def delete_software_config(self, ctx: RequestContext, config_id: str,
                               missing_ok: bool = False) -> None:
        policy.enforce(ctx, "orchestration:software_configs:delete",
                       {"project_id": ctx.project_id})
        with self.db.write() as s:
            row = s.get(SoftwareConfig, config_id)
            if row is None or row.project_id != ctx.project_id:
                if missing_ok:
                    return
                raise NotFound(f"Software config with id {config_id} not found",
                               kind="NotFound")
            s.delete(row)



    # -- software deployments -----------------------------------------------------------
    def create_deployment(self, ctx: RequestContext, spec: dict[str, Any]) -> dict[str, Any]:
        """A deployment and its derived config (config inputs + deploy_* inputs)."""
        from pocketstack.services.orchestration.models import SoftwareDeployment

        base: dict[str, Any] = {"config": "", "options": {}, "inputs": [], "outputs": [],
                                "group": "Heat::Ungrouped"}
        if spec.get("config_id"):
            base = self.software_config(ctx, spec["config_id"])
        values = spec.get("input_values") or {}
        inputs = []
        for item in base.get("inputs") or []:
            item = dict(item)
            if item.get("name") in values:
                item["value"] = values[item["name"]]
            else:
                item.setdefault("value", item.get("default"))
            inputs.append(item)
        known = {i.get("name") for i in inputs}
        for name, value in values.items():
            if name not in known:
                inputs.append({"name": name, "type": "String", "value": value})
        descriptions = {"deploy_server_id": "ID of the server being deployed to",
                        "deploy_action": "Name of the current action being deployed",
                        "deploy_stack_id": "ID of the stack this deployment belongs to",
                        "deploy_resource_name": "Name of this deployment resource in the "
                                                "stack",
                        "deploy_signal_transport": "How the server should signal to heat "
                                                   "with the deployment output values.",
                        "deploy_signal_id": "ID of signal to use for signaling output values",
                        "deploy_signal_verb": "HTTP verb to use for signaling output values"}
        for name, value in (spec.get("extra") or {}).items():
            inputs.append({"name": name, "type": "String", "value": value,
                           "description": descriptions.get(name, "")})
        with self.db.write() as s:
            derived = SoftwareConfig(project_id=ctx.project_id, name=spec.get("name") or "",
                                     group=base.get("group") or "Heat::Ungrouped",
                                     config={"config": base.get("config") or "",
                                             "options": base.get("options") or {},
                                             "inputs": inputs,
                                             "outputs": base.get("outputs") or []})
            s.add(derived)
            s.flush()
            dep = SoftwareDeployment(project_id=ctx.project_id, config_id=derived.id,
                                     server_id=spec["server_id"], input_values=values,
                                     output_values={}, action=spec.get("action", "CREATE"),
                                     status=spec.get("status", "IN_PROGRESS"),
                                     status_reason=spec.get("status_reason", ""))
            s.add(dep)
            s.flush()
            return self._deployment_view(dep)

    @staticmethod
    def _deployment_view(d: Any) -> dict[str, Any]:
        from pocketstack.db.base import isotime

        return {"id": d.id, "config_id": d.config_id, "server_id": d.server_id,
                "input_values": d.input_values or {}, "output_values": d.output_values or {},
                "action": d.action, "status": d.status, "status_reason": d.status_reason,
                "creation_time": isotime(d.created_at), "updated_time": isotime(d.updated_at)}

    def _load_deployment(self, s: Any, ctx: RequestContext, deployment_id: str) -> Any:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        d = s.get(SoftwareDeployment, deployment_id)
        if d is None or (d.project_id != ctx.project_id and not ctx.is_admin):
            raise NotFound(f"Deployment with id {deployment_id} not found", kind="NotFound")
        return d

    def deployment(self, ctx: RequestContext, deployment_id: str) -> dict[str, Any]:
        policy.enforce(ctx, "orchestration:software_deployments:show",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            return self._deployment_view(self._load_deployment(s, ctx, deployment_id))

    def deployments(self, ctx: RequestContext, server_id: str | None) -> list[dict[str, Any]]:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        policy.enforce(ctx, "orchestration:software_deployments:index",
                       {"project_id": ctx.project_id})
        with self.db.read() as s:
            q = select(SoftwareDeployment).where(
                SoftwareDeployment.project_id == ctx.project_id)
            if server_id:
                q = q.where(SoftwareDeployment.server_id == server_id)
            rows = s.scalars(q.order_by(SoftwareDeployment.created_at)).all()
            return [self._deployment_view(d) for d in rows]

    def set_deployment_status(self, deployment_id: str, status: str, reason: str,
                              outputs: dict[str, Any] | None = None) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is None:
                return
            d.status, d.status_reason, d.updated_at = status, reason, utcnow()
            if outputs is not None:
                d.output_values = outputs

    def update_deployment_inputs(self, deployment_id: str, values: dict[str, Any],
                                 config_id: str) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is not None:
                d.input_values, d.updated_at = values, utcnow()

    def delete_deployment(self, ctx: RequestContext, deployment_id: str) -> None:
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.write() as s:
            d = s.get(SoftwareDeployment, deployment_id)
            if d is None:
                return
            derived = s.get(SoftwareConfig, d.config_id)
            s.delete(d)
            if derived is not None:
                s.delete(derived)

    def deployments_metadata(self, ctx: RequestContext, server_id: str) -> list[dict[str, Any]]:
        """What os-collect-config reads for a server: each deployment's derived config."""
        from pocketstack.services.orchestration.models import SoftwareDeployment

        with self.db.read() as s:
            deps = s.scalars(select(SoftwareDeployment).where(
                SoftwareDeployment.server_id == server_id,
                SoftwareDeployment.project_id == ctx.project_id).order_by(
                SoftwareDeployment.created_at)).all()
            ids = [d.config_id for d in deps]
            configs = {c.id: c for c in s.scalars(select(SoftwareConfig).where(
                SoftwareConfig.id.in_(ids))).all()} if ids else {}
            out = []
            for d in deps:
                c = configs.get(d.config_id)
                if c is None:
                    continue
                item = self._config_view(c)
                item.pop("project", None)
                out.append(item)
            return out

    def resource_metadata(self, ctx: RequestContext, stack: Stack, name: str) -> dict[str, Any]:
        row = self.resource(ctx, stack, name)
        meta = dict(row.metadata or {})
        if row.data.get("_plugin") == "OS::Nova::Server" and row.physical_resource_id:
            meta["deployments"] = self.deployments_metadata(ctx, row.physical_resource_id)
        return meta
