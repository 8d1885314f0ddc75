"""The dashboard's session: a signed cookie holding the Keystone token and a CSRF secret.

The cookie is signed (itsdangerous, HMAC-SHA1 over a key derived from a secret kept in the
data dir) so a browser cannot forge a session; it is HttpOnly (scripts never see the
token), SameSite=Strict (no cross-site request carries it) and scoped to /dashboard. The
token inside is an ordinary Keystone token: every request validates it through the
identity service like an X-Auth-Token, so revoking it (logout, password change, role
removal) ends the session everywhere.

CSRF: the session holds a random ``csrf`` value; every form carries it in a hidden field
and htmx requests in an ``X-CSRF-Token`` header; every POST compares (constant time).
Anonymous visitors get a session with only ``csrf`` so that the login form is protected too.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Any

COOKIE = "pocketstack_dashboard"
PATH = "/dashboard"
MAX_AGE = 12 * 3600  # no session outlives a day's work; the token's own expiry applies too


def load_secret(data_dir: Path) -> bytes:
    """The signing secret, created once, atomically (a rival process creating it at the same
    moment loses the link() and reads the winner's)."""
    path = data_dir / "dashboard-secret"
    try:
        return bytes.fromhex(path.read_text().strip())
    except (OSError, ValueError):
        pass
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = data_dir / f".dashboard-secret.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)
    return bytes.fromhex(path.read_text().strip())


class Sessions:
    def __init__(self, secret: bytes) -> None:
        from itsdangerous import URLSafeTimedSerializer  # at the first page, not at start-up

        self.signer = URLSafeTimedSerializer(secret, salt="pocketstack-dashboard-session")

    def read(self, cookie: str | None) -> dict[str, Any] | None:
        from itsdangerous import BadSignature

        if not cookie:
            return None
        try:
            data = self.signer.loads(cookie, max_age=MAX_AGE)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        return data

    @staticmethod
    def new(token: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"csrf": secrets.token_urlsafe(24)}
        if token:
            data["token"] = token
        return data

    def cookie_header(self, data: dict[str, Any] | None, secure: bool) -> str:
        """A Set-Cookie value; ``None`` clears the cookie."""
        flags = f"; Path={PATH}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
        if data is None:
            return f"{COOKIE}=; Max-Age=0{flags}"
        return f"{COOKIE}={self.signer.dumps(data)}; Max-Age={MAX_AGE}{flags}"


def csrf_ok(session: dict[str, Any] | None, sent: str | None) -> bool:
    if not session or not sent:
        return False
    return hmac.compare_digest(session["csrf"].encode(), sent.encode())
