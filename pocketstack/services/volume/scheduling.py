"""Placement of a new volume: Cinder's CapabilitiesFilter over this cloud's one backend.

A volume type's extra specs must match the backend's capabilities (unscoped keys and
``capabilities:`` keys; other scopes belong to other consumers). When they do not, Cinder's
scheduler finds no valid backend: the volume goes to ``error`` and the project gets a
user message; that is what happens here too.
"""

from __future__ import annotations

import datetime as dt
import operator
from typing import Any

from pocketstack.db.base import utcnow
from pocketstack.services.volume.models import Message

NO_VALID_BACKEND = ("schedule allocate volume:Could not find any available weighted "
                    "backend.")


def capabilities(svc: Any) -> dict[str, Any]:
    stats = svc.driver.stats()
    caps = svc.driver.capabilities
    return {"volume_backend_name": svc.backend, "storage_protocol": stats.storage_protocol,
            "vendor_name": stats.vendor_name, "driver_version": stats.driver_version,
            "pool_name": stats.pool_name, "total_capacity_gb": stats.total_capacity_gb,
            "free_capacity_gb": stats.free_capacity_gb,
            "thin_provisioning_support": caps.thin_provisioning,
            "thick_provisioning_support": not caps.thin_provisioning,
            "multiattach": caps.multiattach, "QoS_support": False,
            "reserved_percentage": 0, "online_extend_support": caps.extend_attached}


_NUMERIC = {"=": operator.ge, "<=": operator.le, ">=": operator.ge, "==": operator.eq,
            "!=": operator.ne, "<": operator.lt, ">": operator.gt}
_STRING = {"s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le,
           "s>": operator.gt, "s>=": operator.ge}


def match(value: Any, req: str) -> bool:
    """Cinder's extra_specs_ops.match."""
    words = str(req).split()
    if not words:
        return str(value) == str(req)
    op = words[0]
    if op == "<is>" and len(words) == 2:
        return str(value).lower() == words[1].lower()
    if op == "<in>" and len(words) == 2:
        return words[1] in str(value)
    if op == "<all-in>":
        return all(w in str(value) for w in words[1:])
    if op == "<or>":
        return str(value) in words[1::2]
    if op in _STRING and len(words) == 2:
        return _STRING[op](str(value), words[1])
    if op in _NUMERIC and len(words) == 2:
        try:
            return _NUMERIC[op](float(value), float(words[1]))
        except (TypeError, ValueError):
            return False
    return str(value) == str(req)


def backend_passes(svc: Any, extra_specs: dict[str, str]) -> bool:
    caps = capabilities(svc)
    for key, req in (extra_specs or {}).items():
        scope = key.split(":")
        if len(scope) > 1:
            if scope[0] != "capabilities":
                continue
            scope = scope[1:]
        cap: Any = caps
        for part in scope:
            if not isinstance(cap, dict) or part not in cap:
                return False
            cap = cap[part]
        if not match(cap, req):
            return False
    return True


def record_failure(s: Any, project_id: str, request_id: str, volume_id: str,
                   text: str = NO_VALID_BACKEND, event: str = "VOLUME_VOLUME_001_002") -> None:
    s.add(Message(project_id=project_id, request_id=request_id, resource_type="VOLUME",
                  resource_uuid=volume_id, event_id=event, message_level="ERROR",
                  user_message=text, expires_at=utcnow() + dt.timedelta(days=30)))
