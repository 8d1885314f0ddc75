"""AWS request signatures: Signature Version 4 (header and presigned query) and Version 2
(header and presigned query), checked against the secret of a Keystone EC2 credential.

Canonical forms follow the AWS SigV4 documentation for S3: the canonical URI is the path
exactly as the client sent it (S3 does not normalise or double-encode), the query is
re-encoded with RFC 3986 unreserved characters, header values are trimmed.
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from pocketstack.errors import BadRequest, Forbidden, PocketError

UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_SKEW = 15 * 60
MAX_PRESIGNED_EXPIRES = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week
# Sub-resources that are part of a V2 string to sign.
V2_SUBRESOURCES = {"acl", "cors", "delete", "lifecycle", "location", "logging",
                   "notification", "partNumber", "policy", "requestPayment", "tagging",
                   "torrent", "uploadId", "uploads", "versionId", "versioning", "versions",
                   "website", "response-cache-control", "response-content-disposition",
                   "response-content-encoding", "response-content-language",
                   "response-content-type", "response-expires"}


class AccessDenied(PocketError):
    status = 403
    kind = "AccessDenied"


@dataclass
class Identity:
    access: str
    user_id: str
    project_id: str
    payload_sha256: str | None  # hex digest the body must have; None when unsigned/streaming
    streaming: bool  # body is aws-chunked
    roles: tuple[str, ...] = ()  # the user's role names on the project, when identity says
    chunks: ChunkSigner | None = None  # verifies a signed aws-chunked body's chunks


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
SIGNED_STREAMING = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")


def signature_mismatch() -> Forbidden:
    return Forbidden("The request signature we calculated does not match the signature "
                     "you provided. Check your key and signing method.",
                     kind="SignatureDoesNotMatch")


@dataclass
class ChunkSigner:
    """The chunk signatures of a STREAMING-AWS4-HMAC-SHA256-PAYLOAD(-TRAILER) body.

    Each chunk's signature is HMAC(signing key, "AWS4-HMAC-SHA256-PAYLOAD", date, scope,
    previous signature, sha256(""), sha256(chunk)); the first "previous" is the
    request's own signature, the last chunk is the empty one, and the trailer (signed
    mode) is signed over "name:value\n" lines chained from the empty chunk's signature.
    """

    key: bytes
    amz_date: str
    scope: str
    previous: str
    trailer: bool

    def _sign(self, kind: str, digest: str, extra: tuple[str, ...] = ()) -> str:
        to_sign = "\n".join((kind, self.amz_date, self.scope, self.previous, *extra, digest))
        return hmac.digest(self.key, to_sign.encode(), "sha256").hex()

    def check_chunk(self, data: bytes, signature: str) -> None:
        expected = self._sign("AWS4-HMAC-SHA256-PAYLOAD", hashlib.sha256(data).hexdigest(),
                              (EMPTY_SHA256,))
        if not hmac.compare_digest(expected, signature.lower()):
            raise signature_mismatch()
        self.previous = expected

    def check_trailer(self, trailers: list[tuple[str, str]], signature: str) -> None:
        canonical = "".join(f"{name}:{value}\n" for name, value in trailers)
        expected = self._sign("AWS4-HMAC-SHA256-TRAILER",
                              hashlib.sha256(canonical.encode()).hexdigest())
        if not hmac.compare_digest(expected, signature.lower()):
            raise signature_mismatch()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    pairs = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key.replace("+", "%20")), unquote(value.replace("+", "%20"))))
    return pairs


def canonical_query(raw_query: str, skip: str | None = None) -> str:
    pairs = [(_uri_encode(k), _uri_encode(v)) for k, v in _query_pairs(raw_query) if k != skip]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _header_value(headers: Any, name: str) -> str:
    values = headers.getlist(name)
    return ",".join(" ".join(v.split()) for v in values)


def _parse_amz_date(value: str) -> float:
    try:
        return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=dt.timezone.utc).timestamp()
    except ValueError:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") \
            from None


def _http_date(headers: Any) -> float:
    """The Date header (RFC 7231) as a timestamp; AccessDenied when absent or invalid."""
    try:
        return email.utils.parsedate_to_datetime(headers.get("date") or "").timestamp()
    except (TypeError, ValueError):
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") \
            from None


def _check_skew(when: float) -> None:
    if abs(when - time.time()) > MAX_SKEW:
        raise Forbidden("The difference between the request time and the current time is "
                        "too large.", kind="RequestTimeTooSkewed")


SecretLookup = Callable[[str], "dict[str, Any] | None"]


def access_key(headers: Any, raw_query: str) -> str | None:
    """The access key a request claims (for caching), without checking anything."""
    authz = headers.get("authorization", "")
    if authz.startswith("AWS4-HMAC-SHA256"):
        cred = authz.partition("Credential=")[2]
        return cred.split("/", 1)[0] or None
    if authz.startswith("AWS "):
        return authz[4:].partition(":")[0] or None
    pairs = dict(_query_pairs(raw_query)) if raw_query else {}
    if "X-Amz-Credential" in pairs:
        return pairs["X-Amz-Credential"].split("/", 1)[0]
    return pairs.get("AWSAccessKeyId")


def authenticate(method: str, raw_path: str, raw_query: str, headers: Any,
                 lookup: SecretLookup, mount: str = "") -> Identity | None:
    """Check the request's signature; None for an anonymous request.

    V2 clients sign the resource /bucket/key, some without the endpoint's path (``mount``).
    """
    authz = headers.get("authorization", "")
    pairs = dict(_query_pairs(raw_query))
    if authz.startswith("AWS4-HMAC-SHA256"):
        return _v4_header(method, raw_path, raw_query, headers, authz, lookup)
    if pairs.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256":
        return _v4_query(method, raw_path, raw_query, headers, pairs, lookup)
    if authz.startswith("AWS "):
        return _v2(method, raw_path, raw_query, headers, authz[4:], None, lookup, mount)
    if "AWSAccessKeyId" in pairs and "Signature" in pairs:
        return _v2(method, raw_path, raw_query, headers,
                   f"{pairs['AWSAccessKeyId']}:{pairs['Signature']}", pairs.get("Expires"),
                   lookup, mount)
    if authz:
        raise BadRequest("Unsupported Authorization Type", kind="InvalidArgument")
    return None


def _secret(lookup: SecretLookup, access: str) -> dict[str, Any]:
    cred = lookup(access)
    if not cred or not cred.get("secret"):
        raise AccessDenied("The AWS Access Key Id you provided does not exist in our records.",
                           kind="InvalidAccessKeyId")
    return cred


@functools.lru_cache(maxsize=1024)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The derived key changes once a day per credential: four HMACs saved per request."""
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _v4_check(method: str, raw_path: str, query: str, headers: Any, signed: list[str],
              payload: str, amz_date: str, scope: str, cred: dict[str, Any],
              signature: str) -> bytes:
    """Verify a V4 signature; returns the signing key (chunk signatures use it too)."""
    canonical_headers = "".join(f"{h}:{_header_value(headers, h)}\n" for h in signed)
    canonical = "\n".join([method, raw_path or "/", query, canonical_headers, ";".join(signed),
                           payload])
    date, region, service, _ = scope.split("/", 3)
    key = _signing_key(cred["secret"], date, region, service)
    for form in _encodings(canonical):
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                             hashlib.sha256(form).hexdigest()])
        expected = hmac.digest(key, to_sign.encode(), "sha256").hex()  # one-shot C HMAC
        if hmac.compare_digest(expected, signature):
            return key
    raise signature_mismatch()


def _encodings(canonical: str) -> tuple[bytes, ...]:
    """The canonical request as signed. Header values arrive decoded as Latin-1, so
    re-encoding them that way gives the bytes the client sent and signed (botocore sends
    non-ASCII metadata as UTF-8); a client that sent Latin-1 but signed the text's UTF-8
    form (http.client's default) gets the second try. ASCII, the common case: one."""
    try:
        raw = canonical.encode("latin-1")
    except UnicodeEncodeError:
        return (canonical.encode(),)
    if raw.isascii():
        return (raw,)
    return (raw, canonical.encode())


def _v4_header(method: str, raw_path: str, raw_query: str, headers: Any, authz: str,
               lookup: SecretLookup) -> Identity:
    fields = {}
    for part in authz[len("AWS4-HMAC-SHA256"):].split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value
    try:
        credential = fields["Credential"]
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
        access, scope = credential.split("/", 1)
    except (KeyError, ValueError):
        raise BadRequest("The authorization header is malformed.",
                         kind="AuthorizationHeaderMalformed") from None
    # The request time is X-Amz-Date, or the Date header when there is none (botocore
    # itself signs a request carrying Date that way); a Date next to X-Amz-Date is ignored.
    amz_date = headers.get("x-amz-date") or ""
    if not amz_date:
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(_http_date(headers)))
    _check_skew(_parse_amz_date(amz_date))
    payload = headers.get("x-amz-content-sha256") or UNSIGNED
    cred = _secret(lookup, access)
    key = _v4_check(method, raw_path, canonical_query(raw_query), headers, signed, payload,
                    amz_date, scope, cred, signature)
    streaming = payload.startswith("STREAMING-")
    digest = None if streaming or payload == UNSIGNED else payload.lower()
    chunks = None
    if payload in SIGNED_STREAMING:
        chunks = ChunkSigner(key, amz_date, scope, signature.lower(),
                             trailer=payload.endswith("-TRAILER"))
    elif streaming and payload != "STREAMING-UNSIGNED-PAYLOAD-TRAILER":
        raise PocketError(f"x-amz-content-sha256 {payload} is not implemented.", status=501,
                          kind="NotImplemented")
    return Identity(access, cred["user_id"], cred["project_id"], digest, streaming,
                    _roles(cred), chunks)


def _v4_query(method: str, raw_path: str, raw_query: str, headers: Any,
              pairs: dict[str, str], lookup: SecretLookup) -> Identity:
    try:
        access, scope = pairs["X-Amz-Credential"].split("/", 1)
        amz_date = pairs["X-Amz-Date"]
        expires = int(pairs.get("X-Amz-Expires", "604800"))
        signed = pairs["X-Amz-SignedHeaders"].split(";")
        signature = pairs["X-Amz-Signature"]
    except (KeyError, ValueError):
        raise AccessDenied("Query-string authentication requires the X-Amz-Algorithm, "
                           "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, "
                           "X-Amz-SignedHeaders and X-Amz-Expires parameters.") from None
    if not 0 < expires <= MAX_PRESIGNED_EXPIRES:
        raise BadRequest("X-Amz-Expires must be less than a week (in seconds) that is 604800"
                         if expires > 0 else "X-Amz-Expires must be non-negative",
                         kind="AuthorizationQueryParametersError")
    start = _parse_amz_date(amz_date)
    if time.time() > start + expires:
        raise AccessDenied("Request has expired")
    if start - time.time() > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    cred = _secret(lookup, access)
    payload = headers.get("x-amz-content-sha256") or UNSIGNED
    _v4_check(method, raw_path, canonical_query(raw_query, skip="X-Amz-Signature"), headers,
              signed, payload, amz_date, scope, cred, signature)
    return Identity(access, cred["user_id"], cred["project_id"], None, False, _roles(cred))


def _roles(cred: dict[str, Any]) -> tuple[str, ...]:
    return tuple(r["name"] if isinstance(r, dict) else str(r) for r in cred.get("roles") or ())


def _v2(method: str, raw_path: str, raw_query: str, headers: Any, creds: str,
        expires: str | None, lookup: SecretLookup, mount: str = "") -> Identity:
    access, _, signature = creds.partition(":")
    cred = _secret(lookup, access)
    if expires is not None:
        if not expires.isdigit() or int(expires) < time.time():
            raise AccessDenied("Request has expired")
        date = expires
    else:
        date = "" if headers.get("x-amz-date") else headers.get("date", "")
        when = headers.get("x-amz-date") or headers.get("date")
        if not when:
            raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
        try:
            stamp = email.utils.parsedate_to_datetime(when).timestamp()
        except (TypeError, ValueError):
            stamp = _parse_amz_date(when)  # V2 clients may use the ISO basic form
        _check_skew(stamp)
    amz = sorted((k.lower(), " ".join(v.split())) for k, v in headers.items()
                 if k.lower().startswith("x-amz-"))
    merged: dict[str, list[str]] = {}
    for k, v in amz:
        merged.setdefault(k, []).append(v)
    amz_lines = "".join(f"{k}:{','.join(v)}\n" for k, v in merged.items())
    sub = sorted((k, v) for k, v in _query_pairs(raw_query) if k in V2_SUBRESOURCES)
    query = "?" + "&".join(f"{k}={v}" if v else k for k, v in sub) if sub else ""
    head = (f"{method}\n{headers.get('content-md5', '')}\n"
            f"{headers.get('content-type', '')}\n{date}\n{amz_lines}")
    paths = {raw_path, unquote(raw_path)}
    if mount and raw_path.startswith(mount + "/"):
        paths |= {raw_path[len(mount):], unquote(raw_path[len(mount):])}
    # A bucket-level resource is signed as "/bucket/" by boto and others.
    paths |= {p + "/" for p in paths if p.count("/") == 1 and len(p) > 1}
    for res in (p + query for p in paths):
        text = head + res
        expected = base64.b64encode(hmac.new(cred["secret"].encode(), text.encode(),
                                             hashlib.sha1).digest()).decode()
        if hmac.compare_digest(expected, signature):
            return Identity(access, cred["user_id"], cred["project_id"], None, False,
                            _roles(cred))
    raise Forbidden("The request signature we calculated does not match the signature you "
                    "provided. Check your key and signing method.",
                    kind="SignatureDoesNotMatch")
