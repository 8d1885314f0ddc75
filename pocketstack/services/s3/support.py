"""Which S3 operations exist here, as data: a request naming an S3 subresource (or a
server-side-encryption header) that no handler implements is refused before any handler
runs, so it can never fall through to the plain object or bucket operation (``PUT
/b/k?retention`` once replaced the object's bytes with the retention XML).

A request is classified by the set of S3 subresources in its query string (the names in
``SUBRESOURCES``; ordinary parameters such as ``prefix``, ``max-keys``, ``response-*``,
``X-Amz-*`` or botocore's ``x-id`` are not subresources). ``versionId`` is not part of the
set: it selects a version of whatever operation the rest names (see ``objects.py``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from pocketstack.errors import PocketError

# Every subresource of the S3 REST API (bucket and object level), from the API reference.
SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
    "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
    "metadataTable", "metrics", "notification", "object-lock", "ownershipControls",
    "partNumber", "policy", "policyStatus", "publicAccessBlock", "renameObject",
    "replication", "requestPayment", "restore", "retention", "select", "session",
    "tagging", "torrent", "uploadId", "uploads", "versioning", "versions", "website",
})

# Bucket configurations that are not implemented but read as "none configured" (GET) and
# delete as a no-op (DELETE): that is the truth here, and tools that read a bucket's whole
# state (Terraform, Ansible) rely on those answers. Setting one (PUT) is a 501.
UNCONFIGURED_READ = ("cors", "policy", "lifecycle", "encryption", "website", "replication",
                     "ownershipControls", "publicAccessBlock", "object-lock", "logging",
                     "notification", "accelerate", "requestPayment", "versioning")
UNCONFIGURED_DELETE = ("cors", "policy", "lifecycle", "encryption", "website",
                       "replication", "ownershipControls", "publicAccessBlock")


def _sets(*names: str | tuple[str, ...]) -> frozenset[frozenset[str]]:
    return frozenset(frozenset((n,) if isinstance(n, str) else n) for n in names)


NONE: tuple[str, ...] = ()

# (level, method) -> the subresource sets a handler implements.
IMPLEMENTED: dict[tuple[str, str], frozenset[frozenset[str]]] = {
    ("bucket", "GET"): _sets(NONE, "location", "acl", "uploads", "tagging", "versions",
                             *UNCONFIGURED_READ),
    ("bucket", "HEAD"): _sets(NONE),
    ("bucket", "PUT"): _sets(NONE, "acl", "tagging"),
    ("bucket", "DELETE"): _sets(NONE, "tagging", *UNCONFIGURED_DELETE),
    ("bucket", "POST"): _sets("delete"),
    ("object", "GET"): _sets(NONE, "uploadId", "acl", "tagging", "partNumber", "attributes"),
    ("object", "HEAD"): _sets(NONE, "partNumber"),
    ("object", "PUT"): _sets(NONE, ("uploadId", "partNumber"), "tagging", "acl"),
    ("object", "DELETE"): _sets(NONE, "tagging", "uploadId"),
    ("object", "POST"): _sets("uploads", "uploadId"),
}


class NotImplementedS3(PocketError):
    status = 501
    kind = "NotImplemented"


def has_prefix(headers: Any, *prefixes: bytes) -> bool:
    """Does any header's name start with one of ``prefixes`` (lower case)? One pass over
    the raw headers: the checks below skip their work for the common request with none
    of their headers (Starlette's ``in``/``get`` scan and decode the list each time)."""
    raw = getattr(headers, "raw", None)
    if raw is None:
        return any(k.lower().encode().startswith(prefixes) for k in headers.keys())
    return any(k.startswith(prefixes) for k, _ in raw)


def subresources_of(query: Any) -> frozenset[str]:
    return frozenset(k for k in query.keys() if k in SUBRESOURCES)


def check_implemented(level: str, method: str, query: Any) -> None:
    """Refuse (501 NotImplemented, nothing read or changed) an operation we do not have."""
    present = subresources_of(query)
    if present in IMPLEMENTED.get((level, method), frozenset()):
        return
    what = "?" + "&".join(sorted(present)) if present else ""
    raise NotImplementedS3(f"{method} {level}{what} is not implemented.")


def check_version_id(query: Any) -> None:
    """Buckets are not versioned here: their objects' only version is "null"."""
    version = query.get("versionId")
    if version is not None and version != "null":
        raise PocketError("Invalid version id specified", status=400,
                          kind="InvalidArgument")


def check_content_md5(headers: Any) -> None:
    """A Content-MD5 that is not the base64 of 16 bytes is InvalidDigest (400) before
    the body is read; one that does not match the body is BadDigest (objects.py)."""
    value = headers.get("content-md5") if has_prefix(headers, b"content-md5") else None
    if value is None:
        return
    try:
        ok = len(base64.b64decode(value, validate=True)) == 16
    except (ValueError, binascii.Error):
        ok = False
    if not ok:
        raise PocketError("The Content-MD5 you specified was invalid.", status=400,
                          kind="InvalidDigest")


# Server-side encryption request headers.
SSE_HEADERS = ("x-amz-server-side-encryption",
               "x-amz-server-side-encryption-customer-algorithm",
               "x-amz-server-side-encryption-customer-key",
               "x-amz-server-side-encryption-customer-key-md5",
               "x-amz-server-side-encryption-aws-kms-key-id",
               "x-amz-server-side-encryption-context",
               "x-amz-server-side-encryption-bucket-key-enabled",
               "x-amz-copy-source-server-side-encryption-customer-algorithm",
               "x-amz-copy-source-server-side-encryption-customer-key",
               "x-amz-copy-source-server-side-encryption-customer-key-md5")


def check_encryption(level: str, method: str, query: Any, headers: Any) -> None:
    """SSE is implemented for PutObject, CopyObject, GetObject and HeadObject (sse.py,
    which checks the headers' values); anywhere else (multipart uploads, buckets) a request
    asking for encryption is refused, never stored in plaintext behind a 200."""
    if not has_prefix(headers, b"x-amz-server-side-encryption",
                      b"x-amz-copy-source-server-side-encryption"):
        return
    asked = [h for h in SSE_HEADERS if h in headers]
    if not asked:
        return
    plain = level == "object" and not subresources_of(query)
    if plain and method in ("PUT", "GET", "HEAD"):
        return
    if method in ("GET", "HEAD"):
        raise PocketError("The encryption parameters are not applicable to this object.",
                          status=400, kind="InvalidRequest")
    raise NotImplementedS3("Server-side encryption is implemented for PutObject and "
                           "CopyObject only, not here: the object would be stored "
                           "unencrypted (" + ", ".join(asked) + ").")
