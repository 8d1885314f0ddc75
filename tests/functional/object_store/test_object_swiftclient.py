"""Swift v1 through the real clients: the `swift` CLI (seed 002's `swift stat`) and
python-swiftclient's Connection."""

from __future__ import annotations

import hashlib
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from swiftclient import client as swift
from swiftclient.exceptions import ClientException
from swiftclient.utils import generate_temp_url


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def swift_cli(cloud, *args: str, user: str = "admin") -> str:
    res = subprocess.run(["swift", *args], env=cloud.env(user), capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr + res.stdout
    return res.stdout


def test_catalog_has_swift_and_s3(cloud):
    services = {s["Name"]: s["Type"] for s in cloud.openstack("service", "list")}
    assert services.get("swift") == "object-store"
    assert services.get("s3") == "s3"


def test_swift_stat_shape_seed002(cloud):
    out = swift_cli(cloud, "stat")
    fields = dict(line.strip().split(": ", 1) for line in out.splitlines() if ": " in line)
    assert fields["Account"].startswith("AUTH_")
    for key in ("Containers", "Objects", "Bytes"):
        assert fields[key].isdigit()
    assert fields["X-Trans-Id"].startswith("tx")
    assert float(fields["X-Timestamp"]) > 0 and float(fields["X-Put-Timestamp"]) > 0
    assert fields["Content-Type"] == "text/plain; charset=utf-8"


def test_swift_cli_upload_list_download_delete(cloud, tmp_path):
    container = unique("cli")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub" / "b.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    subprocess.run(["swift", "upload", container, "."], cwd=src, env=cloud.env(),
                   check=True, capture_output=True, timeout=60)
    # a segmented upload (DLO by default, SLO with --use-slo) of the 1 MiB file
    subprocess.run(["swift", "upload", container, "sub/b.bin", "--object-name", "big-dlo",
                    "--segment-size", "300000"], cwd=src, env=cloud.env(), check=True,
                   capture_output=True, timeout=60)
    subprocess.run(["swift", "upload", container, "sub/b.bin", "--object-name", "big-slo",
                    "--segment-size", "300000", "--use-slo"], cwd=src, env=cloud.env(),
                   check=True, capture_output=True, timeout=60)
    listing = swift_cli(cloud, "list", container).split()
    assert {"a.txt", "sub/b.bin", "big-dlo", "big-slo"} <= set(listing)
    dest = tmp_path / "dest"
    dest.mkdir()
    subprocess.run(["swift", "download", container], cwd=dest, env=cloud.env(), check=True,
                   capture_output=True, timeout=60)
    original = (src / "sub" / "b.bin").read_bytes()
    assert (dest / "a.txt").read_bytes() == b"alpha\n"
    assert (dest / "big-dlo").read_bytes() == original
    assert (dest / "big-slo").read_bytes() == original
    swift_cli(cloud, "delete", container)
    swift_cli(cloud, "delete", container + "_segments")
    assert container not in swift_cli(cloud, "list").split()


def test_metadata_listing_formats_and_paging(conn):
    c = unique("meta")
    conn.put_container(c, headers={"X-Container-Meta-Color": "blue"})
    for name in ["a", "b/1", "b/2", "c"]:
        conn.put_object(c, name, contents=name.encode(), content_type="text/plain",
                        headers={"X-Object-Meta-Name": name})
    head = conn.head_container(c)
    assert head["x-container-meta-color"] == "blue"
    assert head["x-container-object-count"] == "4"
    _, items = conn.get_container(c, delimiter="/")
    assert [i.get("name") or i.get("subdir") for i in items] == ["a", "b/", "c"]
    _, items = conn.get_container(c, limit=2, marker="a")
    assert [i["name"] for i in items] == ["b/1", "b/2"]
    _, items = conn.get_container(c, full_listing=True, limit=1)
    assert len(items) == 4
    _, items = conn.get_container(c, prefix="b/", end_marker="b/2")
    assert [i["name"] for i in items] == ["b/1"]
    assert items[0]["hash"] == hashlib.md5(b"b/1").hexdigest()
    req = urllib.request.Request(f"{conn.url}/{c}?format=xml&prefix=b/",
                                 headers={"X-Auth-Token": conn.token})
    with urllib.request.urlopen(req) as resp:
        xml = resp.read()
    assert b"<name>b/1</name>" in xml and b"<name>a</name>" not in xml
    headers = conn.head_object(c, "a")
    assert headers["x-object-meta-name"] == "a"
    conn.post_object(c, "a", headers={"X-Object-Meta-New": "1"})
    headers = conn.head_object(c, "a")
    assert headers["x-object-meta-new"] == "1" and "x-object-meta-name" not in headers
    conn.post_account(headers={"X-Account-Meta-Ps-Test": "yes"})
    assert conn.head_account()["x-account-meta-ps-test"] == "yes"
    conn.post_account(headers={"X-Remove-Account-Meta-Ps-Test": "x"})
    assert "x-account-meta-ps-test" not in conn.head_account()


def test_ranges_conditionals_and_copy(conn):
    c = unique("range")
    conn.put_container(c)
    etag = conn.put_object(c, "o", contents=b"0123456789")
    assert etag == hashlib.md5(b"0123456789").hexdigest()
    _, body = conn.get_object(c, "o", headers={"Range": "bytes=2-4"})
    assert body == b"234"
    _, body = conn.get_object(c, "o", headers={"Range": "bytes=-3"})
    assert body == b"789"
    with pytest.raises(ClientException) as err:
        conn.get_object(c, "o", headers={"Range": "bytes=50-60"})
    assert err.value.http_status == 416
    with pytest.raises(ClientException) as err:
        conn.get_object(c, "o", headers={"If-Match": "nope"})
    assert err.value.http_status == 412
    with pytest.raises(ClientException) as err:
        conn.get_object(c, "o", headers={"If-None-Match": etag})
    assert err.value.http_status == 304
    with pytest.raises(ClientException) as err:
        conn.get_object(c, "o", headers={"If-Modified-Since": "Sun, 01 Jan 2090 00:00:00 GMT"})
    assert err.value.http_status == 304
    with pytest.raises(ClientException) as err:
        conn.put_object(c, "bad", contents=b"abc", etag="0" * 32)
    assert err.value.http_status == 422
    conn.copy_object(c, "o", f"/{c}/copy", headers={"X-Object-Meta-K": "v"})
    headers, body = conn.get_object(c, "copy")
    assert body == b"0123456789" and headers["x-object-meta-k"] == "v"
    # chunked upload (no Content-Length)
    conn.put_object(c, "chunked", contents=iter([b"ab", b"cd", b"ef"]), chunk_size=2)
    assert conn.get_object(c, "chunked")[1] == b"abcdef"


def test_bad_names_are_refused(conn):
    """Sent with http.client: requests/urllib3 would normalise the dot segments away."""
    import http.client as httpclient
    from urllib.parse import urlsplit

    c = unique("names")
    conn.put_container(c)
    url = urlsplit(conn.url)
    http = httpclient.HTTPConnection(url.hostname, url.port, timeout=10)
    for bad in ["a/../b", "..", "./x", "nul%00byte", "x" * 1025]:
        http.request("PUT", f"{url.path}/{c}/{bad}", body=b"x",
                     headers={"X-Auth-Token": conn.token})
        resp = http.getresponse()
        resp.read()
        assert resp.status == 400, (bad, resp.status)
    assert conn.head_container(c)["x-container-object-count"] == "0"


def test_acl_tempurl_versioning_and_bulk_delete(cloud, conn, demo_conn):
    c = unique("acl")
    conn.put_container(c)
    conn.put_object(c, "o", contents=b"secret")
    url = conn.url
    with pytest.raises(ClientException) as err:
        swift.get_object(url, demo_conn.get_auth()[1], c, "o")
    assert err.value.http_status == 403
    conn.post_container(c, headers={"X-Container-Read": ".r:*"})
    with urllib.request.urlopen(f"{url}/{c}/o") as resp:  # anonymous, public read
        assert resp.read() == b"secret"
    conn.post_container(c, headers={"X-Container-Read": ""})
    with pytest.raises(urllib.error.HTTPError) as herr:
        urllib.request.urlopen(f"{url}/{c}/o")
    assert herr.value.code == 401
    # TempURL signed over the /v1/... path
    conn.post_account(headers={"X-Account-Meta-Temp-URL-Key": "k3y"})
    path = "/v1/" + url.split("/v1/", 1)[1] + f"/{c}/o"
    signed = generate_temp_url(path, 60, "k3y", "GET")
    base = url.split("/v1/", 1)[0]
    with urllib.request.urlopen(base + signed) as resp:
        assert resp.read() == b"secret"
    bad = generate_temp_url(path, 60, "wrong", "GET")
    with pytest.raises(urllib.error.HTTPError) as herr:
        urllib.request.urlopen(base + bad)
    assert herr.value.code == 401
    # versioning
    v = c + "-versions"
    conn.put_container(v)
    conn.post_container(c, headers={"X-Versions-Location": v})
    conn.put_object(c, "o", contents=b"second")
    assert conn.head_container(v)["x-container-object-count"] == "1"
    conn.delete_object(c, "o")
    assert conn.get_object(c, "o")[1] == b"secret"
    # bulk delete
    conn.post_container(c, headers={"X-Remove-Versions-Location": "x"})
    body = f"/{c}/o\n/{v}\n/{c}/missing\n".encode()
    resp = {}
    conn.post_account(headers={"Accept": "application/json", "Content-Type": "text/plain"},
                      data=body, query_string="bulk-delete", response_dict=resp)
    assert resp["status"] == 200
    assert conn.head_container(c)["x-container-object-count"] == "0"


def test_expiry(conn):
    c = unique("exp")
    conn.put_container(c)
    conn.put_object(c, "o", contents=b"x", headers={"X-Delete-After": "1"})
    assert "x-delete-at" in conn.head_object(c, "o")
    time.sleep(2.1)
    with pytest.raises(ClientException) as err:
        conn.get_object(c, "o")
    assert err.value.http_status == 404
    with pytest.raises(ClientException) as err:
        conn.put_object(c, "p", contents=b"x", headers={"X-Delete-At": "1000"})
    assert err.value.http_status == 400


def test_info_discovery(conn):
    info = conn.get_capabilities()
    assert "swift" in info and "slo" in info and "tempurl" in info


def test_extract_archive_and_history_location(conn):
    import io
    import tarfile

    c = unique("tar")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("one.txt", b"1"), ("dir/two.txt", b"22")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    conn.put_container(c)
    import json as _json
    import urllib.request as ur

    req = ur.Request(f"{conn.url}/{c}?extract-archive=tar.gz", data=buf.getvalue(),
                     method="PUT", headers={"X-Auth-Token": conn.token,
                                            "Accept": "application/json"})
    with ur.urlopen(req) as r:
        result = _json.loads(r.read())
    assert result["Number Files Created"] == 2, result
    assert conn.get_object(c, "dir/two.txt")[1] == b"22"
    # X-History-Location keeps every overwritten/deleted version, deletes don't restore
    h = c + "-history"
    conn.put_container(h)
    conn.post_container(c, headers={"X-History-Location": h})
    conn.put_object(c, "one.txt", contents=b"1b")
    conn.delete_object(c, "one.txt")
    _, versions = conn.get_container(h)
    assert len(versions) == 2
    with pytest.raises(ClientException):
        conn.get_object(c, "one.txt")
