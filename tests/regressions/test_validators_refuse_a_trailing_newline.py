"""Regression: validators anchored with ``$`` accepted a value with a trailing newline
(``$`` matches before one), so a port MAC like "fa:16:3e:00:00:01\\n" passed into
dnsmasq's hosts file and `ip link` arguments, and a device name "/dev/vdb\\n" into the
compute driver. Every such pattern now ends in ``\\Z``."""

from __future__ import annotations

import pytest

from pocketstack.services.compute import flavors, keypairs, server_validation, volume_attachments
from pocketstack.services.image import images, locations
from pocketstack.services.network import schemas
from pocketstack.services.s3 import routes as s3_routes

CASES = [
    (schemas.MAC_RE, "fa:16:3e:00:00:01"),
    (volume_attachments.DEVICE, "/dev/vdb"),
    (keypairs._NAME_RE, "my key"),
    (flavors._ID_RE, "m1.tiny"),
    (flavors._SPEC_KEY_RE, "hw:cpu_policy"),
    (server_validation.UUID_RE, "0b6a1a4e-6f1c-4d8c-9a7e-2f1f3c9b8e11"),
    (schemas.UUID_RE, "0b6a1a4e-6f1c-4d8c-9a7e-2f1f3c9b8e11"),
    (images.UUID_RE, "0b6a1a4e-6f1c-4d8c-9a7e-2f1f3c9b8e11"),
    (locations.HEX, "deadbeef"),
    (s3_routes.BUCKET_RE, "my-bucket"),
    (s3_routes.CREATE_BUCKET_RE, "my-bucket"),
]


@pytest.mark.parametrize("pattern,good", CASES, ids=[c[1] for c in CASES])
def test_trailing_newline_is_refused(pattern, good):
    assert pattern.match(good)
    assert not pattern.match(good + "\n")
    assert not pattern.match(good + "\n,evil")


def test_port_schema_refuses_a_mac_with_a_newline():
    with pytest.raises(Exception):
        schemas.mac("mac_address", "fa:16:3e:00:00:01\n")
    assert schemas.mac("mac_address", "fa:16:3e:00:00:01")
