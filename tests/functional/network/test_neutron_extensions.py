"""The Neutron extensions of issue 22 through openstacksdk and the `openstack` CLI: service
providers (and the SDK's project cleanup that needs them), network IP availabilities,
address scopes, trunks, QoS policies and rules, network flavors and service profiles.
Each one: advertised, validated (400), policy-checked (403), project-scoped (404)."""

from __future__ import annotations

import json
import uuid

import openstack.exceptions as exc
import pytest


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def members(cloud):
    """Two projects, each with its own member user (not admin): (conn_a, conn_b)."""
    conns, made = [], []
    for _ in range(2):
        project, user, pw = uid("extproj"), uid("extuser"), uuid.uuid4().hex
        cloud.openstack("project", "create", project)
        cloud.openstack("user", "create", "--password", pw, user)
        cloud.openstack("role", "add", "--project", project, "--user", user, "member",
                        parse=False)
        made.append((project, user))
        conns.append(cloud.sdk(user=user, project=project, password=pw))
    yield conns
    for project, user in made:
        cloud.openstack("user", "delete", user, parse=False, check=False)
        cloud.openstack("project", "delete", project, parse=False, check=False)


@pytest.fixture(scope="module")
def net_a(members):
    a, _ = members
    net = a.network.create_network(name=uid("extnet"))
    sub = a.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.77.0.0/24",
                                  allocation_pools=[{"start": "10.77.0.10",
                                                     "end": "10.77.0.29"}])
    yield net, sub
    for p in a.network.ports(network_id=net.id):
        a.network.delete_port(p, ignore_missing=True)
    a.network.delete_network(net, ignore_missing=True)


def test_extensions_advertised(admin):
    aliases = {e.alias for e in admin.network.extensions()}
    for alias in ("address-scope", "network-ip-availability", "service-type", "trunk",
                  "trunk-details", "qos", "qos-bw-limit-direction", "qos-default",
                  "qos-rule-type-details", "flavors"):
        assert alias in aliases, alias


def test_service_providers_and_project_cleanup(cloud, admin, members):
    providers = list(admin.network.service_providers())
    assert {"L3_ROUTER_NAT"} <= {p.service_type for p in providers}
    assert all(p.is_default in (True, False) for p in providers)
    assert list(admin.network.service_providers(service_type="VPN")) == []
    a, _ = members
    # the SDK's project cleanup lists service providers first; it used to fail with 404
    net = a.network.create_network(name=uid("cleanup"))
    a.project_cleanup(dry_run=False, wait_timeout=60)
    with pytest.raises(exc.NotFoundException):
        admin.network.get_network(net.id)


def test_network_ip_availability(cloud, admin, members, net_a):
    a, _ = members
    net, sub = net_a
    ports = [a.network.create_port(network_id=net.id) for _ in range(3)]
    avail = admin.network.get_network_ip_availability(net.id)
    assert avail.network_id == net.id and avail.project_id == net.project_id
    assert avail.total_ips == 20
    # three ports plus the DHCP port of the subnet, as Neutron counts them
    dhcp = [p for p in admin.network.ports(network_id=net.id)
            if p.device_owner == "network:dhcp"]
    assert avail.used_ips == 3 + len(dhcp)
    (entry,) = avail.subnet_ip_availability
    assert entry["subnet_id"] == sub.id and entry["cidr"] == "10.77.0.0/24"
    assert entry["total_ips"] == 20 and entry["ip_version"] == 4
    listed = {x.network_id: x for x in admin.network.network_ip_availabilities(
        project_id=net.project_id)}
    assert set(listed) == {net.id} and listed[net.id].used_ips == avail.used_ips
    cli = cloud.openstack("ip", "availability", "show", net.id)
    assert cli["used_ips"] == avail.used_ips
    # admin-only: a member lists nothing and gets 404 for one
    assert list(a.network.network_ip_availabilities()) == []
    with pytest.raises(exc.NotFoundException):
        a.network.get_network_ip_availability(net.id)
    for p in ports:
        a.network.delete_port(p)
    assert admin.network.get_network_ip_availability(net.id).used_ips == len(dhcp)


def test_address_scopes(cloud, admin, members):
    a, b = members
    scope = a.network.create_address_scope(name=uid("scope"), ip_version=4)
    assert scope.ip_version == 4 and scope.is_shared is False
    assert scope.project_id == a.current_project_id
    # project-scoped: the other project cannot see, change or delete it
    with pytest.raises(exc.NotFoundException):
        b.network.get_address_scope(scope.id)
    assert scope.id not in {s.id for s in b.network.address_scopes()}
    with pytest.raises(exc.NotFoundException):
        b.network.delete_address_scope(scope.id, ignore_missing=False)
    # validation: ip_version required and 4/6; unknown attributes refused
    for body in ({"name": "x"}, {"ip_version": 5}, {"ip_version": 4, "bogus": 1}):
        with pytest.raises(exc.BadRequestException):
            a.network.create_address_scope(**body)
    # only an admin shares
    with pytest.raises(exc.ForbiddenException):
        a.network.create_address_scope(name="s", ip_version=4, shared=True)
    renamed = a.network.update_address_scope(scope, name="renamed")
    assert renamed.name == "renamed"
    # subnet pools join a scope of their own IP version
    pool = a.network.create_subnet_pool(name=uid("pool"), prefixes=["10.200.0.0/16"],
                                        address_scope_id=scope.id)
    assert pool.address_scope_id == scope.id
    with pytest.raises(exc.BadRequestException):
        a.network.create_subnet_pool(name="v6", prefixes=["fd00:1::/48"],
                                     address_scope_id=scope.id)
    with pytest.raises(exc.NotFoundException):
        b.network.create_subnet_pool(name="other", prefixes=["10.201.0.0/16"],
                                     address_scope_id=scope.id)
    net = a.network.create_network(name=uid("scoped"))
    a.network.create_subnet(network_id=net.id, ip_version=4, subnetpool_id=pool.id,
                            prefixlen=24)
    assert a.network.get_network(net.id).ipv4_address_scope_id == scope.id
    with pytest.raises(exc.ConflictException):  # in use by a pool
        a.network.delete_address_scope(scope)
    a.network.delete_network(net)
    a.network.delete_subnet_pool(pool)
    # shared by the admin: visible to every project, and the CLI agrees
    shared = cloud.openstack("address", "scope", "create", "--share", "--ip-version", "6",
                             uid("shared"))
    assert shared["shared"] is True
    assert b.network.get_address_scope(shared["id"]).is_shared is True
    cloud.openstack("address", "scope", "delete", shared["id"], parse=False)
    a.network.delete_address_scope(scope)
    with pytest.raises(exc.NotFoundException):
        a.network.get_address_scope(scope.id)


def test_trunks(admin, members, net_a):
    a, b = members
    net, _ = net_a
    parent = a.network.create_port(network_id=net.id, name="parent")
    sub1 = a.network.create_port(network_id=net.id, name="sub1")
    sub2 = a.network.create_port(network_id=net.id, name="sub2")
    trunk = a.network.create_trunk(name=uid("trunk"), port_id=parent.id, sub_ports=[
        {"port_id": sub1.id, "segmentation_type": "vlan", "segmentation_id": 100}])
    assert trunk.port_id == parent.id and trunk.status == "DOWN"
    assert trunk.sub_ports == [{"port_id": sub1.id, "segmentation_type": "vlan",
                                "segmentation_id": 100}]
    details = a.network.get_port(parent.id).trunk_details
    assert details["trunk_id"] == trunk.id
    assert details["sub_ports"][0]["mac_address"] == sub1.mac_address
    assert a.network.get_port(sub1.id).device_owner == "trunk:subport"
    # another project: 404 everywhere
    with pytest.raises(exc.NotFoundException):
        b.network.get_trunk(trunk.id)
    with pytest.raises(exc.NotFoundException):
        b.network.add_trunk_subports(trunk.id, [{"port_id": sub2.id,
                                                  "segmentation_type": "vlan",
                                                  "segmentation_id": 101}])
    # conflicts: same segmentation, port already a subport, parent of another trunk
    with pytest.raises(exc.ConflictException):
        a.network.add_trunk_subports(trunk, [{"port_id": sub2.id, "segmentation_type": "vlan",
                                              "segmentation_id": 100}])
    with pytest.raises(exc.ConflictException):
        a.network.create_trunk(port_id=sub1.id)
    with pytest.raises(exc.ConflictException):
        a.network.create_trunk(port_id=parent.id)
    with pytest.raises(exc.BadRequestException):  # vlan ids are 1..4094
        a.network.add_trunk_subports(trunk, [{"port_id": sub2.id, "segmentation_type": "vlan",
                                              "segmentation_id": 4095}])
    with pytest.raises(exc.ConflictException):  # a port held by a trunk cannot go
        a.network.delete_port(sub1)
    with pytest.raises(exc.ConflictException):
        a.network.delete_port(parent)
    a.network.add_trunk_subports(trunk, [{"port_id": sub2.id, "segmentation_type": "vlan",
                                          "segmentation_id": 101}])
    a.network.set_tags(trunk, ["t1"])
    assert a.network.get_trunk(trunk.id).tags == ["t1"]
    subs = a.network.get_trunk_subports(trunk)["sub_ports"]
    assert {s["port_id"] for s in subs} == {sub1.id, sub2.id}
    a.network.delete_trunk_subports(trunk, [{"port_id": sub1.id}])
    assert [s["port_id"] for s in a.network.get_trunk(trunk.id).sub_ports] == [sub2.id]
    assert a.network.get_port(sub1.id).device_owner == ""
    # a disabled trunk is locked
    a.network.update_trunk(trunk, is_admin_state_up=False)
    with pytest.raises(exc.ConflictException):
        a.network.delete_trunk_subports(trunk, [{"port_id": sub2.id}])
    with pytest.raises(exc.ConflictException):
        a.network.delete_trunk(trunk)
    a.network.update_trunk(trunk, is_admin_state_up=True)
    a.network.delete_trunk(trunk)
    assert "trunk_details" not in a.network.get_port(parent.id).to_dict(computed=False) or \
        a.network.get_port(parent.id).trunk_details is None
    for p in (parent, sub1, sub2):
        a.network.delete_port(p)


def test_qos_policies_and_rules(cloud, admin, members, net_a):
    a, b = members
    net, _ = net_a
    # a member may not create policies (Neutron: admin or project manager)
    with pytest.raises(exc.ForbiddenException):
        a.network.create_qos_policy(name="nope")
    private = admin.network.create_qos_policy(name=uid("qos"),
                                              project_id=a.current_project_id)
    shared = admin.network.create_qos_policy(name=uid("qosshared"), shared=True)
    try:
        bw = admin.network.create_qos_bandwidth_limit_rule(private, max_kbps=1000,
                                                           max_burst_kbps=100)
        assert bw.direction == "egress" and bw.max_kbps == 1000
        admin.network.create_qos_bandwidth_limit_rule(private, max_kbps=500,
                                                      direction="ingress")
        with pytest.raises(exc.ConflictException):  # one per direction
            admin.network.create_qos_bandwidth_limit_rule(private, max_kbps=1)
        with pytest.raises(exc.BadRequestException):
            admin.network.create_qos_bandwidth_limit_rule(private, max_kbps=-1)
        dscp = admin.network.create_qos_dscp_marking_rule(private, dscp_mark=26)
        with pytest.raises(exc.BadRequestException):
            admin.network.create_qos_dscp_marking_rule(shared, dscp_mark=7)
        minbw = admin.network.create_qos_minimum_bandwidth_rule(private, min_kbps=200)
        assert minbw.direction == "egress"
        pps = admin.network.create_qos_packet_rate_limit_rule(private, max_kpps=300)
        assert pps.max_kpps == 300 and pps.max_burst_kpps == 0
        updated = admin.network.update_qos_bandwidth_limit_rule(bw, private, max_kbps=2000)
        assert updated.max_kbps == 2000
        shown = a.network.get_qos_policy(private.id)
        assert {r["type"] for r in shown.rules} == {"bandwidth_limit", "dscp_marking",
                                                    "minimum_bandwidth", "packet_rate_limit"}
        assert len(shown.rules) == 5
        # tags, where the SDK puts them (Neutron's tag extension says "policies")
        admin.network.set_tags(private, ["blue"])
        assert admin.network.get_qos_policy(private.id).tags == ["blue"]
        admin.network.delete_qos_dscp_marking_rule(dscp, private)
        assert len(admin.network.get_qos_policy(private.id).rules) == 4
        # visibility: the other project sees the shared policy, not the private one
        visible_b = {p.id for p in b.network.qos_policies()}
        assert shared.id in visible_b and private.id not in visible_b
        with pytest.raises(exc.NotFoundException):
            b.network.get_qos_policy(private.id)
        # rule types, as the CLI shows them
        types = {t["Type"] for t in json.loads(cloud.openstack(
            "network", "qos", "rule", "type", "list", "-f", "json", parse=False))}
        assert types == {"bandwidth_limit", "dscp_marking", "minimum_bandwidth",
                         "packet_rate_limit", "minimum_packet_rate"}
        detail = admin.network.get_qos_rule_type("bandwidth_limit")
        assert {p["parameter_name"] for p in detail.drivers[0]["supported_parameters"]} == {
            "max_kbps", "max_burst_kbps", "direction"}
        # qos_policy_id on ports and networks; another project's private policy is 404
        port = a.network.create_port(network_id=net.id, qos_policy_id=private.id)
        assert port.qos_policy_id == private.id
        with pytest.raises(exc.NotFoundException):
            b.network.create_network(name="x", qos_policy_id=private.id)
        a.network.update_network(net, qos_policy_id=shared.id)
        assert a.network.get_network(net.id).qos_policy_id == shared.id
        assert a.network.get_port(port.id).qos_network_policy_id == shared.id
        with pytest.raises(exc.ConflictException):  # in use
            admin.network.delete_qos_policy(private)
        a.network.delete_port(port)
        a.network.update_network(net, qos_policy_id=None)
    finally:
        admin.network.delete_qos_policy(private, ignore_missing=True)
        admin.network.delete_qos_policy(shared, ignore_missing=True)


def test_qos_default_policy(admin, members):
    a, _ = members
    pid = a.current_project_id
    default = admin.network.create_qos_policy(name=uid("dflt"), project_id=pid,
                                              is_default=True)
    try:
        assert default.is_default is True
        with pytest.raises(exc.ConflictException):
            admin.network.create_qos_policy(name="second", project_id=pid, is_default=True)
        net = a.network.create_network(name=uid("dfltnet"))
        assert net.qos_policy_id == default.id
        a.network.delete_network(net)
    finally:
        admin.network.delete_qos_policy(default)


def test_flavors_and_service_profiles(cloud, admin, members):
    a, _ = members
    flavor = admin.network.create_flavor(name=uid("flv"), service_type="L3_ROUTER_NAT",
                                         description="d")
    profile = admin.network.create_service_profile(description="p", metainfo="{'a': 1}")
    try:
        assert flavor.is_enabled is True and flavor.service_type == "L3_ROUTER_NAT"
        assert profile.meta_info == "{'a': 1}"
        with pytest.raises(exc.BadRequestException):
            admin.network.create_flavor(name="x", service_type="NO_SUCH_SERVICE")
        with pytest.raises(exc.BadRequestException):  # neither driver nor metainfo
            admin.network.create_service_profile(description="empty")
        # members read flavors, never change them; service profiles are admin-only
        assert flavor.id in {f.id for f in a.network.flavors()}
        with pytest.raises(exc.ForbiddenException):
            a.network.create_flavor(name="x", service_type="L3_ROUTER_NAT")
        with pytest.raises(exc.NotFoundException):
            a.network.get_service_profile(profile.id)
        admin.network.associate_flavor_with_service_profile(flavor, profile)
        assert admin.network.get_flavor(flavor.id).service_profile_ids == [profile.id]
        # (the SDK does not raise on this call's errors: look at the answer itself)
        again = admin.network.post(f"/flavors/{flavor.id}/service_profiles",
                                   json={"service_profile": {"id": profile.id}})
        assert again.status_code == 409
        other = admin.network.delete(f"/flavors/{flavor.id}/service_profiles/{uuid.uuid4()}")
        assert other.status_code == 404
        with pytest.raises(exc.ConflictException):
            admin.network.delete_service_profile(profile)
        admin.network.disassociate_flavor_from_service_profile(flavor, profile)
        assert admin.network.get_flavor(flavor.id).service_profile_ids == []
        cli = cloud.openstack("network", "flavor", "set", "--disable", flavor.id, parse=False)
        assert cli == ""
        assert admin.network.get_flavor(flavor.id).is_enabled is False
    finally:
        admin.network.delete_flavor(flavor, ignore_missing=True)
        admin.network.delete_service_profile(profile, ignore_missing=True)
