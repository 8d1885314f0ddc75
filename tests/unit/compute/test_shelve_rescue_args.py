"""Request parsing of unshelve (by microversion) and of config_drive (Nova's boolean)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Forbidden
from pocketstack.services.compute.microversions import APIVersion
from pocketstack.services.compute.server_shelve import _unshelve_args
from pocketstack.services.compute.servers import _config_drive

MEMBER = RequestContext(user_id="u", project_id="p", roles=frozenset({"member"}))
ADMIN = RequestContext(user_id="a", project_id="p", roles=frozenset({"admin"}))


def test_before_2_77_the_body_is_ignored():
    for body in (None, {}, {"availability_zone": "az1"}, "x"):
        assert _unshelve_args(MEMBER, body, APIVersion(2, 76)) == {}


def test_2_77_takes_an_availability_zone_only():
    v = APIVersion(2, 77)
    assert _unshelve_args(MEMBER, None, v) == {}
    assert _unshelve_args(MEMBER, {"availability_zone": "az1"}, v) == {"availability_zone": "az1"}
    for bad in ({"availability_zone": None}, {"availability_zone": ""},
                {"availability_zone": 3}, {"host": "h1"}, {}, {"az": "x"}, "az1", []):
        with pytest.raises(BadRequest):
            _unshelve_args(MEMBER, bad, v)


def test_2_91_unpins_the_zone_and_takes_a_host_from_an_admin():
    v = APIVersion(2, 91)
    assert _unshelve_args(MEMBER, {"availability_zone": None}, v) == {"unpin_az": True}
    assert _unshelve_args(ADMIN, {"host": "h1", "availability_zone": "az"}, v) == {
        "host": "h1", "availability_zone": "az"}
    with pytest.raises(Forbidden):
        _unshelve_args(MEMBER, {"host": "h1"}, v)
    with pytest.raises(BadRequest):
        _unshelve_args(ADMIN, {"host": ""}, v)


@pytest.mark.parametrize("value,want", [
    (None, ""), ("", ""), (False, ""), ("false", ""), ("No", ""), ("0", ""), ("off", ""),
    (True, "True"), ("true", "True"), ("TRUE", "True"), ("1", "True"), ("yes", "True"),
    ("On", "True")])
def test_config_drive_is_nova_boolean(value, want):
    conf = SimpleNamespace(force_config_drive=False)
    assert _config_drive(value, {}, conf) == want


def test_config_drive_forced_by_image_or_operator():
    off = SimpleNamespace(force_config_drive=False)
    on = SimpleNamespace(force_config_drive=True)
    mandatory = {"properties": {"img_config_drive": "mandatory"}}
    assert _config_drive(False, mandatory, off) == "True"
    assert _config_drive(None, {"properties": {"img_config_drive": "optional"}}, off) == ""
    assert _config_drive(None, {}, on) == "True"
    for bad in ("maybe", 2, [], {"a": 1}):
        with pytest.raises(BadRequest):
            _config_drive(bad, {}, off)
