"""aws-chunked request bodies (``Content-Encoding: aws-chunked``).

Wire format: ``<hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n`` ... a zero-size chunk,
then optional trailer lines (``x-amz-checksum-<algo>:<base64>``, and for the signed
trailer mode ``x-amz-trailer-signature:<sig>``), then ``\\r\\n``.

With ``x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` the header
signature covers only the headers; each chunk carries a signature chained from the one
before (the first from the request's own), so every chunk, the end of the body and the
trailer are checked here (``sigv4.ChunkSigner``). A checksum trailer is compared with the
data as received (crc32, sha1, sha256; crc32c needs a library we do not carry and is only
recorded by the client). Any mismatch refuses the upload before anything is stored.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import AsyncIterator

from pocketstack.errors import BadRequest
from pocketstack.services.s3.sigv4 import ChunkSigner, signature_mismatch

MAX_LINE = 4096  # a chunk header or trailer line longer than this is not aws-chunked


class _Checksum:
    """The trailer checksum the client announced (x-amz-trailer), computed as data goes."""

    def __init__(self, name: str) -> None:
        self.name = name
        algo = name.removeprefix("x-amz-checksum-")
        self.crc = 0 if algo == "crc32" else None
        self.hash = hashlib.new(algo) if algo in ("sha1", "sha256") else None

    def update(self, data: bytes) -> None:
        if self.crc is not None:
            self.crc = zlib.crc32(data, self.crc)
        elif self.hash is not None:
            self.hash.update(data)

    def check(self, value: str) -> None:
        if self.crc is not None:
            digest = self.crc.to_bytes(4, "big")
        elif self.hash is not None:
            digest = self.hash.digest()
        else:
            return
        if base64.b64encode(digest).decode() != value.strip():
            raise BadRequest(f"The {self.name} you specified did not match the calculated "
                             "checksum.", kind="BadDigest")


async def aws_chunked(source: AsyncIterator[bytes], signer: ChunkSigner | None = None,
                      trailer: str | None = None) -> AsyncIterator[bytes]:
    """Decode (and, with ``signer``, verify) an aws-chunked body, yielding the data."""
    buf = b""
    it = source.__aiter__()
    checksum = _Checksum(trailer.strip().lower()) if trailer else None

    async def more() -> bool:
        nonlocal buf
        try:
            buf += await it.__anext__()
            return True
        except StopAsyncIteration:
            return False

    async def line() -> bytes | None:
        nonlocal buf
        while b"\r\n" not in buf:
            if len(buf) > MAX_LINE:
                raise BadRequest("Malformed aws-chunked body", kind="InvalidRequest")
            if not await more():
                return None
        out, buf = buf.split(b"\r\n", 1)
        return out

    while True:
        head = await line()
        if head is None:
            raise BadRequest("Incomplete aws-chunked body", kind="IncompleteBody")
        size_hex, _, ext = head.partition(b";")
        try:
            size = int(size_hex.strip(), 16)
        except ValueError:
            raise BadRequest("Malformed aws-chunked body", kind="InvalidRequest") from None
        while len(buf) < size + (2 if size else 0):
            if not await more():
                raise BadRequest("Incomplete aws-chunked body", kind="IncompleteBody")
        data = buf[:size]
        if signer is not None:
            key, _, sig = ext.decode("latin-1").partition("=")
            if key.strip() != "chunk-signature" or not sig:
                raise signature_mismatch()
            signer.check_chunk(data, sig.strip())
        if size == 0:
            break
        if buf[size:size + 2] != b"\r\n":
            raise BadRequest("Malformed aws-chunked body", kind="InvalidRequest")
        buf = buf[size + 2:]
        if checksum is not None:
            checksum.update(data)
        yield data
    # Trailers: "name:value" lines up to an empty line (or the end of the body).
    trailers: list[tuple[str, str]] = []
    trailer_sig = None
    while True:
        raw = await line()
        if raw is None:
            if buf.strip():
                raise BadRequest("Malformed aws-chunked trailer", kind="InvalidRequest")
            break
        if not raw:
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise BadRequest("Malformed aws-chunked trailer", kind="InvalidRequest")
        name = name.strip().lower()
        if name == "x-amz-trailer-signature":
            trailer_sig = value.strip()
        else:
            trailers.append((name, value.strip()))
    if signer is not None and signer.trailer:
        if trailer_sig is None:
            raise signature_mismatch()
        signer.check_trailer(trailers, trailer_sig)
    for name, value in trailers:
        if checksum is not None and name == checksum.name:
            checksum.check(value)
