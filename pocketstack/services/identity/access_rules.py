"""Enforcing application credential access rules, as keystonemiddleware does.

A token from an application credential with access rules may only call what a rule
allows: the service type of the API, the HTTP method, and the path under the service's
endpoint, where ``*`` matches one path segment and ``**`` any number of them. Keystone's
own API is not restricted (the token must still be able to validate and revoke itself).
"""

from __future__ import annotations

import re
import threading
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import select

from pocketstack.errors import Unauthorized
from pocketstack.services.identity.models import AccessRule, ApplicationCredential

CACHE_SECONDS = 2.0  # rules are immutable while a credential exists; deletes show within this
_cache: dict[str, tuple[float, list[tuple[str, str, str]]]] = {}
_lock = threading.Lock()


@lru_cache(maxsize=1024)
def _pattern(path: str) -> re.Pattern[str]:
    parts = []
    for segment in path.strip("/").split("/"):
        if segment == "**":
            parts.append(r"(?:[^/]+(?:/[^/]+)*)?")
        elif segment == "*":
            parts.append(r"[^/]+")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?\\Z")


def rules_for(identity: Any, app_cred_id: str) -> list[tuple[str, str, str]]:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(app_cred_id)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[1]
    with identity.db.read() as s:
        cred = s.get(ApplicationCredential, app_cred_id)
        ids = list(cred.access_rules or []) if cred is not None else []
        rows = s.scalars(select(AccessRule).where(AccessRule.id.in_(ids))).all() if ids else []
        rules = [(r.service, r.method.upper(), r.path) for r in rows]
    with _lock:
        _cache[app_cred_id] = (now, rules)
    return rules


def allowed(rules: list[tuple[str, str, str]], service_type: str, method: str,
            path: str) -> bool:
    method = "GET" if method.upper() == "HEAD" else method.upper()
    return any(svc == service_type and (m == method or (m == "HEAD" and method == "GET"))
               and _pattern(p).match(path) for svc, m, p in rules)


def check(identity: Any, info: Any, scope: dict[str, Any], specs: list[Any]) -> None:
    """Raise 401 when ``info`` (a validated token) may not make this request."""
    if info.payload.app_cred_id is None:
        return
    root = scope.get("root_path", "") or ""
    path = scope.get("path", "")
    spec = next((sp for sp in specs if root == sp.path or path.startswith(sp.path + "/")),
                None)
    if spec is None or spec.type == "identity":
        return
    rules = rules_for(identity, info.payload.app_cred_id)
    if not rules:
        return  # a credential without access rules is not restricted by them
    rel = path[len(spec.path):] if path.startswith(spec.path) else path
    if not allowed(rules, spec.type, scope.get("method", "GET"), rel or "/"):
        raise Unauthorized("The request is not allowed by the application credential's "
                           "access rules.")
