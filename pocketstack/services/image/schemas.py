"""Glance's JSON schemas (GET /v2/schemas/...), and request validation against them.

python-glanceclient builds its models from ``/v2/schemas/image`` (warlock), so the image
schema is glance's own: base properties, the custom properties of glance's
``etc/schema-image.json`` (kernel_id, ramdisk_id, os_distro, ...) and
``additionalProperties: {"type": "string"}`` (extra properties are strings).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema

from pocketstack.errors import BadRequest
from pocketstack.services.image.formats import CONTAINER_FORMATS, DISK_FORMATS

UUID_PATTERN = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
                "-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$")

IMAGE_STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading",
                  "importing", "pending_delete", "deactivated"]


def _image_properties() -> dict[str, Any]:
    nullable_str = {"type": ["null", "string"]}
    return {
        "id": {"type": "string", "description": "An identifier for the image",
               "pattern": UUID_PATTERN},
        "name": {**nullable_str, "description": "Descriptive name for the image",
                 "maxLength": 255},
        "status": {"type": "string", "readOnly": True, "description": "Status of the image",
                   "enum": IMAGE_STATUSES},
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": ["community", "public", "private", "shared"]},
        "protected": {"type": "boolean",
                      "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in "
                      "default image list response."},
        "checksum": {**nullable_str, "readOnly": True,
                     "description": "md5 hash of image contents.", "maxLength": 32},
        "os_hash_algo": {**nullable_str, "readOnly": True,
                         "description": "Algorithm to calculate the os_hash_value",
                         "maxLength": 64},
        "os_hash_value": {**nullable_str, "readOnly": True,
                          "description": "Hexdigest of the image contents using the "
                          "algorithm specified by the os_hash_algo", "maxLength": 128},
        "owner": {**nullable_str, "description": "Owner of the image", "maxLength": 255},
        "size": {"type": ["null", "integer"], "readOnly": True,
                 "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True,
                         "description": "Virtual size of image in bytes"},
        "container_format": {**nullable_str, "description": "Format of the container",
                             "enum": [None, *CONTAINER_FORMATS]},
        "disk_format": {**nullable_str, "description": "Format of the disk",
                        "enum": [None, *DISK_FORMATS]},
        "created_at": {"type": "string", "readOnly": True,
                       "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": True,
                       "description": "Date and time of the last image modification"},
        "tags": {"type": "array", "description": "List of strings related to the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": {"type": "string", "readOnly": True, "description": "URL to access "
                       "the image file kept in external store"},
        "min_ram": {"type": "integer",
                    "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer",
                     "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": True, "description": "An image self url"},
        "file": {"type": "string", "readOnly": True, "description": "An image file url"},
        "stores": {"type": "string", "readOnly": True, "description": "Store in which image "
                   "data resides.  Only present when the operator has enabled multiple "
                   "stores.  May be a comma-separated list of store identifiers."},
        "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
        "locations": {"type": "array", "items": {
            "type": "object", "properties": {
                "url": {"type": "string", "maxLength": 255},
                "metadata": {"type": "object"}},
            "required": ["url", "metadata"]},
            "description": "A set of URLs to access the image file kept in external store"},
        # glance etc/schema-image.json (custom properties shipped by default)
        "kernel_id": {**nullable_str, "pattern": UUID_PATTERN, "is_base": False,
                      "description": "ID of image stored in Glance that should be used as "
                      "the kernel when booting an AMI-style image."},
        "ramdisk_id": {**nullable_str, "pattern": UUID_PATTERN, "is_base": False,
                       "description": "ID of image stored in Glance that should be used as "
                       "the ramdisk when booting an AMI-style image."},
        "instance_uuid": {"type": "string", "is_base": False, "description": "Metadata which "
                          "can be used to record which instance this image is associated "
                          "with. (Informational only, does not create an instance "
                          "snapshot.)"},
        "architecture": {"type": "string", "is_base": False, "description": "Operating "
                         "system architecture as specified in https://docs.openstack.org/"
                         "python-glanceclient/latest/cli/property-keys.html"},
        "os_distro": {"type": "string", "is_base": False, "description": "Common name of "
                      "operating system distribution as specified in https://docs."
                      "openstack.org/python-glanceclient/latest/cli/property-keys.html"},
        "os_version": {"type": "string", "is_base": False, "description": "Operating system "
                       "version as specified by the distributor."},
        "description": {"type": "string", "is_base": False,
                        "description": "A human-readable string describing this image."},
        "cinder_encryption_key_id": {"type": "string", "is_base": False, "description":
                                     "Identifier in the OpenStack Key Management Service "
                                     "for the encryption key for the Block Storage Service "
                                     "to use when mounting a volume created from this "
                                     "image"},
        "cinder_encryption_key_deletion_policy": {
            "type": "string", "is_base": False, "enum": ["on_image_deletion", "do_not_delete"],
            "description": "States the condition under which the Image Service will delete "
            "the object associated with the 'cinder_encryption_key_id' image property.  If "
            "this property is missing, the Image Service will take no action"},
    }


IMAGE_LINKS = [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
               {"rel": "describedby", "href": "{schema}"}]


def image_schema() -> dict[str, Any]:
    return {"name": "image", "properties": _image_properties(),
            "additionalProperties": {"type": "string"}, "links": IMAGE_LINKS}


def collection(name: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"name": name,
            "properties": {name: {"type": "array", "items": item},
                           "first": {"type": "string"}, "next": {"type": "string"},
                           "schema": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


MEMBER_PROPERTIES = {
    "member_id": {"type": "string",
                  "description": "An identifier for the image member (tenantId)"},
    "image_id": {"type": "string", "description": "An identifier for the image",
                 "pattern": UUID_PATTERN},
    "created_at": {"type": "string", "description": "Date and time of image member creation"},
    "updated_at": {"type": "string",
                   "description": "Date and time of last modification of image member"},
    "status": {"type": "string", "description": "The status of this image member",
               "enum": ["pending", "accepted", "rejected"]},
    "schema": {"readOnly": True, "type": "string"},
}


def member_schema() -> dict[str, Any]:
    return {"name": "member", "properties": copy.deepcopy(MEMBER_PROPERTIES),
            "additionalProperties": False}


TASK_PROPERTIES = {
    "id": {"type": "string", "description": "An identifier for the task",
           "pattern": UUID_PATTERN},
    "type": {"type": "string", "description": "The type of task represented by this content",
             "enum": ["import", "api_image_import", "location_import"]},
    "status": {"type": "string", "description": "The current status of this task",
               "enum": ["pending", "processing", "success", "failure"]},
    "input": {"type": ["null", "object"], "description": "The parameters required by task, "
              "JSON blob"},
    "result": {"type": ["null", "object"], "description": "The result of current task, "
               "JSON blob"},
    "owner": {"type": "string", "description": "An identifier for the owner of this task"},
    "message": {"type": "string", "description": "Human-readable informative message only "
                "included when appropriate (usually on failure)"},
    "image_id": {"type": "string", "readOnly": True,
                 "description": "Image associated with the task"},
    "request_id": {"type": "string", "readOnly": True,
                   "description": "Human-readable informative request-id"},
    "user_id": {"type": "string", "readOnly": True, "description": "User associated with "
                "the task"},
    "expires_at": {"type": ["null", "string"], "description": "Datetime when this resource "
                   "would be subject to removal"},
    "created_at": {"type": "string",
                   "description": "Datetime when this resource was created"},
    "updated_at": {"type": "string",
                   "description": "Datetime when this resource was updated"},
    "self": {"readOnly": True, "type": "string"},
    "schema": {"readOnly": True, "type": "string"},
}


def task_schema(partial: bool = False) -> dict[str, Any]:
    props = copy.deepcopy(TASK_PROPERTIES)
    if partial:
        for key in ("input", "result", "message"):
            del props[key]
    return {"name": "task", "properties": props, "additionalProperties": False}


# -- metadata definitions (metadefs) schemas, as glance serves them --------------------------

_PROPERTY_DEF = {
    "type": "object", "required": ["title", "type"],
    "properties": {
        "name": {"type": "string", "maxLength": 255},
        "title": {"type": "string"}, "description": {"type": "string"},
        "operators": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "enum": ["array", "boolean", "integer", "number",
                                            "object", "string", None]},
        "required": {"$ref": "#/definitions/stringArray"},
        "minimum": {"type": "number"}, "maximum": {"type": "number"},
        "maxLength": {"$ref": "#/definitions/positiveInteger"},
        "minLength": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "pattern": {"type": "string", "format": "regex"},
        "enum": {"type": "array"}, "readonly": {"type": "boolean"},
        "default": {},
        "items": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["array", "boolean", "integer", "number",
                                                "object", "string", None]},
            "enum": {"type": "array"}}},
        "maxItems": {"$ref": "#/definitions/positiveInteger"},
        "minItems": {"$ref": "#/definitions/positiveIntegerDefault0"},
        "uniqueItems": {"type": "boolean", "default": False},
        "additionalItems": {"type": "boolean"},
    },
}
_DEFINITIONS = {
    "positiveInteger": {"type": "integer", "minimum": 0},
    "positiveIntegerDefault0": {"allOf": [{"$ref": "#/definitions/positiveInteger"},
                                          {"default": 0}]},
    "stringArray": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    "property": {"type": "object", "additionalProperties": _PROPERTY_DEF},
}
_TIMESTAMPS = {
    "created_at": {"type": "string", "readOnly": True,
                   "description": "Date and time of resource creation", "format": "date-time"},
    "updated_at": {"type": "string", "readOnly": True,
                   "description": "Date and time of the last resource modification",
                   "format": "date-time"},
}
_RT_ASSOCIATION = {
    "name": {"type": "string", "maxLength": 80, "description": "Resource type names should "
             "be aligned with Heat resource types whenever possible"},
    "prefix": {"type": "string", "maxLength": 80, "description": "Specifies the prefix to "
               "use for the given resource type."},
    "properties_target": {"type": "string", "maxLength": 80, "description": "Some resource "
                          "types allow more than one key / value pair per instance."},
    **_TIMESTAMPS,
}


def _metadef(name: str) -> dict[str, Any]:
    if name == "namespace":
        return {
            "name": "namespace", "required": ["namespace"], "additionalProperties": False,
            "definitions": copy.deepcopy(_DEFINITIONS),
            "properties": {
                "namespace": {"type": "string", "maxLength": 80,
                              "description": "The unique namespace text."},
                "display_name": {"type": "string", "maxLength": 80, "description":
                                 "The user friendly name for the namespace."},
                "description": {"type": "string", "maxLength": 500,
                                "description": "Provides a user friendly description."},
                "visibility": {"type": "string", "enum": ["public", "private"],
                               "description": "Scope of namespace accessibility."},
                "protected": {"type": "boolean",
                              "description": "If true, namespace will not be deletable."},
                "owner": {"type": "string", "maxLength": 255,
                          "description": "Owner of the namespace."},
                **_TIMESTAMPS,
                "schema": {"readOnly": True, "type": "string"},
                "self": {"readOnly": True, "type": "string"},
                "resource_type_associations": {"type": "array", "items": {
                    "type": "object", "properties": copy.deepcopy(_RT_ASSOCIATION)}},
                "properties": {"$ref": "#/definitions/property"},
                "objects": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "description": {"type": "string"},
                    "required": {"$ref": "#/definitions/stringArray"},
                    "properties": {"$ref": "#/definitions/property"}}}},
                "tags": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}}}},
            },
        }
    if name == "resource_type":
        return {"name": "resource_type_association", "required": ["name"],
                "additionalProperties": False, "properties": copy.deepcopy(_RT_ASSOCIATION)}
    if name == "object":
        return {"name": "object", "required": ["name"], "additionalProperties": False,
                "definitions": copy.deepcopy(_DEFINITIONS),
                "properties": {"name": {"type": "string", "maxLength": 80},
                               "description": {"type": "string"},
                               "required": {"$ref": "#/definitions/stringArray"},
                               "properties": {"$ref": "#/definitions/property"},
                               "schema": {"readOnly": True, "type": "string"},
                               "self": {"readOnly": True, "type": "string"},
                               **_TIMESTAMPS}}
    if name == "property":
        prop = copy.deepcopy(_PROPERTY_DEF)
        prop["properties"]["name"] = {"type": "string", "maxLength": 80}
        return {"name": "property", "required": ["name", "title", "type"],
                "additionalProperties": False, "definitions": copy.deepcopy(_DEFINITIONS),
                "properties": prop["properties"]}
    if name == "tag":
        return {"name": "tag", "required": ["name"], "additionalProperties": False,
                "properties": {"name": {"type": "string", "maxLength": 255},
                               **_TIMESTAMPS}}
    raise KeyError(name)


def metadef_schema(name: str) -> dict[str, Any]:
    """``metadefs/<name>`` single and plural schemas (namespace, namespaces, ...)."""
    plural = {"namespaces": "namespace", "resource_types": "resource_type",
              "objects": "object", "properties": "property", "tags": "tag"}
    if name in plural:
        item = _metadef(plural[name])
        definitions = item.pop("definitions", None)
        body = collection(name, item)
        if name == "resource_types":
            body["name"] = "resource_type_associations"
            body["properties"] = {"resource_type_associations": {"type": "array",
                                                                 "items": item},
                                  "first": {"type": "string"}, "next": {"type": "string"},
                                  "schema": {"type": "string"}}
        if name == "properties":
            body = {"name": "properties", "properties": {
                "properties": {"$ref": "#/definitions/property"},
                "first": {"type": "string"}, "next": {"type": "string"},
                "schema": {"type": "string"}}, "links": body["links"]}
        if definitions:
            body["definitions"] = definitions
        return body
    return _metadef(name)


def get(name: str) -> dict[str, Any]:
    """The document for GET /v2/schemas/<name>; KeyError when there is none."""
    if name == "image":
        return image_schema()
    if name == "images":
        return collection("images", image_schema())
    if name == "member":
        return member_schema()
    if name == "members":
        return collection("members", member_schema())
    if name == "task":
        return task_schema()
    if name == "tasks":
        return collection("tasks", task_schema(partial=True))
    if name.startswith("metadefs/"):
        return metadef_schema(name.split("/", 1)[1])
    raise KeyError(name)


_IMAGE_VALIDATOR = jsonschema.Draft4Validator(image_schema())


def validate_image(partial: dict[str, Any]) -> None:
    """Validate (part of) an image body against the image schema; 400 with glance's words."""
    error = next(iter(sorted(_IMAGE_VALIDATOR.iter_errors(partial), key=lambda e: e.path)),
                 None)
    if error is not None:
        where = "/".join(str(p) for p in error.path)
        raise BadRequest(f"Provided object does not match schema 'image': {error.message}"
                         + (f" (at '{where}')" if where else ""))
