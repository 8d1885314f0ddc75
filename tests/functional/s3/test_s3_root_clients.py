"""S3 clients that cannot use a path prefix (s3cmd, bare-endpoint boto3) talk to the host
root: AWS-signed requests outside every service path are S3 on the same store."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import boto3
import pytest


def test_boto3_at_the_bare_endpoint(cloud, ec2):
    s3 = boto3.client("s3", endpoint_url=cloud.base_url, aws_access_key_id=ec2["access"],
                      aws_secret_access_key=ec2["secret"], region_name="us-east-1")
    bucket = f"ps-root-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"at the root")
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"at the root"
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    # the same bucket is the same container under /s3 and through Swift
    prefixed = boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                            aws_access_key_id=ec2["access"],
                            aws_secret_access_key=ec2["secret"], region_name="us-east-1")
    assert prefixed.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"at the root"
    s3.delete_object(Bucket=bucket, Key="a/b.txt")
    s3.delete_bucket(Bucket=bucket)
    # OpenStack APIs at the root are untouched: no AWS signature, no S3
    import urllib.request

    with urllib.request.urlopen(cloud.base_url + "/") as resp:
        assert b"pocketstack" in resp.read()


@pytest.mark.skipif(shutil.which("s3cmd") is None, reason="s3cmd not installed (scripts/install adds it)")
def test_s3cmd_unchanged(cloud, ec2, tmp_path: Path):
    port = cloud.base_url.rsplit(":", 1)[1]
    cfg = tmp_path / "s3cfg"
    cfg.write_text(
        "[default]\n"
        f"access_key = {ec2['access']}\nsecret_key = {ec2['secret']}\n"
        f"host_base = 127.0.0.1:{port}\nhost_bucket = 127.0.0.1:{port}\n"
        "use_https = False\nbucket_location = us-east-1\nsignature_v2 = False\n")
    bucket = f"ps-s3cmd-{uuid.uuid4().hex[:8]}"
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from s3cmd\n" * 100)

    def s3cmd(*args: str) -> str:
        res = subprocess.run(["s3cmd", "-c", str(cfg), *args], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, f"s3cmd {' '.join(args)}: {res.stderr}{res.stdout}"
        return res.stdout

    s3cmd("mb", f"s3://{bucket}")
    s3cmd("put", str(src), f"s3://{bucket}/dir/hello.txt")
    assert "dir/hello.txt" in s3cmd("ls", "-r", f"s3://{bucket}")
    out = tmp_path / "back.txt"
    s3cmd("get", f"s3://{bucket}/dir/hello.txt", str(out))
    assert out.read_bytes() == src.read_bytes()
    # visible through Swift as a container of the credential's project
    listing = cloud.openstack("object", "list", bucket)
    assert [o["Name"] for o in listing] == ["dir/hello.txt"]
    s3cmd("del", f"s3://{bucket}/dir/hello.txt")
    s3cmd("rb", f"s3://{bucket}")
