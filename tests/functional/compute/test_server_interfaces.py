"""os-interface: ports attached to and detached from living servers, through the `openstack`
CLI (server add/remove port|network, server add fixed ip, port list --server) and
openstacksdk, on the shared session cloud (fake compute and network drivers: the records;
tests/system/ checks that a running container really gets eth1)."""

from __future__ import annotations

import uuid

import pytest
from tests.functional.compute.servers_common import uniq, wait

MV = "2.79"


@pytest.fixture(scope="module")
def nets(admin):
    """Two networks with a subnet each, in the admin project."""
    out = []
    for cidr in ("10.71.1.0/24", "10.71.2.0/24"):
        net = admin.network.create_network(name=uniq("ifnet"))
        sub = admin.network.create_subnet(network_id=net.id, ip_version=4, cidr=cidr,
                                          name=uniq("ifsub"))
        out.append((net, sub))
    yield out
    for net, _ in out:
        for port in admin.network.ports(network_id=net.id):
            admin.network.delete_port(port.id)
        admin.network.delete_network(net.id)


def boot(admin, net_id, name, tag=None):
    image = admin.image.find_image("busybox", ignore_missing=False).id
    nic = {"uuid": net_id, **({"tag": tag} if tag else {})}
    r = admin.compute.post("/servers", json={"server": {
        "name": name, "imageRef": image, "flavorRef": "1", "networks": [nic]}},
        microversion=MV)
    assert r.status_code == 202, r.text
    return wait(admin, r.json()["server"]["id"], {"ACTIVE"})


def interfaces(admin, sid, mv=MV):
    r = admin.compute.get(f"/servers/{sid}/os-interface", microversion=mv)
    assert r.status_code == 200, r.text
    return r.json()["interfaceAttachments"]


def test_attach_and_detach_through_the_cli(cloud, admin, nets):
    (net_a, sub_a), (net_b, sub_b) = nets
    name = uniq("ifsrv")
    srv = boot(admin, net_a.id, name)
    ports = cloud.openstack("port", "list", "--server", name)
    assert len(ports) == 1
    # a network: a new port made for the server
    cloud.openstack("server", "add", "network", name, net_b.name, parse=False)
    # a port of its own, with a chosen address
    own = cloud.openstack("port", "create", "--network", net_b.name, "--fixed-ip",
                          f"subnet={sub_b.id},ip-address=10.71.2.77", uniq("ifport"))
    cloud.openstack("server", "add", "port", name, own["id"], parse=False)
    # a fixed address on the first network (os-interface with net_id + fixed_ips)
    cloud.openstack("server", "add", "fixed", "ip", "--fixed-ip-address", "10.71.1.55",
                    name, net_a.name, parse=False)
    atts = interfaces(admin, srv.id)
    assert len(atts) == 4
    by_port = {a["port_id"]: a for a in atts}
    assert by_port[own["id"]]["fixed_ips"] == [{"subnet_id": sub_b.id,
                                                "ip_address": "10.71.2.77"}]
    assert by_port[own["id"]]["net_id"] == net_b.id
    assert {a["net_id"] for a in atts} == {net_a.id, net_b.id}
    assert all(a["mac_addr"] and a["port_state"] for a in atts)
    assert atts[0]["tag"] is None  # 2.70+: shown, none given
    addrs = cloud.openstack("server", "show", name)["addresses"]
    assert "10.71.2.77" in str(addrs) and "10.71.1.55" in str(addrs)
    assert len(cloud.openstack("port", "list", "--server", name)) == 4
    # one interface through openstacksdk
    one = admin.compute.get_server_interface(own["id"], server=srv.id)
    assert one.mac_addr == own["mac_address"] and one.net_id == net_b.id
    # the history says what happened
    acts = [a["Action"] for a in cloud.openstack("server", "event", "list", name)]
    assert acts.count("attach_interface") == 3

    # removing the port it brought: the port stays, unbound, and can be used again
    cloud.openstack("server", "remove", "port", name, own["id"], parse=False)
    kept = admin.network.get_port(own["id"])
    assert kept.device_id == "" and kept.device_owner == ""
    # removing a network: the ports made for the server on it are deleted
    made = [a["port_id"] for a in interfaces(admin, srv.id) if a["net_id"] == net_b.id]
    assert len(made) == 1
    cloud.openstack("server", "remove", "network", name, net_b.name, parse=False)
    assert admin.network.find_port(made[0]) is None
    assert {a["net_id"] for a in interfaces(admin, srv.id)} == {net_a.id}
    admin.network.delete_port(own["id"])
    admin.compute.delete_server(srv.id)
    admin.compute.wait_for_delete(srv, wait=60)


def test_tags_bad_input_and_other_projects(cloud, admin, nets):
    (net_a, _), (net_b, sub_b) = nets
    srv = boot(admin, net_a.id, uniq("ifsrv"))
    base = f"/servers/{srv.id}/os-interface"

    def attach(body, mv=MV):
        return admin.compute.post(base, json=body, microversion=mv)

    before = interfaces(admin, srv.id)
    bad = [
        ({"interfaceAttachment": {"net_id": net_b.id, "port_id": str(uuid.uuid4())}}, 400),
        ({"interfaceAttachment": {"fixed_ips": [{"ip_address": "10.71.2.9"}]}}, 400),
        ({"interfaceAttachment": {"net_id": "not-a-uuid"}}, 400),
        ({"interfaceAttachment": {"net_id": net_b.id, "fixed_ips": [{"ip_address": "x"}]}}, 400),
        ({"interfaceAttachment": {"net_id": net_b.id, "fixed_ips": []}}, 400),
        ({"interfaceAttachment": {"net_id": net_b.id, "color": "red"}}, 400),
        ({"interfaceAttachment": {"net_id": net_b.id, "tag": "a/b"}}, 400),
        ({"interfaceAttachment": "eth1"}, 400),
        ({"interface": {}}, 400),
        ({"interfaceAttachment": {"net_id": str(uuid.uuid4())}}, 404),
        ({"interfaceAttachment": {"port_id": str(uuid.uuid4())}}, 404),
        # two networks in this project: "any network" is ambiguous
        ({"interfaceAttachment": {}}, 400),
        # an address outside every subnet of the network
        ({"interfaceAttachment": {"net_id": net_b.id,
                                  "fixed_ips": [{"ip_address": "192.0.2.1"}]}}, 400),
    ]
    for body, status in bad:
        r = attach(body)
        assert r.status_code == status, (body, r.status_code, r.text)
        assert r.json().get(next(iter(r.json()))).get("message"), r.text
    # a tag needs 2.49
    assert attach({"interfaceAttachment": {"net_id": net_b.id, "tag": "db"}}, "2.48") \
        .status_code == 400
    assert interfaces(admin, srv.id) == before  # nothing changed
    r = attach({"interfaceAttachment": {"net_id": net_b.id, "tag": "db"}})
    assert r.status_code == 200, r.text
    att = r.json()["interfaceAttachment"]
    assert att["tag"] == "db" and att["net_id"] == net_b.id
    assert {a["port_id"]: a.get("tag") for a in interfaces(admin, srv.id)}[att["port_id"]] == "db"
    assert "tag" not in interfaces(admin, srv.id, "2.69")[0]
    # the address is taken now: another port cannot have it
    taken = att["fixed_ips"][0]["ip_address"]
    r = attach({"interfaceAttachment": {"net_id": net_b.id,
                                        "fixed_ips": [{"ip_address": taken}]}})
    assert r.status_code == 409, r.text
    # a port in use by another server
    other = boot(admin, net_a.id, uniq("ifsrv2"), tag="boot-nic")
    used = interfaces(admin, other.id)[0]["port_id"]
    assert interfaces(admin, other.id)[0]["tag"] == "boot-nic"  # a tag given at boot
    assert attach({"interfaceAttachment": {"port_id": used}}).status_code == 409
    # detaching what the server does not have
    assert admin.compute.delete(f"{base}/{used}", microversion=MV).status_code == 404
    assert admin.compute.get(f"{base}/{used}", microversion=MV).status_code == 404
    # another project sees no such server
    demo = cloud.sdk("demo")
    assert demo.compute.get(base, microversion=MV).status_code == 404
    assert demo.compute.post(base, json={"interfaceAttachment": {}},
                             microversion=MV).status_code == 404
    # a suspended server cannot change its interfaces; a stopped one can
    admin.compute.suspend_server(srv.id)
    wait(admin, srv.id, {"SUSPENDED"})
    r = attach({"interfaceAttachment": {"net_id": net_b.id}})
    assert r.status_code == 409 and "suspended" in r.text, r.text
    admin.compute.resume_server(srv.id)
    wait(admin, srv.id, {"ACTIVE"})
    admin.compute.stop_server(srv.id)
    wait(admin, srv.id, {"SHUTOFF"})
    assert admin.compute.delete(f"{base}/{att['port_id']}", microversion=MV).status_code == 202
    assert att["port_id"] not in [a["port_id"] for a in interfaces(admin, srv.id)]
    assert admin.network.find_port(att["port_id"]) is None
    for s in (srv, other):
        admin.compute.delete_server(s.id)
        admin.compute.wait_for_delete(s, wait=60)


def test_add_and_remove_fixed_ip_actions_before_2_44(admin, nets):
    (net_a, _), (net_b, _) = nets
    srv = boot(admin, net_a.id, uniq("ifsrv"))
    act = f"/servers/{srv.id}/action"
    r = admin.compute.post(act, json={"addFixedIp": {"networkId": net_b.id}},
                           microversion="2.43")
    assert r.status_code == 202, r.text
    added = [a for a in interfaces(admin, srv.id) if a["net_id"] == net_b.id]
    assert len(added) == 1
    address = added[0]["fixed_ips"][0]["ip_address"]
    for body, mv, status in (({"addFixedIp": {"networkId": net_b.id}}, "2.44", 400),
                             ({"addFixedIp": {"network": net_b.id}}, "2.43", 400),
                             ({"removeFixedIp": {"address": "10.71.9.9"}}, "2.43", 400)):
        r = admin.compute.post(act, json=body, microversion=mv)
        assert r.status_code == status, (body, mv, r.text)
    r = admin.compute.post(act, json={"removeFixedIp": {"address": address}},
                           microversion="2.43")
    assert r.status_code == 202, r.text
    assert [a["net_id"] for a in interfaces(admin, srv.id)] == [net_a.id]
    admin.compute.delete_server(srv.id)
    admin.compute.wait_for_delete(srv, wait=60)
