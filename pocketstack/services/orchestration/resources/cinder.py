"""OS::Cinder::* resources, created through the volume slice's own functions."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import NotFound
from pocketstack.services.orchestration.engine.errors import ResourceFailure, UpdateReplace
from pocketstack.services.orchestration.resources import lookups
from pocketstack.services.orchestration.resources.base import Prop, Resource


class Volume(Resource):
    type_name = "OS::Cinder::Volume"
    description = "A resource that implements Cinder volumes."
    service = "volume"
    properties_schema = {
        "size": Prop("integer", "The size of the volume in GB.", update_allowed=True,
                     constraints=[{"range": {"min": 1}}]),
        "availability_zone": Prop("string", "The availability zone in which the volume will "
                                  "be created."),
        "snapshot_id": Prop("string", "If specified, the snapshot to create the volume from."),
        "backup_id": Prop("string", "If specified, the backup to create the volume from.",
                          update_allowed=True),
        "name": Prop("string", "A name used to distinguish the volume.", update_allowed=True),
        "description": Prop("string", "A description of the volume.", update_allowed=True),
        "volume_type": Prop("string", "If specified, the type of volume to use.",
                            update_allowed=True),
        "metadata": Prop("map", "Key/value pairs to associate with the volume.",
                         update_allowed=True, default={}),
        "image": Prop("string", "If specified, the name or ID of the image to create the "
                      "volume from.", constraints=[{"custom_constraint": "glance.image"}]),
        "source_volid": Prop("string", "If specified, the volume to use as source."),
        "scheduler_hints": Prop("map", "Arbitrary key-value pairs specified by the client to "
                                "help the Cinder scheduler creating a volume."),
        "read_only": Prop("boolean", "Enables or disables read-only access mode of volume.",
                          update_allowed=True),
        "multiattach": Prop("boolean", "Whether allow the volume to be attached more than "
                            "once."),
    }
    attributes_schema = {
        "availability_zone": "The availability zone in which the volume is located.",
        "size": "The size of the volume in GB.",
        "snapshot_id": "The snapshot the volume was created from, if any.",
        "display_name": "Name of the volume.",
        "display_description": "Description of the volume.",
        "volume_type": "The type of the volume mapping to a backend, if any.",
        "metadata": "Key/value pairs associated with the volume.",
        "source_volid": "The volume used as source, if any.",
        "status": "The current status of the volume.",
        "created_at": "The timestamp indicating volume creation.",
        "bootable": "Boolean indicating if the volume can be booted or not.",
        "attachments": "A string representation of the list of attachments of the volume.",
        "attachments_list": "The list of attachments of the volume.",
        "encrypted": "Boolean indicating if the volume is encrypted or not.",
        "multiattach": "Boolean indicating whether allow the volume to be attached more than "
                       "once.",
    }

    def handle_create(self) -> None:
        from pocketstack.services.volume import volumes

        body: dict[str, Any] = {"name": self.props.get("name") or
                                self.rt.physical_resource_name()}
        for prop in ("size", "availability_zone", "snapshot_id", "description",
                     "volume_type", "metadata", "source_volid", "multiattach"):
            if self.props.get(prop) not in (None, "", {}):
                body[prop] = self.props[prop]
        if self.props.get("image"):
            body["imageRef"] = lookups.require(self.rt.cloud, self.rt.ctx, "glance.image",
                                               self.props["image"], "Image")
        if self.props.get("backup_id"):
            body["backup_id"] = self.props["backup_id"]
        vol = volumes.create(self.svc, self.rt.ctx, body)
        self.rt.set_physical_id(vol.id)

    def _vol(self) -> dict[str, Any]:
        return self.svc.get_volume(self.rt.ctx, self.rt.physical_id)

    def check_create_complete(self) -> bool:
        vol = self._vol()
        if vol["status"] == "available":
            return True
        if vol["status"].startswith("error"):
            raise ResourceFailure(f"ResourceInError: resources.{self.rt.name}: Went to status "
                                  f"{vol['status']} due to \"Unknown\"")
        return False

    def needs_replace(self, changed: set[str]) -> bool:
        if "size" in changed:
            old = (self.rt.row.properties_data or {}).get("size") or 0
            if (self.props.get("size") or 0) < old:
                return True
        return bool(changed - {"size", "name", "description", "metadata", "read_only",
                               "volume_type", "backup_id"})

    def handle_update(self, new_props: dict[str, Any], old_props: dict[str, Any],
                      changed: set[str]) -> None:
        from pocketstack.services.volume import volume_actions, volumes

        ctx, vid = self.rt.ctx, self.rt.physical_id
        if changed & {"name", "description"}:
            volumes.update(self.svc, ctx, vid, {k: new_props.get(k) for k in
                                                ("name", "description")
                                                if k in changed})
        if "metadata" in changed:
            volumes.set_metadata(self.svc, ctx, vid, new_props.get("metadata") or {},
                                 replace=True)
        if "size" in changed:
            volume_actions.extend(self.svc, ctx, vid, new_props["size"])
            self.wait_until(lambda: self._vol()["status"] in ("available", "in-use"),
                            "the volume to be extended")
        if changed & {"volume_type", "backup_id"}:
            raise UpdateReplace()

    def handle_check(self) -> None:
        status = self._vol()["status"]
        if status not in ("available", "in-use"):
            raise ResourceFailure(f"Error: resources.{self.rt.name}: volume is {status}")

    def handle_delete(self) -> None:
        from pocketstack.services.volume import volumes

        if not self.rt.physical_id:
            return
        try:
            volumes.delete(self.svc, self.rt.ctx, self.rt.physical_id)
        except NotFound:
            pass

    def check_delete_complete(self) -> bool:
        if not self.rt.physical_id:
            return True
        try:
            vol = self._vol()
        except NotFound:
            return True
        if vol["status"] == "error_deleting":
            raise ResourceFailure(f"Error: resources.{self.rt.name}: volume went to "
                                  "error_deleting")
        return vol["status"] == "deleted"

    def get_attribute(self, name: str) -> Any:
        vol = self._vol()
        table = {"display_name": "name", "display_description": "description",
                 "attachments_list": "attachments"}
        if name == "show":
            return vol
        if name == "attachments":
            return str(vol.get("attachments"))
        key = table.get(name, name)
        if key in vol:
            return vol[key]
        if name in self.attributes_schema:
            return None
        raise KeyError(name)


class VolumeAttachment(Resource):
    type_name = "OS::Cinder::VolumeAttachment"
    description = "Resource for associating volume to instance."
    service = "volume"
    properties_schema = {
        "instance_uuid": Prop("string", "The ID of the server to which the volume attaches.",
                              required=True, update_allowed=True),
        "volume_id": Prop("string", "The ID of the volume to be attached.", required=True,
                          update_allowed=True,
                          constraints=[{"custom_constraint": "cinder.volume"}]),
        "mountpoint": Prop("string", "The location where the volume is exposed on the "
                           "instance.", update_allowed=True),
    }

    def handle_create(self) -> None:
        ctx = self.rt.ctx
        server_id = lookups.require(self.rt.cloud, ctx, "nova.server",
                                    self.props["instance_uuid"], "Server")
        volume_id = lookups.require(self.rt.cloud, ctx, "cinder.volume",
                                    self.props["volume_id"], "Volume")
        result = self.svc.attach(ctx, volume_id, server_id, self.props.get("mountpoint"))
        self.rt.data_set("volume_id", volume_id)
        self.rt.data_set("server_id", server_id)
        self.rt.set_physical_id(result["attachment_id"])

    def needs_replace(self, changed: set[str]) -> bool:
        return bool(changed)

    def handle_delete(self) -> None:
        vid = self.rt.data.get("volume_id")
        if not vid or not self.rt.physical_id:
            return
        try:
            self.svc.detach(self.rt.ctx, vid, self.rt.physical_id,
                            self.rt.data.get("server_id"))
        except NotFound:
            pass


PLUGINS = [Volume, VolumeAttachment]
