"""S3 additional checksums through boto3 (issue 21): x-amz-checksum-* checked on upload
(a mismatch stores nothing), kept and returned with ChecksumMode=ENABLED, refused (501)
for the algorithms we cannot compute, never ignored."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
import uuid
import zlib
from xml.etree import ElementTree as ET

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"ps-sum-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    yield name
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    for up in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3.abort_multipart_upload(Bucket=name, Key=up["Key"], UploadId=up["UploadId"])
    s3.delete_bucket(Bucket=name)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def raw_put(cloud, ec2, path: str, body: bytes, headers: dict):
    url = f"{cloud.base_url}/s3/{path}"
    req = AWSRequest(method="PUT", url=url, data=body, headers=headers)
    S3SigV4Auth(Credentials(ec2["access"], ec2["secret"]), "s3", "us-east-1").add_auth(req)
    try:
        with urllib.request.urlopen(urllib.request.Request(
                url, data=body, method="PUT", headers=dict(req.headers.items()))) as resp:
            return resp.status, b""
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.mark.parametrize("size", [1000, 200 * 1024], ids=["inline", "file"])
def test_checksums_are_kept_and_returned(s3, bucket, size):
    data = bytes(range(256)) * (size // 256)
    put = s3.put_object(Bucket=bucket, Key=f"crc-{size}", Body=data, ChecksumAlgorithm="CRC32")
    assert put["ChecksumCRC32"] == crc32(data)
    head = s3.head_object(Bucket=bucket, Key=f"crc-{size}", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == crc32(data)
    got = s3.get_object(Bucket=bucket, Key=f"crc-{size}", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == crc32(data) and got["Body"].read() == data
    assert "ChecksumCRC32" not in s3.get_object(Bucket=bucket, Key=f"crc-{size}",
                                                ChecksumMode="ENABLED", Range="bytes=0-9")
    put = s3.put_object(Bucket=bucket, Key=f"sha-{size}", Body=data, ChecksumAlgorithm="SHA256")
    assert put["ChecksumSHA256"] == b64(hashlib.sha256(data).digest())
    assert s3.head_object(Bucket=bucket, Key=f"sha-{size}", ChecksumMode="ENABLED")[
        "ChecksumSHA256"] == b64(hashlib.sha256(data).digest())
    s3.put_object(Bucket=bucket, Key=f"sha1-{size}", Body=data, ChecksumSHA1=b64(
        hashlib.sha1(data).digest()))
    assert s3.head_object(Bucket=bucket, Key=f"sha1-{size}", ChecksumMode="ENABLED")[
        "ChecksumSHA1"] == b64(hashlib.sha1(data).digest())


@pytest.mark.parametrize("size", [1000, 200 * 1024], ids=["inline", "file"])
def test_a_wrong_checksum_stores_nothing(cloud, ec2, s3, bucket, size):
    s3.put_object(Bucket=bucket, Key="kept", Body=b"the old bytes")
    data = b"z" * size
    for header, value in (("x-amz-checksum-crc32", crc32(b"other")),
                          ("x-amz-checksum-sha256", b64(hashlib.sha256(b"other").digest())),
                          ("x-amz-checksum-sha1", b64(hashlib.sha1(b"other").digest()))):
        status, body = raw_put(cloud, ec2, f"{bucket}/kept", data, {header: value})
        assert status == 400 and ET.fromstring(body).findtext("Code") == "BadDigest", header
        status, body = raw_put(cloud, ec2, f"{bucket}/never", data, {header: value})
        assert status == 400
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"the old bytes"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="never")


def test_algorithms_we_cannot_compute_are_refused(cloud, ec2, s3, bucket):
    status, body = raw_put(cloud, ec2, f"{bucket}/c", b"data",
                           {"x-amz-checksum-crc32c": "AAAAAA=="})
    assert status == 501 and ET.fromstring(body).findtext("Code") == "NotImplemented"
    status, body = raw_put(cloud, ec2, f"{bucket}/c", b"data",
                           {"x-amz-checksum-crc32": crc32(b"data"),
                            "x-amz-checksum-sha1": b64(hashlib.sha1(b"data").digest())})
    assert status == 400 and ET.fromstring(body).findtext("Code") == "InvalidRequest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="c")


def test_upload_parts_are_checked(cloud, ec2, s3, bucket):
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1,
                          Body=b"part one", ChecksumAlgorithm="CRC32")
    assert part["ChecksumCRC32"] == crc32(b"part one")
    status, body = raw_put(cloud, ec2, f"{bucket}/mp?partNumber=2&uploadId={upload}",
                           b"part two", {"x-amz-checksum-crc32": crc32(b"not it")})
    assert status == 400 and ET.fromstring(body).findtext("Code") == "BadDigest"
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)
