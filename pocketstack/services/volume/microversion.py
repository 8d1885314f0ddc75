"""Cinder microversions: ``OpenStack-API-Version: volume 3.N`` in, the same header out."""

from __future__ import annotations

from pocketstack.errors import BadRequest, PocketError

MIN = (3, 0)
MAX = (3, 70)
HEADER = "OpenStack-API-Version"


def fmt(mv: tuple[int, int]) -> str:
    return f"{mv[0]}.{mv[1]}"


def parse(header: str | None) -> tuple[int, int]:
    """The requested version; absent means 3.0, ``latest`` the maximum."""
    if not header:
        return MIN
    wanted = None
    for part in header.split(","):
        service, _, value = part.strip().partition(" ")
        if service.lower() in ("volume", "block-storage"):
            wanted = value.strip()
    if wanted is None:
        return MIN
    if wanted.lower() == "latest":
        return MAX
    major, dot, minor = wanted.partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        raise BadRequest(f"API Version String {wanted} is of invalid format. Must be of "
                         "format MajorNum.MinorNum.")
    mv = (int(major), int(minor))
    if mv < MIN or mv > MAX:
        raise PocketError(f"Version {wanted} is not supported by the API. Minimum is "
                          f"{fmt(MIN)} and maximum is {fmt(MAX)}.", status=406,
                          kind="VersionNotFoundForAPIMethod")
    return mv


def require(mv: tuple[int, int], minimum: tuple[int, int]) -> None:
    """A resource that exists only from ``minimum`` on answers 404 below it, like Cinder."""
    if mv < minimum:
        from pocketstack.errors import NotFound

        raise NotFound(f"The resource could not be found (it needs microversion "
                       f"{fmt(minimum)} or later).")
