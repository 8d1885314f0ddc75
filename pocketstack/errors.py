"""Domain errors. Services raise these; ``api.faults`` renders them per service style.

Each error carries its HTTP status; the fault names come from one table, ``FAULT_NAMES``,
as Nova's ``Fault._fault_names`` (status -> fault key, default ``computeFault``).
"""

from __future__ import annotations

from http import HTTPStatus

# status -> Nova/Cinder fault key. Keystone, Neutron, Glance, Swift and Heat use the
# HTTP title instead; see api/faults.py for how each style is rendered.
FAULT_NAMES: dict[int, str] = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
DEFAULT_FAULT_NAME = "computeFault"


def fault_name(status: int) -> str:
    return FAULT_NAMES.get(status, DEFAULT_FAULT_NAME)


def http_title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class PocketError(Exception):
    """Base domain error. ``kind`` is the type name some APIs expose (Neutron, Heat)."""

    status = 500
    kind = "InternalError"

    def __init__(self, message: str | None = None, *, kind: str | None = None,
                 headers: dict[str, str] | None = None, status: int | None = None) -> None:
        self.message = message or http_title(status or self.status)
        if kind:
            self.kind = kind
        if status:
            self.status = status
        self.headers = headers or {}
        super().__init__(self.message)


class BadRequest(PocketError):
    status = 400
    kind = "BadRequest"


class ValidationError(BadRequest):
    kind = "ValidationError"


class Unauthorized(PocketError):
    status = 401
    kind = "Unauthorized"


class Forbidden(PocketError):
    status = 403
    kind = "Forbidden"


class NotFound(PocketError):
    status = 404
    kind = "NotFound"


class MethodNotAllowed(PocketError):
    status = 405
    kind = "MethodNotAllowed"


class NotAcceptable(PocketError):
    status = 406
    kind = "NotAcceptable"


class Conflict(PocketError):
    status = 409
    kind = "Conflict"


class Gone(PocketError):
    status = 410
    kind = "Gone"


class PreconditionFailed(PocketError):
    status = 412
    kind = "PreconditionFailed"


class RequestEntityTooLarge(PocketError):
    status = 413
    kind = "RequestEntityTooLarge"


class UnsupportedMediaType(PocketError):
    status = 415
    kind = "UnsupportedMediaType"


class RangeNotSatisfiable(PocketError):
    status = 416
    kind = "RangeNotSatisfiable"


class OverQuota(PocketError):
    """A quota would be exceeded. Nova answers 403, Cinder/Neutron 413/409; pass ``status``."""

    status = 403
    kind = "OverQuota"


class NotImplementedYet(PocketError):
    status = 501
    kind = "NotImplemented"


class ServiceUnavailable(PocketError):
    status = 503
    kind = "ServiceUnavailable"
