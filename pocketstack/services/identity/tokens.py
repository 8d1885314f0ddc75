"""Fernet tokens: issue, validate (cached), revoke.

A token is a Fernet message of a msgpack list; it carries who, how, which scope, when it
expires and its audit ids. Validation decrypts it, then checks the database for what can
change after issue: user/project/domain still enabled, the user's ``tokens_valid_after``
(password change, disable), the token's audit id in ``revoked_token`` (a primary-key
lookup, so cost does not grow with the number of revocations), and computes the current
roles. The result is cached briefly; revocations and identity writes in this process
clear the cache at once.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
import uuid
from base64 import urlsafe_b64encode
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgpack
from cryptography.fernet import InvalidToken

from pocketstack.errors import NotFound, Unauthorized
from pocketstack.services.identity.keys import KeyRepository

PAYLOAD_VERSION = 2  # 2 adds trust_id; version 1 tokens still validate


def new_audit_id() -> str:
    return urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass(frozen=True)
class TokenPayload:
    user_id: str
    methods: tuple[str, ...]
    scope_kind: str  # "project" | "domain" | "system" | "unscoped"
    scope_id: str | None
    issued_at: float
    expires_at: float
    audit_ids: tuple[str, ...]
    app_cred_id: str | None = None
    trust_id: str | None = None

    def pack(self) -> bytes:
        return msgpack.packb([PAYLOAD_VERSION, self.user_id, list(self.methods), self.scope_kind,
                              self.scope_id, self.issued_at, self.expires_at,
                              list(self.audit_ids), self.app_cred_id, self.trust_id])

    @classmethod
    def unpack(cls, raw: bytes) -> "TokenPayload":
        fields = msgpack.unpackb(raw)
        if fields[0] == 1 and len(fields) == 9:
            fields = [*fields, None]
        elif fields[0] != PAYLOAD_VERSION or len(fields) != 10:
            raise ValueError("unknown token payload version")
        _, user_id, methods, kind, scope_id, iat, exp, audit, app_cred, trust = fields
        return cls(user_id, tuple(methods), kind, scope_id, iat, exp, tuple(audit), app_cred,
                   trust)

    @property
    def expires(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.expires_at, dt.timezone.utc).replace(tzinfo=None)

    @property
    def issued(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.issued_at, dt.timezone.utc).replace(tzinfo=None)


@dataclass
class TokenInfo:
    """A validated token: its payload plus what the database says now."""

    token: str
    payload: TokenPayload
    user: dict[str, Any]  # id, name, domain {id, name}, password_expires_at
    project: dict[str, Any] | None = None  # id, name, domain {id, name}
    domain: dict[str, Any] | None = None  # id, name
    roles: list[dict[str, str]] = field(default_factory=list)  # id, name (domain_id if any)
    app_cred: dict[str, Any] | None = None
    trust: dict[str, Any] | None = None  # OS-TRUST:trust of a trust-scoped token
    is_admin_project: bool = False
    # Rendered response bodies by (nocatalog, catalog version): a cached TokenInfo never
    # changes, so validating it again need not render it again.
    rendered: dict[Any, bytes] = field(default_factory=dict, repr=False, compare=False)


class TokenCodec:
    """Encrypts with the primary key, decrypts with any key of the repository.

    `pocketstack keys rotate` runs in another process, so the repository is re-read when
    its directory changed (checked before signing, and at most once a second before
    decrypting): new tokens use the new primary, and tokens signed by a pruned key stop
    validating, as with Keystone.
    """

    RECHECK_SECONDS = 1.0

    def __init__(self, keys: KeyRepository) -> None:
        self.keys = keys
        self._fernet = keys.fernet()
        self._stamp = self._dir_stamp()
        self._checked = time.monotonic()

    def _dir_stamp(self) -> tuple:
        # The key file names change with every rotation (a new primary number), so they
        # catch changes a coarse directory mtime could miss.
        try:
            return os.stat(self.keys.path).st_mtime_ns, tuple(sorted(os.listdir(self.keys.path)))
        except OSError:
            return (0, ())

    def reload(self) -> None:
        self._stamp = self._dir_stamp()
        self._fernet = self.keys.fernet()

    def _fresh(self, always: bool = False) -> None:
        now = time.monotonic()
        if always or now - self._checked >= self.RECHECK_SECONDS:
            self._checked = now
            if self._dir_stamp() != self._stamp:
                self.reload()

    def encode(self, payload: TokenPayload) -> str:
        # Always current when signing (a stat and a listdir, next to a password hash): a
        # token signed with a just-demoted key would die at the next rotation.
        self._fresh(always=True)
        return self._fernet.encrypt(payload.pack()).decode().rstrip("=")

    def decode(self, token: str) -> TokenPayload:
        self._fresh()
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = self._fernet.decrypt(padded.encode())
        except (InvalidToken, ValueError, TypeError):
            # keys may have been rotated by `pocketstack keys rotate` in another process
            self.reload()
            try:
                raw = self._fernet.decrypt(padded.encode())
            except (InvalidToken, ValueError, TypeError):
                raise NotFound("Could not recognize Fernet token") from None
        try:
            return TokenPayload.unpack(raw)
        except Exception:  # noqa: BLE001 - any malformed payload is an unknown token
            raise NotFound("Could not recognize Fernet token") from None


class TokenCache:
    """LRU of validated tokens with a short TTL; ``clear`` on any identity write."""

    def __init__(self, ttl: float, size: int = 10000) -> None:
        self.ttl = ttl
        self.size = size
        self._data: OrderedDict[str, tuple[float, TokenInfo]] = OrderedDict()
        self._lock = threading.Lock()
        self.generation = 0

    def get(self, token: str) -> TokenInfo | None:
        if self.ttl <= 0:
            return None
        item = self._data.get(token)
        if item is None:
            return None
        stamp, info = item
        now = time.monotonic()
        if now - stamp > self.ttl or info.payload.expires_at <= time.time():
            self._data.pop(token, None)
            return None
        return info

    def put(self, token: str, info: TokenInfo, generation: int) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if generation != self.generation:
                return  # an invalidation happened while we were validating
            self._data[token] = (time.monotonic(), info)
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._data.clear()


def generate_secret() -> str:
    return secrets.token_urlsafe(48)


def check_not_expired(payload: TokenPayload, allow_expired: bool = False) -> None:
    if not allow_expired and payload.expires_at <= time.time():
        raise NotFound("The token has expired.")


def ensure_authenticated(found: bool) -> None:
    if not found:
        raise Unauthorized("The request you have made requires authentication.")
