"""Signed streaming uploads (x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as
the AWS Java/Go SDKs, minio-py and rclone send them: the seed signature is botocore's,
the chunk signatures are computed here, and the server must check every one."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import boto3
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
EMPTY = hashlib.sha256(b"").hexdigest()


class _SeedAuth(S3SigV4Auth):
    def payload(self, request):  # noqa: ANN001, ANN201 - botocore's signature
        return STREAMING


@pytest.fixture(scope="module")
def s3(cloud):
    cred = cloud.openstack("ec2", "credentials", "create")
    client = boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                          aws_access_key_id=cred["access"],
                          aws_secret_access_key=cred["secret"], region_name="us-east-1")
    bucket = f"ps-stream-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    yield client, cred, bucket
    for obj in client.list_objects_v2(Bucket=bucket).get("Contents", []):
        client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
    cloud.openstack("ec2", "credentials", "delete", cred["access"], check=False)


def _signed_put(url: str, cred: dict, chunks: list[bytes], tamper: int | None = None
                ) -> requests.Response:
    total = sum(len(c) for c in chunks)
    req = AWSRequest("PUT", url, headers={"Content-Encoding": "aws-chunked",
                                          "x-amz-decoded-content-length": str(total)})
    _SeedAuth(Credentials(cred["access"], cred["secret"]), "s3", "us-east-1").add_auth(req)
    seed = req.headers["Authorization"].rsplit("Signature=", 1)[1]
    amz_date = req.headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key = ("AWS4" + cred["secret"]).encode()
    for part in (amz_date[:8], "us-east-1", "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    body, previous = b"", seed
    for i, data in enumerate([*chunks, b""]):
        to_sign = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY,
                             hashlib.sha256(data).hexdigest()])
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = data[:-1] + b"!" if i == tamper else data
        body += f"{len(data):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    headers = dict(req.headers.items())
    headers["Content-Length"] = str(len(body))
    return requests.put(url, data=body, headers=headers, timeout=30)


def test_signed_chunks_are_verified(cloud, s3):
    client, cred, bucket = s3
    url = f"{cloud.base_url}/s3/{bucket}/streamed.bin"
    chunks = [b"x" * 65536, b"y" * 65536, b"z" * 100]
    resp = _signed_put(url, cred, chunks)
    assert resp.status_code == 200, resp.text
    got = client.get_object(Bucket=bucket, Key="streamed.bin")["Body"].read()
    assert got == b"".join(chunks)
    # one changed byte in the second chunk: 403, and the stored object is unchanged
    resp = _signed_put(url, cred, [b"1" * 65536, b"2" * 65536, b"3" * 100], tamper=1)
    assert resp.status_code == 403 and b"SignatureDoesNotMatch" in resp.content
    got = client.get_object(Bucket=bucket, Key="streamed.bin")["Body"].read()
    assert got == b"".join(chunks)
