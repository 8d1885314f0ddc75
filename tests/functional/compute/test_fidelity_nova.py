"""Nova behaviours the clients' own suites rely on (issue 22), through openstacksdk and the
`openstack` CLI against the session cloud (fake compute driver)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.functional.compute.servers_common import uniq, wait


@pytest.fixture(scope="module")
def server(admin, own_image, own_net):
    srv = admin.compute.create_server(name=uniq("fid"), image_id=own_image, flavor_id="1",
                                      networks=[{"uuid": own_net.id}])
    srv = wait(admin, srv.id, {"ACTIVE"})
    yield srv
    admin.compute.delete_server(srv.id)


def test_changes_before_and_since_find_the_server_at_its_own_updated(admin, server):
    updated = admin.compute.get_server(server.id).updated_at
    for key in ("changes-before", "changes-since"):
        r = admin.compute.get("/servers", params={key: updated},
                              microversion="2.66")
        assert r.status_code == 200, r.text
        assert server.id in [s["id"] for s in r.json()["servers"]], (key, updated)
    # ...and a second before its update it is not in changes-before
    r = admin.compute.get("/servers", params={"changes-before": "2000-01-01T00:00:00Z"},
                          microversion="2.66")
    assert server.id not in [s["id"] for s in r.json()["servers"]]


def test_topology_of_a_server_without_numa(cloud, admin, demo, server):
    r = admin.compute.get(f"/servers/{server.id}/topology", microversion="2.78")
    assert r.status_code == 200, r.text
    assert r.json() == {"nodes": [], "pagesize_kb": None}
    shown = json.loads(cloud.openstack("--os-compute-api-version", "2.78", "server", "show",
                                       "--topology", server.id, "-f", "json", parse=False))
    assert shown["topology"] == {"nodes": [], "pagesize_kb": None}
    # before 2.78 the resource does not exist; another project's server is not found
    r = admin.compute.get(f"/servers/{server.id}/topology", microversion="2.77")
    assert r.status_code == 404
    r = demo.compute.get(f"/servers/{server.id}/topology", microversion="2.78")
    assert r.status_code == 404


def test_security_groups_are_shown_by_name_when_given_by_id(admin, own_image, own_net):
    sg = admin.network.create_security_group(name=uniq("sg"))
    try:
        srv = admin.compute.create_server(name=uniq("sgsrv"), image_id=own_image,
                                          flavor_id="1", networks=[{"uuid": own_net.id}],
                                          security_groups=[{"name": sg.id}])
        try:
            wait(admin, srv.id, {"ACTIVE"})
            body = admin.compute.get(f"/servers/{srv.id}").json()["server"]
            assert body["security_groups"] == [{"name": sg.name}]
        finally:
            admin.compute.delete_server(srv.id)
            admin.compute.wait_for_delete(admin.compute.get_server(srv.id), wait=60)
    finally:
        admin.network.delete_security_group(sg.id)


def test_volume_attach_and_detach_are_instance_actions(admin, server):
    vol = admin.block_storage.create_volume(size=1, name=uniq("fidvol"))
    admin.block_storage.wait_for_status(vol, "available", wait=60)
    try:
        admin.compute.create_volume_attachment(server.id, volume_id=vol.id)
        admin.block_storage.wait_for_status(vol, "in-use", wait=60)
        admin.compute.delete_volume_attachment(server.id, vol.id)
        admin.block_storage.wait_for_status(vol, "available", wait=60)
        acts = admin.compute.get(f"/servers/{server.id}/os-instance-actions",
                                 microversion="2.58").json()["instanceActions"]
        names = [a["action"] for a in acts]
        assert "attach_volume" in names and "detach_volume" in names, names
        for action, event in (("attach_volume", "compute_attach_volume"),
                              ("detach_volume", "compute_detach_volume")):
            req = next(a["request_id"] for a in acts if a["action"] == action)
            detail = admin.compute.get(f"/servers/{server.id}/os-instance-actions/{req}",
                                       microversion="2.58").json()["instanceAction"]
            assert [(e["event"], e["result"]) for e in detail["events"]] == [(event, "Success")]
    finally:
        admin.block_storage.delete_volume(vol.id, ignore_missing=True)


def test_volume_swap_is_an_instance_action(admin, demo, server):
    old = admin.block_storage.create_volume(size=1, name=uniq("swapold"))
    new = admin.block_storage.create_volume(size=1, name=uniq("swapnew"))
    for v in (old, new):
        admin.block_storage.wait_for_status(v, "available", wait=60)
    try:
        admin.compute.create_volume_attachment(server.id, volume_id=old.id)
        admin.block_storage.wait_for_status(old, "in-use", wait=60)
        url = f"/servers/{server.id}/os-volume_attachments/{old.id}"
        r = demo.compute.put(url, json={"volumeAttachment": {"volumeId": new.id}})
        assert r.status_code in (403, 404), r.text  # admin only
        r = admin.compute.put(url, json={"volumeAttachment": {"volumeId": new.id}})
        assert r.status_code == 202, r.text
        attached = admin.compute.get(f"/servers/{server.id}/os-volume_attachments").json()
        assert [a["volumeId"] for a in attached["volumeAttachments"]] == [new.id]
        admin.block_storage.wait_for_status(old, "available", wait=60)
        acts = admin.compute.get(f"/servers/{server.id}/os-instance-actions",
                                 microversion="2.58").json()["instanceActions"]
        req = next(a["request_id"] for a in acts if a["action"] == "swap_volume")
        detail = admin.compute.get(f"/servers/{server.id}/os-instance-actions/{req}",
                                   microversion="2.58").json()["instanceAction"]
        assert [(e["event"], e["result"]) for e in detail["events"]] == [
            ("compute_swap_volume", "Success")]
        admin.compute.delete_volume_attachment(server.id, new.id)
        admin.block_storage.wait_for_status(new, "available", wait=60)
    finally:
        for v in (old, new):
            admin.block_storage.delete_volume(v.id, ignore_missing=True)


def test_aggregate_add_host_takes_the_first_host_of_host_list(cloud):
    hosts = cloud.openstack("host", "list")
    first = hosts[0]["Host Name"]
    agg = uniq("agg")
    cloud.openstack("aggregate", "create", agg)
    try:
        out = json.loads(cloud.openstack("aggregate", "add", "host", agg, first, "-f", "json",
                                         parse=False))
        assert first in out["hosts"]
        assert hosts[0]["Service"] == "compute"
    finally:
        cloud.openstack("aggregate", "remove", "host", agg, first, check=False)
        cloud.openstack("aggregate", "delete", agg)


@pytest.mark.parametrize("path", ["/compute/v2.1", "/compute/v2.1/", "/compute/",
                                  "/compute/v2"])
def test_compute_version_documents_need_no_token(cloud, path):
    with urllib.request.urlopen(cloud.base_url + path, timeout=10) as r:
        assert r.status == 200
        body = r.read().decode()
    assert '"version' in body and "v2" in body


def test_no_network_given_among_several_is_409_at_once(admin, own_image):
    nets = []
    try:
        for i in range(2):  # a second own network of the admin project (own_net is one)
            n = admin.network.create_network(name=uniq("amb"))
            admin.network.create_subnet(network_id=n.id, ip_version=4,
                                        cidr=f"10.73.{i}.0/24")
            nets.append(n)
        before = {s.id for s in admin.compute.servers()}
        for mv, networks in (("2.37", "auto"), ("2.1", None)):
            body = {"name": uniq("amb"), "imageRef": own_image, "flavorRef": "1"}
            if networks:
                body["networks"] = networks
            t = time.monotonic()
            r = admin.compute.post("/servers", json={"server": body}, microversion=mv)
            assert r.status_code == 409, (mv, r.status_code, r.text)
            assert "Multiple possible networks found" in r.text
            assert time.monotonic() - t < 5
        assert {s.id for s in admin.compute.servers()} == before
    finally:
        for n in nets:
            admin.network.delete_network(n.id)
