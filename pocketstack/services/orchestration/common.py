"""Small parsing helpers shared by the orchestration service modules and routes."""

from __future__ import annotations

from typing import Any

from pocketstack.errors import BadRequest

# Heat's max_nested_stack_depth default.
MAX_NESTING = 5


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "yes", "on", "t", "y")


def _tags(value: Any) -> list[str] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise BadRequest(f"Invalid tags, not a list: {value}")
    for t in value:
        if len(t) > 80:
            raise BadRequest(f'Invalid tag, "{t}" is longer than 80 characters')
    return [t.strip() for t in value]
