"""Neutron's body validators as neutron-lib has them (issue 22)."""

from __future__ import annotations

import pytest

from pocketstack.errors import BadRequest
from pocketstack.services.network import schemas


@pytest.mark.parametrize("given,stored", [
    ("10.99.99.0/16", "10.99.0.0/16"), ("10.0.0.0/24", "10.0.0.0/24"),
    ("192.168.1.7/32", "192.168.1.7/32"), ("fd00::1/64", "fd00::/64"),
])
def test_cidr_with_host_bits_is_the_network(given, stored):
    assert schemas.cidr("cidr", given) == stored


@pytest.mark.parametrize("bad", ["10.0.0.0", "10.0.0.0/016", "010.0.0.0/8", "10.0.0.0/33",
                                 "nonsense/8", 7, None])
def test_cidr_refused(bad):
    with pytest.raises(BadRequest):
        schemas.cidr("cidr", bad)


@pytest.mark.parametrize("bad", ["10.1.1.1/16", "127.0.0.0/8", "10.0.0.0"])
def test_route_cidr_wants_a_network(bad):
    with pytest.raises(BadRequest):
        schemas.route_cidr("destination", bad)


def test_mac_multicast_is_valid_but_flagged():
    assert schemas.mac("mac_address", "11:22:33:44:55:66") == "11:22:33:44:55:66"
    assert schemas.is_multicast_mac("11:22:33:44:55:66")
    assert not schemas.is_multicast_mac("fa:16:3e:00:00:01")
    for bad in ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00", "11:22:33:44:55", "zz"):
        with pytest.raises(BadRequest):
            schemas.mac("mac_address", bad)


def test_new_bodies_validated():
    with pytest.raises(BadRequest):
        schemas.parse_body("address_scope", {"name": "x"})  # ip_version required
    with pytest.raises(BadRequest):
        schemas.parse_body("dscp_marking_rule", {"dscp_mark": 7})
    pid = "00000000-0000-0000-0000-000000000001"
    for subs in ([{"port_id": pid, "segmentation_type": "vlan", "segmentation_id": 4095}],
                 [{"port_id": pid, "segmentation_type": "vlan"}],  # both or neither
                 [{"port_id": pid, "segmentation_id": 3}],
                 [{"segmentation_type": "vlan", "segmentation_id": 3}],
                 [{"port_id": pid, "segmentation_type": "vlan", "segmentation_id": 2},
                  {"port_id": pid[:-1] + "2", "segmentation_type": "vlan",
                   "segmentation_id": 2}]):  # an id twice
        with pytest.raises(BadRequest):
            schemas.parse_body("trunk", {"port_id": pid, "sub_ports": subs})
    assert schemas.subports("sub_ports", [{"port_id": pid, "segmentation_type": "inherit"}]) \
        == [{"port_id": pid, "segmentation_type": "inherit"}]
    with pytest.raises(BadRequest):
        schemas.parse_body("trunk", {"port_id": "x"})
    assert schemas.parse_body("bandwidth_limit_rule", {"max_kbps": "10"}) == {"max_kbps": 10}
