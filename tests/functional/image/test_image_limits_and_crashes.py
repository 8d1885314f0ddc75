"""Quotas enforced while the data streams, kill -9 in the middle of an upload, and a 1 GiB
sparse image through the CLI with flat server memory.

Quota and crash tests run on a cloud of their own (its settings differ and it gets
killed); the 1 GiB test uses the shared session cloud.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.conftest import LiveCloud


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def small_cloud(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("imgquota") / "data"
    live = LiveCloud(data_dir, extra_env={
        "POCKETSTACK_IMAGE__IMAGE_SIZE_TOTAL": "2",  # MiB per project
        "POCKETSTACK_IMAGE__IMAGE_COUNT_TOTAL": "6",
        "POCKETSTACK_IMAGE__SEED_DEFAULT_IMAGE": "false",
    }).start()
    yield live
    live.stop()


def api(cloud, method, path, body=None, headers=None, user="admin"):
    tok = cloud.sdk(user).session.get_token()
    req = urllib.request.Request(cloud.base_url + "/image" + path, data=body, method=method,
                                 headers={"X-Auth-Token": tok, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def new_image(cloud, user="admin"):
    status, raw = api(cloud, "POST", "/v2/images", json.dumps({
        "name": f"ps-img-{uuid.uuid4().hex[:8]}", "disk_format": "raw",
        "container_format": "bare"}).encode(), {"Content-Type": "application/json"}, user)
    assert status == 201, raw
    return json.loads(raw)["id"]


def chunked_put(cloud, path: str, chunks, user="admin"):
    """PUT with Transfer-Encoding: chunked (no Content-Length: the server learns the size
    only while the data streams)."""
    tok = cloud.sdk(user).session.get_token()
    conn = http.client.HTTPConnection("127.0.0.1", cloud.port, timeout=60)
    conn.putrequest("PUT", "/image" + path)
    conn.putheader("X-Auth-Token", tok)
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    try:
        for chunk in chunks:
            conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        conn.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may answer (413) and close before we finish
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, body


def test_size_quota_enforced_mid_upload(small_cloud):
    image_id = new_image(small_cloud)
    status, body = chunked_put(small_cloud, f"/v2/images/{image_id}/file",
                               (b"q" * (256 << 10) for _ in range(12)))  # 3 MiB > 2 MiB
    assert status == 413, body
    status, raw = api(small_cloud, "GET", f"/v2/images/{image_id}")
    image = json.loads(raw)
    assert image["status"] == "queued" and image["size"] is None
    assert not list((small_cloud.data_dir / "images" / "tmp").iterdir())
    # within quota it works, and the quota counts what is stored
    status, _ = chunked_put(small_cloud, f"/v2/images/{image_id}/file",
                            (b"q" * (256 << 10) for _ in range(4)))
    assert status == 204
    other = new_image(small_cloud)
    status, body = api(small_cloud, "PUT", f"/v2/images/{other}/file", b"x" * (1536 << 10),
                       {"Content-Type": "application/octet-stream"})
    assert status == 413  # 1 MiB used + 1.5 MiB > 2 MiB, refused from Content-Length
    usage = json.loads(api(small_cloud, "GET", "/v2/info/usage")[1])["usage"]
    assert usage["image_size_total"] == {"limit": 2, "usage": 1}


def test_image_count_quota(small_cloud):
    made = []
    while True:
        status, raw = api(small_cloud, "POST", "/v2/images", json.dumps(
            {"name": f"ps-img-{uuid.uuid4().hex[:8]}"}).encode(),
            {"Content-Type": "application/json"})
        if status != 201:
            break
        made.append(json.loads(raw)["id"])
        assert len(made) <= 6
    assert status == 413 and b"image_count_total" in raw
    for image_id in made:
        api(small_cloud, "DELETE", f"/v2/images/{image_id}")


def test_kill_9_mid_upload_leaves_no_half_image(small_cloud):
    image_id = new_image(small_cloud)
    tok = small_cloud.sdk().session.get_token()
    sock = socket.create_connection(("127.0.0.1", small_cloud.port))
    sock.sendall((f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: x\r\n"
                  f"X-Auth-Token: {tok}\r\nContent-Type: application/octet-stream\r\n"
                  "Content-Length: 900000\r\n\r\n").encode() + b"k" * 600_000)
    tmp_dir = small_cloud.data_dir / "images" / "tmp"
    deadline = time.monotonic() + 30
    while not list(tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    status, raw = api(small_cloud, "GET", f"/v2/images/{image_id}")
    assert json.loads(raw)["status"] == "saving"
    small_cloud.stop(kill=True)
    sock.close()
    assert list(tmp_dir.iterdir())  # the crash left a partial file...
    small_cloud.start()
    assert not list(tmp_dir.iterdir())  # ...which the restart removed
    status, raw = api(small_cloud, "GET", f"/v2/images/{image_id}")
    image = json.loads(raw)
    assert image["status"] == "queued" and image["checksum"] is None
    assert not (small_cloud.data_dir / "images" / "images" / image_id).exists()
    assert api(small_cloud, "DELETE", f"/v2/images/{image_id}")[0] == 204


def test_one_gib_sparse_image_with_flat_server_memory(cloud, tmp_path):
    sparse = tmp_path / "sparse-1g.raw"
    with open(sparse, "wb") as fh:
        fh.truncate(1 << 30)
    pid = cloud.proc.pid
    before = rss_kib(pid)
    name = f"ps-img-1g-{uuid.uuid4().hex[:8]}"
    img = cloud.openstack("image", "create", name, "--file", str(sparse), "--disk-format",
                          "raw", "--container-format", "bare", timeout=600)
    grown_mib = (rss_kib(pid) - before) / 1024
    assert img["size"] == 1 << 30 and img["status"] == "active"
    assert img["checksum"] == "cd573cfaace07e7949bc0c46028904ff"  # md5 of 1 GiB of zeros
    assert grown_mib < 64, f"server RSS grew by {grown_mib:.0f} MiB during a 1 GiB upload"
    env = cloud.env()
    res = subprocess.run(["glance", "image-download", "--progress", "--file", os.devnull,
                          img["id"]], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr  # glanceclient verifies the Content-MD5
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 64, f"server RSS grew by {grown_mib:.0f} MiB after the download"
    # parallel downloads spread their chunks over worker threads; with a malloc arena per
    # thread each kept its own idle heap (+231 MiB after six of these: pocketstack/malloc.py)
    procs = [subprocess.Popen(["glance", "image-download", "--file", os.devnull, img["id"]],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(4)]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read() if proc.stderr else ""
    grown_mib = (rss_kib(pid) - before) / 1024
    assert grown_mib < 64, f"server RSS grew by {grown_mib:.0f} MiB after parallel downloads"
    cloud.openstack("image", "delete", img["id"], parse=False)
