"""Who is asking: the RequestContext built from a validated token, passed to every service call."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


def new_request_id() -> str:
    """``req-`` + a random (version 4) UUID, unique but not secret: drawn from
    ``random`` (50 ns) rather than os.urandom, whose getrandom() call drops the GIL and
    left the event loop waiting to take it back from busy worker threads on every
    request (uuid4 does the same, and costs more)."""
    h = f"{random.getrandbits(128):032x}"
    return f"req-{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


# The RFC 4122 variant bits (10xx) on the first hex digit of the fourth group.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


@dataclass(frozen=True)
class RequestContext:
    user_id: str | None = None
    user_name: str | None = None
    user_domain_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    project_domain_id: str | None = None
    domain_id: str | None = None  # set for domain-scoped tokens
    domain_name: str | None = None
    system_scope: str | None = None  # "all" for system-scoped tokens
    roles: frozenset[str] = frozenset()
    auth_token: str | None = None
    audit_ids: tuple[str, ...] = ()
    app_cred_id: str | None = None
    request_id: str = field(default_factory=new_request_id)
    global_request_id: str | None = None
    # Used by internal callers (workers, bootstrap, orchestration engine acting as the service).
    is_internal: bool = False

    @property
    def is_admin(self) -> bool:
        """Cloud admin in the legacy sense OpenStack services still use: the admin role.

        Like Nova/Neutron/Cinder with the default (non-enforce-scope) policies, an admin
        role on any project scope is treated as cloud admin; so is a system-scoped admin.
        """
        return self.is_internal or "admin" in self.roles

    @property
    def is_system(self) -> bool:
        return self.system_scope == "all"

    def has_role(self, *names: str) -> bool:
        return any(n in self.roles for n in names)

    def as_target(self) -> dict[str, Any]:
        return {"project_id": self.project_id, "user_id": self.user_id, "domain_id": self.domain_id}

    @classmethod
    def internal(cls, project_id: str | None = None) -> "RequestContext":
        return cls(is_internal=True, roles=frozenset({"admin"}), project_id=project_id,
                   system_scope="all")
