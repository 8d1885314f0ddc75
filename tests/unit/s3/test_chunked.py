"""aws-chunked bodies: chunk signatures (checked against AWS's published example), the
signed trailer, trailer checksums and malformed framing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import zlib

import pytest

from pocketstack.errors import PocketError
from pocketstack.services.s3.chunked import aws_chunked
from pocketstack.services.s3.sigv4 import ChunkSigner, _signing_key

# AWS's "Transferring Payload in Multiple Chunks" example (S3 API reference, SigV4
# streaming): the seed signature of its request and the signatures of its three chunks.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE, SCOPE = "20130524T000000Z", "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNKS = [(b"a" * 65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
          (b"a" * 1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
          (b"", "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9")]
KEY = _signing_key(SECRET, "20130524", "us-east-1", "s3")


def signer(trailer: bool = False) -> ChunkSigner:
    return ChunkSigner(KEY, DATE, SCOPE, SEED, trailer)


def wire(chunks: list[tuple[bytes, str]], tail: bytes = b"\r\n") -> bytes:
    out = b"".join(f"{len(d):x};chunk-signature={s}\r\n".encode() + d + b"\r\n"
                   for d, s in chunks[:-1])
    return out + f"0;chunk-signature={chunks[-1][1]}\r\n".encode() + tail


def decode(body: bytes, sig: ChunkSigner | None, trailer: str | None = None,
           piece: int = 7000) -> bytes:
    async def source():
        for i in range(0, len(body), piece):
            yield body[i:i + piece]

    async def collect() -> bytes:
        return b"".join([c async for c in aws_chunked(source(), sig, trailer)])

    return asyncio.run(collect())


def test_aws_example_verifies_and_decodes():
    assert decode(wire(CHUNKS), signer()) == b"a" * 66560


@pytest.mark.parametrize("piece", [1, 3, 65536 + 200])
def test_any_network_split_decodes_the_same(piece):
    assert decode(wire(CHUNKS), signer(), piece=piece) == b"a" * 66560


def test_tampered_chunk_is_refused():
    bad = [(b"b" + CHUNKS[0][0][1:], CHUNKS[0][1]), *CHUNKS[1:]]
    with pytest.raises(PocketError) as err:
        decode(wire(bad), signer())
    assert err.value.status == 403 and err.value.kind == "SignatureDoesNotMatch"


def test_chunks_cannot_be_reordered_or_dropped():
    with pytest.raises(PocketError) as err:
        decode(wire([CHUNKS[1], CHUNKS[0], CHUNKS[2]]), signer())
    assert err.value.status == 403
    with pytest.raises(PocketError):  # the last data chunk cut off: final signature breaks
        decode(wire([CHUNKS[0], CHUNKS[2]]), signer())


def test_missing_chunk_signature_is_refused():
    body = wire(CHUNKS).replace(f";chunk-signature={CHUNKS[1][1]}".encode(), b"", 1)
    with pytest.raises(PocketError) as err:
        decode(body, signer())
    assert err.value.status == 403


def test_truncated_and_malformed_bodies_are_400():
    body = wire(CHUNKS)
    for broken, sig in ((body[:60000], signer()), (body[:-40], signer()),
                        (b"zz;chunk-signature=00\r\n", None), (b"10\r\nshort", None),
                        (b"5\r\nhelloXX0\r\n\r\n", None)):
        with pytest.raises(PocketError) as err:
            decode(broken, sig)
        assert err.value.status == 400, broken[-30:]


def _trailer_sig(previous: str, canonical: str) -> str:
    to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", DATE, SCOPE, previous,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    return hmac.new(KEY, to_sign.encode(), hashlib.sha256).hexdigest()


def test_signed_trailer_and_its_checksum():
    data = b"a" * 66560
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    canonical = f"x-amz-checksum-crc32:{crc}\n"
    good = _trailer_sig(CHUNKS[-1][1], canonical)
    tail = f"x-amz-checksum-crc32:{crc}\r\nx-amz-trailer-signature:{good}\r\n\r\n".encode()
    assert decode(wire(CHUNKS, tail), signer(True), "x-amz-checksum-crc32") == data
    forged = tail.replace(good.encode(), b"0" * 64)
    with pytest.raises(PocketError) as err:
        decode(wire(CHUNKS, forged), signer(True), "x-amz-checksum-crc32")
    assert err.value.status == 403
    with pytest.raises(PocketError):  # signed-trailer mode without a trailer signature
        decode(wire(CHUNKS, f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode()), signer(True),
               "x-amz-checksum-crc32")


def test_unsigned_trailer_checksum_mismatch_is_bad_digest():
    data = b"hello"
    body = (b"5\r\nhello\r\n0\r\n"
            b"x-amz-checksum-crc32:AAAAAA==\r\n\r\n")
    with pytest.raises(PocketError) as err:
        decode(body, None, "x-amz-checksum-crc32")
    assert err.value.status == 400 and err.value.kind == "BadDigest"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    ok = body.replace(b"AAAAAA==", crc.encode())
    assert decode(ok, None, "x-amz-checksum-crc32") == data
