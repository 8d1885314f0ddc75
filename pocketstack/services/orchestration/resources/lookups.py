"""Find things in other services by name or id, as Heat's client plugins do.

Filled in per service as the compute/image/network/volume slices land; a lookup whose
service has no usable method raises LookupError with the reason.
"""

from __future__ import annotations

from typing import Any

from pocketstack.context import RequestContext


def find(cloud: Any, ctx: RequestContext, constraint: str, value: str) -> Any:
    raise LookupError(f"{constraint} lookups are not available yet in this build")
