"""Password and secret hashing (argon2id), with a cost taken from settings."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from pocketstack.config import IdentitySettings


class Hasher:
    def __init__(self, settings: IdentitySettings) -> None:
        self._ph = PasswordHasher(time_cost=settings.argon2_time_cost,
                                  memory_cost=settings.argon2_memory_cost,
                                  parallelism=settings.argon2_parallelism)
        self._dummy_hash: str | None = None

    @property
    def _dummy(self) -> str:
        # A hash of nothing, verified against when the user does not exist, so that an
        # unknown user and a wrong password take the same time and answer alike. Made on
        # first use: hashing costs tens of milliseconds that start-up need not pay.
        if self._dummy_hash is None:
            self._dummy_hash = self._ph.hash("pocketstack-no-such-user")
        return self._dummy_hash

    def hash(self, secret: str) -> str:
        return self._ph.hash(secret)

    def verify(self, hashed: str | None, secret: str) -> bool:
        try:
            return self._ph.verify(hashed or self._dummy, secret) and hashed is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
