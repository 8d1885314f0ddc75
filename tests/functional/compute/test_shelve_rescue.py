"""Shelve, shelve-offload, unshelve, rescue and unrescue through the `openstack` CLI and
openstacksdk on the shared session cloud (fake compute and network drivers; Nova's default
shelved_offload_time = 0, so shelve ends SHELVED_OFFLOADED). tests/system/ checks the
guests themselves."""

from __future__ import annotations

from tests.functional.compute.servers_common import uniq, wait

MV = "2.79"


def boot(conn, image_ref, net_id, name=None):
    r = conn.compute.post("/servers", json={"server": {
        "name": name or uniq("shsrv"), "imageRef": image_ref, "flavorRef": "1",
        "networks": [{"uuid": net_id}]}}, microversion=MV)
    assert r.status_code == 202, r.text
    return wait(conn, r.json()["server"]["id"], {"ACTIVE"})


def action(conn, sid, body, mv=MV):
    return conn.compute.post(f"/servers/{sid}/action", json=body, microversion=mv)


def show(conn, sid, mv=MV):
    r = conn.compute.get(f"/servers/{sid}", microversion=mv)
    assert r.status_code == 200, r.text
    return r.json()["server"]


def settle(conn, sid, timeout=30):
    """The server's view once no task runs on it (a status alone does not say: an
    unshelving server is still SHELVED_OFFLOADED)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        body = show(conn, sid)
        if body["OS-EXT-STS:task_state"] is None:
            return body
        assert time.monotonic() < deadline, f"{sid} stuck in {body['OS-EXT-STS:task_state']}"
        time.sleep(0.05)


def ports_of(conn, sid):
    return sorted((p.id, p.mac_address, tuple(ip["ip_address"] for ip in p.fixed_ips))
                  for p in conn.network.ports(device_id=sid))


def events(conn, sid, name):
    acts = conn.compute.get(f"/servers/{sid}/os-instance-actions", microversion=MV).json()
    ids = [a["request_id"] for a in acts["instanceActions"] if a["action"] == name]
    assert ids, f"no {name} action in {acts}"
    a = conn.compute.get(f"/servers/{sid}/os-instance-actions/{ids[0]}",
                         microversion=MV).json()["instanceAction"]
    return {e["event"]: e["result"] for e in a["events"]}


def event_traceback(conn, sid, name):
    acts = conn.compute.get(f"/servers/{sid}/os-instance-actions", microversion=MV).json()
    rid = [a["request_id"] for a in acts["instanceActions"] if a["action"] == name][0]
    a = conn.compute.get(f"/servers/{sid}/os-instance-actions/{rid}",
                         microversion=MV).json()["instanceAction"]
    assert a["message"] == "Error"
    return "".join(e.get("traceback") or "" for e in a["events"])


def used(conn):
    return conn.compute.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]


def test_shelve_offload_unshelve_keeps_ports_and_frees_the_host(cloud, admin, own_image, own_net):
    srv = boot(admin, own_image, own_net.id)
    before_ports = ports_of(admin, srv.id)
    assert before_ports
    stats0 = used(admin)
    limits0 = admin.compute.get("/limits").json()["limits"]["absolute"]
    cloud.openstack("server", "shelve", srv.id, parse=False)
    body = settle(admin, srv.id)
    assert body["status"] == "SHELVED_OFFLOADED", body.get("fault")
    assert body["OS-EXT-STS:vm_state"] == "shelved_offloaded"
    assert body["OS-EXT-STS:task_state"] is None
    assert body["OS-EXT-SRV-ATTR:host"] is None and body["OS-EXT-SRV-ATTR:hypervisor_hostname"] is None
    # the snapshot, as Nova names and tags it
    img = admin.image.find_image(f"{srv.name}-shelved", ignore_missing=False)
    assert img.status == "active"
    raw = admin.image.get(f"/images/{img.id}").json()
    assert raw["image_type"] == "snapshot" and raw["instance_uuid"] == srv.id
    assert raw["base_image_ref"] == own_image
    # the host's resources are free, the project's quota usage is not (as Nova counts)
    stats1 = used(admin)
    assert stats1["vcpus_used"] == stats0["vcpus_used"] - 1
    assert stats1["running_vms"] == stats0["running_vms"] - 1
    limits1 = admin.compute.get("/limits").json()["limits"]["absolute"]
    assert limits1["totalCoresUsed"] == limits0["totalCoresUsed"]
    assert limits1["totalInstancesUsed"] == limits0["totalInstancesUsed"]
    assert ports_of(admin, srv.id) == before_ports
    ev = events(admin, srv.id, "shelve")
    assert ev == {"compute_shelve_instance": "Success",
                  "compute_shelve_offload_instance": "Success"}
    # unshelve: same ports (ids, MACs, fixed IPs), the image goes
    cloud.openstack("server", "unshelve", srv.id, parse=False)
    body = settle(admin, srv.id)
    assert body["status"] == "ACTIVE", body.get("fault")
    assert body["OS-EXT-SRV-ATTR:host"].startswith("fake-")
    assert ports_of(admin, srv.id) == before_ports
    assert admin.image.find_image(img.id) is None
    assert used(admin)["vcpus_used"] == stats0["vcpus_used"]
    assert events(admin, srv.id, "unshelve") == {"schedule_instances": "Success",
                                                 "compute_unshelve_instance": "Success"}
    admin.compute.delete_server(srv.id)


def test_shelve_and_unshelve_refusals(cloud, admin, demo, own_image, own_net):
    srv = boot(admin, own_image, own_net.id)
    # locked: 409 for the owner's project member... and the lock is the admin's here, so a
    # non-admin (demo has no access at all: 404) - check the lock with a demo server below
    r = action(admin, srv.id, {"unshelve": None})
    assert r.status_code == 409, r.text  # not shelved
    assert action(demo, srv.id, {"shelve": None}).status_code == 404  # another project's
    assert action(admin, srv.id, {"shelveOffload": None}).status_code == 409  # not shelved
    admin.compute.delete_server(srv.id)

    dnet = demo.network.create_network(name=uniq("shdnet"))
    demo.network.create_subnet(network_id=dnet.id, ip_version=4, cidr="10.72.2.0/24")
    try:
        dsrv = boot(demo, own_image, dnet.id)
        assert action(demo, dsrv.id, {"lock": None}).status_code == 202
        res = cloud.openstack("server", "shelve", dsrv.id, user="demo", check=False)
        assert res.returncode != 0 and "locked" in res.stderr, res.stderr
        assert show(demo, dsrv.id)["status"] == "ACTIVE"
        assert action(demo, dsrv.id, {"unlock": None}).status_code == 202
        assert action(demo, dsrv.id, {"shelve": None}).status_code == 202
        wait(demo, dsrv.id, {"SHELVED_OFFLOADED"})
        # shelveOffload is an admin's (Nova's policy); a second shelve is a 409
        assert action(demo, dsrv.id, {"shelveOffload": None}).status_code in (403, 409)
        assert action(demo, dsrv.id, {"shelve": None}).status_code == 409
        assert action(demo, dsrv.id, {"rescue": None}).status_code == 409
        # 2.77: an unknown zone is a 400 and changes nothing; extra keys too
        r = action(demo, dsrv.id, {"unshelve": {"availability_zone": "atlantis"}}, "2.77")
        assert r.status_code == 400, r.text
        r = action(demo, dsrv.id, {"unshelve": {"host": "fake-1"}}, "2.77")
        assert r.status_code == 400, r.text
        assert show(demo, dsrv.id)["status"] == "SHELVED_OFFLOADED"
        r = action(demo, dsrv.id, {"unshelve": {"availability_zone": "nova"}}, "2.77")
        assert r.status_code == 202, r.text
        body = settle(demo, dsrv.id)
        assert body["status"] == "ACTIVE", body.get("fault")
        # deleting a shelved server deletes its snapshot too (as Nova)
        assert action(demo, dsrv.id, {"shelve": None}).status_code == 202
        assert settle(demo, dsrv.id)["status"] == "SHELVED_OFFLOADED"
        snap = demo.image.find_image(f"{dsrv.name}-shelved", ignore_missing=False)
        demo.compute.delete_server(dsrv.id)
        wait_gone(demo, dsrv.id)
        assert demo.image.find_image(snap.id) is None
    finally:
        for port in demo.network.ports(network_id=dnet.id):
            demo.network.delete_port(port.id)
        demo.network.delete_network(dnet.id)


def wait_gone(conn, sid, timeout=30):
    import time

    deadline = time.monotonic() + timeout
    while conn.compute.find_server(sid) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_unshelve_onto_disabled_hosts_goes_back_with_no_valid_host(cloud, admin, own_image, own_net):
    srv = boot(admin, own_image, own_net.id)
    assert action(admin, srv.id, {"shelve": None}).status_code == 202
    wait(admin, srv.id, {"SHELVED_OFFLOADED"})
    services = [s for s in admin.compute.services() if s.binary == "nova-compute"]
    try:
        for s in services:
            cloud.openstack("compute", "service", "set", "--disable", "--disable-reason",
                            "maintenance", s.host, "nova-compute", parse=False)
        assert action(admin, srv.id, {"unshelve": None}).status_code == 202
        body = settle(admin, srv.id)
        assert body["status"] == "SHELVED_OFFLOADED"
        # Nova shows a fault only on ERROR servers: the reason is in the action's event
        assert "fault" not in body
        assert body["OS-EXT-SRV-ATTR:host"] is None
        assert events(admin, srv.id, "unshelve") == {"schedule_instances": "Error"}
        tb = event_traceback(admin, srv.id, "unshelve")
        assert "No valid host was found." in tb and "enabled and up compute service" in tb, tb
        # the snapshot is still there for the next try
        assert admin.image.find_image(f"{srv.name}-shelved") is not None
    finally:
        for s in services:
            cloud.openstack("compute", "service", "set", "--enable", s.host, "nova-compute",
                            parse=False)
    assert action(admin, srv.id, {"unshelve": None}).status_code == 202
    assert settle(admin, srv.id)["status"] == "ACTIVE"
    admin.compute.delete_server(srv.id)


def test_rescue_and_unrescue(cloud, admin, demo, own_image, own_net):
    srv = boot(admin, own_image, own_net.id)
    out = cloud.openstack("server", "rescue", srv.id, parse=False)
    body = settle(admin, srv.id)
    assert body["status"] == "RESCUE", (out, body.get("fault"))
    console = action(admin, srv.id, {"os-getConsoleOutput": {}}).json()["output"]
    assert f"rescue boot from image {own_image}" in console
    assert events(admin, srv.id, "rescue") == {"compute_rescue_instance": "Success"}
    assert action(admin, srv.id, {"rescue": None}).status_code == 409  # already
    assert action(admin, srv.id, {"shelve": None}).status_code == 409
    cloud.openstack("server", "unrescue", srv.id, parse=False)
    assert wait(admin, srv.id, {"ACTIVE"}).status == "ACTIVE"
    assert action(admin, srv.id, {"unrescue": None}).status_code == 409  # not rescued
    # adminPass comes back (given or generated); bad bodies are 400s
    r = action(admin, srv.id, {"rescue": {"adminPass": "s3cret", "bogus": 1}})
    assert r.status_code == 400, r.text
    r = action(admin, srv.id, {"rescue": {"rescue_image_ref": "not-a-uuid"}})
    assert r.status_code == 400, r.text
    r = action(admin, srv.id, {"rescue": {"adminPass": "s3cret"}})
    assert r.status_code == 200 and r.json() == {"adminPass": "s3cret"}, r.text
    wait(admin, srv.id, {"RESCUE"})
    assert action(admin, srv.id, {"unrescue": None}).status_code == 202
    wait(admin, srv.id, {"ACTIVE"})
    assert action(demo, srv.id, {"rescue": None}).status_code == 404
    admin.compute.delete_server(srv.id)


def test_rescue_with_an_image_that_cannot_boot_or_is_not_visible(cloud, admin, demo, own_image,
                                                                  own_net):
    kernel = admin.image.create_image(name=uniq("aki"), disk_format="aki",
                                      container_format="aki", data=b"\0" * 512,
                                      visibility="public")
    private = admin.image.create_image(name=uniq("priv"), disk_format="raw",
                                       container_format="bare", data=b"\0" * 512,
                                       visibility="private")
    dnet = demo.network.create_network(name=uniq("rsdnet"))
    demo.network.create_subnet(network_id=dnet.id, ip_version=4, cidr="10.72.3.0/24")
    try:
        srv = boot(demo, own_image, dnet.id)
        for img, why in ((kernel.id, "kernel or ramdisk"), (private.id, "No image found")):
            r = action(demo, srv.id, {"rescue": {"rescue_image_ref": img}})
            assert r.status_code == 200, r.text
            body = settle(demo, srv.id)
            # back to ACTIVE; the reason is in the action (Nova shows faults on ERROR only)
            assert body["status"] == "ACTIVE" and "fault" not in body
            tb = event_traceback(admin, srv.id, "rescue")
            assert why in tb, tb
        demo.compute.delete_server(srv.id)
        wait_gone(demo, srv.id)
    finally:
        admin.image.delete_image(kernel.id)
        admin.image.delete_image(private.id)
        for port in demo.network.ports(network_id=dnet.id):
            demo.network.delete_port(port.id)
        demo.network.delete_network(dnet.id)


def test_volume_backed_shelve_has_no_snapshot_and_keeps_its_volume(cloud, admin, own_image,
                                                                   own_net):
    r = admin.compute.post("/servers", json={"server": {
        "name": uniq("shbfv"), "imageRef": "", "flavorRef": "1",
        "networks": [{"uuid": own_net.id}],
        "block_device_mapping_v2": [{"boot_index": 0, "uuid": own_image, "source_type": "image",
                                     "destination_type": "volume", "volume_size": 1,
                                     "delete_on_termination": True}]}}, microversion=MV)
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    body = settle(admin, sid)
    assert body["status"] == "ACTIVE", body.get("fault")
    vols = [v["id"] for v in body["os-extended-volumes:volumes_attached"]]
    assert len(vols) == 1
    assert action(admin, sid, {"shelve": None}).status_code == 202
    body = settle(admin, sid)
    assert body["status"] == "SHELVED_OFFLOADED", body
    assert admin.image.find_image(f"{body['name']}-shelved") is None  # no image: the volume
    assert [v["id"] for v in body["os-extended-volumes:volumes_attached"]] == vols
    assert events(admin, sid, "shelve") == {"compute_shelve_offload_instance": "Success"}
    assert action(admin, sid, {"rescue": None}).status_code == 409
    assert action(admin, sid, {"unshelve": None}).status_code == 202
    body = settle(admin, sid)
    assert body["status"] == "ACTIVE", body
    assert [v["id"] for v in body["os-extended-volumes:volumes_attached"]] == vols
    assert admin.block_storage.get_volume(vols[0]).status == "in-use"
    # rescue of a volume-backed server needs 2.87 (stable rescue): 400 before
    r = action(admin, sid, {"rescue": None})
    assert r.status_code == 400 and "volume-backed" in r.text, r.text
    admin.compute.delete_server(sid)
