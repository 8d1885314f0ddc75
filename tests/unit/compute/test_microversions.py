import pytest
from starlette.datastructures import Headers

from pocketstack.errors import BadRequest, NotAcceptable
from pocketstack.services.compute import microversions as mv


def req(value: str | None, legacy: bool = False):
    if value is None:
        return Headers({})
    if legacy:
        return Headers({"X-OpenStack-Nova-API-Version": value})
    return Headers({"OpenStack-API-Version": f"compute {value}"})


def test_default_latest_and_legacy_header():
    assert str(mv.requested(req(None))) == "2.1"
    assert str(mv.requested(req("latest"))) == mv.fmt(mv.MAX)
    assert str(mv.requested(req("2.37", legacy=True))) == "2.37"


def test_table_switches_behaviour():
    v = mv.requested(req("2.47"))
    assert v.has("flavor_embedded") and v.has("networks_required") and not v.has("locked_reason")


def test_out_of_range_and_garbage():
    with pytest.raises(NotAcceptable):
        mv.requested(req("2.200"))
    with pytest.raises(BadRequest):
        mv.requested(req("two"))


def test_other_services_in_the_header_are_ignored():
    assert str(mv.requested(Headers({"OpenStack-API-Version": "volume 3.50, compute 2.26"}))) == "2.26"
