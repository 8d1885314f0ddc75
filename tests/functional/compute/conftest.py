"""Fixtures the compute functional tests share (the session cloud comes from tests/)."""

from __future__ import annotations

import pytest

from tests.functional.compute.servers_common import uniq


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def demo(cloud):
    return cloud.sdk("demo")


@pytest.fixture(scope="module")
def image_id(admin):
    return admin.image.find_image("busybox", ignore_missing=False).id


@pytest.fixture(scope="module")
def own_image(admin):
    """An image of the module's own (the fake driver boots anything), for tests that must
    not depend on the seeded busybox image or change what other modules see."""
    img = admin.image.create_image(name=uniq("img"), disk_format="raw",
                                   container_format="bare", data=b"\0" * 1024,
                                   visibility="public")
    yield img.id
    admin.image.delete_image(img.id, ignore_missing=True)


@pytest.fixture(scope="module")
def own_net(admin):
    """A network with a /24 subnet of the module's own; its ports go with it."""
    n = admin.network.create_network(name=uniq("net"))
    admin.network.create_subnet(network_id=n.id, ip_version=4, cidr="10.72.1.0/24",
                                name=uniq("sub"))
    yield n
    for port in admin.network.ports(network_id=n.id):
        admin.network.delete_port(port.id)
    admin.network.delete_network(n.id)
