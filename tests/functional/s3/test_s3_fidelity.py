"""S3 behaviours that once answered a wrong success or a wrong error (issue 21), through
boto3 and raw signed requests: ListObjectVersions on unversioned buckets, LastModified
agreeing between listing and HEAD, <RequestId> in error bodies, SigV2 at the bucket level
and its date checks, Date-only SigV4, presigned expiry limits, InvalidDigest vs BadDigest,
repeated CompleteMultipartUpload, ListBuckets paging and unicode user metadata."""

from __future__ import annotations

import datetime
import email.header
import email.utils
import time
import urllib.error
import urllib.request
import uuid
from unittest import mock
from xml.etree import ElementTree as ET

import boto3
import pytest
from botocore.auth import HmacV1Auth, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def client(cloud, ec2, **config):
    return boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                        aws_access_key_id=ec2["access"], aws_secret_access_key=ec2["secret"],
                        region_name="us-east-1", config=Config(**config) if config else None)


@pytest.fixture(scope="module")
def s3(cloud, ec2):
    return client(cloud, ec2)


@pytest.fixture(scope="module")
def bucket(s3):
    name = unique("fid")
    s3.create_bucket(Bucket=name)
    yield name
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def send(url: str, method: str = "GET", body: bytes | None = None, headers: dict | None = None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def signed(cloud, ec2, method: str, path: str, body: bytes = b"", headers: dict | None = None,
           v2: bool = False, ago: float = 0):
    """A request signed by botocore, ``ago`` seconds in the past."""
    url = f"{cloud.base_url}/s3/{path}"
    req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    creds = Credentials(ec2["access"], ec2["secret"])
    then = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=ago)
    with mock.patch("botocore.auth.get_current_datetime", lambda: then), \
            mock.patch.object(HmacV1Auth, "_get_date",
                              lambda self: email.utils.format_datetime(then, usegmt=True)):
        (HmacV1Auth(creds) if v2 else S3SigV4Auth(creds, "s3", "us-east-1")).add_auth(req)
    return send(url, method, body or None, dict(req.headers.items()))


def code(err: pytest.ExceptionInfo) -> str:
    return err.value.response["Error"]["Code"]


def test_list_object_versions_on_an_unversioned_bucket(s3, bucket):
    keys = ["v/a", "v/b", "v/c", "v/d/e"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    out = s3.list_object_versions(Bucket=bucket, Prefix="v/")
    assert [v["Key"] for v in out["Versions"]] == keys
    assert {v["VersionId"] for v in out["Versions"]} == {"null"}
    assert all(v["IsLatest"] and v["Size"] == len(v["Key"]) for v in out["Versions"])
    assert "DeleteMarkers" not in out and out["IsTruncated"] is False
    # pages by key-marker
    pages = list(s3.get_paginator("list_object_versions").paginate(
        Bucket=bucket, Prefix="v/", PaginationConfig={"PageSize": 2}))
    assert [v["Key"] for p in pages for v in p["Versions"]] == keys and len(pages) == 2
    assert pages[0]["NextKeyMarker"] == "v/b"
    grouped = s3.list_object_versions(Bucket=bucket, Prefix="v/", Delimiter="/",
                                      KeyMarker="v/a")
    assert [v["Key"] for v in grouped["Versions"]] == ["v/b", "v/c"]
    assert [p["Prefix"] for p in grouped["CommonPrefixes"]] == ["v/d/"]
    # what versions-aware tools do to empty a bucket works: delete every (key, version)
    for v in out["Versions"]:
        s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
    assert "Versions" not in s3.list_object_versions(Bucket=bucket, Prefix="v/")


def test_listing_and_head_agree_on_last_modified(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"lm/{i}", Body=b"x")
    listed = {o["Key"]: o["LastModified"] for o in
              s3.list_objects_v2(Bucket=bucket, Prefix="lm/")["Contents"]}
    v1 = {o["Key"]: o["LastModified"] for o in
          s3.list_objects(Bucket=bucket, Prefix="lm/")["Contents"]}
    versions = {o["Key"]: o["LastModified"] for o in
                s3.list_object_versions(Bucket=bucket, Prefix="lm/")["Versions"]}
    for key, when in listed.items():
        head = s3.head_object(Bucket=bucket, Key=key)["LastModified"]
        assert when == head == v1[key] == versions[key], key


def test_error_bodies_carry_the_request_id(cloud, ec2, s3, bucket):
    status, headers, body = signed(cloud, ec2, "GET", f"{bucket}/no-such-key")
    assert status == 404
    root = ET.fromstring(body)
    assert root.findtext("Code") == "NoSuchKey"
    assert root.findtext("RequestId") and root.findtext("RequestId") == \
        headers["x-amz-request-id"]
    status, headers, body = send(f"{cloud.base_url}/s3/{bucket}/x")  # anonymous, denied
    assert status == 403
    assert ET.fromstring(body).findtext("RequestId") == headers["x-amz-request-id"]


def test_sigv2_bucket_level_requests(cloud, ec2):
    v2 = client(cloud, ec2, signature_version="s3")
    b = unique("v2")
    v2.create_bucket(Bucket=b)
    v2.put_object(Bucket=b, Key="k", Body=b"v2 body")
    assert [o["Key"] for o in v2.list_objects(Bucket=b)["Contents"]] == ["k"]
    assert [o["Key"] for o in v2.list_objects_v2(Bucket=b)["Contents"]] == ["k"]
    v2.head_bucket(Bucket=b)
    assert b in [x["Name"] for x in v2.list_buckets()["Buckets"]]
    v2.delete_object(Bucket=b, Key="k")
    v2.delete_bucket(Bucket=b)


def test_sigv2_date_is_checked(cloud, ec2, bucket):
    status, _, body = signed(cloud, ec2, "GET", bucket, v2=True, ago=3600)
    assert status == 403 and ET.fromstring(body).findtext("Code") == "RequestTimeTooSkewed"
    status, _, _ = signed(cloud, ec2, "GET", bucket, v2=True)
    assert status == 200


def test_sigv4_with_date_only_and_with_both(cloud, ec2, bucket):
    now = email.utils.formatdate(time.time(), usegmt=True)
    # botocore signs a request that has a Date header with Date alone (no X-Amz-Date)
    status, _, body = signed(cloud, ec2, "GET", bucket, headers={"Date": now})
    assert status == 200, body
    # X-Amz-Date signed, and a Date header too (added by a proxy or an HTTP library)
    url = f"{cloud.base_url}/s3/{bucket}"
    req = AWSRequest(method="GET", url=url)
    S3SigV4Auth(Credentials(ec2["access"], ec2["secret"]), "s3", "us-east-1").add_auth(req)
    status, _, body = send(url, "GET", None, {**dict(req.headers.items()), "Date": now})
    assert status == 200, body
    status, _, body = signed(cloud, ec2, "GET", bucket, headers={"Date": now}, ago=3600)
    assert status == 403 and ET.fromstring(body).findtext("Code") == "RequestTimeTooSkewed"


def test_presigned_expiry_over_seven_days_is_refused(cloud, ec2, bucket):
    s3 = client(cloud, ec2, signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="presigned", Body=b"p")
    ok = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "presigned"},
                                   ExpiresIn=604800)
    assert send(ok)[0] == 200
    bad = s3.generate_presigned_url("get_object",
                                    Params={"Bucket": bucket, "Key": "presigned"},
                                    ExpiresIn=604801)
    status, _, body = send(bad)
    assert status == 400
    assert ET.fromstring(body).findtext("Code") == "AuthorizationQueryParametersError"


def test_invalid_digest_and_bad_digest(cloud, ec2, s3, bucket):
    status, _, body = signed(cloud, ec2, "PUT", f"{bucket}/digest", b"data",
                             {"Content-MD5": "not base64!"})
    assert status == 400 and ET.fromstring(body).findtext("Code") == "InvalidDigest"
    status, _, body = signed(cloud, ec2, "PUT", f"{bucket}/digest", b"data",
                             {"Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert status == 400 and ET.fromstring(body).findtext("Code") == "BadDigest"
    status, _, body = signed(cloud, ec2, "PUT", f"{bucket}/digest", b"data",
                             {"Content-MD5": "AAAA"})  # base64, but not 16 bytes
    assert status == 400 and ET.fromstring(body).findtext("Code") == "InvalidDigest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="digest")


def test_repeated_complete_multipart_upload_answers_the_same(s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mpu")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mpu", UploadId=upload, PartNumber=1,
                          Body=b"only part")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=upload,
                                         MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId=upload,
                                         MultipartUpload=parts)
    assert (again["ETag"], again["Key"], again["Bucket"]) == \
        (first["ETag"], first["Key"], first["Bucket"])
    assert s3.get_object(Bucket=bucket, Key="mpu")["Body"].read() == b"only part"
    with pytest.raises(ClientError) as err:  # but an upload that never was is still none
        s3.complete_multipart_upload(Bucket=bucket, Key="mpu", UploadId="f" * 32,
                                     MultipartUpload=parts)
    assert code(err) == "NoSuchUpload"
    with pytest.raises(ClientError) as err:  # nor may the answer be replayed elsewhere
        s3.complete_multipart_upload(Bucket=bucket, Key="other", UploadId=upload,
                                     MultipartUpload=parts)
    assert code(err) == "NoSuchUpload"


def test_list_buckets_max_buckets_and_continuation(s3):
    names = sorted(unique("lb") for _ in range(3))
    for n in names:
        s3.create_bucket(Bucket=n)
    try:
        seen, token, pages = [], None, 0
        while True:
            kw = {"MaxBuckets": 2, **({"ContinuationToken": token} if token else {})}
            out = s3.list_buckets(**kw)
            assert len(out["Buckets"]) <= 2
            seen += [b["Name"] for b in out["Buckets"]]
            pages += 1
            token = out.get("ContinuationToken")
            if not token:
                break
        assert set(names) <= set(seen) and len(seen) == len(set(seen)) and pages >= 2
        assert [b["Name"] for b in s3.list_buckets(Prefix="ps-lb-")["Buckets"]] == \
            [n for n in sorted(seen) if n.startswith("ps-lb-")]
    finally:
        for n in names:
            s3.delete_bucket(Bucket=n)


def test_unicode_user_metadata(cloud, ec2, bucket):
    """botocore refuses non-ASCII metadata itself; clients that set the header after its
    check (as the ecosystem's suites do) send it as Latin-1 and sign its UTF-8 form."""
    s3 = client(cloud, ec2)

    def add_header(params, **kwargs):
        params["headers"]["x-amz-meta-meta1"] = "Hello World\xe9"
    s3.meta.events.register("before-call.s3.PutObject", add_header)
    s3.put_object(Bucket=bucket, Key="uni", Body=b"u")
    assert s3.head_object(Bucket=bucket, Key="uni")["Metadata"] == {"meta1": "Hello World\xe9"}
    assert s3.get_object(Bucket=bucket, Key="uni")["Metadata"] == {"meta1": "Hello World\xe9"}
    # beyond Latin-1, the answer is RFC 2047 encoded UTF-8, as S3 answers
    s3.meta.events.unregister("before-call.s3.PutObject", add_header)

    def add_cup(params, **kwargs):
        params["headers"]["x-amz-meta-cup"] = "caf\xe9 \u2615"
    s3.meta.events.register("before-call.s3.PutObject", add_cup)
    s3.put_object(Bucket=bucket, Key="uni2", Body=b"u")
    value = s3.head_object(Bucket=bucket, Key="uni2")["Metadata"]["cup"]
    (text, charset), = email.header.decode_header(value)
    assert text.decode(charset) == "caf\xe9 \u2615"


def _grants(s3, bucket: str) -> set[tuple[str, str]]:
    return {(g["Grantee"].get("URI") or g["Grantee"].get("ID"), g["Permission"])
            for g in s3.get_bucket_acl(Bucket=bucket)["Grants"]}


ALL = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTH = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"


def test_canned_acls_read_back_as_enforced(cloud, s3):
    b = unique("acl")
    s3.create_bucket(Bucket=b, ACL="authenticated-read")
    try:
        owner = s3.get_bucket_acl(Bucket=b)["Owner"]["ID"]
        assert _grants(s3, b) == {(owner, "FULL_CONTROL"), (AUTH, "READ")}
        s3.put_object(Bucket=b, Key="k", Body=b"acl data")
        assert send(f"{cloud.base_url}/s3/{b}/k")[0] == 403  # not public
        s3.put_bucket_acl(Bucket=b, ACL="public-read")
        assert _grants(s3, b) == {(owner, "FULL_CONTROL"), (ALL, "READ")}
        assert send(f"{cloud.base_url}/s3/{b}/k")[2] == b"acl data"
        s3.put_bucket_acl(Bucket=b, ACL="private")
        assert _grants(s3, b) == {(owner, "FULL_CONTROL")}
        assert send(f"{cloud.base_url}/s3/{b}/k")[0] == 403
        # an AccessControlPolicy body, as Terraform and the console send
        s3.put_bucket_acl(Bucket=b, AccessControlPolicy={
            "Owner": {"ID": owner}, "Grants": [
                {"Grantee": {"Type": "CanonicalUser", "ID": owner},
                 "Permission": "FULL_CONTROL"},
                {"Grantee": {"Type": "Group", "URI": ALL}, "Permission": "READ"}]})
        assert _grants(s3, b) == {(owner, "FULL_CONTROL"), (ALL, "READ")}
        # what cannot be enforced is refused and changes nothing
        for kw in ({"ACL": "public-read-write"}, {"ACL": "log-delivery-write"},
                   {"GrantRead": 'id="someone-else"'}):
            with pytest.raises(ClientError) as err:
                s3.put_bucket_acl(Bucket=b, **kw)
            assert code(err) == "NotImplemented", kw
        assert _grants(s3, b) == {(owner, "FULL_CONTROL"), (ALL, "READ")}
        # an object ACL is accepted where it is what the bucket gives (public-read here)
        s3.put_object(Bucket=b, Key="owned", Body=b"x", ACL="public-read")
        assert (ALL, "READ") in {(g["Grantee"].get("URI"), g["Permission"]) for g in
                                 s3.get_object_acl(Bucket=b, Key="owned")["Grants"]}
        s3.put_bucket_acl(Bucket=b, ACL="private")
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=b, Key="public-obj", Body=b"x", ACL="public-read")
        assert code(err) == "NotImplemented"
        with pytest.raises(ClientError):
            s3.head_object(Bucket=b, Key="public-obj")
        assert {(g["Grantee"].get("URI"), g["Permission"]) for g in s3.get_object_acl(
            Bucket=b, Key="owned")["Grants"]} == {(None, "FULL_CONTROL")}
        s3.put_object(Bucket=b, Key="owned", Body=b"x", ACL="bucket-owner-full-control")
        s3.put_object_acl(Bucket=b, Key="owned", ACL="private")
        with pytest.raises(ClientError) as err:
            s3.put_object_acl(Bucket=b, Key="owned", ACL="public-read")
        assert code(err) == "NotImplemented"
    finally:
        for key in ("k", "owned"):
            s3.delete_object(Bucket=b, Key=key)
        s3.delete_bucket(Bucket=b)


def test_get_by_part_number_and_object_attributes(s3, bucket):
    part1, part2 = b"a" * (5 * 1024 * 1024), b"tail part"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="parts")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="parts", UploadId=upload, PartNumber=n,
                            Body=data)["ETag"] for n, data in ((1, part1), (2, part2))]
    s3.complete_multipart_upload(Bucket=bucket, Key="parts", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": e} for n, e in ((1, etags[0]), (2, etags[1]))]})
    got = s3.get_object(Bucket=bucket, Key="parts", PartNumber=2)
    assert got["Body"].read() == part2 and got["PartsCount"] == 2
    assert got["ContentRange"] == f"bytes {len(part1)}-{len(part1) + len(part2) - 1}/" \
        f"{len(part1) + len(part2)}"
    head = s3.head_object(Bucket=bucket, Key="parts", PartNumber=1)
    assert head["ContentLength"] == len(part1) and head["PartsCount"] == 2
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="parts", PartNumber=3)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    attrs = s3.get_object_attributes(Bucket=bucket, Key="parts", ObjectAttributes=[
        "ETag", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attrs["ETag"] == head["ETag"].strip('"') and attrs["ObjectSize"] == \
        len(part1) + len(part2)
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == [len(part1), len(part2)]
    # an object made in one piece is its own part 1, with its checksum
    s3.put_object(Bucket=bucket, Key="one", Body=b"single", ChecksumAlgorithm="SHA256")
    assert s3.get_object(Bucket=bucket, Key="one", PartNumber=1)["Body"].read() == b"single"
    attrs = s3.get_object_attributes(Bucket=bucket, Key="one",
                                     ObjectAttributes=["Checksum", "ObjectSize"])
    assert attrs["ObjectSize"] == 6 and attrs["Checksum"]["ChecksumSHA256"]
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="one", PartNumber=1, Range="bytes=0-1")
    assert code(err) == "InvalidRequest"
    for key in ("parts", "one"):
        s3.delete_object(Bucket=bucket, Key=key)
