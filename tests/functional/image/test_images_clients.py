"""Glance v2 through the real clients: the `openstack` and `glance` CLIs and openstacksdk.

Runs against the shared session cloud; every image has a unique "ps-img-" name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img")


def uname(tag: str = "") -> str:
    return f"ps-img-{tag}{uuid.uuid4().hex[:8]}"


def glance(cloud, *args: str, user: str = "admin", check: bool = True):
    res = subprocess.run(["glance", *args], env=cloud.env(user), capture_output=True, text=True,
                         timeout=300)
    if check and res.returncode != 0:
        raise AssertionError(f"glance {' '.join(args)} failed:\n{res.stderr}\n{res.stdout}")
    return res


def token(cloud, user: str = "admin") -> str:
    return cloud.sdk(user).session.get_token()


def http(cloud, method: str, path: str, *, user: str = "admin", body: bytes | None = None,
         headers: dict | None = None):
    req = urllib.request.Request(cloud.base_url + "/image" + path, data=body, method=method,
                                 headers={"X-Auth-Token": token(cloud, user), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def create(cloud, user: str = "admin", **body) -> dict:
    body.setdefault("name", uname())
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    status, _, raw = http(cloud, "POST", "/v2/images", user=user, body=json.dumps(body).encode(),
                          headers={"Content-Type": "application/json"})
    assert status == 201, raw
    return json.loads(raw)


def show(cloud, image_id: str, user: str = "admin") -> dict:
    status, _, raw = http(cloud, "GET", f"/v2/images/{image_id}", user=user)
    assert status == 200, raw
    return json.loads(raw)


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory) -> Path:
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img")
    path = tmp_path_factory.mktemp("img") / "centos7.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


# -- the seeds' commands ---------------------------------------------------------------------

def test_seed000_openstack_image_create_list_show_save_set_delete(cloud, qcow2, tmp_path):
    name = uname("centos7-")
    img = cloud.openstack("image", "create", name, "--public", "--file", str(qcow2),
                          "--disk-format", "qcow2", "--container-format", "bare",
                          "--property", "hw_video_model=qxl", "--property", "configure_x=true")
    assert img["status"] == "active" and img["visibility"] == "public"
    assert img["checksum"] == hashlib.md5(qcow2.read_bytes()).hexdigest()
    assert img["virtual_size"] == 64 << 20
    listed = cloud.openstack("image", "list", "--name", name)
    assert [i["ID"] for i in listed] == [img["id"]]
    shown = cloud.openstack("image", "show", img["id"])
    assert shown["properties"]["hw_video_model"] == "qxl"
    assert shown["properties"]["configure_x"] == "true"
    assert shown["properties"]["os_hash_algo"] == "sha512"
    assert shown["properties"]["os_hash_value"] == hashlib.sha512(qcow2.read_bytes()).hexdigest()
    out = tmp_path / "saved.qcow2"
    cloud.openstack("image", "save", "--file", str(out), img["id"], parse=False)
    assert out.read_bytes() == qcow2.read_bytes()
    cloud.openstack("image", "set", "--property", "os_distro=centos", "--tag", "gpu",
                    "--min-disk", "2", img["id"], parse=False)
    shown = cloud.openstack("image", "show", img["id"])
    assert shown["properties"]["os_distro"] == "centos" and shown["tags"] == ["gpu"]
    assert shown["min_disk"] == 2
    cloud.openstack("image", "delete", img["id"], parse=False)
    assert cloud.openstack("image", "list", "--name", name) == []


def test_seed003_glance_image_create_progress_and_glance_cli(cloud, qcow2, tmp_path):
    name = uname("img-vm-name-")
    # glanceclient draws its progress bar only on a terminal: run it under script(1)
    cmd = shlex.join(["glance", "image-create", "--name", name, "--file", str(qcow2),
                      "--disk-format", "qcow2", "--container-format", "bare", "--progress"])
    res = subprocess.run(["script", "-qec", cmd, "/dev/null"], env=cloud.env(),
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[=" in res.stdout and "100%" in res.stdout  # the progress bar
    image_id = next(line.split("|")[2].strip() for line in res.stdout.splitlines()
                    if line.startswith("| id "))
    listed = glance(cloud, "image-list").stdout
    assert image_id in listed
    glance(cloud, "image-update", "--property", "hw_video_model=qxl", image_id)
    detail = glance(cloud, "image-show", image_id).stdout
    assert "qxl" in detail and "active" in detail
    out = tmp_path / "dl.qcow2"
    glance(cloud, "image-download", "--file", str(out), "--progress", image_id)
    assert out.read_bytes() == qcow2.read_bytes()
    glance(cloud, "image-tag-update", image_id, "seed003")
    assert "seed003" in glance(cloud, "image-show", image_id).stdout
    glance(cloud, "image-delete", image_id)
    assert glance(cloud, "image-show", image_id, check=False).returncode != 0


# -- openstacksdk: data, visibility, members -------------------------------------------------

def test_sdk_upload_download_range_and_checksums(cloud, tmp_path):
    conn = cloud.sdk()
    data = os.urandom(3 * (1 << 20) + 123)
    src = tmp_path / "blob.raw"
    src.write_bytes(data)
    img = conn.image.create_image(name=uname(), filename=str(src), disk_format="raw",
                                  container_format="bare", wait=True)
    img = conn.image.get_image(img.id)
    assert img.size == len(data) and img.checksum == hashlib.md5(data).hexdigest()
    assert img.hash_algo == "sha512" and img.hash_value == hashlib.sha512(data).hexdigest()
    assert img.virtual_size == len(data)
    got = conn.image.download_image(img, stream=False)
    assert got.content == data if hasattr(got, "content") else got == data
    status, headers, body = http(cloud, "GET", f"/v2/images/{img.id}/file",
                                 headers={"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["content-range"] == f"bytes 100-199/{len(data)}"
    status, _, body = http(cloud, "GET", f"/v2/images/{img.id}/file",
                           headers={"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:]
    status, _, _ = http(cloud, "GET", f"/v2/images/{img.id}/file",
                        headers={"Range": f"bytes={len(data) + 5}-"})
    assert status == 416
    status, headers, body = http(cloud, "GET", f"/v2/images/{img.id}/file")
    assert status == 200 and headers["content-md5"] == img.checksum and body == data
    conn.image.delete_image(img)


def test_visibility_members_and_cross_project_upload(cloud):
    private = create(cloud, visibility="private")
    shared = create(cloud, visibility="shared")
    demo = cloud.sdk("demo")
    demo_project = demo.current_project_id
    # private: invisible to another project, and it cannot upload into it
    assert http(cloud, "GET", f"/v2/images/{private['id']}", user="demo")[0] == 404
    status, _, _ = http(cloud, "PUT", f"/v2/images/{private['id']}/file", user="demo",
                        body=b"x" * 1000, headers={"Content-Type": "application/octet-stream"})
    assert status == 404
    assert show(cloud, private["id"])["status"] == "queued"
    # shared: visible once a member (pending), listed once accepted, never writable
    status, _, raw = http(cloud, "POST", f"/v2/images/{shared['id']}/members",
                          body=json.dumps({"member": demo_project}).encode(),
                          headers={"Content-Type": "application/json"})
    assert status == 200 and json.loads(raw)["status"] == "pending"
    ids = [i.id for i in demo.image.images()]
    assert shared["id"] not in ids
    pending = [i.id for i in demo.image.images(visibility="shared", member_status="pending")]
    assert shared["id"] in pending
    demo.image.update_member(demo_project, shared["id"], status="accepted")
    assert shared["id"] in [i.id for i in demo.image.images()]
    status, _, _ = http(cloud, "PUT", f"/v2/images/{shared['id']}/file", user="demo",
                        body=b"x" * 1000, headers={"Content-Type": "application/octet-stream"})
    assert status == 403
    assert show(cloud, shared["id"])["status"] == "queued"
    # the owner cannot accept on the member's behalf
    status, _, _ = http(cloud, "PUT", f"/v2/images/{shared['id']}/members/{demo_project}",
                        body=b'{"status": "accepted"}',
                        headers={"Content-Type": "application/json"})
    assert status == 403
    members = cloud.openstack("image", "member", "list", shared["id"])
    assert [m["Member ID"] for m in members] == [demo_project]
    for img in (private, shared):
        assert http(cloud, "DELETE", f"/v2/images/{img['id']}")[0] == 204


def test_glance_direct_import_and_tasks(cloud, tmp_path):
    conn = cloud.sdk()
    data = os.urandom(200_000)
    src = tmp_path / "imp.raw"
    src.write_bytes(data)
    img = conn.image.create_image(name=uname("import-"), filename=str(src), disk_format="raw",
                                  container_format="bare", use_import=True, wait=True,
                                  timeout=60)
    img = conn.image.wait_for_status(conn.image.get_image(img.id), "active", wait=60)
    assert img.status == "active" and img.checksum == hashlib.md5(data).hexdigest()
    status, _, raw = http(cloud, "GET", f"/v2/images/{img.id}/tasks")
    tasks = json.loads(raw)["tasks"]
    assert status == 200 and [t["status"] for t in tasks] == ["success"]
    assert tasks[0]["input"]["import_req"]["method"]["name"] == "glance-direct"
    info = json.loads(http(cloud, "GET", "/v2/info/import")[2])
    assert "glance-direct" in info["import-methods"]["value"]
    conn.image.delete_image(img)


# -- bad input: 4xx, nothing changed --------------------------------------------------------

def _qcow2_header(backing: bool = False, data_file: bool = False) -> bytes:
    hdr = bytearray(65536)
    hdr[0:4] = b"QFI\xfb"
    struct.pack_into(">I", hdr, 4, 3)
    if backing:
        struct.pack_into(">QI", hdr, 8, 512, 11)
        hdr[512:523] = b"/etc/passwd"
    struct.pack_into(">I", hdr, 20, 16)
    struct.pack_into(">Q", hdr, 24, 1 << 30)
    struct.pack_into(">Q", hdr, 72, 4 if data_file else 0)
    struct.pack_into(">I", hdr, 96, 4)
    struct.pack_into(">I", hdr, 100, 104)
    return bytes(hdr)


@pytest.mark.parametrize("declared, payload, words", [
    ("qcow2", _qcow2_header(backing=True), "backing file"),
    ("qcow2", _qcow2_header(data_file=True), "external data file"),
    ("raw", _qcow2_header(), "does not match"),
    ("qcow2", b"QFI\xfb" + b"\x00\x00\x00\x09" + bytes(200), "version"),
    ("vmdk", b'# Disk DescriptorFile\ncreateType="monolithicFlat"\nRW 8 FLAT "/etc/shadow" 0\n',
     "descriptor"),
])
def test_unsafe_uploads_are_refused_and_killed(cloud, declared, payload, words):
    img = create(cloud, disk_format=declared)
    status, _, body = http(cloud, "PUT", f"/v2/images/{img['id']}/file", body=payload,
                           headers={"Content-Type": "application/octet-stream"})
    assert status == 400, body
    assert words in body.decode()
    after = show(cloud, img["id"])
    assert after["status"] == "killed" and after["size"] is None
    assert http(cloud, "GET", f"/v2/images/{img['id']}/file")[0] == 204
    http(cloud, "DELETE", f"/v2/images/{img['id']}")


def test_wrong_content_md5_is_refused(cloud):
    img = create(cloud)
    status, _, _ = http(cloud, "PUT", f"/v2/images/{img['id']}/file", body=b"abc" * 100,
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-MD5": "0" * 32})
    assert status == 400
    assert show(cloud, img["id"])["status"] == "queued"
    status, _, _ = http(cloud, "PUT", f"/v2/images/{img['id']}/file", body=b"abc" * 100,
                        headers={"Content-Type": "application/octet-stream",
                                 "Content-MD5": hashlib.md5(b"abc" * 100).hexdigest()})
    assert status == 204 and show(cloud, img["id"])["status"] == "active"
    http(cloud, "DELETE", f"/v2/images/{img['id']}")


def test_bad_patches_change_nothing(cloud):
    img = create(cloud, os_distro="debian")
    before = show(cloud, img["id"])
    v21 = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    cases = [
        (b'[{"op": "replace", "path": "/status", "value": "active"}]', v21, 403),
        (b'[{"op": "add", "path": "/os_glance_x", "value": "1"}]', v21, 403),
        (b'[{"op": "move", "path": "/name"}]', v21, 400),
        (b'[{"op": "replace", "path": "/min_ram", "value": "lots"}]', v21, 400),
        (b'[{"op": "replace", "path": "/nope", "value": "x"}]', v21, 409),
        (b'[{"op": "remove", "path": "/name"}]', v21, 403),
        (b'{"op": "replace"}', v21, 400),
        (b'[{"op": "replace", "path": "/name", "value": "x"}]', {"Content-Type":
                                                                "application/json"}, 415),
        (b'[{"op": "replace", "path": "name", "value": "x"}]', v21, 400),
        (b"not json", v21, 400),
    ]
    for body, headers, expect in cases:
        status, _, raw = http(cloud, "PATCH", f"/v2/images/{img['id']}", body=body,
                              headers=headers)
        assert status == expect, (body, raw)
    after = show(cloud, img["id"])
    assert after == before
    http(cloud, "DELETE", f"/v2/images/{img['id']}")


def test_protected_and_deactivated(cloud):
    img = create(cloud, protected=True)
    assert http(cloud, "DELETE", f"/v2/images/{img['id']}")[0] == 403
    status, _, _ = http(cloud, "PATCH", f"/v2/images/{img['id']}",
                        body=b'[{"op": "replace", "path": "/protected", "value": false}]',
                        headers={"Content-Type":
                                 "application/openstack-images-v2.1-json-patch"})
    assert status == 200
    assert http(cloud, "PUT", f"/v2/images/{img['id']}/file", body=b"d" * 512,
                headers={"Content-Type": "application/octet-stream"})[0] == 204
    assert http(cloud, "POST", f"/v2/images/{img['id']}/actions/deactivate")[0] == 204
    assert show(cloud, img["id"])["status"] == "deactivated"
    # the admin may still download; the owner's demo-like reader may not (tempest covers)
    assert http(cloud, "POST", f"/v2/images/{img['id']}/actions/reactivate")[0] == 204
    assert http(cloud, "GET", f"/v2/images/{img['id']}/file")[2] == b"d" * 512
    http(cloud, "DELETE", f"/v2/images/{img['id']}")


def test_list_filters_sort_and_paging(cloud):
    tag = uname("tag-")
    made = [create(cloud, tags=[tag], min_ram=i) for i in range(5)]
    for i, img in enumerate(made):
        http(cloud, "PUT", f"/v2/images/{img['id']}/file", body=b"z" * (1000 + i),
             headers={"Content-Type": "application/octet-stream"})
    seen, path = [], f"/v2/images?tag={tag}&limit=2&sort=size:asc"
    while path:
        body = json.loads(http(cloud, "GET", path)[2])
        seen += [i["size"] for i in body["images"]]
        path = body.get("next")
    assert seen == [1000, 1001, 1002, 1003, 1004]
    body = json.loads(http(cloud, "GET", f"/v2/images?tag={tag}&size_min=1003")[2])
    assert sorted(i["size"] for i in body["images"]) == [1003, 1004]
    assert http(cloud, "GET", "/v2/images?sort_key=bogus")[0] == 400
    assert http(cloud, "GET", f"/v2/images?marker={uuid.uuid4()}")[0] == 400
    for img in made:
        http(cloud, "DELETE", f"/v2/images/{img['id']}")


def test_schemas_versions_and_info(cloud):
    for name in ("image", "images", "member", "members", "metadefs/namespace"):
        status, _, raw = http(cloud, "GET", f"/v2/schemas/{name}")
        assert status == 200 and json.loads(raw)["name"] in (name, name.split("/")[-1])
    req = urllib.request.Request(cloud.base_url + "/image/")
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=10)
    assert exc.value.code == 300
    ids = [v["id"] for v in json.loads(exc.value.read())["versions"]]
    assert ids[0] == "v2.17" and "v2.0" in ids
    stores = json.loads(http(cloud, "GET", "/v2/info/stores")[2])["stores"]
    assert stores[0]["default"] == "true"  # a string, as in Glance and its api-ref
