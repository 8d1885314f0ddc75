"""Neutron behaviour the clients' own suites rely on (issue 22), through openstacksdk and
the `openstack` CLI: a subnet cidr with host bits, a router gateway on an external network
with no subnet, a multicast MAC refused on port create only."""

from __future__ import annotations

import uuid

import openstack.exceptions
import pytest


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def conn(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def net(conn):
    n = conn.network.create_network(name=uid("fid"))
    yield n
    for p in conn.network.ports(network_id=n.id):
        conn.network.delete_port(p, ignore_missing=True)
    conn.network.delete_network(n, ignore_missing=True)


def test_subnet_cidr_with_host_bits_is_stored_as_its_network(cloud, conn, net):
    # Neutron's validate_subnet only wants a prefix; the plugin stores the network
    s = cloud.openstack("subnet", "create", "--network", net.id, "--subnet-range",
                        "10.99.99.0/16", uid("hostbits"))
    try:
        assert s["cidr"] == "10.99.0.0/16"
        assert s["gateway_ip"] == "10.99.0.1"
        assert conn.network.get_subnet(s["id"]).cidr == "10.99.0.0/16"
    finally:
        conn.network.delete_subnet(s["id"])
    # still refused: no prefix at all, or a leading zero netaddr would not echo back
    for bad in ("10.98.0.0", "10.98.0.0/016", "010.98.0.0/16"):
        with pytest.raises(openstack.exceptions.BadRequestException):
            conn.network.create_subnet(network_id=net.id, ip_version=4, cidr=bad)
    assert not list(conn.network.subnets(network_id=net.id))
    # host routes keep Neutron's stricter route check
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.97.0.0/24",
                                   host_routes=[{"destination": "10.1.1.1/16",
                                                 "nexthop": "10.97.0.9"}])


def test_router_gateway_on_external_network_without_subnet(cloud, conn):
    ext = conn.network.create_network(name=uid("extnosub"), is_router_external=True)
    router = conn.network.create_router(name=uid("gwnosub"))
    try:
        cloud.openstack("router", "set", "--external-gateway", ext.id, router.id, parse=False)
        shown = conn.network.get_router(router.id)
        assert shown.external_gateway_info["network_id"] == ext.id
        assert shown.external_gateway_info["external_fixed_ips"] == []
        gw_ports = list(conn.network.ports(device_id=router.id,
                                           device_owner="network:router_gateway"))
        assert len(gw_ports) == 1 and gw_ports[0].fixed_ips == []
        # asking for an address there is still an error, and changes nothing
        sub_id = str(uuid.uuid4())
        with pytest.raises(openstack.exceptions.HttpException):
            conn.network.update_router(router, external_gateway_info={
                "network_id": ext.id, "external_fixed_ips": [{"subnet_id": sub_id}]})
        cloud.openstack("router", "unset", "--external-gateway", router.id, parse=False)
        assert conn.network.get_router(router.id).external_gateway_info is None
    finally:
        conn.network.delete_router(router, ignore_missing=True)
        conn.network.delete_network(ext, ignore_missing=True)


def test_multicast_mac_refused_on_create_accepted_on_update(cloud, conn, net):
    with pytest.raises(openstack.exceptions.BadRequestException):
        conn.network.create_port(network_id=net.id, mac_address="11:22:33:44:55:66")
    assert not [p for p in conn.network.ports(network_id=net.id)
                if p.mac_address == "11:22:33:44:55:66"]
    name = uid("macport")
    cloud.openstack("port", "create", "--network", net.id, name)
    cloud.openstack("port", "set", "--mac-address", "11:22:33:44:55:66", name, parse=False)
    assert cloud.openstack("port", "show", name)["mac_address"] == "11:22:33:44:55:66"
    # broadcast and all-zero stay invalid everywhere
    for bad in ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"):
        res = cloud.openstack("port", "set", "--mac-address", bad, name, check=False)
        assert res.returncode != 0
    assert cloud.openstack("port", "show", name)["mac_address"] == "11:22:33:44:55:66"
    cloud.openstack("port", "delete", name, parse=False)
