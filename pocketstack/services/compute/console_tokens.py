"""One-time console tokens (Nova's console_auth_tokens table).

A token is 32 random bytes (urlsafe base64); only its sha256 is stored, so a database dump
cannot be replayed against the proxy. A token names one server, its project, the console
protocol and the host the server ran on when it was issued; it expires after
``[compute] console_token_ttl`` seconds and is consumed by the first WebSocket that
presents it (a conditional DELETE: of two racing connects, exactly one wins).
Expired rows are purged whenever a token is issued, so the table stays small.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Integer, String, delete, select
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import Base, UTCDateTime, utcnow

TOKEN_BYTES = 32
# Upper bound on what may be a token: anything longer is refused before hashing.
MAX_TOKEN_CHARS = 128


class ConsoleToken(Base):
    __tablename__ = "compute_console_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str] = mapped_column(String(16))  # vnc, spice, serial
    console_type: Mapped[str] = mapped_column(String(32))  # novnc, spice-html5, serial
    host: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


@dataclass(frozen=True)
class TokenInfo:
    """What a (valid) token grants."""

    server_id: str
    project_id: str
    protocol: str
    console_type: str
    host: str
    expires_at: dt.datetime


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def plausible(token: str | None) -> bool:
    """Cheap shape check before any database work (urlsafe base64 of TOKEN_BYTES)."""
    return bool(token) and len(token) <= MAX_TOKEN_CHARS and all(
        c.isascii() and (c.isalnum() or c in "-_") for c in token)


def _now(now: dt.datetime | None) -> dt.datetime:
    """Naive UTC, as the database keeps it."""
    if now is None:
        return utcnow()
    if now.tzinfo is not None:
        now = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return now


def _info(row: ConsoleToken) -> TokenInfo:
    return TokenInfo(row.server_id, row.project_id, row.protocol, row.console_type, row.host,
                     row.expires_at)


class TokenStore:
    def __init__(self, db, ttl: int) -> None:  # noqa: ANN001 - pocketstack.db.engine.Database
        self.db = db
        self.ttl = ttl

    def issue(self, *, server_id: str, project_id: str, protocol: str, console_type: str,
              host: str, now: dt.datetime | None = None) -> str:
        """A new token; the plain value is returned once and never stored."""
        now = _now(now)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        with self.db.write() as s:
            s.execute(delete(ConsoleToken).where(ConsoleToken.expires_at <= now))
            s.add(ConsoleToken(token_hash=hash_token(token), server_id=server_id,
                               project_id=project_id, protocol=protocol,
                               console_type=console_type, host=host, created_at=now,
                               expires_at=now + dt.timedelta(seconds=self.ttl)))
        return token

    def peek(self, token: str, now: dt.datetime | None = None) -> TokenInfo | None:
        """The token's grant without consuming it (os-console-auth-tokens); None if unknown
        or expired."""
        if not plausible(token):
            return None
        now = _now(now)
        with self.db.read() as s:
            row = s.execute(select(ConsoleToken).where(
                ConsoleToken.token_hash == hash_token(token))).scalar_one_or_none()
            if row is None or row.expires_at <= now:
                return None
            return _info(row)

    def consume(self, token: str, now: dt.datetime | None = None) -> TokenInfo | None:
        """Use the token up: its grant if it was valid, None if unknown, expired or already
        used. The row is deleted in the same transaction that reads it, with a conditional
        DELETE whose row count decides who won a race."""
        if not plausible(token):
            return None
        now = _now(now)
        digest = hash_token(token)
        with self.db.write() as s:
            row = s.execute(select(ConsoleToken).where(
                ConsoleToken.token_hash == digest)).scalar_one_or_none()
            if row is None:
                return None
            info = _info(row)
            won = s.execute(delete(ConsoleToken).where(
                ConsoleToken.id == row.id)).rowcount == 1
        if not won or info.expires_at <= now:
            return None
        return info

    def purge_expired(self, now: dt.datetime | None = None) -> int:
        with self.db.write() as s:
            return s.execute(delete(ConsoleToken).where(
                ConsoleToken.expires_at <= _now(now))).rowcount or 0

    def revoke_server(self, server_id: str) -> int:
        """Drop every outstanding token of a server (deleted, stopped)."""
        with self.db.write() as s:
            return s.execute(delete(ConsoleToken).where(
                ConsoleToken.server_id == server_id)).rowcount or 0
