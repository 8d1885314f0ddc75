"""Nova's deprecated proxy APIs (images, image metadata, security groups, floating IPs,
networks) and /extensions, through openstacksdk's compute adapter at an old microversion
(they are gone from 2.36/2.39 on, as in Nova). The cloud is shared: names are unique."""

from __future__ import annotations

import io
import uuid

import pytest
from tests.functional.compute.servers_common import uniq

OLD = "2.1"


def get(conn, path, mv=OLD):
    return conn.compute.get(path, microversion=mv)


def post(conn, path, body, mv=OLD):
    return conn.compute.post(path, json=body, microversion=mv)


def put(conn, path, body, mv=OLD):
    return conn.compute.put(path, json=body, microversion=mv)


def delete(conn, path, mv=OLD):
    return conn.compute.delete(path, microversion=mv)


@pytest.fixture(scope="module")
def image(admin):
    img = admin.image.create_image(name=uniq("img"), disk_format="raw", container_format="bare",
                                   visibility="private", data=io.BytesIO(b"*" * 1024),
                                   properties={"image_type": "snapshot", "ps_marker": "x"})
    yield img
    admin.image.delete_image(img.id, ignore_missing=True)


def test_image_list_limit_filters_and_links(admin, image):
    r = get(admin, "/images?limit=1")
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["images"]) == 1 and "images_links" in body
    r = get(admin, "/images/detail?limit=1")
    assert r.status_code == 200 and len(r.json()["images"]) == 1
    ids = [i["id"] for i in get(admin, "/images?type=snapshot").json()["images"]]
    assert image.id in ids
    busybox = admin.image.find_image("busybox", ignore_missing=False).id
    assert busybox not in ids  # not a snapshot
    detail = get(admin, "/images/detail?property-ps_marker=x").json()["images"]
    assert [i["id"] for i in detail] == [image.id]
    assert detail[0]["metadata"]["ps_marker"] == "x" and detail[0]["status"] == "ACTIVE"
    assert detail[0]["progress"] == 100
    none = get(admin, f"/images?server={uuid.uuid4()}").json()["images"]
    assert none == []
    assert get(admin, "/images?limit=-1").status_code == 400
    assert get(admin, "/images?limit=abc").status_code == 400
    assert get(admin, "/images", mv="2.36").status_code == 404


def test_image_metadata_proxy(admin, image):
    base = f"/images/{image.id}/metadata"
    r = put(admin, base, {"metadata": {"os_version": "v1", "os_distro": "d1"}})
    assert r.status_code == 200, r.text
    assert r.json() == {"metadata": {"os_version": "v1", "os_distro": "d1"}}
    assert get(admin, base).json() == {"metadata": {"os_version": "v1", "os_distro": "d1"}}
    r = post(admin, base, {"metadata": {"os_arch": "x86_64", "os_version": "v2"}})
    assert r.status_code == 200
    assert r.json()["metadata"] == {"os_version": "v2", "os_distro": "d1", "os_arch": "x86_64"}
    assert get(admin, base + "/os_arch").json() == {"meta": {"os_arch": "x86_64"}}
    r = put(admin, base + "/os_distro", {"meta": {"os_distro": "d2"}})
    assert r.status_code == 200 and r.json() == {"meta": {"os_distro": "d2"}}
    assert admin.image.get(f"/images/{image.id}").json()["os_distro"] == "d2"
    assert delete(admin, base + "/os_arch").status_code == 204
    assert get(admin, base + "/os_arch").status_code == 404
    assert delete(admin, base + "/os_arch").status_code == 404
    # bad input: 400, unknown image: 404, after 2.38: 404; nothing changed
    assert put(admin, base + "/os_distro", {"meta": {"other": "x"}}).status_code == 400
    assert put(admin, base, {"metadata": "nope"}).status_code == 400
    assert post(admin, base, {"meta": {}}).status_code == 400
    assert put(admin, base, {"metadata": {"k": 5}}).status_code == 400
    assert post(admin, base, {"metadata": {"bad/key": "v"}}).status_code == 400
    too_many = {f"k{i}": "v" for i in range(129)}  # over the metadata_items quota (128)
    assert post(admin, base, {"metadata": too_many}).status_code == 403
    missing = f"/images/{uuid.uuid4()}/metadata"
    assert put(admin, missing, {"metadata": {"a": "b"}}).status_code == 404
    assert post(admin, missing, {"metadata": {"a": "b"}}).status_code == 404
    assert put(admin, missing + "/a", {"meta": {"a": "b"}}).status_code == 404
    assert get(admin, base, mv="2.39").status_code == 404
    assert get(admin, base).json()["metadata"] == {"os_version": "v2", "os_distro": "d2"}


def test_security_group_rule_proxy(admin):
    sg = post(admin, "/os-security-groups",
              {"security_group": {"name": uniq("sg"), "description": "d"}}).json()["security_group"]
    peer = post(admin, "/os-security-groups",
                {"security_group": {"name": uniq("sg"), "description": "d"}}).json()["security_group"]
    rule = {"parent_group_id": sg["id"], "ip_protocol": "tcp", "from_port": 22, "to_port": 22}
    r = post(admin, "/os-security-group-rules",
             {"security_group_rule": {**rule, "cidr": "10.2.3.124/24"}})
    assert r.status_code == 200, r.text
    got = r.json()["security_group_rule"]
    assert got["ip_range"] == {"cidr": "10.2.3.124/24"} and got["group"] == {}
    r = post(admin, "/os-security-group-rules", {"security_group_rule": {**rule,
                                                                          "group_id": peer["id"]}})
    assert r.status_code == 200, r.text
    got = r.json()["security_group_rule"]
    assert got["group"] == {"name": peer["name"], "tenant_id": peer["tenant_id"]}
    assert got["ip_range"] == {}
    rules = get(admin, f"/os-security-groups/{sg['id']}").json()["security_group"]["rules"]
    assert {"name": peer["name"], "tenant_id": peer["tenant_id"]} in [x["group"] for x in rules]
    # bad input -> 400, unknown group -> 404
    for bad in ({**rule, "parent_group_id": "not-a-uuid"}, {**rule, "cidr": "10.0.0.300/24"},
                {**rule, "from_port": 30, "to_port": 20}, {**rule, "ip_protocol": "gre"},
                {**rule, "from_port": "x"}, {**rule, "group_id": "nope"},
                {**rule, "cidr": "10.2.3.124/24"}):  # the last one: a duplicate
        r = post(admin, "/os-security-group-rules", {"security_group_rule": bad})
        assert r.status_code == 400, (bad, r.text)
    r = post(admin, "/os-security-group-rules",
             {"security_group_rule": {**rule, "parent_group_id": str(uuid.uuid4())}})
    assert r.status_code == 404
    assert get(admin, "/os-security-groups/not-a-uuid").status_code == 400
    assert delete(admin, "/os-security-group-rules/not-a-uuid").status_code == 400
    for g in (sg, peer):
        assert delete(admin, f"/os-security-groups/{g['id']}").status_code == 202


def test_extensions_list_and_show(admin):
    exts = get(admin, "/extensions").json()["extensions"]
    assert "Hosts" in [e["name"] for e in exts] and len(exts) > 50
    r = get(admin, "/extensions/os-consoles")
    assert r.status_code == 200 and r.json()["extension"]["alias"] == "os-consoles"
    assert get(admin, "/extensions/os-nope").status_code == 404


def test_networks_and_tenant_networks(cloud, admin):
    nets = admin.network.networks()
    public = next(n for n in nets if n.name == "public")
    body = get(admin, "/os-networks").json()["networks"]
    mine = next(n for n in body if n["id"] == public.id)
    assert mine["label"] == "public" and mine["cidr"] is None and "bridge" in mine  # admin
    r = get(admin, f"/os-networks/{public.id}")
    assert r.status_code == 200 and r.json()["network"]["label"] == "public"
    assert get(admin, f"/os-networks/{uuid.uuid4()}").status_code == 404
    assert get(admin, "/os-networks", mv="2.36").status_code == 404
    assert post(admin, "/os-networks", {"network": {"label": "x"}}).status_code == 410
    r = get(admin, f"/os-tenant-networks/{public.id}")
    assert r.json() == {"network": {"id": public.id, "cidr": "None", "label": "public"}}
    assert public.id in [n["id"] for n in get(admin, "/os-tenant-networks").json()["networks"]]
    assert get(admin, f"/os-tenant-networks/{uuid.uuid4()}").status_code == 404


def _wait_active(conn, sid, timeout=60):
    import time

    deadline = time.monotonic() + timeout
    while conn.compute.get_server(sid).status != "ACTIVE":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_floating_ip_proxy_and_server_actions(cloud, admin):
    pools = get(admin, "/os-floating-ip-pools").json()["floating_ip_pools"]
    assert {"name": "public"} in pools
    r = post(admin, "/os-floating-ips", {"pool": "public"})
    assert r.status_code == 200, r.text
    fip = r.json()["floating_ip"]
    assert fip["pool"] == "public" and fip["instance_id"] is None and fip["fixed_ip"] is None
    assert get(admin, f"/os-floating-ips/{fip['id']}").json()["floating_ip"] == fip
    assert fip in get(admin, "/os-floating-ips").json()["floating_ips"]
    assert post(admin, "/os-floating-ips", {"pool": "ps-no-such-pool"}).status_code == 404
    assert post(admin, "/os-floating-ips", {"pool": 5}).status_code == 400
    assert get(admin, f"/os-floating-ips/{uuid.uuid4()}").status_code == 404
    assert delete(admin, f"/os-floating-ips/{uuid.uuid4()}").status_code == 404
    assert get(admin, "/os-floating-ips", mv="2.36").status_code == 404
    # a server on a network routed to public: associate, re-check, disassociate
    net = admin.network.create_network(name=uniq("net"))
    sub = admin.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.231.7.0/24")
    public = admin.network.find_network("public", ignore_missing=False)
    router = admin.network.create_router(name=uniq("r"),
                                         external_gateway_info={"network_id": public.id})
    admin.network.add_interface_to_router(router, subnet_id=sub.id)
    image = admin.image.find_image("busybox", ignore_missing=False).id
    r = post(admin, "/servers", {"server": {"name": uniq("srv"), "imageRef": image,
                                            "flavorRef": "1", "networks": [{"uuid": net.id}]}})
    assert r.status_code == 202, r.text
    sid = r.json()["server"]["id"]
    try:
        _wait_active(admin, sid)
        action = f"/servers/{sid}/action"
        assert post(admin, action, {"addFloatingIp": {"address": ""}}).status_code == 400
        assert post(admin, action, {"addFloatingIp": {"address": "0.0.0.0"}}).status_code == 404
        assert post(admin, action, {"removeFloatingIp": {"address": "0.0.0.0"}}).status_code == 404
        assert post(admin, action, {"addFloatingIp": {"address": fip["ip"],
                                                      "fixed_address": "10.9.9.9"}}
                    ).status_code == 400
        assert post(admin, action, {"addFloatingIp": {"address": fip["ip"]}},
                    mv="2.44").status_code == 400  # no such action from 2.44
        r = post(admin, action, {"addFloatingIp": {"address": fip["ip"]}})
        assert r.status_code == 202, r.text
        shown = get(admin, f"/os-floating-ips/{fip['id']}").json()["floating_ip"]
        assert shown["instance_id"] == sid and shown["fixed_ip"].startswith("10.231.7.")
        # a second floating IP on the same fixed IP: 400 (Neutron's conflict)
        other = post(admin, "/os-floating-ips", {"pool": "public"}).json()["floating_ip"]
        assert post(admin, action, {"addFloatingIp": {"address": other["ip"]}}
                    ).status_code == 400
        assert post(admin, action, {"removeFloatingIp": {"address": other["ip"]}}
                    ).status_code == 409  # not associated with this server
        assert delete(admin, f"/os-floating-ips/{other['id']}").status_code == 202
        r = post(admin, action, {"removeFloatingIp": {"address": fip["ip"]}})
        assert r.status_code == 202, r.text
        assert get(admin, f"/os-floating-ips/{fip['id']}").json()["floating_ip"][
            "instance_id"] is None
    finally:
        admin.compute.delete_server(sid)
        assert delete(admin, f"/os-floating-ips/{fip['id']}").status_code == 202
        srv = admin.compute.find_server(sid)
        if srv is not None:
            admin.compute.wait_for_delete(srv, wait=60)
        admin.network.remove_interface_from_router(router, subnet_id=sub.id)
        admin.network.delete_router(router)
        admin.network.delete_network(net)


def test_floating_ip_over_quota_is_403(cloud, admin):
    demo = cloud.sdk("demo")
    project = demo.current_project_id
    before = admin.network.get_quota(project).floating_ips
    admin.network.update_quota(project, floating_ips=0)
    try:
        r = post(demo, "/os-floating-ips", {"pool": "public"})
        assert r.status_code == 403, r.text
        assert "over quota" in r.text
    finally:
        admin.network.update_quota(project, floating_ips=before)
