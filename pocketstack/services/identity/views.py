"""How Keystone resources look on the wire."""

from __future__ import annotations

from typing import Any

from pocketstack.db.base import isotime
from pocketstack.services.identity.tokens import TokenInfo


def _micro(value) -> str | None:  # noqa: ANN001
    return isotime(value, micro=True)


def token(info: TokenInfo, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
    p = info.payload
    user = dict(info.user)
    user["password_expires_at"] = _micro(user.get("password_expires_at"))
    body: dict[str, Any] = {
        "methods": list(p.methods),
        "user": user,
        "audit_ids": list(p.audit_ids),
        "expires_at": _micro(p.expires),
        "issued_at": _micro(p.issued),
    }
    if info.project is not None:
        body["project"] = info.project
        body["is_domain"] = False
    elif info.domain is not None:
        body["domain"] = info.domain
    elif p.scope_kind == "system":
        body["system"] = {"all": True}
    if p.scope_kind != "unscoped":
        body["roles"] = info.roles
    if info.project is not None:
        body["is_admin_project"] = info.is_admin_project
    if info.app_cred is not None:
        body["application_credential"] = info.app_cred
    if info.trust is not None:
        body["OS-TRUST:trust"] = info.trust
    if catalog is not None:
        body["catalog"] = catalog
    return {"token": body}


def links(base: str, path: str) -> dict[str, Any]:
    return {"self": f"{base}{path}"}
