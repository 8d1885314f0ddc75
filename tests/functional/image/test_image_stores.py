"""Glance multi-store and the URL import methods through the real clients (`glance` CLI,
openstacksdk): import to several stores, copy-image, delete from one store, web-download
from a loopback HTTP server (and a URL refused by filtering), glance-download from the
cloud's own region.

Runs on a cloud of its own: two file stores ("alpha" weight 10, the default, and "beta"
weight 5), a read-only http store "web" with show_multiple_locations on (locations through
`glance add-location` / `location-add`), and web-download filtering that lets through 127.0.0.1 on the test server's port
and on the cloud's own port (glance-download reads the source image through the catalog).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.conftest import LiveCloud, free_port

BLOB = os.urandom(300_000)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A loopback HTTP server for web-download (stopped at the end of the module)."""
    root = tmp_path_factory.mktemp("ps-img-web")
    (root / "blob.raw").write_bytes(BLOB)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(root), **kw)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.RequestHandlerClass.log_message = lambda *a, **kw: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def mcloud(tmp_path_factory, files):
    data_dir = tmp_path_factory.mktemp("imgstores") / "data"
    data_dir.mkdir(parents=True)
    port = free_port()
    web_port = files.rsplit(":", 1)[1]
    (data_dir / "pocketstack.toml").write_text(f"""
[image]
seed_default_image = false
require_format_match = false
default_store = "alpha"
import_methods = "glance-direct,web-download,copy-image,glance-download"
web_download_allowed_hosts = "127.0.0.1"
web_download_allowed_ports = "{web_port},{port}"
show_multiple_locations = true
image_cache = true

[image.stores.alpha]
description = "first"
weight = 10


[image.stores.beta]
description = "second"
weight = 5

[image.stores.web]
driver = "http"
""")
    live = LiveCloud(data_dir, port=port).start()
    yield live
    live.stop()


def glance(cloud, *args: str, check: bool = True, stdin=subprocess.DEVNULL
           ) -> subprocess.CompletedProcess:
    # glance reads image data from a stdin that is not a terminal; give it the data there
    res = subprocess.run(["glance", *args], env=cloud.env("admin"), capture_output=True,
                         text=True, timeout=120, stdin=stdin)
    if check and res.returncode != 0:
        raise AssertionError(f"glance {' '.join(args)}:\n{res.stderr}\n{res.stdout}")
    return res


def api(cloud, method: str, path: str, body=None, headers=None):
    tok = cloud.sdk("admin").session.get_token()
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    req = urllib.request.Request(cloud.base_url + "/image" + path, data=data, method=method,
                                 headers={"X-Auth-Token": tok,
                                          "Content-Type": "application/json",
                                          **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw.strip().startswith(b"{") else raw
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def show(cloud, image_id: str) -> dict:
    return api(cloud, "GET", f"/v2/images/{image_id}")[1]


def wait(cloud, image_id: str, done, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        img = show(cloud, image_id)
        if done(img):
            return img
        time.sleep(0.2)
    raise AssertionError(f"image {image_id} never got there: {img}")


def new_image(cloud, **extra) -> str:
    status, img = api(cloud, "POST", "/v2/images", {
        "name": f"ps-img-st-{uuid.uuid4().hex[:8]}", "disk_format": "raw",
        "container_format": "bare", **extra})
    assert status == 201, img
    return img["id"]


def test_stores_are_listed_by_the_clients(mcloud):
    out = glance(mcloud, "stores-info").stdout
    assert "alpha" in out and "beta" in out
    stores = {s.id: s for s in mcloud.sdk().image.stores()}
    assert set(stores) == {"alpha", "beta", "web"}
    assert stores["alpha"].is_default and not stores["beta"].is_default
    info = {s["id"]: s for s in api(mcloud, "GET", "/v2/info/stores")[1]["stores"]}
    assert info["web"].get("read-only") == "true" and "read-only" not in info["alpha"]
    methods = api(mcloud, "GET", "/v2/info/import")[1]["import-methods"]["value"]
    assert {"glance-direct", "web-download", "copy-image", "glance-download"} <= set(methods)


def test_glance_direct_to_all_stores_then_delete_from_one(mcloud, tmp_path):
    src = tmp_path / "img.raw"
    src.write_bytes(BLOB)
    with open(src, "rb") as fh:
        res = glance(mcloud, "image-create-via-import", "--name", "ps-img-st-all",
                     "--disk-format", "raw", "--container-format", "bare",
                     "--import-method", "glance-direct", "--all-stores", "True", stdin=fh)
    image_id = next(line.split("|")[2].strip() for line in res.stdout.splitlines()
                    if line.startswith("| id "))
    img = wait(mcloud, image_id, lambda i: i["status"] == "active"
               and not i.get("os_glance_importing_to_stores"))
    assert img["stores"] == "alpha,beta"  # highest weight first
    assert img["os_glance_failed_import"] == ""
    for store in ("alpha", "beta"):
        assert (mcloud.data_dir / f"images-{store}" / "images" / image_id).read_bytes() == BLOB
    assert not (mcloud.data_dir / "images-alpha" / "staging" / image_id).exists()
    # delete from one store (admin): the other copy serves downloads
    glance(mcloud, "stores-delete", "--store", "alpha", image_id)
    assert show(mcloud, image_id)["stores"] == "beta"
    assert not (mcloud.data_dir / "images-alpha" / "images" / image_id).exists()
    status, data = api(mcloud, "GET", f"/v2/images/{image_id}/file")
    assert status == 200 and hashlib.md5(data).hexdigest() == hashlib.md5(BLOB).hexdigest()
    # the last copy cannot go this way; an unknown store is a conflict
    status, body = api(mcloud, "DELETE", f"/v2/stores/beta/{image_id}")
    assert status == 403 and "only store" in body
    assert api(mcloud, "DELETE", f"/v2/stores/nope/{image_id}")[0] == 409
    assert api(mcloud, "DELETE", f"/v2/stores/alpha/{image_id}")[0] == 404
    glance(mcloud, "image-delete", image_id)
    assert not (mcloud.data_dir / "images-beta" / "images" / image_id).exists()


def test_upload_to_a_store_then_copy_image(mcloud):
    image_id = new_image(mcloud)
    status, _ = api(mcloud, "PUT", f"/v2/images/{image_id}/file", BLOB,
                    {"Content-Type": "application/octet-stream", "X-Image-Meta-Store": "beta"})
    assert status == 204
    assert show(mcloud, image_id)["stores"] == "beta"
    # copy into the store it is already in: 400; into an unknown one: 409
    status, body = api(mcloud, "POST", f"/v2/images/{image_id}/import",
                       {"method": {"name": "copy-image"}, "stores": ["beta"]})
    assert status == 400 and "already present" in body
    assert api(mcloud, "POST", f"/v2/images/{image_id}/import",
               {"method": {"name": "copy-image"}, "stores": ["nope"]})[0] == 409
    glance(mcloud, "image-import", "--import-method", "copy-image", "--stores", "alpha",
           image_id)
    img = wait(mcloud, image_id, lambda i: i.get("os_glance_importing_to_stores") == ""
               and "alpha" in i["stores"])
    assert img["stores"] == "alpha,beta" and img["status"] == "active"
    assert (mcloud.data_dir / "images-alpha" / "images" / image_id).read_bytes() == BLOB
    # a member (not admin) may not copy
    member = mcloud.sdk("demo") if "demo" in json.loads(
        (mcloud.data_dir / "passwords.json").read_text()) else None
    if member is not None:
        resp = member.image.post(f"/images/{image_id}/import",
                                 json={"method": {"name": "copy-image"}, "all_stores": True})
        assert resp.status_code in (403, 404)
    api(mcloud, "DELETE", f"/v2/images/{image_id}")


def test_web_download_and_filtering(mcloud, files):
    image_id = new_image(mcloud)
    conn = mcloud.sdk()
    image = conn.image.get_image(image_id)
    conn.image.import_image(image, method="web-download", uri=f"{files}/blob.raw",
                            stores=["beta"])
    img = wait(mcloud, image_id, lambda i: i["status"] in ("active", "queued")
               and not i.get("os_glance_importing_to_stores"))
    assert img["status"] == "active", img
    assert img["stores"] == "beta" and img["size"] == len(BLOB)
    assert img["os_hash_value"] == hashlib.sha512(BLOB).hexdigest()
    assert img["checksum"] == hashlib.md5(BLOB).hexdigest()
    # a URL filtering refuses: 400 at once, nothing changes
    other = new_image(mcloud)
    for bad in ("http://127.0.0.1:1/x", "http://does-not.exist/x", "ftp://127.0.0.1/x",
                "file:///etc/passwd"):
        status, body = api(mcloud, "POST", f"/v2/images/{other}/import",
                           {"method": {"name": "web-download", "uri": bad}})
        assert status == 400 and "does not pass filtering" in body, (bad, body)
    assert show(mcloud, other)["status"] == "queued"
    # an allowed URL that does not exist: the task fails, the image goes back to queued
    status, _ = api(mcloud, "POST", f"/v2/images/{other}/import",
                    {"method": {"name": "web-download", "uri": f"{files}/missing"}})
    assert status == 202
    img = wait(mcloud, other, lambda i: i["status"] == "queued"
               and i.get("os_glance_failed_import"))
    assert img["os_glance_failed_import"] == "alpha"
    tasks = api(mcloud, "GET", f"/v2/images/{other}/tasks")[1]["tasks"]
    assert tasks[-1]["status"] == "failure" and "404" in tasks[-1]["message"]
    for iid in (image_id, other):
        api(mcloud, "DELETE", f"/v2/images/{iid}")


def test_glance_download_from_own_region(mcloud):
    src = new_image(mcloud, os_distro="busybox", hw_cpu_cores="2", speed="fast")
    api(mcloud, "PUT", f"/v2/images/{src}/file", BLOB,
        {"Content-Type": "application/octet-stream"})
    dst = new_image(mcloud, disk_format="iso", container_format="ovf")
    status, body = api(mcloud, "POST", f"/v2/images/{dst}/import", {"method": {
        "name": "glance-download", "glance_image_id": "nope", "glance_region": "RegionOne"}})
    assert status == 400 and "does not look like a UUID" in body
    status, _ = api(mcloud, "POST", f"/v2/images/{dst}/import", {"method": {
        "name": "glance-download", "glance_image_id": src, "glance_region": "RegionOne"}})
    assert status == 202
    img = wait(mcloud, dst, lambda i: i["status"] == "active")
    assert img["disk_format"] == "raw" and img["container_format"] == "bare"
    assert img["os_distro"] == "busybox" and img["hw_cpu_cores"] == "2"
    assert "speed" not in img
    assert img["os_hash_value"] == hashlib.sha512(BLOB).hexdigest()
    for iid in (src, dst):
        api(mcloud, "DELETE", f"/v2/images/{iid}")


def test_http_locations_new_and_legacy_api(mcloud, files):
    url = f"{files}/blob.raw"
    # v2.17 add-location: the data stays at the URL, hashes computed by reading it
    image_id = new_image(mcloud)
    glance(mcloud, "add-location", "--url", url, image_id)
    img = wait(mcloud, image_id, lambda i: i["status"] == "active" and i["os_hash_value"])
    assert img["size"] == len(BLOB) and img["stores"] == "web"
    assert img["os_hash_value"] == hashlib.sha512(BLOB).hexdigest()
    assert img["checksum"] == hashlib.md5(BLOB).hexdigest()
    assert img["locations"] == [{"url": url, "metadata": {"store": "web"}}]
    status, data = api(mcloud, "GET", f"/v2/images/{image_id}/file")
    assert status == 200 and data == BLOB  # streamed from the location
    # wrong validation_data: the task fails, the image is back to queued, no hashes
    bad = new_image(mcloud)
    status, _ = api(mcloud, "POST", f"/v2/images/{bad}/locations", {
        "url": url, "validation_data": {"os_hash_algo": "sha512",
                                        "os_hash_value": "ab" * 64}})
    assert status == 202
    img = wait(mcloud, bad, lambda i: i["status"] == "queued")
    assert img["os_hash_value"] is None and img["checksum"] is None
    # synchronous refusals: filtered URL, unknown scheme, malformed validation_data
    other = new_image(mcloud)
    for body in ({"url": "http://127.0.0.1:1/x"}, {"url": "gopher://127.0.0.1/x"},
                 {"url": url, "validation_data": {"os_hash_value": "ab" * 64}},
                 {"url": url, "validation_data": {"os_hash_algo": "sha123",
                                                  "os_hash_value": "ab"}}):
        assert api(mcloud, "POST", f"/v2/images/{other}/locations", body)[0] == 400, body
    # legacy PATCH (show_multiple_locations): add two, metadata replace, no removal of last
    glance(mcloud, "location-add", "--url", url, "--metadata", '{"a": "1"}', other)
    glance(mcloud, "location-add", "--url", url + "#2", "--metadata", "{}", other)
    img = show(mcloud, other)
    assert img["status"] == "active" and [x["url"] for x in img["locations"]] == [
        url, url + "#2"]
    assert img["os_hash_value"] is None  # no hashing through the legacy API
    glance(mcloud, "location-delete", "--url", url, other)
    assert [x["url"] for x in show(mcloud, other)["locations"]] == [url + "#2"]
    res = glance(mcloud, "location-delete", "--url", url + "#2", other, check=False)
    assert res.returncode != 0 and "403" in res.stderr + res.stdout
    for iid in (image_id, bad, other):
        api(mcloud, "DELETE", f"/v2/images/{iid}")


def test_image_cache_of_an_http_backed_image(mcloud, files):
    url = f"{files}/blob.raw"
    image_id = new_image(mcloud)
    glance(mcloud, "add-location", "--url", url, image_id)
    wait(mcloud, image_id, lambda i: i["status"] == "active" and i["os_hash_value"])
    assert api(mcloud, "PUT", f"/v2/cache/{uuid.uuid4()}")[0] == 404
    # the http store takes no uploads or imports
    other = new_image(mcloud)
    assert api(mcloud, "PUT", f"/v2/images/{other}/file", b"x",
               {"Content-Type": "application/octet-stream",
                "X-Image-Meta-Store": "web"})[0] == 400
    assert show(mcloud, other)["status"] == "queued"
    api(mcloud, "DELETE", f"/v2/images/{other}")
    queued = new_image(mcloud)
    assert api(mcloud, "PUT", f"/v2/cache/{queued}")[0] == 400  # no data to cache
    glance(mcloud, "cache-queue", image_id)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = api(mcloud, "GET", "/v2/cache")[1]
        if image_id in [c["image_id"] for c in listing["cached_images"]]:
            break
        time.sleep(0.2)
    cached = {c["image_id"]: c for c in listing["cached_images"]}[image_id]
    assert cached["size"] == len(BLOB) and cached["hits"] == 0
    path = mcloud.data_dir / "image-cache" / "images" / image_id
    assert path.read_bytes() == BLOB
    status, data = api(mcloud, "GET", f"/v2/images/{image_id}/file")
    assert status == 200 and data == BLOB
    listing = api(mcloud, "GET", "/v2/cache")[1]
    assert {c["image_id"]: c for c in listing["cached_images"]}[image_id]["hits"] == 1
    assert image_id in glance(mcloud, "cache-list").stdout
    assert api(mcloud, "DELETE", "/v2/cache", headers={
        "x-image-cache-clear-target": "bogus"})[0] == 400
    assert api(mcloud, "DELETE", "/v2/cache", headers={
        "x-image-cache-clear-target": "cache"})[0] == 204
    assert api(mcloud, "GET", "/v2/cache")[1]["cached_images"] == [] and not path.exists()
    for iid in (image_id, queued):
        api(mcloud, "DELETE", f"/v2/images/{iid}")
