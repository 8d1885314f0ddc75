"""S3 conditional writes and deletes through boto3 (issue 21): If-None-Match: * and
If-Match on PutObject, CopyObject and CompleteMultipartUpload, If-Match on DeleteObject and
per-object ETags in DeleteObjects, and races between concurrent conditional writers that
must never have two winners."""

from __future__ import annotations

import datetime
import threading
import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def s3(cloud, ec2):
    return boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                        aws_access_key_id=ec2["access"], aws_secret_access_key=ec2["secret"],
                        region_name="us-east-1",
                        config=Config(retries={"max_attempts": 1},
                                      max_pool_connections=32))


@pytest.fixture(scope="module")
def bucket(s3):
    name = unique("cond")
    s3.create_bucket(Bucket=name)
    yield name
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def status_code(err: pytest.ExceptionInfo) -> tuple[int, str]:
    resp = err.value.response
    return resp["ResponseMetadata"]["HTTPStatusCode"], resp["Error"]["Code"]


def body(s3, bucket: str, key: str) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def test_put_if_none_match_creates_only(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "once") == b"first"
    big = b"x" * (200 * 1024)  # a file-backed object, not an inline one
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="once", Body=big, IfNoneMatch="*")
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "once") == b"first"


def test_put_if_match_is_compare_and_swap(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cas", Body=b"v1")["ETag"]
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch='"0123456789abcdef"')
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "cas") == b"v1"
    etag2 = s3.put_object(Bucket=bucket, Key="cas", Body=b"v2", IfMatch=etag)["ETag"]
    assert body(s3, bucket, "cas") == b"v2"
    with pytest.raises(ClientError) as err:  # the old ETag no longer holds
        s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=etag)
    assert status_code(err) == (412, "PreconditionFailed")
    s3.put_object(Bucket=bucket, Key="cas", Body=b"v3", IfMatch=etag2)
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="missing-cas", Body=b"v1", IfMatch=etag)
    assert status_code(err) == (404, "NoSuchKey")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="missing-cas")


def test_copy_and_complete_multipart_are_conditional(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dest", Body=b"dest")
    s3.put_object(Bucket=bucket, Key="src", Body=b"src")
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="dest", CopySource={"Bucket": bucket, "Key": "src"},
                       IfNoneMatch="*")
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "dest") == b"dest"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dest")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="dest", UploadId=upload, PartNumber=1,
                          Body=b"multipart")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
    with pytest.raises(ClientError) as err:
        s3.complete_multipart_upload(Bucket=bucket, Key="dest", UploadId=upload,
                                     MultipartUpload=parts, IfNoneMatch="*")
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "dest") == b"dest"
    etag = s3.head_object(Bucket=bucket, Key="dest")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="dest", UploadId=upload,
                                 MultipartUpload=parts, IfMatch=etag)
    assert body(s3, bucket, "dest") == b"multipart"


def test_delete_if_match(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="del", Body=b"keep me")["ETag"]
    with pytest.raises(ClientError) as err:
        s3.delete_object(Bucket=bucket, Key="del", IfMatch='"ffffffffffffffffffffffffffffffff"')
    assert status_code(err) == (412, "PreconditionFailed")
    assert body(s3, bucket, "del") == b"keep me"
    s3.delete_object(Bucket=bucket, Key="del", IfMatch=etag)
    with pytest.raises(ClientError) as err:
        s3.head_object(Bucket=bucket, Key="del")
    etag = s3.put_object(Bucket=bucket, Key="del1", Body=b"one")["ETag"]
    s3.put_object(Bucket=bucket, Key="del2", Body=b"two")
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "del1", "ETag": etag},
        {"Key": "del2", "ETag": '"ffffffffffffffffffffffffffffffff"'}]})
    assert [d["Key"] for d in out.get("Deleted", [])] == ["del1"]
    assert [(e["Key"], e["Code"]) for e in out["Errors"]] == [("del2", "PreconditionFailed")]
    assert body(s3, bucket, "del2") == b"two"


def _race(n: int, work) -> list:
    barrier, results = threading.Barrier(n), [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = ("ok", work(i))
        except ClientError as exc:
            results[i] = (exc.response["ResponseMetadata"]["HTTPStatusCode"],
                          exc.response["Error"]["Code"])
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("size", [100, 300 * 1024], ids=["inline", "file"])
def test_concurrent_if_none_match_has_one_winner(s3, bucket, size):
    for round_ in range(3):
        key = f"race-{size}-{round_}"
        results = _race(8, lambda i: s3.put_object(
            Bucket=bucket, Key=key, Body=bytes([65 + i]) * size, IfNoneMatch="*"))
        winners = [i for i, r in enumerate(results) if r[0] == "ok"]
        assert len(winners) == 1, results
        assert all(r in ((412, "PreconditionFailed"), (409, "ConditionalRequestConflict"))
                   for r in results if r[0] != "ok"), results
        assert body(s3, bucket, key) == bytes([65 + winners[0]]) * size


def test_concurrent_if_match_has_one_winner(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="cas-race", Body=b"base")["ETag"]
    results = _race(8, lambda i: s3.put_object(Bucket=bucket, Key="cas-race",
                                                Body=b"writer %d" % i, IfMatch=etag))
    winners = [i for i, r in enumerate(results) if r[0] == "ok"]
    assert len(winners) == 1, results
    assert body(s3, bucket, "cas-race") == b"writer %d" % winners[0]


def test_copy_source_conditions(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="csrc", Body=b"source")["ETag"]
    src = {"Bucket": bucket, "Key": "csrc"}
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    past = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
    for kw in ({"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
               {"CopySourceIfNoneMatch": etag},
               {"CopySourceIfModifiedSince": future},
               {"CopySourceIfUnmodifiedSince": past}):
        with pytest.raises(ClientError) as err:
            s3.copy_object(Bucket=bucket, Key="cdst", CopySource=src, **kw)
        assert status_code(err) == (412, "PreconditionFailed"), kw
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="cdst")
    s3.copy_object(Bucket=bucket, Key="cdst", CopySource=src, CopySourceIfMatch=etag,
                   CopySourceIfUnmodifiedSince=past)  # a matching ETag wins, as in S3
    s3.copy_object(Bucket=bucket, Key="cdst", CopySource=src, CopySourceIfModifiedSince=past)
    assert body(s3, bucket, "cdst") == b"source"
