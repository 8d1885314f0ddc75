"""S3 requests that must never succeed silently (issue 21): every S3 subresource on every
method, for objects and buckets, either does what S3 does or answers 501 NotImplemented,
and a refused request leaves the object's bytes and metadata exactly as they were (read
back and compared after each one). Server-side encryption is refused, never ignored.

Requests are signed by botocore itself (S3SigV4Auth), so the query strings are exactly
those under test (``?retention``, ``?legal-hold``...), not what boto3 would build.
"""

from __future__ import annotations

import hashlib
import base64
import urllib.error
import urllib.request
import uuid
from xml.etree import ElementTree as ET

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

SUBRESOURCES = [
    "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
    "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
    "metrics", "notification", "object-lock", "ownershipControls", "partNumber", "policy",
    "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
    "retention", "select", "tagging", "torrent", "uploadId", "uploads", "versioning",
    "versions", "website", "session", "metadataTable", "renameObject",
]
METHODS = ["GET", "PUT", "POST", "DELETE", "HEAD"]

# What S3 answers for the operations that exist (the object and bucket exist, the upload
# id does not). Everything not listed must be 501 NotImplemented.
OBJECT_EXPECTED = {
    ("GET", "acl"): 200, ("GET", "tagging"): 200, ("GET", "uploadId"): 404,
    ("GET", "partNumber"): 206, ("HEAD", "partNumber"): 206,
    ("GET", "attributes"): 400,  # no x-amz-object-attributes header: InvalidArgument
    ("PUT", "tagging"): 200, ("PUT", "acl"): 200,
    ("DELETE", "tagging"): 204, ("DELETE", "uploadId"): 404,
    ("POST", "uploads"): 200, ("POST", "uploadId"): 404,
}
BUCKET_EXPECTED = {
    ("GET", "location"): 200, ("GET", "acl"): 200, ("GET", "uploads"): 200,
    ("GET", "tagging"): 404, ("GET", "versions"): 200, ("GET", "versioning"): 200,
    ("GET", "cors"): 404, ("GET", "policy"): 404, ("GET", "lifecycle"): 404,
    ("GET", "encryption"): 404, ("GET", "website"): 404, ("GET", "replication"): 404,
    ("GET", "ownershipControls"): 404, ("GET", "publicAccessBlock"): 404,
    ("GET", "object-lock"): 404, ("GET", "logging"): 200, ("GET", "notification"): 200,
    ("GET", "accelerate"): 200, ("GET", "requestPayment"): 200,
    ("PUT", "acl"): 200, ("PUT", "tagging"): 204,
    ("DELETE", "tagging"): 204, ("DELETE", "cors"): 204, ("DELETE", "policy"): 204,
    ("DELETE", "lifecycle"): 204, ("DELETE", "encryption"): 204, ("DELETE", "website"): 204,
    ("DELETE", "replication"): 204, ("DELETE", "ownershipControls"): 204,
    ("DELETE", "publicAccessBlock"): 204,
    ("POST", "delete"): 200,
}
QUERY_VALUE = {"uploadId": "no-such-upload", "partNumber": "1"}
TAGGING = b"<Tagging><TagSet><Tag><Key>k</Key><Value>v</Value></Tag></TagSet></Tagging>"
# A body the subresource's PUT/POST would carry in S3 (what once replaced the object).
BODY = {
    "retention": b"<Retention><Mode>GOVERNANCE</Mode><RetainUntilDate>2030-01-01T00:00:00Z"
                 b"</RetainUntilDate></Retention>",
    "legal-hold": b"<LegalHold><Status>ON</Status></LegalHold>",
    "tagging": TAGGING,
    "delete": b"<Delete><Object><Key>never-existed</Key></Object></Delete>",
}
ORIGINAL = b"the original bytes \x00\xff" * 10


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def s3(cloud, ec2):
    return boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                        aws_access_key_id=ec2["access"],
                        aws_secret_access_key=ec2["secret"], region_name="us-east-1")


class Raw:
    """Send one SigV4-signed request with exactly the given path, query and headers."""

    def __init__(self, base: str, ec2: dict) -> None:
        self.base = base
        self.creds = Credentials(ec2["access"], ec2["secret"])

    def __call__(self, method: str, path: str, query: str = "", body: bytes = b"",
                 headers: dict | None = None, sign: bool = True):
        url = f"{self.base}/s3/{path}" + (f"?{query}" if query else "")
        headers = dict(headers or {})
        if body:
            headers.setdefault("Content-MD5", base64.b64encode(
                hashlib.md5(body).digest()).decode())
        req = AWSRequest(method=method, url=url, data=body, headers=headers)
        if sign:
            S3SigV4Auth(self.creds, "s3", "us-east-1").add_auth(req)
        prepared = urllib.request.Request(url, data=body if method in ("PUT", "POST") else None,
                                          method=method, headers=dict(req.headers.items()))
        try:
            with urllib.request.urlopen(prepared, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


@pytest.fixture(scope="module")
def raw(cloud, ec2):
    return Raw(cloud.base_url, ec2)


def error_code(body: bytes) -> str:
    return ET.fromstring(body).findtext("Code") or ""


def snapshot(s3, bucket: str, key: str) -> tuple:
    got = s3.get_object(Bucket=bucket, Key=key)
    return (got["Body"].read(), got["ContentType"], got["Metadata"], got["ETag"],
            got["LastModified"], got["ContentLength"])


@pytest.fixture(scope="module")
def target(s3):
    bucket = unique("refuse")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="obj", Body=ORIGINAL, ContentType="text/x-original",
                  Metadata={"color": "red"})
    yield bucket
    for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    for upload in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    s3.delete_bucket(Bucket=bucket)


def _send(raw, method: str, path: str, sub: str):
    query = f"{sub}={QUERY_VALUE[sub]}" if sub in QUERY_VALUE else sub
    body = BODY.get(sub, b"<Anything>refused</Anything>") if method in ("PUT", "POST") \
        else b""
    headers = {"x-amz-acl": "private"} if sub == "acl" and method == "PUT" else {}
    return raw(method, path, query, body, headers)


@pytest.mark.parametrize("method", METHODS)
def test_object_subresources_do_what_s3_does_or_501(s3, raw, target, method):
    before = snapshot(s3, target, "obj")
    wrong = []
    for sub in SUBRESOURCES:
        status, _, body = _send(raw, method, f"{target}/obj", sub)
        want = OBJECT_EXPECTED.get((method, sub), 501)
        if status != want or (want == 501 and method != "HEAD" and
                              error_code(body) != "NotImplemented"):
            wrong.append((sub, status, body[:200]))
        # crash-test style: whatever was answered, the object is exactly as it was
        assert snapshot(s3, target, "obj") == before, f"{method} ?{sub} changed the object"
    assert not wrong, f"{method}: {wrong}"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=target)["Contents"]] == ["obj"]


@pytest.mark.parametrize("method", METHODS)
def test_bucket_subresources_do_what_s3_does_or_501(s3, raw, target, method):
    before = snapshot(s3, target, "obj")
    wrong = []
    for sub in SUBRESOURCES:
        status, _, body = _send(raw, method, target, sub)
        want = BUCKET_EXPECTED.get((method, sub), 501)
        if status != want or (want == 501 and method != "HEAD" and
                              error_code(body) != "NotImplemented"):
            wrong.append((sub, status, body[:200]))
        s3.head_bucket(Bucket=target)  # a refused DELETE ?<sub> did not delete the bucket
        assert snapshot(s3, target, "obj") == before, f"{method} ?{sub} changed the object"
    assert not wrong, f"{method}: {wrong}"


def test_retention_and_legal_hold_never_replace_the_object(s3, target):
    """The reported case, through boto3's own operations."""
    before = snapshot(s3, target, "obj")
    for call, kw in ((s3.put_object_retention, {"Retention": {
            "Mode": "GOVERNANCE", "RetainUntilDate": "2030-01-01T00:00:00Z"}}),
            (s3.put_object_legal_hold, {"LegalHold": {"Status": "ON"}}),
            (s3.get_object_retention, {}), (s3.get_object_legal_hold, {})):
        with pytest.raises(ClientError) as err:
            call(Bucket=target, Key="obj", **kw)
        assert err.value.response["Error"]["Code"] == "NotImplemented", call
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert snapshot(s3, target, "obj") == before


def test_object_operations_on_other_versions_are_refused(s3, raw, target):
    before = snapshot(s3, target, "obj")
    status, _, body = raw("DELETE", f"{target}/obj", 
                          "versionId=3HL4kqtJlcpXroDTDmJ%2BrmSpXd3dIbrHY")
    assert status == 400 and error_code(body) == "InvalidArgument"
    assert snapshot(s3, target, "obj") == before
    # the only version of an object in an unversioned bucket is "null"
    assert s3.get_object(Bucket=target, Key="obj", VersionId="null")["Body"].read() == ORIGINAL


@pytest.mark.parametrize("sse", [
    {"ServerSideEncryption": "AES256"},
    {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": "k" * 32},
    {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/whatever"},
], ids=["sse-s3", "sse-c", "sse-kms"])
def test_server_side_encryption_where_not_implemented_is_refused(s3, target, sse):
    """SSE works for PutObject/CopyObject (test_s3_sse.py); elsewhere it is refused."""
    before = snapshot(s3, target, "obj")
    uploads = s3.list_multipart_uploads(Bucket=target).get("Uploads", [])
    with pytest.raises(ClientError) as err:
        s3.create_multipart_upload(Bucket=target, Key="sse-new", **sse)
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    if "SSEKMSKeyId" in sse:
        with pytest.raises(ClientError) as err:
            s3.put_object(Bucket=target, Key="obj", Body=b"secret", **sse)
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
        with pytest.raises(ClientError):
            s3.copy_object(Bucket=target, Key="sse-new", CopySource={"Bucket": target,
                                                                      "Key": "obj"}, **sse)
    assert snapshot(s3, target, "obj") == before
    assert s3.list_multipart_uploads(Bucket=target).get("Uploads", []) == uploads
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=target, Key="sse-new")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_post_object_iam_sts_and_select_are_501(s3, raw, target):
    status, _, body = raw("POST", "", "", b"Action=GetCallerIdentity&Version=2011-06-15",
                          {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 501 and error_code(body) == "NotImplemented"
    form = (b"--xx\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nform-key\r\n"
            b"--xx\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
            b"data\r\n--xx--\r\n")
    status, _, body = raw("POST", target, "", form,
                          {"Content-Type": "multipart/form-data; boundary=xx"}, sign=False)
    assert status == 501 and error_code(body) == "NotImplemented"
    with pytest.raises(ClientError) as err:
        s3.select_object_content(
            Bucket=target, Key="obj", Expression="select * from s3object",
            ExpressionType="SQL", InputSerialization={"CSV": {}},
            OutputSerialization={"CSV": {}})
    assert err.value.response["Error"]["Code"] == "NotImplemented"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=target, Key="form-key")
