"""SSE's CTR transform from any offset, SSE-C key checks, the cloud key file, and the
additional checksums (unit level; the clients' view is in tests/functional/s3)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import stat
import zlib

import pytest

from pocketstack.errors import BadRequest, Forbidden, PocketError
from pocketstack.services.s3 import checksums, sse


def headers_for(key: bytes, prefix: str = sse.CUSTOMER) -> dict[str, str]:
    return {prefix + "algorithm": "AES256", prefix + "key": base64.b64encode(key).decode(),
            prefix + "key-md5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def test_ctr_decrypts_any_range_and_is_not_identity():
    key = sse.Key("C", os.urandom(32))
    params = sse.new_params(key)
    data = os.urandom(5000)
    cipher = sse.transform(key, params, 0, data)
    assert cipher != data and len(cipher) == len(data)
    for start, end in ((0, 1), (15, 17), (16, 48), (1001, 4999), (4990, 5000)):
        assert sse.transform(key, params, start, cipher[start:end]) == data[start:end]
    # another object's IV gives another ciphertext for the same key and data
    assert sse.transform(key, sse.new_params(key), 0, data) != cipher


def test_customer_key_checks_and_unlock():
    key = os.urandom(32)
    k = sse.customer_key(headers_for(key))
    params = sse.new_params(k)
    assert key.hex() not in sse.dump(params) and base64.b64encode(key).decode() not in \
        sse.dump(params)
    assert sse.unlock(params, headers_for(key), None).key == key
    with pytest.raises(Forbidden):
        sse.unlock(params, headers_for(os.urandom(32)), None)
    with pytest.raises(BadRequest):
        sse.unlock(params, {}, None)
    bad_md5 = {**headers_for(key), sse.CUSTOMER + "key-md5": "AAAAAAAAAAAAAAAAAAAAAA=="}
    with pytest.raises(BadRequest):
        sse.customer_key(bad_md5)
    with pytest.raises(BadRequest):
        sse.customer_key(headers_for(os.urandom(16)))
    with pytest.raises(BadRequest):
        sse.customer_key({**headers_for(key), sse.CUSTOMER + "algorithm": "AES128"})


def test_cloud_key_is_created_once_private(tmp_path):
    first = sse.cloud_key(tmp_path)
    assert len(first) == 32 and sse.cloud_key(tmp_path) == first
    assert stat.S_IMODE((tmp_path / sse.KEY_FILE).stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [sse.KEY_FILE]  # no temp file left
    assert sse.for_write({"x-amz-server-side-encryption": "AES256"}, tmp_path).key == first
    with pytest.raises(PocketError) as err:
        sse.for_write({"x-amz-server-side-encryption": "aws:kms"}, tmp_path)
    assert err.value.status == 501


def _drain(source, checksum, length=None):
    async def gen():
        for chunk in source:
            yield chunk

    async def run():
        return b"".join([c async for c in checksums.computed(gen(), checksum, length)])
    return asyncio.run(run())


def test_checksums_checked_at_the_end():
    data = [b"hello ", b"world"]
    crc = base64.b64encode(zlib.crc32(b"hello world").to_bytes(4, "big")).decode()
    ok = checksums.from_request({"x-amz-checksum-crc32": crc})
    assert _drain(data, ok, "11") == b"hello world" and ok.value() == crc
    bad = checksums.from_request({"x-amz-checksum-sha256": base64.b64encode(
        hashlib.sha256(b"other").digest()).decode()})
    with pytest.raises(BadRequest) as err:
        _drain(data, bad)
    assert err.value.kind == "BadDigest"
    with pytest.raises(PocketError) as err:
        checksums.from_request({"x-amz-checksum-crc32c": "AAAAAA=="})
    assert err.value.status == 501
    assert checksums.from_request({"x-amz-sdk-checksum-algorithm": "SHA1"}).algorithm == "sha1"
    assert checksums.from_request({"x-amz-checksum-mode": "ENABLED"}) is None
