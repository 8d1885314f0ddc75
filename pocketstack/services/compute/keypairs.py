"""Keypairs: generated (private key returned once) or imported; they belong to a user."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict, NotFound, OverQuota
from pocketstack.services.compute.models import KeyPair

_NAME_RE = re.compile(r"^[a-zA-Z0-9 _.@-]+\Z")


def fingerprint(public_key: str) -> str:
    """MD5 colon fingerprint of an OpenSSH public key, as Nova computes it."""
    try:
        blob = base64.b64decode(public_key.split()[1])
    except Exception:  # noqa: BLE001
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None
    digest = hashlib.md5(blob).hexdigest()  # noqa: S324 - the format Nova shows
    return ":".join(digest[i:i + 2] for i in range(0, 32, 2))


def generate(key_type: str = "ssh") -> tuple[str, str]:
    """(private key PEM/OpenSSH, public key in OpenSSH format). RSA 2048 like Nova."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public + " Generated-by-Nova"


def generate_ed25519() -> tuple[str, str]:
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, public


def x509_fingerprint(pem: str) -> str:
    """SHA-1 colon fingerprint of a PEM certificate (nova.crypto.generate_x509_fingerprint);
    anything that is not one is Nova's InvalidKeypair, a 400."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError) as exc:
        raise BadRequest("Keypair data is invalid: failed to generate X509 fingerprint. "
                         f"Error message: {exc}"[:500]) from None
    raw = cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303 - the format Nova shows
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


def generate_x509(user_id: str) -> tuple[str, str]:
    """(private key PEM, certificate PEM): nova.crypto.generate_winrm_x509_cert without the
    openssl process - RSA 2048, self-signed for ten years, CN the user id, a UPN
    subjectAltName user_id@localhost and clientAuth usage (what WinRM wants)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user_id or "nova")])
    upn = ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")
    value = f"{user_id}@localhost".encode()
    der_utf8 = b"\x0c" + bytes([len(value)]) + value  # a UTF8String, as openssl writes it
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
            .add_extension(x509.SubjectAlternativeName([x509.OtherName(upn, der_utf8)]),
                           False)
            .sign(key, hashes.SHA256()))
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return private, cert.public_bytes(serialization.Encoding.PEM).decode()


def _validate_public(public_key: str) -> None:
    try:
        serialization.load_ssh_public_key(public_key.strip().encode())
    except Exception:  # noqa: BLE001
        raise BadRequest("Keypair data is invalid: failed to generate fingerprint") from None


def create(svc, ctx: RequestContext, body: Any, *, allow_type: bool, allow_user: bool,
           import_only: bool = False) -> tuple[KeyPair, str | None]:
    """``import_only`` is 2.92: public_key is required (Nova no longer generates keys) and
    names may also hold "@" and "."; before it they may not."""
    if not isinstance(body, dict):
        raise BadRequest("Invalid input for field/attribute keypair: must be an object")
    allowed = {"name", "public_key"} | ({"type"} if allow_type else set()) | (
        {"user_id"} if allow_user else set())
    extra = set(body) - allowed
    if extra:
        raise BadRequest("Invalid input for field/attribute keypair. Additional properties are "
                         f"not allowed ({', '.join(repr(e) for e in sorted(extra))} were "
                         "unexpected)")
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not _NAME_RE.match(name) or (
            name.strip() != name) or (not import_only and ("@" in name or "." in name)):
        raise BadRequest("Keypair data is invalid: Keypair name contains unsafe characters")
    if import_only and "public_key" not in body:
        raise BadRequest("Invalid input for field/attribute keypair. 'public_key' is a "
                         "required property")
    key_type = body.get("type", "ssh")
    if key_type not in ("ssh", "x509"):
        raise BadRequest(f"Invalid input for field/attribute type. Value: {key_type}. "
                         f"'{key_type}' is not one of ['ssh', 'x509']")
    user_id = body.get("user_id") or ctx.user_id
    target = {"user_id": user_id, "project_id": ctx.project_id}
    policy.enforce(ctx, "compute:keypair_create", target)
    public = body.get("public_key")
    private = None
    if public is None:
        private, public = generate() if key_type == "ssh" else generate_x509(user_id)
    else:
        if not isinstance(public, str) or not public.strip():
            raise BadRequest("Keypair data is invalid: failed to generate fingerprint")
        public = public.strip()
        if key_type == "ssh":
            _validate_public(public)
    fp = fingerprint(public) if key_type == "ssh" else x509_fingerprint(public)
    with svc.db.write() as s:
        limit = svc.quotas.limit_for(s, ctx.project_id or "", "key_pairs")
        count = s.execute(select(func.count()).select_from(KeyPair).where(
            KeyPair.user_id == user_id)).scalar() or 0
        if limit >= 0 and count + 1 > limit:
            raise OverQuota("Quota exceeded, too many key pairs.")
        if s.execute(select(KeyPair.id).where(KeyPair.user_id == user_id,
                                              KeyPair.name == name)).first():
            raise Conflict(f"Key pair '{name}' already exists.")
        kp = KeyPair(name=name, user_id=user_id, project_id=ctx.project_id, type=key_type,
                     fingerprint=fp, public_key=public)
        s.add(kp)
        try:
            s.flush()
        except IntegrityError:
            raise Conflict(f"Key pair '{name}' already exists.") from None
    return kp, private


def _user(ctx: RequestContext, query) -> str:  # noqa: ANN001
    user_id = query.get("user_id") if query is not None else None
    if user_id and user_id != ctx.user_id:
        policy.enforce(ctx, "compute:keypair_other_user")
        return user_id
    return ctx.user_id or ""


def list_(svc, ctx: RequestContext, query) -> list[KeyPair]:  # noqa: ANN001
    user_id = _user(ctx, query)
    with svc.db.read() as s:
        rows = list(s.execute(select(KeyPair).where(KeyPair.user_id == user_id)
                              .order_by(KeyPair.name)).scalars())
    marker = query.get("marker")
    if marker is not None:
        names = [k.name for k in rows]
        if marker not in names:
            raise NotFound(f"Marker {marker} could not be found.")
        rows = rows[names.index(marker) + 1:]
    if "limit" in query:
        try:
            n = int(query["limit"])
        except ValueError:
            raise BadRequest("limit param must be an integer") from None
        if n < 0:
            raise BadRequest("limit param must be positive")
        rows = rows[:n]
    return rows


def get(svc, ctx: RequestContext, name: str, query=None, user_id: str | None = None) -> KeyPair:  # noqa: ANN001
    uid = user_id or _user(ctx, query)
    with svc.db.read() as s:
        kp = s.execute(select(KeyPair).where(KeyPair.user_id == uid, KeyPair.name == name)
                       ).scalar_one_or_none()
    if kp is None:
        raise NotFound(f"Keypair {name} not found for user {uid}")
    return kp


def delete(svc, ctx: RequestContext, name: str, query=None) -> None:  # noqa: ANN001
    uid = _user(ctx, query)
    with svc.db.write() as s:
        kp = s.execute(select(KeyPair).where(KeyPair.user_id == uid, KeyPair.name == name)
                       ).scalar_one_or_none()
        if kp is None:
            raise NotFound(f"Keypair {name} not found for user {uid}")
        s.delete(kp)
