"""S3 server-side encryption through boto3 (issue 21): SSE-C (the customer's key, never
stored; GET/HEAD/copy refused without the right key) and SSE-S3 (the cloud's key), the
same objects read through Swift as ciphertext, never plaintext; SSE-KMS and encrypted
multipart uploads refused (501), never accepted and ignored."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import subprocess
import stat
import uuid

import pytest
from botocore.exceptions import ClientError

# boto3 takes the key as text and sends its UTF-8 bytes: 32 ASCII characters
KEY = secrets.token_hex(16)
OTHER = secrets.token_hex(16)
SMALL = b"small secret " * 10
LARGE = os.urandom(300 * 1024)  # a file-backed object, not an inline one


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"ps-sse-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    yield name
    for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def ssec(key: str = KEY) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_ssec(key: str = KEY) -> dict:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def error(err: pytest.ExceptionInfo) -> tuple[int, str]:
    r = err.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"]


def through_swift(cloud, bucket: str, key: str) -> bytes:
    return cloud.sdk().object_store.get(f"/{bucket}/{key}").content


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["inline", "file"])
def test_sse_c_round_trip_and_refusals(cloud, s3, bucket, data):
    key = f"c-{len(data)}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, **ssec())
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["ETag"] != '"%s"' % hashlib.md5(data).hexdigest()  # tells nothing of data
    got = s3.get_object(Bucket=bucket, Key=key, **ssec())
    assert got["Body"].read() == data and got["SSECustomerAlgorithm"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=17-1040", **ssec())[
        "Body"].read() == data[17:1041]
    assert s3.head_object(Bucket=bucket, Key=key, **ssec())["ContentLength"] == len(data)
    for call in (s3.get_object, s3.head_object):
        with pytest.raises(ClientError) as err:
            call(Bucket=bucket, Key=key)
        assert error(err)[0] == 400
        with pytest.raises(ClientError) as err:
            call(Bucket=bucket, Key=key, **ssec(OTHER))
        assert error(err)[0] == 403
    # Swift reads what is stored: ciphertext of the same length, never the plaintext
    stored = through_swift(cloud, bucket, key)
    assert len(stored) == len(data) and stored != data and data[:16] not in stored


def test_sse_c_copy_needs_the_source_key(s3, bucket):
    s3.put_object(Bucket=bucket, Key="c-src", Body=SMALL, **ssec())
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="c-dst", CopySource={"Bucket": bucket,
                                                                "Key": "c-src"})
    assert error(err)[0] == 400
    with pytest.raises(ClientError) as err:
        s3.copy_object(Bucket=bucket, Key="c-dst", CopySource={"Bucket": bucket,
                                                                "Key": "c-src"},
                       **copy_ssec(OTHER))
    assert error(err)[0] == 403
    # decrypted into a plain object, and re-encrypted under another key
    s3.copy_object(Bucket=bucket, Key="c-plain", CopySource={"Bucket": bucket, "Key": "c-src"},
                   **copy_ssec())
    assert s3.get_object(Bucket=bucket, Key="c-plain")["Body"].read() == SMALL
    s3.copy_object(Bucket=bucket, Key="c-other", CopySource={"Bucket": bucket, "Key": "c-src"},
                   **copy_ssec(), **ssec(OTHER))
    assert s3.get_object(Bucket=bucket, Key="c-other", **ssec(OTHER))["Body"].read() == SMALL
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="c-other", **ssec())
    # a plain object encrypted in place (an in-place copy that changes the encryption)
    s3.put_object(Bucket=bucket, Key="c-inplace", Body=SMALL)
    s3.copy_object(Bucket=bucket, Key="c-inplace",
                   CopySource={"Bucket": bucket, "Key": "c-inplace"}, **ssec())
    with pytest.raises(ClientError):
        s3.get_object(Bucket=bucket, Key="c-inplace")
    assert s3.get_object(Bucket=bucket, Key="c-inplace", **ssec())["Body"].read() == SMALL


def test_sse_c_key_is_checked_and_never_stored(cloud, s3, bucket):
    with pytest.raises(ClientError) as err:  # the MD5 boto3 sends is of another key
        s3.put_object(Bucket=bucket, Key="c-md5", Body=b"x", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=KEY, SSECustomerKeyMD5=base64.b64encode(
                          b"0" * 16).decode())
    assert error(err) == (400, "InvalidArgument")
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="c-md5", Body=b"x", SSECustomerAlgorithm="AES256",
                      SSECustomerKey=KEY[:16])
    assert error(err) == (400, "InvalidArgument")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="c-md5")
    s3.put_object(Bucket=bucket, Key="c-kept", Body=SMALL, **ssec())
    forms = (KEY.encode(), base64.b64encode(KEY.encode()), KEY.encode().hex().encode())
    for root, _, files in os.walk(cloud.data_dir):
        for name in files:
            try:
                content = (open(os.path.join(root, name), "rb")).read()
            except OSError:
                continue
            assert not any(f in content for f in forms), os.path.join(root, name)


def test_sse_c_multipart_is_refused(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.create_multipart_upload(Bucket=bucket, Key="c-mp", **ssec())
    assert error(err) == (501, "NotImplemented")


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["inline", "file"])
def test_sse_s3(cloud, s3, bucket, data):
    key = f"s3-{len(data)}"
    put = s3.put_object(Bucket=bucket, Key=key, Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()  # as S3 (s3cmd checks it)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == data and got["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key=key, Range="bytes=5-99")["Body"].read() == \
        data[5:100]
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    stored = through_swift(cloud, bucket, key)
    assert len(stored) == len(data) and stored != data
    key_file = cloud.data_dir / "s3-sse.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    with pytest.raises(ClientError) as err:  # an SSE-C key for an SSE-S3 object
        s3.get_object(Bucket=bucket, Key=key, **ssec())
    assert error(err)[0] == 400


def test_sse_kms_is_refused(s3, bucket):
    with pytest.raises(ClientError) as err:
        s3.put_object(Bucket=bucket, Key="kms", Body=b"x", ServerSideEncryption="aws:kms")
    assert error(err) == (501, "NotImplemented")
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="kms")


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd not installed")
def test_s3cmd_encryption_and_acls(cloud, ec2, s3, tmp_path):
    """s3cmd's --server-side-encryption (SSE-S3) and setacl/info, unchanged."""
    port = cloud.base_url.rsplit(":", 1)[1]
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {ec2['access']}\nsecret_key = {ec2['secret']}\n"
        f"host_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\n"
        "use_https = False\nbucket_location = us-east-1\nsignature_v2 = False\n")

    def s3cmd(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["s3cmd", "-c", str(cfg), *args], capture_output=True,
                              text=True, timeout=60)
    b = f"ps-s3cmd-sse-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "secret.txt"
    src.write_bytes(SMALL)
    assert s3cmd("mb", f"s3://{b}").returncode == 0
    try:
        res = s3cmd("put", "--server-side-encryption", str(src), f"s3://{b}/enc")
        assert res.returncode == 0, res.stderr
        assert s3.head_object(Bucket=b, Key="enc")["ServerSideEncryption"] == "AES256"
        assert through_swift(cloud, b, "enc") != SMALL
        back = tmp_path / "back.txt"
        assert s3cmd("get", f"s3://{b}/enc", str(back)).returncode == 0
        assert back.read_bytes() == SMALL
        assert s3cmd("setacl", "--acl-public", f"s3://{b}").returncode == 0
        info = s3cmd("info", f"s3://{b}")
        assert info.returncode == 0 and "*anon*: READ" in info.stdout, info.stdout
        assert s3cmd("setacl", "--acl-private", f"s3://{b}").returncode == 0
        assert "*anon*" not in s3cmd("info", f"s3://{b}").stdout
    finally:
        s3cmd("del", f"s3://{b}/enc")
        s3cmd("rb", f"s3://{b}")
