"""S3 through boto3, with credentials from `openstack ec2 credentials create`: buckets,
objects, copy, multipart, presigned URLs, listing pagination, errors, and the same data
seen through Swift."""

from __future__ import annotations

import hashlib
import io
import urllib.error
import urllib.request
import uuid

import boto3
import pytest
from botocore.client import Config
from botocore.exceptions import ClientError


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def client(cloud, ec2, **config):
    return boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                        aws_access_key_id=ec2["access"],
                        aws_secret_access_key=ec2["secret"], region_name="us-east-1",
                        config=Config(**config) if config else None)


@pytest.fixture(scope="module")
def s3(cloud, ec2):
    return client(cloud, ec2)


def code(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Code"]


def test_buckets_and_objects(s3):
    b = unique("bkt")
    s3.create_bucket(Bucket=b)
    assert b in [x["Name"] for x in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=b)
    put = s3.put_object(Bucket=b, Key="dir/hello world.txt", Body=b"hello",
                        ContentType="text/plain", Metadata={"color": "red"})
    assert put["ETag"] == '"%s"' % hashlib.md5(b"hello").hexdigest()
    got = s3.get_object(Bucket=b, Key="dir/hello world.txt")
    assert got["Body"].read() == b"hello"
    assert got["ContentType"] == "text/plain" and got["Metadata"] == {"color": "red"}
    assert s3.get_object(Bucket=b, Key="dir/hello world.txt", Range="bytes=1-3")[
        "Body"].read() == b"ell"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=b, Key="dir/hello world.txt", IfNoneMatch=put["ETag"])
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    s3.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "dir/hello world.txt"})
    assert s3.head_object(Bucket=b, Key="copy")["ContentLength"] == 5
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=b, Key="missing")
    assert code(err) == "NoSuchKey"
    with pytest.raises(ClientError) as err:
        s3.delete_bucket(Bucket=b)
    assert code(err) == "BucketNotEmpty"
    deleted = s3.delete_objects(Bucket=b, Delete={"Objects": [
        {"Key": "dir/hello world.txt"}, {"Key": "copy"}, {"Key": "never-existed"}]})
    assert len(deleted["Deleted"]) == 3
    s3.delete_bucket(Bucket=b)
    with pytest.raises(ClientError) as err:
        s3.head_bucket(Bucket=b)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_listing_pagination(s3):
    b = unique("list")
    s3.create_bucket(Bucket=b)
    keys = [f"p/{i:03d}" for i in range(25)] + ["q/x", "top"]
    for k in keys:
        s3.put_object(Bucket=b, Key=k, Body=k.encode())
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=b, PaginationConfig={
        "PageSize": 7}))
    assert len(pages) == 4
    assert [o["Key"] for p in pages for o in p.get("Contents", [])] == sorted(keys)
    v1 = list(s3.get_paginator("list_objects").paginate(Bucket=b, PaginationConfig={
        "PageSize": 10}))
    assert [o["Key"] for p in v1 for o in p.get("Contents", [])] == sorted(keys)
    res = s3.list_objects_v2(Bucket=b, Delimiter="/")
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["p/", "q/"]
    assert [o["Key"] for o in res["Contents"]] == ["top"]
    res = s3.list_objects_v2(Bucket=b, Prefix="p/01", StartAfter="p/012")
    assert [o["Key"] for o in res["Contents"]] == [f"p/01{i}" for i in range(3, 10)]


def test_multipart_upload(s3):
    b = unique("mpu")
    s3.create_bucket(Bucket=b)
    mp = s3.create_multipart_upload(Bucket=b, Key="big", ContentType="application/x-test")
    part1 = b"a" * (5 * 1024 * 1024)
    part2 = b"tail"
    e1 = s3.upload_part(Bucket=b, Key="big", UploadId=mp["UploadId"], PartNumber=1,
                        Body=part1)["ETag"]
    e2 = s3.upload_part(Bucket=b, Key="big", UploadId=mp["UploadId"], PartNumber=2,
                        Body=part2)["ETag"]
    parts = s3.list_parts(Bucket=b, Key="big", UploadId=mp["UploadId"])["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(part1)), (2, 4)]
    assert [u["Key"] for u in s3.list_multipart_uploads(Bucket=b)["Uploads"]] == ["big"]
    with pytest.raises(ClientError) as err:  # out of order
        s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=mp["UploadId"],
                                     MultipartUpload={"Parts": [
                                         {"PartNumber": 2, "ETag": e2},
                                         {"PartNumber": 1, "ETag": e1}]})
    assert code(err) == "InvalidPartOrder"
    done = s3.complete_multipart_upload(Bucket=b, Key="big", UploadId=mp["UploadId"],
                                        MultipartUpload={"Parts": [
                                            {"PartNumber": 1, "ETag": e1},
                                            {"PartNumber": 2, "ETag": e2}]})
    md5s = hashlib.md5(part1).digest() + hashlib.md5(part2).digest()
    assert done["ETag"] == '"%s-2"' % hashlib.md5(md5s).hexdigest()
    head = s3.head_object(Bucket=b, Key="big")
    assert head["ContentLength"] == len(part1) + 4
    assert head["ContentType"] == "application/x-test"
    body = s3.get_object(Bucket=b, Key="big", Range=f"bytes={len(part1) - 2}-")["Body"].read()
    assert body == b"aatail"
    aborted = s3.create_multipart_upload(Bucket=b, Key="gone")
    s3.upload_part(Bucket=b, Key="gone", UploadId=aborted["UploadId"], PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=b, Key="gone", UploadId=aborted["UploadId"])
    with pytest.raises(ClientError) as err:
        s3.list_parts(Bucket=b, Key="gone", UploadId=aborted["UploadId"])
    assert code(err) == "NoSuchUpload"
    # boto3's managed transfer (threads, multipart above its threshold)
    from boto3.s3.transfer import TransferConfig

    data = bytes(range(256)) * (24 * 1024)  # 6 MiB
    s3.upload_fileobj(io.BytesIO(data), b, "managed",
                      Config=TransferConfig(multipart_threshold=5 * 1024 * 1024,
                                            multipart_chunksize=5 * 1024 * 1024))
    out = io.BytesIO()
    s3.download_fileobj(b, "managed", out)
    assert out.getvalue() == data


def test_presigned_urls_and_signature_versions(cloud, ec2, s3):
    b = unique("pre")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="k", Body=b"presigned!")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "k"},
                                    ExpiresIn=60)
    with urllib.request.urlopen(url) as resp:
        assert resp.read() == b"presigned!"
    tampered = url.replace("/k?", "/other?")
    with pytest.raises(urllib.error.HTTPError) as herr:
        urllib.request.urlopen(tampered)
    assert herr.value.code == 403
    v4 = client(cloud, ec2, signature_version="s3v4")
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": b, "Key": "up"},
                                        ExpiresIn=60)
    req = urllib.request.Request(put_url, data=b"via presigned PUT", method="PUT")
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
    v2 = client(cloud, ec2, signature_version="s3")
    assert v2.get_object(Bucket=b, Key="up")["Body"].read() == b"via presigned PUT"
    bad = boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                       aws_access_key_id=ec2["access"], aws_secret_access_key="wrong",
                       region_name="us-east-1")
    with pytest.raises(ClientError) as err:
        bad.list_buckets()
    assert code(err) == "SignatureDoesNotMatch"


def test_acl_basics_and_anonymous_read(cloud, s3):
    b = unique("acl")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="pub", Body=b"public data")
    grants = s3.get_bucket_acl(Bucket=b)["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    with pytest.raises(urllib.error.HTTPError) as herr:
        urllib.request.urlopen(f"{cloud.base_url}/s3/{b}/pub")
    assert herr.value.code == 403
    s3.put_bucket_acl(Bucket=b, ACL="public-read")
    assert "READ" in [g["Permission"] for g in s3.get_bucket_acl(Bucket=b)["Grants"]]
    with urllib.request.urlopen(f"{cloud.base_url}/s3/{b}/pub") as resp:
        assert resp.read() == b"public data"


def test_same_data_through_swift(cloud, s3):
    """A bucket is a container of the credential's project; an object is an object."""
    import subprocess

    b = unique("both")
    s3.create_bucket(Bucket=b)
    s3.put_object(Bucket=b, Key="from-s3", Body=b"shared")
    out = subprocess.run(["swift", "download", b, "from-s3", "-o", "-"], env=cloud.env(),
                         capture_output=True, timeout=60, check=True).stdout
    assert out == b"shared"


class _Raw(io.BytesIO):
    """A urllib3-like raw response body for botocore."""

    def stream(self, **kwargs):  # noqa: ANN003
        yield self.getvalue()


def test_virtual_host_style(cloud, ec2):
    """Host: <bucket>.localhost:<port>, signed by botocore for that host, sent to loopback
    (name resolution of *.localhost is not needed)."""
    import http.client
    from urllib.parse import urlsplit

    from botocore.awsrequest import AWSResponse
    from botocore.compat import HTTPHeaders

    port = urlsplit(cloud.base_url).port
    vs3 = boto3.client("s3", endpoint_url=f"http://localhost:{port}/s3",
                       aws_access_key_id=ec2["access"], aws_secret_access_key=ec2["secret"],
                       region_name="us-east-1",
                       config=Config(s3={"addressing_style": "virtual"}))

    def to_loopback(request, **kwargs):  # noqa: ANN001, ANN003
        parts = urlsplit(request.url)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {k: v for k, v in request.headers.items()}
        headers["Host"] = parts.netloc
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        conn.request(request.method, parts.path + ("?" + parts.query if parts.query else ""),
                     body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        hdrs = HTTPHeaders()
        for k, v in resp.getheaders():
            hdrs[k] = v
        return AWSResponse(request.url, resp.status, hdrs, _Raw(data))

    vs3.meta.events.register("before-send.s3", to_loopback)
    b = unique("vhost")
    vs3.create_bucket(Bucket=b)
    vs3.put_object(Bucket=b, Key="k/v", Body=b"virtual")
    assert vs3.get_object(Bucket=b, Key="k/v")["Body"].read() == b"virtual"
    assert [o["Key"] for o in vs3.list_objects_v2(Bucket=b)["Contents"]] == ["k/v"]


def test_s3_error_document(cloud, s3):
    b = unique("err")
    s3.create_bucket(Bucket=b)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "none"})
    with pytest.raises(urllib.error.HTTPError) as herr:
        urllib.request.urlopen(url)
    assert herr.value.code == 404
    assert herr.value.headers["Content-Type"] == "application/xml"
    body = herr.value.read().decode()
    assert "<Code>NoSuchKey</Code>" in body and "<Message>" in body


def test_errors_before_the_body_keep_the_connection_usable(s3):
    """An early error (bad part number, invalid bucket name) must not leave unread body
    bytes on a kept-alive connection for the next request to trip over."""
    b = unique("early")
    s3.create_bucket(Bucket=b)
    mp = s3.create_multipart_upload(Bucket=b, Key="k")
    for _ in range(3):
        with pytest.raises(ClientError) as err:
            s3.upload_part(Bucket=b, Key="k", UploadId=mp["UploadId"], PartNumber=0,
                           Body=b"x")
        assert code(err) == "InvalidArgument"
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket="ps-nobucket-" + b[-8:], Key="k")
        assert code(err) == "NoSuchBucket"
    with pytest.raises(ClientError) as err:
        s3.create_bucket(Bucket="Upper_Case")
    assert code(err) == "InvalidBucketName"
    s3.abort_multipart_upload(Bucket=b, Key="k", UploadId=mp["UploadId"])


def test_bucket_and_object_tagging(cloud, s3):
    b = unique("tags")
    s3.create_bucket(Bucket=b)
    with pytest.raises(ClientError) as err:
        s3.get_bucket_tagging(Bucket=b)
    assert code(err) == "NoSuchTagSet"
    s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "team", "Value": "ops"},
                                                         {"Key": "env", "Value": ""}]})
    assert s3.get_bucket_tagging(Bucket=b)["TagSet"] == [{"Key": "team", "Value": "ops"},
                                                         {"Key": "env", "Value": ""}]
    with pytest.raises(ClientError) as err:  # duplicate keys: refused, tags unchanged
        s3.put_bucket_tagging(Bucket=b, Tagging={"TagSet": [{"Key": "a", "Value": "1"},
                                                             {"Key": "a", "Value": "2"}]})
    assert code(err) == "InvalidTag"
    assert len(s3.get_bucket_tagging(Bucket=b)["TagSet"]) == 2
    s3.delete_bucket_tagging(Bucket=b)
    with pytest.raises(ClientError) as err:
        s3.get_bucket_tagging(Bucket=b)
    assert code(err) == "NoSuchTagSet"

    s3.put_object(Bucket=b, Key="k", Body=b"x", Tagging="colour=blue&size=")
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [
        {"Key": "colour", "Value": "blue"}, {"Key": "size", "Value": ""}]
    assert s3.head_object(Bucket=b, Key="k")["ResponseMetadata"]["HTTPHeaders"][
        "x-amz-tagging-count"] == "2"
    before = s3.head_object(Bucket=b, Key="k")["LastModified"]
    s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [{"Key": "n", "Value": "1"}]})
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [{"Key": "n", "Value": "1"}]
    assert s3.head_object(Bucket=b, Key="k")["LastModified"] == before
    with pytest.raises(ClientError) as err:
        s3.put_object_tagging(Bucket=b, Key="k", Tagging={"TagSet": [
            {"Key": f"t{i}", "Value": "v"} for i in range(11)]})
    assert code(err) == "InvalidTag"
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=b, Key="bad", Body=b"x", Tagging="aws:owner=me")
    assert code(err) == "InvalidTag"
    # copies keep the tags (x-amz-tagging-directive COPY) or take new ones (REPLACE)
    s3.copy_object(Bucket=b, Key="kept", CopySource={"Bucket": b, "Key": "k"})
    assert s3.get_object_tagging(Bucket=b, Key="kept")["TagSet"] == [{"Key": "n", "Value": "1"}]
    s3.copy_object(Bucket=b, Key="new", CopySource={"Bucket": b, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="fresh=yes")
    assert s3.get_object_tagging(Bucket=b, Key="new")["TagSet"] == [
        {"Key": "fresh", "Value": "yes"}]
    # Swift neither shows the tags nor drops them on a metadata POST
    container = cloud.sdk().object_store
    headers = container.get(f"/{b}/k").headers
    assert not [h for h in headers if "sysmeta" in h.lower() or "tagging" in h.lower()]
    container.post(f"/{b}/k", headers={"X-Object-Meta-Color": "red"})
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == [{"Key": "n", "Value": "1"}]
    s3.delete_object_tagging(Bucket=b, Key="k")
    assert s3.get_object_tagging(Bucket=b, Key="k")["TagSet"] == []
    with pytest.raises(ClientError) as err:
        s3.get_object_tagging(Bucket=b, Key="missing")
    assert code(err) == "NoSuchKey"


def test_unconfigured_bucket_settings_read_as_absent(s3):
    """What a tool reading a bucket's whole state (Ansible s3_bucket) asks; nothing of this
    is configurable here, so each answers "none", and setting one is a 501."""
    b = unique("conf")
    s3.create_bucket(Bucket=b)
    absent = {"get_bucket_policy": "NoSuchBucketPolicy",
              "get_bucket_cors": "NoSuchCORSConfiguration",
              "get_bucket_lifecycle_configuration": "NoSuchLifecycleConfiguration",
              "get_bucket_encryption": "ServerSideEncryptionConfigurationNotFoundError",
              "get_bucket_website": "NoSuchWebsiteConfiguration",
              "get_bucket_ownership_controls": "OwnershipControlsNotFoundError",
              "get_public_access_block": "NoSuchPublicAccessBlockConfiguration",
              "get_bucket_replication": "ReplicationConfigurationNotFoundError"}
    for method, wanted in absent.items():
        with pytest.raises(ClientError) as err:
            getattr(s3, method)(Bucket=b)
        assert code(err) == wanted, method
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "Status" not in s3.get_bucket_versioning(Bucket=b)
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=b)
    assert s3.get_bucket_request_payment(Bucket=b)["Payer"] == "BucketOwner"
    s3.delete_bucket_policy(Bucket=b)
    s3.delete_bucket_cors(Bucket=b)
    with pytest.raises(ClientError) as err:
        s3.put_bucket_policy(Bucket=b, Policy='{"Version": "2012-10-17", "Statement": []}')
    assert code(err) == "NotImplemented"
    with pytest.raises(ClientError) as err:
        s3.get_bucket_policy(Bucket=unique("nobucket"))
    assert code(err) == "NoSuchBucket"
