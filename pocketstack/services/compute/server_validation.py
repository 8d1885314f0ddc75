"""Checks on the parts of a server body (names, metadata, tags, networks, scheduler hints)
that servers.py and server_actions.py share; each raises the fault Nova answers."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pocketstack.errors import BadRequest, OverQuota
from pocketstack.services.compute.microversions import APIVersion

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                     r"[0-9a-fA-F]{12}\Z")
_TAG_BAD = re.compile(r"[/,]")
MAX_TAGS = 50

CREATE_KEYS = {"name", "imageRef", "flavorRef", "networks", "key_name", "user_data", "metadata",
               "security_groups", "availability_zone", "min_count", "max_count",
               "return_reservation_id", "accessIPv4", "accessIPv6", "adminPass",
               "config_drive", "OS-DCF:diskConfig", "block_device_mapping",
               "block_device_mapping_v2", "description", "tags", "personality",
               "trusted_image_certificates", "host", "hypervisor_hostname", "hostname",
               "os:scheduler_hints", "OS-SCH-HNT:scheduler_hints"}


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and bool(UUID_RE.match(value))


def hostname_for(name: str) -> str:
    """Nova's sanitize_hostname: lowercase, [a-z0-9-], at most 63 characters."""
    h = re.sub(r"[ _]", "-", name.lower())
    h = re.sub(r"[^\w.-]+", "", h, flags=re.ASCII)
    h = h.strip(".-")[:63].rstrip(".-")
    return h or "server"


_HOSTNAME = re.compile(r"^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+\Z")
_FQDN = re.compile(r"^[a-zA-Z0-9-._]*\Z")


def check_hostname(value: Any, ver: Any) -> str:
    """A requested hostname (2.90): an RFC 952 label of 2-63 characters; from 2.94 an FQDN
    of 1-255 characters (Nova's parameter_types.hostname and .fqdn)."""
    fqdn = ver.has("hostname_fqdn")
    rx, lo, hi = (_FQDN, 1, 255) if fqdn else (_HOSTNAME, 2, 63)
    if not isinstance(value, str) or not lo <= len(value) <= hi or not rx.match(value):
        raise BadRequest(f"Invalid input for field/attribute hostname. Value: {value}. "
                         f"does not match '{rx.pattern.replace(chr(92) + 'Z', '$')}' or is "
                         f"not {lo}-{hi} characters long")
    return value


def guest_hostname(hostname: str) -> str:
    """What a guest's kernel can take as its hostname (at most 64 bytes, HOST_NAME_MAX): a
    2.94 FQDN may be up to 255 characters, so a longer one gives its first label."""
    if len(hostname) <= 64:
        return hostname
    return hostname.split(".", 1)[0][:63] or "server"


def check_name(name: Any, field: str = "name") -> str:
    if not isinstance(name, str):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {name}. "
                         f"{name!r} is not of type 'string'")
    if not name.strip() or len(name) > 255:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {name}. "
                         "must be a non-blank string of at most 255 characters")
    return name


def check_metadata(meta: Any, limit: int) -> dict[str, str]:
    if not isinstance(meta, dict):
        raise BadRequest("Invalid input for field/attribute metadata: must be an object")
    for k, v in meta.items():
        if not isinstance(k, str) or not 1 <= len(k) <= 255:
            raise BadRequest("Invalid input for field/attribute metadata: keys must be 1 to "
                             "255 characters")
        if not isinstance(v, str) or len(v) > 255:
            raise BadRequest(f"Invalid input for field/attribute metadata. Value for '{k}' "
                             "must be a string of at most 255 characters")
    if limit >= 0 and len(meta) > limit:
        raise OverQuota("Quota exceeded for metadata_items: Requested "
                        f"{len(meta)}, but already used 0 of {limit} metadata_items")
    return dict(meta)


def check_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or len(tags) > MAX_TAGS:
        raise BadRequest(f"Invalid input for field/attribute tags: at most {MAX_TAGS} tags")
    out = []
    for t in tags:
        if not isinstance(t, str) or not 1 <= len(t) <= 60 or _TAG_BAD.search(t):
            raise BadRequest(f"Invalid input for field/attribute tags. Value: {t}. Tags are "
                             "1 to 60 characters without '/' or ','")
        if t not in out:
            out.append(t)
    return out


def _int(value: Any, field: str, lo: int = 1) -> int:
    if isinstance(value, (bool, float)):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}.")
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"'{value}' is not of type 'integer'") from None
    if n < lo:
        raise BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. "
                         f"{value} is less than the minimum of {lo}")
    return n


def check_device_tag(tag: Any) -> str:
    """A NIC's device tag (Nova's parameter_types.tag)."""
    if not isinstance(tag, str) or not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
        raise BadRequest(f"Invalid input for field/attribute tag. Value: {tag}: at most 60 "
                         "characters, without '/' or ','")
    return tag


def _networks(value: Any, ver: APIVersion) -> Any:
    if value is None:
        if ver.has("networks_required"):
            raise BadRequest("Invalid input for field/attribute networks: is a required "
                             "property (a list, 'auto' or 'none')")
        # Before 2.37 no networks meant "the project's network if it has one, else none".
        return "legacy"
    if isinstance(value, str):
        if value in ("auto", "none") and ver.has("networks_required"):
            return value
        raise BadRequest(f"Invalid input for field/attribute networks. Value: {value}. "
                         "must be a list of networks")
    if not isinstance(value, list):
        raise BadRequest("Invalid input for field/attribute networks: must be a list")
    out = []
    for net in value:
        if not isinstance(net, dict) or set(net) - {"uuid", "port", "fixed_ip", "tag"}:
            raise BadRequest("Invalid input for field/attribute networks: each item is "
                             "{uuid|port, fixed_ip?, tag?}")
        item: dict[str, Any] = {}
        if "port" in net and net["port"] is not None:
            if not is_uuid(net["port"]):
                raise BadRequest(f"Bad networks format: port uuid ({net['port']}) is not in "
                                 "proper format")
            item["port"] = net["port"]
        if "uuid" in net and net["uuid"] is not None:
            if not is_uuid(net["uuid"]):
                raise BadRequest(f"Bad networks format: network uuid ({net['uuid']}) is not in "
                                 "proper format")
            item["uuid"] = net["uuid"]
        if not item:
            raise BadRequest("Bad networks format: a network uuid or a port is required")
        if net.get("fixed_ip") is not None:
            try:
                ipaddress.ip_address(net["fixed_ip"])
            except ValueError:
                raise BadRequest(f"Invalid fixed IP address ({net['fixed_ip']})") from None
            item["fixed_ip"] = net["fixed_ip"]
        if "tag" in net:
            tag = net["tag"]
            if not ver.at_least(2, 32):
                raise BadRequest("Invalid input for field/attribute networks: 'tag' needs "
                                 "microversion 2.32 or later")
            item["tag"] = check_device_tag(tag)
        out.append(item)
    return out


def _hints(body: dict) -> dict[str, Any]:
    hints = body.get("os:scheduler_hints", body.get("OS-SCH-HNT:scheduler_hints")) or {}
    if not isinstance(hints, dict):
        raise BadRequest("Invalid input for field/attribute os:scheduler_hints: must be an object")
    out: dict[str, Any] = {}
    for key in ("same_host", "different_host"):
        if key in hints:
            v = hints[key]
            v = [v] if isinstance(v, str) else v
            if not isinstance(v, list) or not all(is_uuid(x) for x in v):
                raise BadRequest(f"Invalid input for field/attribute {key}: a server uuid or a "
                                 "list of them")
            out[key] = v
    if "group" in hints:
        if not is_uuid(hints["group"]):
            raise BadRequest(f"Invalid input for field/attribute group. Value: "
                             f"{hints['group']}. not a server group uuid")
        out["group"] = hints["group"]
    for key, v in hints.items():
        out.setdefault(key, v)
    return out
