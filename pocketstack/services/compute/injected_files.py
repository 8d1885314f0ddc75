"""Personality (injected files, before 2.57): Nova no longer writes them into the guest's
disk; they reach the guest as its config drive's ``openstack/content/NNNN`` files and the
metadata service's, listed in meta_data.json ``files`` ({"path", "content_path"}), which
cloud-init writes out. The paths are the tenant's and only ever appear inside those JSON
documents, never as a host path. Kept with the server under ``scheduler_hints[KEY]`` (never
shown by the API), as interfaces.py keeps NIC tags."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pocketstack.errors import BadRequest, OverQuota

KEY = "pocketstack:files"


def parse(personality: Any, limits: dict[str, int]) -> list[dict[str, str]]:
    """The request's personality as stored (path, base64 contents), checked as Nova does:
    a 400 for what is not base64, a 403 over the injected_file_* quotas."""
    if personality in (None, []):
        return []
    if not isinstance(personality, list):
        raise BadRequest("Invalid input for field/attribute personality: must be a list")
    out = []
    for item in personality:
        if not isinstance(item, dict) or set(item) - {"path", "contents"} or \
                not isinstance(item.get("path"), str) or not isinstance(item.get("contents"), str):
            raise BadRequest("Invalid input for field/attribute personality: each file is "
                             "{\"path\": string, \"contents\": base64 string}")
        path, contents = item["path"], item["contents"]
        try:
            data = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Personality content for {path} cannot be decoded") from None
        max_path = limits.get("injected_file_path_bytes", 255)
        if max_path >= 0 and len(path.encode()) > max_path:
            raise OverQuota("Personality file path exceeds maximum "
                            f"{max_path}")
        max_bytes = limits.get("injected_file_content_bytes", 10240)
        if max_bytes >= 0 and len(data) > max_bytes:
            raise OverQuota(f"Personality file content exceeds maximum {max_bytes}")
        out.append({"path": path, "contents": contents})
    return out


def of(srv: Any) -> list[dict[str, str]]:
    return list((srv.scheduler_hints or {}).get(KEY) or [])


def content_path(index: int) -> str:
    return f"/content/{index:04d}"
