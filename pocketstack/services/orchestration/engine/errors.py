"""Engine errors: all are client errors (400) with Heat's error type names."""

from __future__ import annotations

from pocketstack.errors import BadRequest, Conflict, NotFound


class StackValidationFailed(BadRequest):
    kind = "StackValidationFailed"


class InvalidTemplate(BadRequest):
    kind = "InvalidTemplateVersion"


class TemplateParseError(BadRequest):
    kind = "InvalidTemplateFormat"


class UserParameterMissing(StackValidationFailed):
    kind = "UserParameterMissing"


class ActionInProgress(Conflict):
    kind = "ActionInProgress"


class StackNotFound(NotFound):
    kind = "EntityNotFound"


class ResourceNotFound(NotFound):
    kind = "ResourceNotFound"


class ResourceFailure(Exception):
    """A resource operation failed; ``message`` is what stack show and events print."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class UpdateReplace(Exception):
    """Raised by a plugin's update when the change needs a new physical resource."""


class Cancelled(Exception):
    """The operation was cancelled (stack deleted or update cancelled while running)."""
