"""S3 server-side encryption: SSE-C (the customer's key) and SSE-S3 (a key the cloud keeps).

Objects are encrypted with AES-256 in CTR mode (a random 16-byte IV per object), so the
stored size is the object's size and a range is decrypted from any offset. What an object
keeps in its system metadata (``X-Object-Sysmeta-S3-Sse``, never shown through Swift) is
the mode, the IV and, for SSE-C, a random salt and HMAC-SHA256(salt, key) to recognise the
right key: never the key. Swift clients read an encrypted object's stored bytes, i.e.
ciphertext, never plaintext.

SSE-S3's key is 32 random bytes in ``<data_dir>/s3-sse.key`` (0600, created atomically on
first use). SSE-KMS is not offered (501). Multipart uploads with SSE-C are refused (501):
parts are encrypted one by one, and the assembled object would need the key at completion.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from pocketstack.errors import BadRequest, Forbidden, PocketError
from pocketstack.services.s3.support import NotImplementedS3, has_prefix

META = "X-Object-Sysmeta-S3-Sse"
CUSTOMER = "x-amz-server-side-encryption-customer-"
COPY_CUSTOMER = "x-amz-copy-source-server-side-encryption-customer-"
KEY_FILE = "s3-sse.key"


def _bad(message: str, kind: str = "InvalidArgument") -> BadRequest:
    return BadRequest(message, kind=kind)


def not_implemented(what: str) -> PocketError:
    return NotImplementedS3(f"{what} is not implemented.")


@dataclass
class Key:
    mode: str  # "C" (customer key) or "S3" (the cloud's key)
    key: bytes

    @property
    def md5(self) -> str:
        return base64.b64encode(hashlib.md5(self.key, usedforsecurity=False).digest()).decode()

    def headers(self) -> dict[str, str]:
        if self.mode == "C":
            return {CUSTOMER + "algorithm": "AES256", CUSTOMER + "key-MD5": self.md5}
        return {"x-amz-server-side-encryption": "AES256"}


def customer_key(headers: Any, prefix: str = CUSTOMER) -> Key | None:
    """The SSE-C key a request carries (checked against its MD5), or None."""
    if not has_prefix(headers, prefix.encode()):
        return None
    alg, raw, md5 = (headers.get(prefix + n) for n in ("algorithm", "key", "key-md5"))
    if alg is None and raw is None and md5 is None:
        return None
    if alg != "AES256":
        raise _bad("The encryption algorithm specified is not valid." if alg else
                   "Requests specifying Server Side Encryption with Customer provided keys "
                   "must provide a valid encryption algorithm.",
                   "InvalidEncryptionAlgorithmError" if alg else "InvalidArgument")
    try:
        key = base64.b64decode(raw or "", validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise _bad("The secret key was invalid for the specified algorithm.")
    if md5 is None or not hmac.compare_digest(Key("C", key).md5, md5.strip()):
        raise _bad("The calculated MD5 hash of the key did not match the hash that was "
                   "provided.")
    return Key("C", key)


_master_lock = threading.Lock()


def cloud_key(data_dir: Path) -> bytes:
    """SSE-S3's key: created once (random, 0600, written atomically), then read."""
    path = data_dir / KEY_FILE
    with _master_lock:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, os.urandom(32))
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # never replaces a key another process made first
            except FileExistsError:
                pass
            finally:
                os.unlink(tmp)
            dfd = os.open(data_dir, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
            data = path.read_bytes()
    if len(data) != 32:
        raise PocketError("The cloud's SSE-S3 key file is damaged.", status=500)
    return data


def for_write(headers: Any, data_dir: Path) -> Key | None:
    """The key a PUT/copy asks its new object to be encrypted with."""
    if not has_prefix(headers, b"x-amz-server-side-encryption"):
        return None
    sse = headers.get("x-amz-server-side-encryption")
    key = customer_key(headers)
    if sse is not None:
        if key is not None:
            raise _bad("Server Side Encryption with Customer provided key is incompatible "
                       "with the encryption method specified", "InvalidArgument")
        if sse.startswith("aws:kms"):
            raise not_implemented("SSE-KMS")
        if sse != "AES256":
            raise _bad("The encryption method specified is not supported")
        if any(h.startswith("x-amz-server-side-encryption-") for h in
               (k.lower() for k in headers.keys())):
            raise not_implemented("SSE-KMS")
        return Key("S3", cloud_key(data_dir))
    return key


def new_params(key: Key) -> dict[str, str]:
    params = {"mode": key.mode, "iv": base64.b64encode(os.urandom(16)).decode()}
    if key.mode == "C":
        salt = os.urandom(16)
        params["salt"] = base64.b64encode(salt).decode()
        params["check"] = hmac.new(salt, key.key, hashlib.sha256).hexdigest()
    return params


def dump(params: dict[str, str]) -> str:
    return orjson.dumps(params).decode()


def params_of(meta: dict[str, Any]) -> dict[str, str] | None:
    value = meta.get(META)
    return orjson.loads(value) if value else None


def unlock(params: dict[str, str], headers: Any, data_dir: Path,
           prefix: str = CUSTOMER) -> Key:
    """The key that opens an object stored with ``params``, from the request."""
    given = customer_key(headers, prefix)
    if params["mode"] == "S3":
        if given is not None:
            raise _bad("The encryption parameters are not applicable to this object.",
                       "InvalidRequest")
        return Key("S3", cloud_key(data_dir))
    if given is None:
        raise _bad("The object was stored using a form of Server Side Encryption. The "
                   "correct parameters must be provided to retrieve the object.",
                   "InvalidRequest")
    check = hmac.new(base64.b64decode(params["salt"]), given.key, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(check, params["check"]):
        raise Forbidden("Access Denied", kind="AccessDenied")
    return given


def _cipher(key: Key, params: dict[str, str], offset: int) -> Any:
    """A CTR keystream positioned at byte ``offset`` of the object."""
    iv = int.from_bytes(base64.b64decode(params["iv"]), "big")
    counter = ((iv + offset // 16) % (1 << 128)).to_bytes(16, "big")
    ctx = Cipher(algorithms.AES(key.key), modes.CTR(counter)).encryptor()
    if offset % 16:
        ctx.update(b"\0" * (offset % 16))
    return ctx


def transform(key: Key, params: dict[str, str], offset: int, data: bytes) -> bytes:
    """Encrypt or decrypt (CTR: the same) ``data`` found at ``offset`` of the object."""
    return _cipher(key, params, offset).update(data)


async def transform_stream(source: AsyncIterator[bytes], key: Key, params: dict[str, str],
                           offset: int = 0) -> AsyncIterator[bytes]:
    ctx = _cipher(key, params, offset)
    async for chunk in source:
        yield ctx.update(chunk)


async def encrypt_body(source: AsyncIterator[bytes], key: Key, params: dict[str, str],
                       content_md5: str | None, sha256: str | None,
                       digests: dict[str, str]) -> AsyncIterator[bytes]:
    """A request body encrypted as it passes; Content-MD5 and the signed payload hash
    (x-amz-content-sha256) are checked on the plaintext, whose MD5 goes to ``digests``
    (an SSE-S3 object's ETag is its plaintext's MD5, as in S3; an SSE-C object's is not,
    which would tell something of data only the key should open)."""
    ctx = _cipher(key, params, 0)
    md5 = hashlib.md5(usedforsecurity=False)
    digest = hashlib.sha256() if sha256 else None
    async for chunk in source:
        md5.update(chunk)
        if digest is not None:
            digest.update(chunk)
        yield ctx.update(chunk)
    if digest is not None and digest.hexdigest() != sha256:
        raise BadRequest("The provided 'x-amz-content-sha256' header does not match what "
                         "was computed.", kind="XAmzContentSHA256Mismatch")
    if content_md5 and base64.b64encode(md5.digest()).decode() != content_md5.strip():
        raise BadRequest("The Content-MD5 you specified did not match what we received.",
                         kind="BadDigest")
    digests["md5"] = md5.hexdigest()


def transform_iter(source: Iterator[bytes], key: Key, params: dict[str, str],
                   offset: int = 0) -> Iterator[bytes]:
    ctx = _cipher(key, params, offset)
    for chunk in source:
        yield ctx.update(chunk)
