"""Pure pieces of Nova 2.80-2.96 (issue 22): the requested-hostname schema by microversion
and the table that gates behaviour."""

from __future__ import annotations

import pytest

from pocketstack.errors import BadRequest, NotAcceptable
from pocketstack.services.compute import microversions as mv
from pocketstack.services.compute.server_validation import check_hostname


def V(s: str) -> mv.APIVersion:  # noqa: N802
    return mv.APIVersion(*map(int, s.split(".")))


@pytest.mark.parametrize("name", ["web-01", "ab", "A1", "x" * 63])
def test_2_90_hostname_accepts_labels(name):
    assert check_hostname(name, V("2.90")) == name


@pytest.mark.parametrize("name", ["a", "-ab", "ab-", "a.b", "a_b", "x" * 64, "", 7, None,
                                  "web 01", "wéb"])
def test_2_90_hostname_refuses_non_labels(name):
    with pytest.raises(BadRequest):
        check_hostname(name, V("2.93"))


@pytest.mark.parametrize("name", ["a", "db.example.org", "a_b.c-d", "x" * 255])
def test_2_94_hostname_accepts_fqdns(name):
    assert check_hostname(name, V("2.94")) == name


@pytest.mark.parametrize("name", ["", "x" * 256, "a b", "a/b", "a;b", "$(id)"])
def test_2_94_hostname_refuses_the_rest(name):
    with pytest.raises(BadRequest):
        check_hostname(name, V("2.96"))


def test_every_feature_is_inside_the_advertised_range():
    assert mv.MAX == (2, 101)
    for feature, first in mv.FEATURES.items():
        assert mv.MIN <= first <= mv.MAX, feature
    assert V("2.96").has("pinned_az") and not V("2.95").has("pinned_az")


class _H(dict):
    pass


def test_2_102_is_not_acceptable_yet():
    with pytest.raises(NotAcceptable):
        mv.requested(_H({"openstack-api-version": "compute 2.102"}))
    assert str(mv.requested(_H({"openstack-api-version": "compute 2.101"}))) == "2.101"


def test_2_100_hints_as_nova_keeps_them():
    from pocketstack.services.compute.views import scheduler_hints

    assert scheduler_hints({"group": "g", "same_host": ["a", "b"], "force_host": "h",
                            "pocketstack:files": [1], "n": 3}) == {
        "group": ["g"], "same_host": ["a", "b"], "n": ["3"]}
    assert scheduler_hints(None) == {}


@pytest.mark.parametrize("key,value", [
    ("hw:cpu_policy", "dedicated"), ("hw:numa_cpus.0", "0-3"), ("quota:cpu_quota", "10"),
    ("trait:HW_CPU_X86_AVX2", "required"), ("trait:CUSTOM_GOLD", "forbidden"),
    ("resources1:VCPU", "2"), ("hw:mem_encryption", "yes"), ("my:own", "x"), ("plain", "y"),
    ("capabilities:cpu_info:arch", "x86_64"), ("hw_rng:rate_bytes", "0")])
def test_2_86_valid_extra_specs(key, value):
    from pocketstack.services.compute.extra_specs import validate

    validate(key, value)


@pytest.mark.parametrize("key,value", [
    ("hw:cpu_policy", "bogus"), ("hw:nope", "1"), ("quota:cpu_quota", "x"),
    ("trait:CUSTOM_GOLD", "maybe"), ("hw:mem_encryption", "maybe"),
    ("hw_rng:rate_bytes", "-1"), ("resources:VCPU", "two")])
def test_2_86_invalid_extra_specs(key, value):
    from pocketstack.services.compute.extra_specs import validate

    with pytest.raises(BadRequest):
        validate(key, value)


def test_a_long_fqdn_gives_the_guest_its_first_label():
    from pocketstack.services.compute.server_validation import guest_hostname

    assert guest_hostname("web-01") == "web-01"
    assert guest_hostname("db.example.org") == "db.example.org"
    fqdn = "x" * 52 + "-guest-test.domaintest.com"
    assert guest_hostname(fqdn) == "x" * 52 + "-guest-test"  # 78 > 64: first label
    long = "a" * 70 + ".example.org"
    assert guest_hostname(long) == "a" * 63
    assert len(guest_hostname("b" * 255)) == 63
