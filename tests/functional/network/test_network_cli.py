"""Neutron through the real `openstack` CLI and openstacksdk: the seeds' commands, bad input,
isolation between projects. Runs against the shared live cloud (fake data plane)."""

from __future__ import annotations

import json
import uuid

import pytest


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def project(cloud):
    """A fresh project the admin user is a member of (like seed 000's 'fabric')."""
    name = uid("netproj")
    cloud.openstack("project", "create", name)
    cloud.openstack("role", "add", "--project", name, "--user", "admin", "admin", parse=False)
    yield name
    cloud.openstack("project", "delete", name, parse=False, check=False)


def os_(cloud, project, *args, **kw):
    return cloud.openstack(*args, project=project, **kw)


def test_seed000_private_network_router_and_rules(cloud, project):
    net, sub, rtr = uid("fabric"), uid("subnetfabric"), uid("fabricrouter")
    os_(cloud, project, "network", "create", net)
    s = os_(cloud, project, "subnet", "create", "--network", net, "--subnet-range",
            "192.168.2.0/23", "--dns-nameserver", "10.21.200.2", sub)
    assert s["gateway_ip"] == "192.168.2.1"
    assert s["allocation_pools"] == [{"start": "192.168.2.2", "end": "192.168.3.254"}]
    assert s["dns_nameservers"] == ["10.21.200.2"]
    os_(cloud, project, "router", "create", rtr)
    os_(cloud, project, "router", "set", "--external-gateway", "public", rtr, parse=False)
    os_(cloud, project, "router", "add", "subnet", rtr, sub, parse=False)
    router = os_(cloud, project, "router", "show", rtr)
    gw = router["external_gateway_info"]
    assert gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["ip_address"].startswith("172.24.4.")
    assert router["interfaces_info"][0]["ip_address"] == "192.168.2.1"
    # The seed's operator types these as a member of the project. An admin would see
    # every project's group named "default" and get "More than one SecurityGroup exists",
    # as with Neutron, once other tests' projects have one.
    member, pw = uid("netmember"), uuid.uuid4().hex
    cloud.openstack("user", "create", "--password", pw, member)
    cloud.openstack("role", "add", "--project", project, "--user", member, "member",
                    parse=False)
    for proto, extra in (("icmp", []), ("tcp", ["--dst-port", "1:65535"]),
                         ("udp", ["--dst-port", "1:65535"])):
        cloud.openstack("security", "group", "rule", "create", "--protocol", proto, *extra,
                        "default", user=member, project=project, password=pw)
    rules = json.loads(cloud.openstack("security", "group", "rule", "list", "default",
                                       "-f", "json", parse=False, user=member, project=project,
                                       password=pw))
    protos = sorted(str(r["IP Protocol"]) for r in rules)
    # the default group: egress v4/v6, ingress from the group v4/v6, plus our three
    assert protos.count("None") == 4 and {"icmp", "tcp", "udp"} <= set(protos)
    # deleting the network while the router uses it: 409, and nothing changed
    res = os_(cloud, project, "network", "delete", net, check=False)
    assert res.returncode != 0
    assert os_(cloud, project, "network", "show", net)["subnets"]
    os_(cloud, project, "router", "remove", "subnet", rtr, sub, parse=False)
    os_(cloud, project, "router", "delete", rtr, parse=False)
    os_(cloud, project, "network", "delete", net, parse=False)


def test_seed003_provider_vlan_and_fixed_port(cloud):
    net, sub = uid("vlan"), uid("vlansub")
    n = cloud.openstack("network", "create", "--provider-network-type", "vlan",
                        "--provider-physical-network", "default", "--provider-segment", "204",
                        net)
    try:
        assert n["provider:network_type"] == "vlan" and n["provider:segmentation_id"] == 204
        cloud.openstack("subnet", "create", "--network", net, "--subnet-range",
                        "10.20.4.0/24", sub)
        p = cloud.openstack("port", "create", "--network", net, "--fixed-ip",
                            f"subnet={sub},ip-address=10.20.4.50", "--mac-address",
                            "fa:16:3e:20:04:50", uid("p"))
        assert p["fixed_ips"][0]["ip_address"] == "10.20.4.50"
        assert p["mac_address"] == "fa:16:3e:20:04:50"
        conn = cloud.sdk()
        net_id, sub_id = n["id"], p["fixed_ips"][0]["subnet_id"]
        before = len(list(conn.network.ports(network_id=net_id)))
        for body, code in (({"fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.20.4.50"}]},
                            409),  # duplicate IP
                           ({"mac_address": "fa:16:3e:20:04:50"}, 409),  # duplicate MAC
                           ({"fixed_ips": [{"subnet_id": sub_id, "ip_address": "10.99.0.5"}]},
                            400)):  # outside the subnet
            res = conn.network.post("/ports", json={"port": {"network_id": net_id, **body}})
            assert res.status_code == code, res.text
        assert len(list(conn.network.ports(network_id=net_id))) == before
        for seg, code in ((204, 409), (4095, 400)):  # the same VLAN again; out of range
            res = conn.network.post("/networks", json={"network": {
                "name": uid("vlanbad"), "provider:network_type": "vlan",
                "provider:physical_network": "default", "provider:segmentation_id": seg}})
            assert res.status_code == code, res.text
        res = cloud.openstack("network", "delete", net, check=False)
        assert res.returncode != 0  # a port is in use
        cloud.openstack("port", "delete", p["id"], parse=False)
    finally:
        cloud.openstack("network", "delete", net, parse=False, check=False)


def test_seed002_second_external_flat_network(cloud):
    net, sub = uid("public_intranet"), uid("public_intranet_subnet")
    n = cloud.openstack("network", "create", "--external", "--provider-physical-network",
                        uid("physnet"), "--provider-network-type", "flat", net)
    try:
        assert n["router:external"] is True
        s = cloud.openstack("subnet", "create", "--network", net, "--no-dhcp",
                            "--allocation-pool", "start=10.0.10.2,end=10.0.10.254",
                            "--dns-nameserver", "8.8.8.8", "--gateway", "10.0.10.1",
                            "--subnet-range", "10.0.10.0/24", sub)
        assert s["enable_dhcp"] is False
        assert s["allocation_pools"] == [{"start": "10.0.10.2", "end": "10.0.10.254"}]
        # the gateway inside the pool (seed 002's literal command) is refused, nothing made
        res = cloud.openstack("subnet", "create", "--network", net, "--no-dhcp",
                              "--allocation-pool", "start=10.0.11.1,end=10.0.11.254",
                              "--gateway", "10.0.11.1", "--subnet-range", "10.0.11.0/24",
                              uid("gwpool"), check=False)
        assert res.returncode != 0 and "conflicts with allocation pool" in res.stderr
        assert len(cloud.openstack("network", "show", net)["subnets"]) == 1
        fip = cloud.openstack("floating", "ip", "create", net)
        assert fip["floating_ip_address"].startswith("10.0.10.")
        cloud.openstack("floating", "ip", "delete", fip["id"], parse=False)
    finally:
        cloud.openstack("network", "delete", net, parse=False, check=False)


def test_floating_ip_lifecycle_and_bad_input(cloud):
    conn = cloud.sdk()
    net = conn.network.create_network(name=uid("fnet"))
    sub = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/24")
    other = conn.network.create_network(name=uid("onet"))
    osub = conn.network.create_subnet(network_id=other.id, ip_version=4, cidr="10.77.0.0/25")
    rtr = uid("frtr")
    cloud.openstack("router", "create", rtr)
    try:
        cloud.openstack("router", "set", "--external-gateway", "public", rtr, parse=False)
        cloud.openstack("router", "add", "subnet", rtr, sub.id, parse=False)
        router = conn.network.find_router(rtr)
        # overlapping CIDRs on one router: 400, the router unchanged
        res = conn.network.put(f"/routers/{router.id}/add_router_interface",
                               json={"subnet_id": osub.id})
        assert res.status_code == 400 and "overlaps" in res.text
        assert len(list(conn.network.ports(device_id=router.id,
                                           device_owner="network:router_interface"))) == 1
        port = conn.network.create_port(network_id=net.id)
        fip = cloud.openstack("floating", "ip", "create", "--port", port.id, "public")
        assert fip["port_id"] == port.id and fip["router_id"] == router.id
        assert fip["fixed_ip_address"] == port.fixed_ips[0]["ip_address"]
        # a floating IP from a non-external network: 400, nothing made
        res = conn.network.post("/floatingips", json={"floatingip": {
            "floating_network_id": net.id}})
        assert res.status_code == 400 and "not a valid external network" in res.text
        # the router interface is needed by the floating IP: 409
        res = conn.network.put(f"/routers/{router.id}/remove_router_interface",
                               json={"subnet_id": sub.id})
        assert res.status_code == 409
        cloud.openstack("floating", "ip", "unset", "--port", fip["id"], parse=False)
        assert conn.network.get_ip(fip["id"]).port_id is None
        conn.network.update_ip(fip["id"], port_id=port.id)
        conn.network.delete_port(port)  # disassociates
        assert conn.network.get_ip(fip["id"]).port_id is None
        conn.network.delete_ip(fip["id"])
        cloud.openstack("router", "remove", "subnet", rtr, sub.id, parse=False)
    finally:
        cloud.openstack("router", "delete", rtr, parse=False, check=False)
        conn.network.delete_network(net, ignore_missing=True)
        conn.network.delete_network(other, ignore_missing=True)


def test_projects_are_isolated_and_rbac_shares_one(cloud):
    admin, demo = cloud.sdk(), cloud.sdk("demo")
    net = admin.network.create_network(name=uid("secret"))
    try:
        assert net.id not in {n.id for n in demo.network.networks()}
        assert demo.network.get(f"/networks/{net.id}").status_code == 404
        res = demo.network.post("/ports", json={"port": {"network_id": net.id}})
        assert res.status_code == 404
        demo_project = cloud.openstack("project", "show", "demo")["id"]
        rbac = cloud.openstack("network", "rbac", "create", "--type", "network", "--action",
                               "access_as_shared", "--target-project", demo_project, net.id)
        assert net.id in {n.id for n in demo.network.networks()}
        admin.network.delete_rbac_policy(rbac["id"])
        assert net.id not in {n.id for n in demo.network.networks()}
    finally:
        admin.network.delete_network(net, ignore_missing=True)


def test_seed004_metering_labels(cloud):
    label = cloud.openstack("network", "meter", "create", uid("net2private"))
    try:
        rule = json.loads(cloud.openstack("network", "meter", "rule", "create",
                                          "--remote-ip-prefix", "10.0.0.0/24", label["id"],
                                          "-f", "json", parse=False))
        assert rule["remote_ip_prefix"] == "10.0.0.0/24"
        rules = json.loads(cloud.openstack("network", "meter", "rule", "list", "-f", "json",
                                           parse=False))
        assert rule["id"] in {r["ID"] for r in rules}
        res = cloud.openstack("network", "meter", "create", uid("m"), user="demo", check=False)
        assert res.returncode != 0  # metering is admin-only
    finally:
        cloud.openstack("network", "meter", "delete", label["id"], parse=False)


def test_sdk_filters_fields_sort_paging_tags(cloud):
    conn = cloud.sdk()
    tag = uid("tag")
    nets = [conn.network.create_network(name=uid("pg")) for _ in range(3)]
    try:
        for n in nets:
            conn.network.set_tags(n, [tag])
        found = list(conn.network.networks(tags=tag, sort_key="name", sort_dir="desc",
                                           limit=2))
        assert [n.name for n in found] == sorted((n.name for n in nets), reverse=True)
        raw = conn.network.get("/networks", params={"tags": tag, "limit": 2,
                                                    "fields": ["id", "name"]}).json()
        assert len(raw["networks"]) == 2 and set(raw["networks"][0]) == {"id", "name"}
        assert raw["networks_links"][0]["rel"] == "next"
        bad = conn.network.get("/networks", params={"no_such_attr": "x"})
        assert bad.status_code == 400
        assert bad.json()["NeutronError"]["message"]
    finally:
        for n in nets:
            conn.network.delete_network(n)
