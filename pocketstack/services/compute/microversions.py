"""Compute API microversions: parsing the request header and the table of behaviour.

Handlers never compare numbers: they ask ``ver.has("flavor_embedded")``. The table says
from which microversion each behaviour starts (nova/api/openstack/api_version_request.py
lists them all; we implement those below and advertise MAX).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pocketstack.errors import BadRequest, NotAcceptable

MIN = (2, 1)
MAX = (2, 101)

# behaviour -> first microversion that has it
FEATURES: dict[str, tuple[int, int]] = {
    "keypair_type": (2, 2),               # keypairs carry "type" (ssh/x509)
    "extended_attributes": (2, 3),        # OS-EXT-SRV-ATTR:{hostname,launch_index,...} for admin
    "server_locked": (2, 9),              # server "locked"
    "keypair_user_id": (2, 10),           # admins act on other users' keypairs
    "service_forced_down": (2, 11),       # os-services "forced_down"
    "server_group_project": (2, 13),      # server groups show project_id/user_id
    "keypair_no_private_key_on_import": (2, 2),
    "soft_affinity": (2, 15),             # soft-affinity / soft-anti-affinity policies
    "host_status": (2, 16),               # server "host_status"
    "server_description": (2, 19),        # server "description"
    "actions_deleted_server": (2, 21),    # instance actions of deleted servers
    "server_tags": (2, 26),               # "tags" in server views, tags API
    "hypervisor_cpu_info_dict": (2, 28),  # cpu_info is an object
    "hypervisor_paging": (2, 33),
    "keypair_paging": (2, 35),
    "no_proxy_quotas": (2, 36),           # network quotas gone from quota sets and limits
    "networks_required": (2, 37),         # server create needs "networks" (auto/none/list)
    "aggregate_uuid": (2, 41),
    "flavor_embedded": (2, 47),           # server "flavor" is the embedded flavor
    "tags_on_create": (2, 52),
    "uuid_ids": (2, 53),                  # services and hypervisors by UUID
    "flavor_description": (2, 55),
    "no_personality": (2, 57),            # injected files gone; user_data on rebuild
    "actions_paging": (2, 58),
    "flavor_extra_specs": (2, 61),        # flavor views include extra_specs
    "events_host": (2, 62),
    "group_policy_singular": (2, 64),     # server groups: "policy" + "rules"
    "server_groups_in_show": (2, 71),
    "locked_reason": (2, 73),
    "rebuild_returns_full": (2, 75),      # rebuild/update return the full server; swap 0 not ""
    "migrations_user_filters": (2, 80),   # os-migrations user_id/project_id filters + fields
    "aggregate_image_cache": (2, 81),     # POST /os-aggregates/{id}/images
    "event_accelerator": (2, 82),         # accelerator-request-bound external event
    "non_admin_server_filters": (2, 83),  # more GET /servers filters for non-admins
    "events_details": (2, 84),
    "volume_attachment_update": (2, 85),  # PUT os-volume_attachments: delete_on_termination
    "extra_specs_validation": (2, 86),    # known flavor extra specs are validated
    "rescue_volume_backed": (2, 87),
    "hypervisor_no_stats": (2, 88),       # statistics fields, /statistics and /uptime gone
    "volume_attachment_ids": (2, 89),     # attachment_id + bdm_uuid, no "id"
    "server_hostname": (2, 90),           # hostname on create/update/rebuild, always shown
    "unshelve_to_host": (2, 91),
    "keypair_import_only": (2, 92),       # no generated keypairs; names may have @ and .
    "rebuild_volume_backed": (2, 93),
    "hostname_fqdn": (2, 94),
    "evacuate_stopped": (2, 95),          # an evacuated server ends stopped
    "pinned_az": (2, 96),                 # server "pinned_availability_zone"
    "server_shares": (2, 97),             # /servers/{id}/shares (Manila shares over virtiofs)
    "image_properties": (2, 98),          # server "image" embeds the image's properties
    "spice_direct": (2, 99),              # remote console type spice-direct
    "scheduler_hints_shown": (2, 100),    # server "scheduler_hints"
    "attach_returns_202": (2, 101),       # POST os-volume_attachments: 202, no body
}

_HEADER = re.compile(r"^\s*(\d+)\.(\d+)\s*$")


@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    def has(self, feature: str) -> bool:
        return (self.major, self.minor) >= FEATURES[feature]

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


def fmt(v: tuple[int, int]) -> str:
    return f"{v[0]}.{v[1]}"


def requested(headers) -> APIVersion:  # noqa: ANN001 - starlette Headers
    """The version asked for (OpenStack-API-Version: compute X.Y or the legacy header)."""
    raw = None
    value = headers.get("openstack-api-version")
    if value:
        for item in value.split(","):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "compute":
                raw = parts[1]
    if raw is None:
        raw = headers.get("x-openstack-nova-api-version")
    if raw is None:
        return APIVersion(*MIN)
    if raw.strip().lower() == "latest":
        return APIVersion(*MAX)
    m = _HEADER.match(raw)
    if not m:
        raise BadRequest(f"API Version String {raw} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.")
    v = (int(m.group(1)), int(m.group(2)))
    if not (MIN <= v <= MAX):
        raise NotAcceptable(f"Version {fmt(v)} is not supported by the API. Minimum is "
                            f"{fmt(MIN)} and maximum is {fmt(MAX)}.")
    return APIVersion(*v)


def response_headers(v: APIVersion) -> dict[str, str]:
    return {"OpenStack-API-Version": f"compute {v}", "X-OpenStack-Nova-API-Version": str(v),
            "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version"}
