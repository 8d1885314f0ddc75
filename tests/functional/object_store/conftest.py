"""swiftclient connections to the session's live cloud, as admin and as demo."""

from __future__ import annotations

import pytest
from swiftclient import client as swift


def _connect(cloud, user: str) -> swift.Connection:  # noqa: ANN001
    return swift.Connection(authurl=cloud.base_url + "/identity/v3", user=user,
                            key=cloud.password(user), auth_version="3",
                            os_options={"project_name": user, "user_domain_id": "default",
                                        "project_domain_id": "default"})


@pytest.fixture(scope="module")
def conn(cloud):
    c = _connect(cloud, "admin")
    yield c
    c.close()


@pytest.fixture(scope="module")
def demo_conn(cloud):
    c = _connect(cloud, "demo")
    yield c
    c.close()
