"""`pocketstack keys rotate` runs in another process; the server kept encrypting with the
old primary and kept accepting tokens whose key had been pruned. The codec now re-reads
the key repository when its directory changes."""

from __future__ import annotations

import time

import pytest

from pocketstack.errors import NotFound
from pocketstack.services.identity.keys import KeyRepository
from pocketstack.services.identity.tokens import TokenCodec, TokenPayload


def payload() -> TokenPayload:
    now = time.time()
    return TokenPayload("u", ("password",), "unscoped", None, now, now + 60, ("a",))


def test_codec_follows_rotation_by_another_process(tmp_path):
    server_keys = KeyRepository(tmp_path / "keys", 3)
    server_keys.setup()
    codec = TokenCodec(server_keys)
    codec.RECHECK_SECONDS = 0  # check the directory on every call
    old = codec.encode(payload())

    other = KeyRepository(tmp_path / "keys", 3)  # the CLI's view of the same directory
    other.rotate()
    new = codec.encode(payload())
    assert codec.decode(old).user_id == "u"

    other.rotate()  # prunes the key that signed `old`
    assert codec.decode(new).user_id == "u"  # signed with the key promoted by rotation 1
    with pytest.raises(NotFound):
        codec.decode(old)
