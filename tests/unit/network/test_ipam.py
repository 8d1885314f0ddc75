"""IPAM rules: pools, gateways, EUI-64, overlap, and never handing out an address twice."""

from __future__ import annotations

import ipaddress

import pytest

from pocketstack.errors import BadRequest, Conflict
from pocketstack.services.network import ipam


def net(c: str):
    return ipaddress.ip_network(c)


def test_default_pools_skip_network_broadcast_and_gateway():
    assert ipam.default_pools(net("10.0.0.0/24"), "10.0.0.1") == [
        {"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert ipam.default_pools(net("10.0.0.0/24"), "10.0.0.100") == [
        {"start": "10.0.0.1", "end": "10.0.0.99"}, {"start": "10.0.0.101", "end": "10.0.0.254"}]
    assert ipam.default_pools(net("10.0.0.0/24"), None) == [
        {"start": "10.0.0.1", "end": "10.0.0.254"}]


def test_gateway_inside_a_pool_is_a_conflict():
    with pytest.raises(Conflict):
        ipam.validate_pools(net("10.0.10.0/24"), [{"start": "10.0.10.1", "end": "10.0.10.254"}],
                            "10.0.10.1")


@pytest.mark.parametrize("pools", [
    [{"start": "10.0.0.5", "end": "10.0.1.5"}],  # beyond the cidr
    [{"start": "10.0.0.9", "end": "10.0.0.5"}],  # reversed
    [{"start": "10.0.0.2", "end": "10.0.0.9"}, {"start": "10.0.0.9", "end": "10.0.0.20"}],
    [{"start": "10.0.0.0", "end": "10.0.0.9"}],  # the network address
])
def test_bad_pools_are_refused(pools):
    with pytest.raises(BadRequest):
        ipam.validate_pools(net("10.0.0.0/24"), pools, "10.0.0.1")


def test_eui64_matches_neutron():
    # oslo_utils.netutils.get_ipv6_addr_by_EUI64("2001:db8::/64", "fa:16:3e:33:44:55")
    assert ipam.eui64("2001:db8::/64", "fa:16:3e:33:44:55") == "2001:db8::f816:3eff:fe33:4455"


def test_overlap_and_modes():
    from types import SimpleNamespace

    with pytest.raises(BadRequest, match="overlaps with another subnet"):
        ipam.check_overlap(net("10.0.0.0/25"), [SimpleNamespace(cidr="10.0.0.0/24")], "n")
    ipam.check_overlap(net("10.0.1.0/24"), [SimpleNamespace(cidr="10.0.0.0/24")], "n")
    with pytest.raises(BadRequest):
        ipam.check_modes(6, "slaac", "dhcpv6-stateful", True)
    with pytest.raises(BadRequest):
        ipam.check_modes(4, "slaac", None, True)
    ipam.check_modes(6, "slaac", "slaac", True)
