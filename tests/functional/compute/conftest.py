"""Fixtures the compute functional tests share (the session cloud comes from tests/)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def demo(cloud):
    return cloud.sdk("demo")


@pytest.fixture(scope="module")
def image_id(admin):
    return admin.image.find_image("busybox", ignore_missing=False).id
