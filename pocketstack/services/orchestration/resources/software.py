"""OS::Heat::SoftwareDeployment(s): configs delivered to servers through their metadata.

A deployment is a row (the software_deployments API object) holding the config, the
inputs and a status. The server's resource metadata lists the deployments aimed at it
(``deployments``, as os-collect-config reads it); the agent on the server (or anyone
holding the URL) signals the result to ``deploy_signal_id``, an unauthenticated URL whose
secret authorises exactly this deployment (Heat's signed-URL transports play that role).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from pocketstack.services.orchestration.engine.errors import Cancelled, ResourceFailure
from pocketstack.services.orchestration.resources.base import Prop, Resource
from pocketstack.services.orchestration.resources.heat import NestedStackMixin

ACTIONS = ["CREATE", "UPDATE", "DELETE", "SUSPEND", "RESUME"]
_COMMON = {
    "config": Prop("string", "ID of software configuration resource to execute when "
                   "applying to the server.", update_allowed=True),
    "input_values": Prop("map", "Input values to apply to the software configuration on "
                         "this server.", default={}, update_allowed=True),
    "actions": Prop("list", "Which lifecycle actions of the deployment resource will result "
                    "in this deployment being triggered.", default=["CREATE", "UPDATE"],
                    update_allowed=True),
    "signal_transport": Prop("string", "How the server should signal to heat with the "
                             "deployment output values.", default="CFN_SIGNAL",
                             constraints=[{"allowed_values": [
                                 "CFN_SIGNAL", "TEMP_URL_SIGNAL", "HEAT_SIGNAL",
                                 "NO_SIGNAL", "ZAQAR_SIGNAL"]}]),
    "name": Prop("string", "Name of the derived config associated with this deployment."),
}


class SoftwareDeployment(Resource):
    type_name = "OS::Heat::SoftwareDeployment"
    description = "This resource associates a server with some configuration."
    signal_supported = True
    properties_schema = {
        **_COMMON,
        "server": Prop("string", "ID of resource to apply configuration to.", required=True),
    }
    attributes_schema = {"deploy_stdout": "Captured stdout from the configuration execution.",
                         "deploy_stderr": "Captured stderr from the configuration execution.",
                         "deploy_status_code": "Returned status code from the configuration "
                                               "execution."}

    @property
    def heat(self) -> Any:
        return self.rt.run.engine.service

    def handle_create(self) -> None:
        if "CREATE" not in (self.props.get("actions") or []):
            self.rt.set_physical_id(self.rt.physical_resource_name())
            return
        secret = secrets.token_urlsafe(24)
        self.rt.data_set("secret", secret)
        url = f"{self.rt.cloud.settings.base_url}/orchestration/v1/signal/{secret}"
        transport = self.props.get("signal_transport") or "CFN_SIGNAL"
        extra = {
            "deploy_server_id": self.props["server"], "deploy_action": "CREATE",
            "deploy_stack_id": f"{self.rt.stack_name}/{self.rt.stack_id}",
            "deploy_resource_name": self.rt.name, "deploy_signal_transport": transport,
        }
        if transport != "NO_SIGNAL":
            extra.update({"deploy_signal_id": url, "deploy_signal_verb": "POST"})
        dep = self.heat.create_deployment(self.rt.ctx, {
            "config_id": self.props.get("config") or "", "server_id": self.props["server"],
            "input_values": dict(self.props.get("input_values") or {}), "extra": extra,
            "name": self.props.get("name") or self.rt.name, "action": "CREATE",
            "status": "COMPLETE" if transport == "NO_SIGNAL" else "IN_PROGRESS",
            "status_reason": "Deploy data available"})
        self.rt.set_physical_id(dep["id"])
        if transport == "NO_SIGNAL":
            return
        try:
            while True:
                dep = self.heat.deployment(self.rt.ctx, dep["id"])
                if dep["status"] == "COMPLETE":
                    return
                if dep["status"] == "FAILED":
                    raise ResourceFailure(f"Error: resources.{self.rt.name}: Deployment to "
                                          f"server failed: {dep['status_reason']}")
                self.rt.check_cancelled()
                time.sleep(0.2)
        except Cancelled as exc:
            self.heat.set_deployment_status(dep["id"], "FAILED",
                                            f"Deployment cancelled: {exc}")
            raise

    def handle_signal(self, data: Any) -> None:
        if not self.rt.physical_id:
            raise ResourceFailure("The deployment has not been created yet")
        data = data if isinstance(data, dict) else {}
        code = data.get("deploy_status_code", 0)
        try:
            failed = int(code or 0) != 0
        except (TypeError, ValueError):
            failed = True
        reason = "Outputs received" if not failed else \
            f"deploy_status_code : Deployment exited with non-zero status code: {code}"
        self.heat.set_deployment_status(self.rt.physical_id,
                                        "FAILED" if failed else "COMPLETE", reason,
                                        outputs=data)

    def needs_replace(self, changed: set[str]) -> bool:
        return "server" in changed

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        if self.rt.physical_id:
            self.heat.update_deployment_inputs(self.rt.physical_id,
                                               dict(new_props.get("input_values") or {}),
                                               new_props.get("config") or "")

    def handle_delete(self) -> None:
        if self.rt.physical_id:
            self.heat.delete_deployment(self.rt.ctx, self.rt.physical_id)

    def get_attribute(self, name: str) -> Any:
        if not self.rt.physical_id:
            return None
        try:
            dep = self.heat.deployment(self.rt.ctx, self.rt.physical_id)
        except Exception:  # noqa: BLE001 - NO_SIGNAL/actions-less deployments have no row
            return None
        outputs = dep.get("output_values") or {}
        if name in outputs or name in self.attributes_schema:
            return outputs.get(name)
        raise KeyError(name)


class SoftwareDeployments(NestedStackMixin):
    type_name = "OS::Heat::SoftwareDeploymentGroup"
    description = "This resource associates a group of servers with some configuration."
    properties_schema = {
        **_COMMON,
        "servers": Prop("map", "A map of names and server IDs to apply configuration to.",
                        update_allowed=True),
    }
    attributes_schema = {"deploy_stdouts": "A map of Nova names and captured stdouts from the "
                                           "configuration execution to each server.",
                         "deploy_stderrs": "A map of Nova names and captured stderrs from the "
                                           "configuration execution to each server.",
                         "deploy_status_codes": "A map of Nova names and returned status "
                                                "code from the configuration execution."}

    def _template(self, props: dict[str, Any] | None = None) -> dict[str, Any]:
        props = props or self.props
        member = {k: props.get(k) for k in _COMMON if props.get(k) is not None}
        return {"heat_template_version": "2015-04-30", "resources": {
            str(key): {"type": "OS::Heat::SoftwareDeployment",
                       "properties": {**member, "server": server}}
            for key, server in (props.get("servers") or {}).items()}}

    def handle_create(self) -> None:
        self.rt.create_nested(self._template(), {})

    def needs_replace(self, changed: set[str]) -> bool:
        return False

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        self.rt.update_nested(self._template(new_props), {})

    def get_attribute(self, name: str) -> Any:
        single = {"deploy_stdouts": "deploy_stdout", "deploy_stderrs": "deploy_stderr",
                  "deploy_status_codes": "deploy_status_code"}.get(name)
        if single is None:
            return super().get_attribute(name)
        run = self.rt.nested_run()
        if run is None:
            return {}
        return {n: run.scope().attribute(n, single, []) for n in run.rows}


class SoftwareDeploymentsAlias(SoftwareDeployments):
    type_name = "OS::Heat::SoftwareDeployments"


PLUGINS = [SoftwareDeployment, SoftwareDeployments, SoftwareDeploymentsAlias]
