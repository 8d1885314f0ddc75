"""Validation of account, container and object names, and Swift's timestamp formats.

Limits are Swift's defaults (swift/common/constraints.py): container names up to 256
bytes, object names up to 1024 bytes, metadata names up to 128 bytes and values up to
256 bytes, at most 90 metadata items in 4096 bytes per resource.
"""

from __future__ import annotations

import email.utils
import math
import time

from pocketstack.errors import BadRequest, PocketError

MAX_CONTAINER_NAME = 256
MAX_OBJECT_NAME = 1024
MAX_META_NAME = 128
MAX_META_VALUE = 256
MAX_META_COUNT = 90
MAX_META_OVERALL = 4096
MAX_FILE_SIZE = 5 * 1024 ** 3 + 2  # Swift's default max_file_size
CONTAINER_LISTING_LIMIT = 10000
ACCOUNT_LISTING_LIMIT = 10000


class PreconditionFailed(PocketError):
    status = 412
    kind = "PreconditionFailed"


class LengthRequired(PocketError):
    status = 411
    kind = "MissingContentLength"


def _check_text(value: str, what: str) -> None:
    if "\x00" in value:
        raise BadRequest(f"Invalid {what}: NUL characters are not allowed")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"Invalid {what}: not valid UTF-8") from None


def check_container(name: str) -> str:
    if not name:
        raise BadRequest("Container name is required")
    _check_text(name, "container name")
    if "/" in name:
        raise BadRequest("Container name may not contain '/'")
    if len(name.encode()) > MAX_CONTAINER_NAME:
        raise BadRequest(f"Container name length of {len(name.encode())} longer than "
                         f"{MAX_CONTAINER_NAME}")
    if name in (".", ".."):
        raise BadRequest("Invalid container name")
    return name


def check_object(name: str) -> str:
    """Object names are opaque keys in the database, never paths; we still refuse the
    ones that are meaningless or dangerous to clients that map them to files."""
    if not name:
        raise BadRequest("Object name is required")
    _check_text(name, "object name")
    if len(name.encode()) > MAX_OBJECT_NAME:
        raise BadRequest(f"Object name length of {len(name.encode())} longer than "
                         f"{MAX_OBJECT_NAME}")
    if any(seg in (".", "..") for seg in name.split("/")):
        raise BadRequest("Object name may not contain '.' or '..' path segments")
    return name


def x_timestamp(ts: float) -> str:
    return f"{ts:016.5f}"


def http_date(ts: float) -> str:
    # Swift rounds Last-Modified up to the next whole second.
    return email.utils.formatdate(math.ceil(ts), usegmt=True)


def listing_date(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e6):06d}"


def parse_http_date(value: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    return parsed.timestamp()
