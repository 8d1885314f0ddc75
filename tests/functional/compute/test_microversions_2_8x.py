"""Nova microversions 2.80-2.101 (issue 22) through openstacksdk and the `openstack` CLI with
explicit microversions, each checked on both sides of the version that brings it, against the
session cloud (fake compute driver). One module server, one demo server, no sleeps."""

from __future__ import annotations

import json

import pytest

from tests.functional.compute.servers_common import uniq, wait

PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFk0b3Kk0j3m3ZpXG0n6b6m1w8l3sH4kJ6QjWq8cYk7Z "
              "test@pocketstack")


@pytest.fixture(scope="module")
def server(admin, own_image, own_net):
    srv = admin.compute.create_server(name=uniq("mv"), image_id=own_image, flavor_id="1",
                                      networks=[{"uuid": own_net.id}])
    srv = wait(admin, srv.id, {"ACTIVE"})
    yield srv
    admin.compute.delete_server(srv.id)


@pytest.fixture(scope="module")
def demo_server(demo, own_image):
    srv = demo.compute.create_server(name=uniq("mvdemo"), image_id=own_image, flavor_id="1",
                                     networks="none", availability_zone="nova")
    srv = wait(demo, srv.id, {"ACTIVE"})
    yield srv
    demo.compute.delete_server(srv.id)


def _get(conn, path, mv, **params):
    return conn.compute.get(path, microversion=mv, params=params or None)


def test_version_document_advertises_2_101(admin):
    r = admin.compute.get("/", microversion="2.1")
    versions = r.json().get("version") or r.json()["versions"][0]
    assert versions["version"] == "2.101", versions
    assert _get(admin, "/servers", "2.101").status_code == 200
    r = _get(admin, "/servers", "2.102")
    assert r.status_code == 406, r.text
    r = admin.compute.get("/servers", microversion="latest")
    assert r.headers["OpenStack-API-Version"] == "compute 2.101"


def test_2_80_migrations_filter_and_show_user_and_project(admin, server):
    admin.compute.resize_server(server.id, "2")
    wait(admin, server.id, {"VERIFY_RESIZE"})
    admin.compute.confirm_server_resize(server.id)
    wait(admin, server.id, {"ACTIVE"})
    me = admin.current_user_id
    project = admin.current_project_id
    r = _get(admin, "/os-migrations", "2.79", user_id=me)
    assert r.status_code == 400, r.text
    rows = _get(admin, "/os-migrations", "2.80", user_id=me,
                instance_uuid=server.id).json()["migrations"]
    assert rows and all(m["user_id"] == me and m["project_id"] == project for m in rows), rows
    assert _get(admin, "/os-migrations", "2.80", project_id=uniq("other"),
                instance_uuid=server.id).json()["migrations"] == []
    old = _get(admin, "/os-migrations", "2.79", instance_uuid=server.id).json()["migrations"]
    assert old and "user_id" not in old[0]


def test_2_81_aggregate_image_cache(admin, own_image):
    agg = admin.compute.create_aggregate(name=uniq("agg"))
    try:
        admin.compute.aggregate_precache_images(agg, [own_image])  # 2.81 by openstacksdk
        path = f"/os-aggregates/{agg.id}/images"
        body = {"cache": [{"id": own_image}]}
        assert admin.compute.post(path, json=body, microversion="2.81").status_code == 202
        assert admin.compute.post(path, json=body, microversion="2.80").status_code == 404
        for bad in ({"cache": [{"id": own_image}, {"id": own_image}]}, {"cache": []},
                    {"cache": [{"id": "not-a-uuid"}]},
                    {"cache": [{"id": "2f1c6b4e-0000-4000-8000-000000000000"}]}):
            r = admin.compute.post(path, json=bad, microversion="2.81")
            assert r.status_code == 400, (bad, r.text)
        r = admin.compute.post("/os-aggregates/99999/images", json=body, microversion="2.81")
        assert r.status_code == 404
    finally:
        admin.compute.delete_aggregate(agg.id)


def test_2_81_image_cache_is_admin_only(demo, admin):
    r = demo.compute.post("/os-aggregates/1/images",
                          json={"cache": [{"id": "2f1c6b4e-0000-4000-8000-000000000000"}]},
                          microversion="2.81")
    assert r.status_code == 403, r.text


def test_2_82_accelerator_event_name(admin, server):
    ev = {"events": [{"name": "accelerator-request-bound", "server_uuid": server.id,
                      "tag": "arq-1"}]}
    assert admin.compute.post("/os-server-external-events", json=ev,
                              microversion="2.81").status_code == 400
    r = admin.compute.post("/os-server-external-events", json=ev, microversion="2.82")
    assert r.status_code == 200, r.text
    assert r.json()["events"][0]["code"] == 200
    # volume-reimaged is 2.93's
    ev["events"][0]["name"] = "volume-reimaged"
    assert admin.compute.post("/os-server-external-events", json=ev,
                              microversion="2.92").status_code == 400


def test_2_83_non_admin_filters(demo, demo_server):
    ids = lambda mv, **q: [s["id"] for s in _get(demo, "/servers/detail", mv, **q)  # noqa: E731
                           .json()["servers"]]
    # before 2.83 Nova ignores these filters for a non-admin: the server is listed
    assert demo_server.id in ids("2.82", vm_state="stopped")
    assert demo_server.id not in ids("2.83", vm_state="stopped")
    assert demo_server.id in ids("2.83", vm_state="active", availability_zone="nova")
    assert demo_server.id not in ids("2.83", power_state="4")
    assert demo_server.id in ids("2.83", power_state="1", user_id=demo.current_user_id)


def test_2_85_volume_attachment_update_and_2_89_ids(cloud, admin, server):
    vol = admin.block_storage.create_volume(size=1, name=uniq("mvvol"))
    admin.block_storage.wait_for_status(vol, "available", wait=60)
    try:
        att = admin.compute.post(f"/servers/{server.id}/os-volume_attachments",
                                 json={"volumeAttachment": {"volumeId": vol.id}},
                                 microversion="2.89").json()["volumeAttachment"]
        assert att["id"] == vol.id  # Nova's POST response kept "id" at 2.89
        admin.block_storage.wait_for_status(vol, "in-use", wait=60)
        path = f"/servers/{server.id}/os-volume_attachments/{vol.id}"
        same = {"volumeAttachment": {"volumeId": vol.id, "delete_on_termination": True}}
        # before 2.85 a PUT is a swap, and the same volume cannot be swapped in
        assert admin.compute.put(path, json=same, microversion="2.84").status_code == 400
        cloud.openstack("--os-compute-api-version", "2.85", "server", "volume", "set",
                        "--delete-on-termination", server.id, vol.id, parse=False)
        shown = _get(admin, path, "2.89").json()["volumeAttachment"]
        assert shown["delete_on_termination"] is True
        assert "id" not in shown and shown["attachment_id"] and shown["bdm_uuid"]
        cinder_att = admin.block_storage.get_volume(vol.id).attachments[0]
        assert shown["attachment_id"] == cinder_att["attachment_id"]
        assert _get(admin, path, "2.89").json()["volumeAttachment"]["bdm_uuid"] == \
            shown["bdm_uuid"]
        old = _get(admin, path, "2.88").json()["volumeAttachment"]
        assert old["id"] == vol.id and "attachment_id" not in old
        # only delete_on_termination may change
        bad = {"volumeAttachment": {"volumeId": vol.id, "device": "/dev/vdz"}}
        r = admin.compute.put(path, json=bad, microversion="2.85")
        assert r.status_code == 400 and "device" in r.text
        admin.compute.update_volume_attachment(server.id, vol.id,
                                               delete_on_termination=False)
        assert _get(admin, path, "2.85").json()["volumeAttachment"][
            "delete_on_termination"] is False
        admin.compute.delete_volume_attachment(server.id, vol.id)
        admin.block_storage.wait_for_status(vol, "available", wait=60)
    finally:
        admin.block_storage.delete_volume(vol.id)


def test_2_88_hypervisors_without_statistics(admin):
    old = _get(admin, "/os-hypervisors/detail", "2.87").json()["hypervisors"][0]
    new = _get(admin, "/os-hypervisors/detail", "2.88").json()["hypervisors"][0]
    assert "vcpus" in old and "uptime" not in old
    for gone in ("vcpus", "memory_mb", "local_gb", "running_vms", "free_ram_mb",
                 "cpu_info", "disk_available_least"):
        assert gone not in new
    assert "uptime" in new and new["hypervisor_type"] == old["hypervisor_type"]
    assert _get(admin, "/os-hypervisors/statistics", "2.87").status_code == 200
    assert _get(admin, "/os-hypervisors/statistics", "2.88").status_code == 404
    assert _get(admin, f"/os-hypervisors/{new['id']}/uptime", "2.88").status_code == 404


def test_2_90_and_2_94_hostname(cloud, admin, demo, own_image):
    name = uniq("hn")
    created = json.loads(cloud.openstack(
        "--os-compute-api-version", "2.90", "server", "create", "--image", own_image,
        "--flavor", "1", "--nic", "none", "--hostname", "web-01", "--wait", name, "-f", "json",
        user="demo", parse=False))
    sid = created["id"]
    try:
        shown = _get(demo, f"/servers/{sid}", "2.90").json()["server"]
        assert shown["OS-EXT-SRV-ATTR:hostname"] == "web-01"  # non-admin sees it from 2.90
        assert "OS-EXT-SRV-ATTR:hostname" not in _get(demo, f"/servers/{sid}",
                                                      "2.89").json()["server"]
        # the hostname is a filter for non-admins from 2.90
        listed = _get(demo, "/servers", "2.90", hostname="^web-01$").json()["servers"]
        assert [s["id"] for s in listed] == [sid]
        body = {"server": {"hostname": "db.example.org"}}
        assert demo.compute.put(f"/servers/{sid}", json=body,
                                microversion="2.93").status_code == 400
        r = demo.compute.put(f"/servers/{sid}", json=body, microversion="2.94")
        assert r.status_code == 200, r.text
        assert r.json()["server"]["OS-EXT-SRV-ATTR:hostname"] == "db.example.org"
        assert demo.compute.put(f"/servers/{sid}", json={"server": {"hostname": "x"}},
                                microversion="2.89").status_code == 400
    finally:
        demo.compute.delete_server(sid)
    # one hostname cannot name several servers; bad hostnames change nothing
    for mv, srv_body in (("2.90", {"hostname": "a-b", "min_count": 2}),
                         ("2.90", {"hostname": "-bad"}), ("2.89", {"hostname": "ok1"})):
        srv_body = {"name": uniq("hn"), "imageRef": own_image, "flavorRef": "1",
                    "networks": "none", **srv_body}
        r = demo.compute.post("/servers", json={"server": srv_body}, microversion=mv)
        assert r.status_code == 400, (mv, srv_body, r.text)


def test_2_92_keypairs_are_imported_only(cloud, demo):
    body = {"keypair": {"name": uniq("kp")}}
    r = demo.compute.post("/os-keypairs", json=body, microversion="2.92")
    assert r.status_code == 400 and "public_key" in r.text
    name = f"{uniq('me')}@host.example"
    bad = {"keypair": {"name": name, "public_key": PUBLIC_KEY}}
    assert demo.compute.post("/os-keypairs", json=bad, microversion="2.91").status_code == 400
    r = demo.compute.post("/os-keypairs", json=bad, microversion="2.92")
    assert r.status_code == 201, r.text
    assert r.json()["keypair"]["name"] == name and "private_key" not in r.json()["keypair"]
    demo.compute.delete_keypair(name)
    # the CLI generates the key itself at 2.92 and imports it
    kp = uniq("cli.kp")
    out = cloud.openstack("--os-compute-api-version", "2.92", "keypair", "create", kp,
                          user="demo", parse=False)
    assert "PRIVATE KEY" in out
    assert demo.compute.get_keypair(kp).name == kp
    demo.compute.delete_keypair(kp)


def test_2_95_evacuate_of_a_server_on_a_live_host(admin, demo, server):
    path = f"/servers/{server.id}/action"
    r = admin.compute.post(path, json={"evacuate": {}}, microversion="2.95")
    assert r.status_code == 400 and "still in use" in r.text, r.text
    r = admin.compute.post(path, json={"evacuate": {"host": uniq("nohost")}},
                           microversion="2.95")
    assert r.status_code == 404
    r = admin.compute.post(path, json={"evacuate": {"force": True}}, microversion="2.95")
    assert r.status_code == 400
    assert demo.compute.post(path, json={"evacuate": {}},
                             microversion="2.95").status_code == 404
    assert admin.compute.get_server(server.id).status == "ACTIVE"


def test_2_96_pinned_availability_zone(cloud, admin, demo, server, demo_server):
    assert _get(demo, f"/servers/{demo_server.id}", "2.96").json()["server"][
        "pinned_availability_zone"] == "nova"
    assert "pinned_availability_zone" not in _get(demo, f"/servers/{demo_server.id}",
                                                  "2.95").json()["server"]
    assert _get(admin, f"/servers/{server.id}", "2.96").json()["server"][
        "pinned_availability_zone"] is None
    detail = _get(demo, "/servers/detail", "2.96").json()["servers"]
    assert {s["id"]: s["pinned_availability_zone"] for s in detail}[demo_server.id] == "nova"
    shown = json.loads(cloud.openstack("--os-compute-api-version", "2.96", "server", "show",
                                       demo_server.id, "-f", "json", user="demo",
                                       parse=False))
    assert shown.get("pinned_availability_zone") == "nova", shown


def test_2_86_known_extra_specs_are_validated(cloud, admin):
    flavor = admin.compute.create_flavor(name=uniq("mvfl"), ram=64, vcpus=1, disk=1)
    try:
        path = f"/flavors/{flavor.id}/os-extra_specs"
        bad = {"extra_specs": {"hw:cpu_policy": "sometimes"}}
        r = admin.compute.post(path, json=bad, microversion="2.86")
        assert r.status_code == 400 and "dedicated" in r.text, r.text
        unknown = {"extra_specs": {"hw:no_such_thing": "1"}}
        assert admin.compute.post(path, json=unknown, microversion="2.86").status_code == 400
        r = admin.compute.put(f"{path}/quota:cpu_quota", json={"quota:cpu_quota": "lots"},
                              microversion="2.86")
        assert r.status_code == 400, r.text
        assert admin.compute.get(path).json()["extra_specs"] == {}  # nothing was changed
        # before 2.86 Nova stores them unchecked; keys outside its namespaces stay free
        assert admin.compute.post(path, json=unknown, microversion="2.85").status_code == 200
        cloud.openstack("--os-compute-api-version", "2.86", "flavor", "set", "--property",
                        "hw:cpu_policy=dedicated", "--property", "my:own=anything",
                        flavor.id, parse=False)
        res = cloud.openstack("--os-compute-api-version", "2.86", "flavor", "set",
                              "--property", "hw:mem_encryption=maybe", flavor.id,
                              check=False)
        assert res.returncode != 0
        specs = admin.compute.get(path).json()["extra_specs"]
        assert specs == {"hw:no_such_thing": "1", "hw:cpu_policy": "dedicated",
                         "my:own": "anything"}, specs
    finally:
        admin.compute.delete_flavor(flavor.id)


def test_2_97_shares_without_virtiofs_hosts(admin, demo, server):
    path = f"/servers/{server.id}/shares"
    assert _get(admin, path, "2.96").status_code == 404
    assert _get(admin, path, "2.97").json() == {"shares": []}
    assert _get(demo, path, "2.97").status_code == 404  # another project's server
    share = "2f1c6b4e-0000-4000-8000-000000000001"
    assert _get(admin, f"{path}/{share}", "2.97").status_code == 404
    body = {"share": {"share_id": share, "tag": "data"}}
    r = admin.compute.post(path, json=body, microversion="2.97")
    assert r.status_code == 409 and "vm_state" in r.text, r.text  # must be stopped
    bad = {"share": {"share_id": share, "tag": "no spaces"}}
    assert admin.compute.post(path, json=bad, microversion="2.97").status_code == 400
    admin.compute.stop_server(server.id)
    wait(admin, server.id, {"SHUTOFF"})
    try:
        r = admin.compute.post(path, json=body, microversion="2.97")
        assert r.status_code == 409 and "not configured correctly" in r.text, r.text
        r = admin.compute.delete(f"{path}/{share}", microversion="2.97")
        assert r.status_code == 404
        assert _get(admin, path, "2.97").json() == {"shares": []}
    finally:
        admin.compute.start_server(server.id)
        wait(admin, server.id, {"ACTIVE"})


def test_2_98_image_properties_and_2_100_scheduler_hints(admin, own_image, own_net):
    admin.image.update_image(own_image, hw_disk_bus="virtio", os_distro="busybox",
                             not_a_nova_prop="x")
    srv = admin.compute.post("/servers", microversion="2.100", json={"server": {
        "name": uniq("mvh"), "imageRef": own_image, "flavorRef": "1",
        "networks": [{"uuid": own_net.id}]},
        "os:scheduler_hints": {"different_host": "2f1c6b4e-0000-4000-8000-000000000002",
                               "my_hint": "blue"}}).json()["server"]
    try:
        wait(admin, srv["id"], {"ACTIVE"})
        shown = _get(admin, f"/servers/{srv['id']}", "2.100").json()["server"]
        assert shown["image"]["properties"] == {"hw_disk_bus": "virtio",
                                                "os_distro": "busybox"}, shown["image"]
        assert shown["scheduler_hints"] == {
            "different_host": ["2f1c6b4e-0000-4000-8000-000000000002"], "my_hint": ["blue"]}
        old = _get(admin, f"/servers/{srv['id']}", "2.97").json()["server"]
        assert "properties" not in old["image"] and "scheduler_hints" not in old
        assert "scheduler_hints" not in _get(admin, f"/servers/{srv['id']}",
                                             "2.99").json()["server"]
        detail = _get(admin, "/servers/detail", "2.100").json()["servers"]
        assert {s["id"]: s["scheduler_hints"] for s in detail}[srv["id"]]["my_hint"] == ["blue"]
    finally:
        admin.compute.delete_server(srv["id"])


def test_2_99_spice_direct_is_unavailable(admin, server):
    body = {"remote_console": {"protocol": "spice", "type": "spice-direct"}}
    path = f"/servers/{server.id}/remote-consoles"
    r = admin.compute.post(path, json=body, microversion="2.98")
    assert r.status_code == 400 and "type" in r.text
    r = admin.compute.post(path, json=body, microversion="2.99")
    assert r.status_code == 400 and "Unavailable console type spice-direct" in r.text, r.text


def test_2_101_attach_answers_202(admin, server):
    vol = admin.block_storage.create_volume(size=1, name=uniq("mv101"))
    admin.block_storage.wait_for_status(vol, "available", wait=60)
    try:
        r = admin.compute.post(f"/servers/{server.id}/os-volume_attachments",
                               json={"volumeAttachment": {"volumeId": vol.id}},
                               microversion="2.101")
        assert r.status_code == 202 and not r.content, r.text
        admin.block_storage.wait_for_status(vol, "in-use", wait=60)
        atts = _get(admin, f"/servers/{server.id}/os-volume_attachments", "2.101").json()
        assert [a["volumeId"] for a in atts["volumeAttachments"]] == [vol.id]
        admin.compute.delete_volume_attachment(server.id, vol.id)
        admin.block_storage.wait_for_status(vol, "available", wait=60)
    finally:
        admin.block_storage.delete_volume(vol.id)
