"""Nova's deprecated proxy APIs (images, image metadata, security groups, floating IPs,
networks) and /extensions, through openstacksdk's compute adapter at an old microversion
(they are gone from 2.36/2.39 on, as in Nova). The cloud is shared: names are unique."""

from __future__ import annotations

import io
import uuid

import pytest

OLD = "2.1"


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


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
    detail = get(admin, f"/images/detail?property-ps_marker=x").json()["images"]
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
