"""S3 additional checksums (``x-amz-checksum-<algorithm>``) on uploads.

A checksum the client sends, as a header or announced as an aws-chunked trailer, is
computed over the data as it arrives and a mismatch refuses the upload before anything
is stored (BadDigest). A whole object's checksum is kept in its system metadata and
returned by GET/HEAD with ``x-amz-checksum-mode: ENABLED`` (not for ranges), as S3 does.

CRC32, SHA-1 and SHA-256 are computed with the standard library. CRC32C and CRC64NVME
need a native library we do not carry: a request using them is refused (501), never
stored unchecked.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator
from typing import Any

from pocketstack.errors import BadRequest, PocketError
from pocketstack.services.s3.support import has_prefix

SUPPORTED = ("crc32", "sha1", "sha256")
KNOWN = SUPPORTED + ("crc32c", "crc64nvme")
STORED = "X-Object-Sysmeta-S3-Checksum"  # "<algorithm>:<base64>"


class Checksum:
    def __init__(self, algorithm: str, expected: str | None) -> None:
        self.algorithm = algorithm
        self.expected = expected
        self.crc = 0 if algorithm == "crc32" else None
        self.hash = hashlib.new(algorithm) if algorithm != "crc32" else None

    @property
    def header(self) -> str:
        return "x-amz-checksum-" + self.algorithm

    def update(self, data: bytes) -> None:
        if self.crc is not None:
            self.crc = zlib.crc32(data, self.crc)
        else:
            assert self.hash is not None
            self.hash.update(data)

    def value(self) -> str:
        digest = self.crc.to_bytes(4, "big") if self.crc is not None else \
            self.hash.digest()  # type: ignore[union-attr]
        return base64.b64encode(digest).decode()

    def check(self) -> None:
        if self.expected is not None and self.expected.strip() != self.value():
            raise BadRequest(f"The {self.algorithm.upper()} you specified did not match the "
                             "calculated checksum.", kind="BadDigest")


def _unsupported(algorithm: str) -> PocketError:
    return PocketError(f"Checksum algorithm {algorithm.upper()} is not implemented.",
                       status=501, kind="NotImplemented")


def from_request(headers: Any) -> Checksum | None:
    """The checksum an upload asks for: a header's value, or an algorithm whose value comes
    in the trailer (checked by chunked.py) or that the SDK names without a value."""
    if not has_prefix(headers, b"x-amz-checksum-", b"x-amz-trailer",
                      b"x-amz-sdk-checksum-algorithm"):
        return None
    sent = [(k.lower()[len("x-amz-checksum-"):], v) for k, v in headers.items()
            if k.lower().startswith("x-amz-checksum-") and k.lower() not in
            ("x-amz-checksum-mode", "x-amz-checksum-type", "x-amz-checksum-algorithm")]
    if len(sent) > 1:
        raise BadRequest("Expecting a single x-amz-checksum- header. Multiple checksum Types "
                         "are not allowed.", kind="InvalidRequest")
    if sent:
        algorithm, value = sent[0]
        if algorithm not in KNOWN:
            raise BadRequest(f"Unknown checksum x-amz-checksum-{algorithm}",
                             kind="InvalidRequest")
        if algorithm not in SUPPORTED:
            raise _unsupported(algorithm)
        return Checksum(algorithm, value)
    trailer = (headers.get("x-amz-trailer") or "").strip().lower()
    named = trailer.removeprefix("x-amz-checksum-") if trailer.startswith("x-amz-checksum-") \
        else (headers.get("x-amz-sdk-checksum-algorithm") or "").strip().lower()
    if not named:
        return None
    if named not in KNOWN:
        raise BadRequest(f"Unknown checksum algorithm {named}", kind="InvalidRequest")
    if named not in SUPPORTED:
        raise _unsupported(named)
    return Checksum(named, None)  # the trailer's value is checked by chunked.py


async def computed(source: AsyncIterator[bytes], checksum: Checksum,
                   length: str | None) -> AsyncIterator[bytes]:
    """Pass the body through, computing the checksum; check it at the end."""
    size = 0
    async for chunk in source:
        size += len(chunk)
        checksum.update(chunk)
        yield chunk
    if length is not None and length.isdigit() and size != int(length):
        raise BadRequest("You did not provide the number of bytes specified by the "
                         "Content-Length HTTP header.", kind="IncompleteBody")
    checksum.check()


def response_headers(meta: dict[str, Any], headers: Any, ranged: bool) -> dict[str, str]:
    """x-amz-checksum-<algorithm> for GET/HEAD with x-amz-checksum-mode: ENABLED."""
    stored = meta.get(STORED)
    if not stored or ranged or (headers.get("x-amz-checksum-mode") or "").upper() != "ENABLED":
        return {}
    algorithm, _, value = stored.partition(":")
    return {"x-amz-checksum-" + algorithm: value, "x-amz-checksum-type": "FULL_OBJECT"}
