"""Who may touch an account: owners (policy.py), container ACLs, TempURL and FormPost
signatures. Semantics follow swift's keystoneauth, tempurl and formpost middleware."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from datetime import datetime, timezone
from typing import Any

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import Forbidden, Unauthorized

RESELLER_PREFIX = "AUTH_"


def project_of(account: str) -> str | None:
    return account[len(RESELLER_PREFIX):] if account.startswith(RESELLER_PREFIX) else None


def is_reseller(ctx: RequestContext) -> bool:
    return policy.RULES["object-store:reseller_admin"](ctx, {})


def is_owner(ctx: RequestContext, account: str) -> bool:
    return policy.RULES["object-store:account_owner"](ctx, {"project_id": project_of(account)})


def deny(ctx: RequestContext) -> Exception:
    if ctx.user_id is None:
        return Unauthorized("This server could not verify that you are authorized to access "
                            "the document you requested.")
    return Forbidden("Access was denied to this resource.")


def _acl_items(value: str | None) -> list[str]:
    return [item.strip() for item in (value or "").split(",") if item.strip()]


def acl_allows(ctx: RequestContext, acl: str | None, *, listing: bool = False,
               referrer: str | None = None) -> bool:
    """Does a container ACL (X-Container-Read/Write) grant ``ctx`` access?

    Elements: ``.r:*`` / ``.r:<host>`` (anyone, by referrer; objects only unless
    ``.rlistings``), ``<project>:<user>`` by id or name with ``*`` wildcards, role names.
    """
    items = _acl_items(acl)
    if not items:
        return False
    referrer_ok = False
    for item in items:
        if item.startswith(".r:"):
            rule = item[3:]
            negate = rule.startswith("-")
            rule = rule.lstrip("-")
            if rule == "*" or (referrer and _host_matches(referrer, rule)):
                referrer_ok = not negate
    if referrer_ok and (not listing or ".rlistings" in items):
        return True
    if ctx.user_id is None:
        return False
    projects = {p for p in (ctx.project_id, ctx.project_name) if p}
    users = {u for u in (ctx.user_id, ctx.user_name) if u}
    roles = {r.lower() for r in ctx.roles}
    for item in items:
        if item.startswith("."):
            continue
        if ":" in item:
            proj, _, user = item.partition(":")
            if (proj == "*" or proj in projects) and (user == "*" or user in users):
                return True
        elif item.lower() in roles:
            return True
    return False


def _host_matches(referrer: str, rule: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(referrer).hostname or ""
    if rule.startswith("."):
        return host.endswith(rule) or host == rule[1:]
    return host == rule


_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _parse_sig(sig: str) -> tuple[str, bytes] | None:
    """hex sha1/sha256/sha512 by length, or '<algo>:<base64>' as swift accepts."""
    if ":" in sig:
        algo, _, b64 = sig.partition(":")
        if algo not in _DIGESTS:
            return None
        try:
            raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (binascii.Error, ValueError):
            return None
        return algo, raw
    algo = {40: "sha1", 64: "sha256", 128: "sha512"}.get(len(sig))
    if algo is None:
        return None
    try:
        return algo, bytes.fromhex(sig)
    except ValueError:
        return None


def _parse_expires(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None


def tempurl_valid(query: Any, method: str, paths: list[str], keys: list[str]) -> bool:
    """Check a TempURL (temp_url_sig, temp_url_expires, optional temp_url_prefix).

    ``paths`` are the object paths the signature may cover (with and without the mount
    prefix; clients sign whichever path they were given).
    """
    sig = query.get("temp_url_sig")
    expires_raw = query.get("temp_url_expires")
    if not sig or not expires_raw or not keys:
        return False
    expires = _parse_expires(expires_raw)
    if expires is None or expires < time.time():
        return False
    parsed = _parse_sig(sig)
    if parsed is None:
        return False
    algo, wanted = parsed
    prefix = query.get("temp_url_prefix")
    candidates: list[str] = []
    for path in paths:
        if prefix is not None:
            base = _container_path(path)
            if base is None or not path[len(base) + 1:].startswith(prefix):
                continue
            candidates.append(f"prefix:{base}/{prefix}")
        else:
            candidates.append(path)
    methods = [method] + (["GET", "PUT", "POST"] if method == "HEAD" else [])
    for key in keys:
        for m in methods:
            for path in candidates:
                body = f"{m}\n{expires_raw}\n{path}".encode()
                mac = hmac.new(key.encode(), body, _DIGESTS[algo]).digest()
                if hmac.compare_digest(mac, wanted):
                    return True
    return False


def _container_path(path: str) -> str | None:
    """'/x/v1/AUTH_a/c/o/p' -> '/x/v1/AUTH_a/c' (the part up to the container)."""
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part.startswith(RESELLER_PREFIX) and i + 1 < len(parts):
            return "/".join(parts[:i + 2])
    return None


def formpost_signature_ok(key: str, path: str, redirect: str, max_file_size: str,
                          max_file_count: str, expires: str, signature: str) -> bool:
    parsed = _parse_sig(signature)
    if parsed is None:
        return False
    algo, wanted = parsed
    body = f"{path}\n{redirect}\n{max_file_size}\n{max_file_count}\n{expires}".encode()
    return hmac.compare_digest(hmac.new(key.encode(), body, _DIGESTS[algo]).digest(), wanted)
