"""Shared S3 fixtures: one EC2 credential (the S3 access key) per test module, and a
boto3 client signing with it (SigV4, us-east-1). Modules that need another client
(SigV2, another project's) define their own."""

from __future__ import annotations

import boto3
import pytest


@pytest.fixture(scope="module")
def ec2(cloud):
    cred = cloud.openstack("ec2", "credentials", "create")
    yield cred
    cloud.openstack("ec2", "credentials", "delete", cred["access"], check=False)


@pytest.fixture(scope="module")
def s3(cloud, ec2):
    return boto3.client("s3", endpoint_url=cloud.base_url + "/s3",
                        aws_access_key_id=ec2["access"], aws_secret_access_key=ec2["secret"],
                        region_name="us-east-1")
