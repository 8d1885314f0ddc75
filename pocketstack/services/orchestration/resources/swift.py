"""OS::Swift::Container, created in the caller's account through the object store's own
store object (the same code the Swift API's container PUT/DELETE run)."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import Conflict, Forbidden, NotFound
from pocketstack.services.orchestration.engine.errors import ResourceFailure
from pocketstack.services.orchestration.resources.base import Prop, Resource


class Container(Resource):
    type_name = "OS::Swift::Container"
    description = "A resource for managing Swift containers."
    service = "object-store"
    properties_schema = {
        "name": Prop("string", "Name for the container. If not specified, a unique name "
                     "will be generated."),
        "X-Container-Read": Prop("string", "Specify the ACL permissions on who can read "
                                 "objects in the container."),
        "X-Container-Write": Prop("string", "Specify the ACL permissions on who can write "
                                  "objects to the container."),
        "X-Container-Meta": Prop("map", "A map of user-defined meta data to associate with "
                                 "the container.", default={}),
        "X-Account-Meta": Prop("map", "A map of user-defined meta data to associate with "
                               "the account.", default={}),
        "PurgeOnDelete": Prop("boolean", "If True, delete any objects in the container when "
                              "the container is deleted.", default=False),
    }
    attributes_schema = {"DomainName": "The host from the container URL.",
                         "WebsiteURL": "The URL of the container.",
                         "RootURL": "The parent URL of the container.",
                         "ObjectCount": "The number of objects stored in the container.",
                         "BytesUsed": "The number of bytes stored in the container.",
                         "HeadContainer": "A map containing all headers for the container."}

    @property
    def account(self) -> str:
        return f"AUTH_{self.rt.ctx.project_id}"

    def handle_create(self) -> None:
        ctx = self.rt.ctx
        if not (ctx.is_admin or ctx.has_role("member")):
            raise Forbidden("Creating a container needs the member role in the project.")
        name = self.props.get("name") or self.rt.physical_resource_name()
        if "/" in name or len(name) > 256:
            raise ResourceFailure(f"StackValidationFailed: resources.{self.rt.name}: "
                                  f"Invalid container name {name!r}")
        changes: dict[str, str | None] = {}
        for key in ("X-Container-Read", "X-Container-Write"):
            if self.props.get(key):
                changes[key] = self.props[key]
        for k, v in (self.props.get("X-Container-Meta") or {}).items():
            changes[f"X-Container-Meta-{k}"] = str(v)
        store = self.svc.store
        if store.find_container(self.account, name) is not None:
            raise Conflict(f"Container {name} already exists in this account.")
        store.put_container(self.account, name, changes)
        self.rt.set_physical_id(name)
        if self.props.get("X-Account-Meta"):
            store.update_account_meta(self.account, {
                f"X-Account-Meta-{k}": str(v) for k, v in self.props["X-Account-Meta"].items()})

    def handle_delete(self) -> None:
        name = self.rt.physical_id
        if not name:
            return
        store = self.svc.store
        if store.find_container(self.account, name) is None:
            return
        if self.props.get("PurgeOnDelete"):
            while True:
                items = store.list_objects(self.account, name, limit=1000)
                if not items:
                    break
                for item in items:
                    store.delete(self.account, name, getattr(item, "name", None) or
                                 item["name"])
        try:
            store.delete_container(self.account, name)
        except NotFound:
            pass
        except Conflict:
            raise ResourceFailure(f"Conflict: resources.{self.rt.name}: The container "
                                  f"{name} is not empty; set PurgeOnDelete to delete its "
                                  "objects with it") from None

    def get_attribute(self, name: str) -> Any:
        container = self.rt.physical_id
        base = f"{self.rt.cloud.settings.base_url}/object-store/v1/{self.account}"
        if name == "WebsiteURL":
            return f"{base}/{container}"
        if name == "RootURL":
            return f"{base}/"
        if name == "DomainName":
            from urllib.parse import urlparse

            return urlparse(base).hostname
        record = self.svc.store.find_container(self.account, container) if container \
            else None
        if record is None:
            return None
        if name == "ObjectCount":
            return record.object_count
        if name == "BytesUsed":
            return record.bytes_used
        if name in ("HeadContainer", "show"):
            return {"x-container-object-count": record.object_count,
                    "x-container-bytes-used": record.bytes_used, **record.meta}
        raise KeyError(name)


PLUGINS = [Container]
