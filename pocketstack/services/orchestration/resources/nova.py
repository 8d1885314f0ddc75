"""OS::Nova::* resources, created through the compute slice's own functions."""

from __future__ import annotations

import base64
from typing import Any

from pocketstack.errors import NotFound
from pocketstack.services.orchestration.engine.errors import ResourceFailure, UpdateReplace
from pocketstack.services.orchestration.resources import lookups
from pocketstack.services.orchestration.resources.base import Prop, Resource


def _ver() -> Any:
    from pocketstack.services.compute.microversions import APIVersion

    return APIVersion(2, 1)


class Server(Resource):
    type_name = "OS::Nova::Server"
    description = "A resource for managing Nova instances."
    service = "compute"
    properties_schema = {
        "name": Prop("string", "Server name.", update_allowed=True),
        "image": Prop("string", "The ID or name of the image to boot with.",
                      constraints=[{"custom_constraint": "glance.image"}]),
        "flavor": Prop("string", "The ID or name of the flavor to boot onto.", required=True,
                       constraints=[{"custom_constraint": "nova.flavor"}]),
        "flavor_update_policy": Prop("string", "Policy on how to apply a flavor update.",
                                     default="RESIZE", update_allowed=True),
        "image_update_policy": Prop("string", "Policy on how to apply an image-id update.",
                                    default="REBUILD", update_allowed=True),
        "key_name": Prop("string", "Name of keypair to inject into the server.",
                         constraints=[{"custom_constraint": "nova.keypair"}]),
        "admin_pass": Prop("string", "The administrator password for the server.",
                           update_allowed=True),
        "availability_zone": Prop("string", "Name of the availability zone for server "
                                  "placement."),
        "security_groups": Prop("list", "List of security group names or IDs.", default=[]),
        "networks": Prop("list", "An ordered list of nics to be added to this server.",
                         update_allowed=True),
        "scheduler_hints": Prop("map", "Arbitrary key-value pairs specified by the client to "
                                "help boot a server."),
        "metadata": Prop("map", "Arbitrary key/value metadata to store for this server.",
                         update_allowed=True),
        "user_data_format": Prop("string", "How the user_data should be formatted for the "
                                 "server.", default="HEAT_CFNTOOLS",
                                 constraints=[{"allowed_values": ["HEAT_CFNTOOLS", "RAW",
                                                                  "SOFTWARE_CONFIG"]}]),
        "software_config_transport": Prop("string", "How the server should receive the "
                                          "metadata required for software configuration.",
                                          default="POLL_SERVER_CFN", update_allowed=True),
        "user_data": Prop("string", "User data script to be executed by cloud-init.",
                          default="", update_allowed=True),
        "user_data_update_policy": Prop("string", "Policy on how to apply a user_data update.",
                                        default="REPLACE", update_allowed=True),
        "config_drive": Prop("boolean", "If True, enable config drive on the server."),
        "diskConfig": Prop("string", "Control how the disk is partitioned when the server is "
                           "created."),
        "personality": Prop("map", "A map of files to create/overwrite on the server upon "
                            "boot.", default={}),
        "reservation_id": Prop("string", "A UUID for the set of servers being requested."),
        "block_device_mapping": Prop("list", "Block device mappings for this server."),
        "block_device_mapping_v2": Prop("list", "Block device mappings v2 for this server."),
        "tags": Prop("list", "Server tags.", update_allowed=True),
        "deployment_swift_data": Prop("map", "Swift container and object to use for storing "
                                      "deployment data for the server resource."),
    }
    attributes_schema = {
        "name": "Name of the server.",
        "addresses": "A dict of all network addresses with corresponding port_id.",
        "networks": "A dict of assigned network addresses of the form: "
                    "{\"public\": [ip1, ip2...], \"private\": [ip3, ip4]}.",
        "first_address": "Convenience attribute to fetch the first assigned network address.",
        "instance_name": "AWS compatible instance name.",
        "accessIPv4": "The manually assigned alternative public IPv4 address of the server.",
        "accessIPv6": "The manually assigned alternative public IPv6 address of the server.",
        "console_urls": "URLs of server's consoles.",
    }

    def _networks(self) -> Any:
        nets = self.props.get("networks")
        if not nets:
            return None
        out = []
        for n in nets:
            if not isinstance(n, dict):
                raise ResourceFailure(f"StackValidationFailed: resources.{self.rt.name}: "
                                      "each item of networks must be a map")
            item: dict[str, Any] = {}
            if n.get("port"):
                item["port"] = lookups.require(self.rt.cloud, self.rt.ctx, "neutron.port",
                                               n["port"], "port")
            net = n.get("network") or n.get("uuid")
            if net:
                item["uuid"] = lookups.require(self.rt.cloud, self.rt.ctx, "neutron.network",
                                               net, "network")
            if n.get("fixed_ip"):
                item["fixed_ip"] = n["fixed_ip"]
            if item:
                out.append(item)
        return out

    def handle_create(self) -> None:
        cloud, ctx = self.rt.cloud, self.rt.ctx
        svc = self.svc
        body: dict[str, Any] = {
            "name": self.props.get("name") or self.rt.physical_resource_name(),
            "flavorRef": lookups.require(cloud, ctx, "nova.flavor", self.props["flavor"],
                                         "Flavor"),
        }
        if self.props.get("image"):
            body["imageRef"] = lookups.require(cloud, ctx, "glance.image",
                                               self.props["image"], "Image")
        for prop, key in (("key_name", "key_name"), ("availability_zone",
                                                     "availability_zone"),
                          ("metadata", "metadata"), ("admin_pass", "adminPass"),
                          ("block_device_mapping_v2", "block_device_mapping_v2"),
                          ("config_drive", "config_drive")):
            if self.props.get(prop) not in (None, "", {}):
                body[key] = self.props[prop]
        if self.props.get("security_groups"):
            body["security_groups"] = [{"name": g} for g in self.props["security_groups"]]
        if self.props.get("user_data"):
            body["user_data"] = base64.b64encode(
                self.props["user_data"].encode()).decode()
        nets = self._networks()
        if nets is not None:
            body["networks"] = nets
        servers, _, _ = svc.servers.create(ctx, body, _ver())
        self.rt.set_physical_id(servers[0].id)

    def _server(self) -> Any:
        return self.svc.servers.get(self.rt.ctx, self.rt.physical_id)

    def check_create_complete(self) -> bool:
        srv = self._server()
        if srv.vm_state == "active":
            return True
        if srv.vm_state == "error":
            fault = (srv.fault or {}).get("message") or "unknown"
            raise ResourceFailure(f"ResourceInError: resources.{self.rt.name}: Went to status "
                                  f"ERROR due to \"Message: {fault}, Code: "
                                  f"{(srv.fault or {}).get('code', 500)}\"")
        return False

    def needs_replace(self, changed: set[str]) -> bool:
        in_place = {"name", "metadata", "tags", "admin_pass", "flavor_update_policy",
                    "image_update_policy", "software_config_transport",
                    "user_data_update_policy"}
        return bool(changed - in_place)

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        if "name" in changed:
            self.svc.servers.update(self.rt.ctx, self.rt.physical_id,
                                    {"name": new_props.get("name") or
                                     self.rt.physical_resource_name()}, _ver())
        if "metadata" in changed:
            self.svc.servers.set_metadata(self.rt.ctx, self.rt.physical_id,
                                          new_props.get("metadata") or {}, True)
        if changed - {"name", "metadata", "flavor_update_policy", "image_update_policy",
                      "software_config_transport", "user_data_update_policy"}:
            raise UpdateReplace()

    def handle_delete(self) -> None:
        if not self.rt.physical_id:
            return
        try:
            self.svc.servers.delete(self.rt.ctx, self.rt.physical_id)
        except NotFound:
            pass

    def check_delete_complete(self) -> bool:
        if not self.rt.physical_id:
            return True
        try:
            srv = self._server()
        except NotFound:
            return True
        if srv.vm_state == "error" and srv.task_state is None:
            raise ResourceFailure(f"Error: resources.{self.rt.name}: Server "
                                  f"{srv.id} went to ERROR while deleting")
        return bool(srv.deleted)

    def _addresses(self) -> dict[str, Any]:
        if not self.rt.physical_id:
            return {}
        return self.svc.servers.addresses([self.rt.physical_id]).get(self.rt.physical_id, {})

    def get_attribute(self, name: str) -> Any:
        srv = self._server() if self.rt.physical_id else None
        if srv is None:
            return None
        if name == "name":
            return srv.name
        if name == "addresses":
            return self._addresses()
        if name == "networks":
            return {net: [a.get("addr") for a in addrs]
                    for net, addrs in self._addresses().items()}
        if name == "first_address":
            for addrs in self._addresses().values():
                if addrs:
                    return addrs[0].get("addr")
            return ""
        if name == "instance_name":
            return f"instance-{srv.id[:8]}"
        if name == "accessIPv4":
            return srv.access_ipv4
        if name == "accessIPv6":
            return srv.access_ipv6
        if name == "console_urls":
            return {}
        if name == "show":
            from pocketstack.services.compute import views

            return {"id": srv.id, "name": srv.name, "status": views.status(
                srv.vm_state, srv.task_state), "flavor": {"id": srv.flavor_id},
                "image": {"id": srv.image_id}, "addresses": self._addresses(),
                "metadata": srv.metadata_, "key_name": srv.key_name,
                "OS-EXT-AZ:availability_zone": srv.availability_zone}
        raise KeyError(name)

    def handle_check(self) -> None:
        srv = self._server()
        if srv.vm_state != "active":
            raise ResourceFailure(f"Error: resources.{self.rt.name}: server is "
                                  f"{srv.vm_state}, not active")

    def _action(self, name: str, want: str) -> None:
        """Nova's suspend/resume server action, then wait for the state it leads to."""
        if not self.rt.physical_id:
            return
        if self._server().vm_state != want:
            self.svc.actions_api.simple(self.rt.ctx, self.rt.physical_id, name)

        def done() -> bool:
            srv = self._server()
            if srv.vm_state == "error":
                raise ResourceFailure(f"Error: resources.{self.rt.name}: server went to "
                                      f"ERROR during {name}")
            return srv.vm_state == want and srv.task_state is None

        self.wait_until(done, f"the server to {name}")

    def handle_suspend(self) -> None:
        self._action("suspend", "suspended")

    def handle_resume(self) -> None:
        self._action("resume", "active")


class KeyPair(Resource):
    type_name = "OS::Nova::KeyPair"
    description = "A resource for creating Nova key pairs."
    service = "compute"
    properties_schema = {
        "name": Prop("string", "The name of the key pair.", required=True,
                     constraints=[{"length": {"min": 1, "max": 255}}]),
        "save_private_key": Prop("boolean", "True if the system should remember a generated "
                                 "private key; False otherwise.", default=False),
        "public_key": Prop("string", "The optional public key. This allows users to supply "
                           "the public key from a pre-existing key pair."),
        "type": Prop("string", "Keypair type.", constraints=[{"allowed_values": ["ssh",
                                                                                  "x509"]}]),
        "user": Prop("string", "ID or name of user to whom to add key-pair."),
    }
    attributes_schema = {"private_key": "The private key if it has been saved.",
                         "public_key": "The public key."}

    def handle_create(self) -> None:
        from pocketstack.services.compute import keypairs

        body: dict[str, Any] = {"name": self.props["name"]}
        if self.props.get("public_key"):
            body["public_key"] = self.props["public_key"]
        if self.props.get("type"):
            body["type"] = self.props["type"]
        kp, private = keypairs.create(self.svc, self.rt.ctx, body, allow_type=True,
                                      allow_user=False)
        if self.props.get("save_private_key") and private:
            self.rt.data_set("private_key", private)
        self.rt.set_physical_id(kp.name)

    def handle_delete(self) -> None:
        from pocketstack.services.compute import keypairs

        if self.rt.physical_id:
            try:
                keypairs.delete(self.svc, self.rt.ctx, self.rt.physical_id)
            except NotFound:
                pass

    def get_attribute(self, name: str) -> Any:
        from pocketstack.services.compute import keypairs

        if name == "private_key":
            return self.rt.data.get("private_key", "")
        if name == "public_key":
            return keypairs.get(self.svc, self.rt.ctx, self.rt.physical_id).public_key
        return super().get_attribute(name)


class Flavor(Resource):
    type_name = "OS::Nova::Flavor"
    description = "A resource for creating OpenStack virtual hardware templates."
    service = "compute"
    properties_schema = {
        "name": Prop("string", "Name of the flavor."),
        "flavorid": Prop("string", "Unique ID of the flavor."),
        "ram": Prop("integer", "Memory in MB for the flavor.", required=True),
        "vcpus": Prop("integer", "Number of VCPUs for the flavor.", required=True),
        "disk": Prop("integer", "Size of local disk in GB.", default=0),
        "swap": Prop("integer", "Swap space in MB.", default=0),
        "ephemeral": Prop("integer", "Size of a secondary ephemeral data disk in GB.",
                          default=0),
        "rxtx_factor": Prop("number", "RX/TX factor.", default=1.0),
        "is_public": Prop("boolean", "Scope of flavor accessibility.", default=True),
        "extra_specs": Prop("map", "Key/Value pairs to extend the capabilities of the "
                            "flavor.", update_allowed=True),
        "tenants": Prop("list", "List of tenants.", default=[]),
    }
    attributes_schema = {"is_public": "Whether the flavor is shared across all projects."}

    def handle_create(self) -> None:
        from pocketstack.services.compute import flavors

        body = {"name": self.props.get("name") or self.rt.physical_resource_name(),
                "ram": self.props["ram"], "vcpus": self.props["vcpus"],
                "disk": self.props.get("disk") or 0, "swap": self.props.get("swap") or 0,
                "OS-FLV-EXT-DATA:ephemeral": self.props.get("ephemeral") or 0,
                "rxtx_factor": self.props.get("rxtx_factor") or 1.0,
                "os-flavor-access:is_public": bool(self.props.get("is_public", True))}
        if self.props.get("flavorid"):
            body["id"] = self.props["flavorid"]
        fl = flavors.create(self.svc, self.rt.ctx, body, False)
        self.rt.set_physical_id(fl.id)

    def handle_delete(self) -> None:
        from pocketstack.services.compute import flavors

        if self.rt.physical_id:
            try:
                flavors.delete(self.svc, self.rt.ctx, self.rt.physical_id)
            except NotFound:
                pass

    def get_attribute(self, name: str) -> Any:
        if name == "is_public":
            return bool(self.props.get("is_public", True))
        return super().get_attribute(name)


class ServerGroup(Resource):
    type_name = "OS::Nova::ServerGroup"
    description = "A resource for managing a Nova server group."
    service = "compute"
    properties_schema = {
        "name": Prop("string", "Server Group name."),
        "policies": Prop("list", "A list of string policies to apply.",
                         default=["anti-affinity"]),
        "rules": Prop("map", "Rules for the policy."),
    }

    def handle_create(self) -> None:
        body = {"name": self.props.get("name") or self.rt.physical_resource_name(),
                "policies": self.props.get("policies") or ["anti-affinity"]}
        group = self.svc.groups_api.create(self.rt.ctx, body, _ver())
        self.rt.set_physical_id(group.id)

    def handle_delete(self) -> None:
        if self.rt.physical_id:
            try:
                self.svc.groups_api.delete(self.rt.ctx, self.rt.physical_id)
            except NotFound:
                pass


PLUGINS = [Server, KeyPair, Flavor, ServerGroup]
