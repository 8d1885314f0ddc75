"""After kill -9 mid-create, a restarted cloud fails the in-flight stack (with the reason)
instead of leaving it IN_PROGRESS forever, and the stack can still be deleted."""

from __future__ import annotations

import time

import pytest

from tests.conftest import LiveCloud

from test_heat_stacks import wait_status, write

TEMPLATE = """
heat_template_version: 2015-04-30
resources:
  slow:
    type: OS::Heat::TestResource
    properties:
      wait_secs: 120
"""


# Only OS::Heat resources here: fake drivers keep this second cloud off the host's network.
FAKE = {"POCKETSTACK_NETWORK__DRIVER": "fake", "POCKETSTACK_COMPUTE__DRIVER": "fake",
        "POCKETSTACK_VOLUME__DRIVER": "fake"}


@pytest.mark.sqlite_only  # starts its own SQLite cloud; running it twice proves nothing more
def test_in_flight_stack_fails_after_restart(tmp_path):
    data = tmp_path / "data"
    live = LiveCloud(data, extra_env=FAKE).start()
    try:
        live.openstack("stack", "create", "-t", write(tmp_path, "slow.yaml", TEMPLATE),
                       "ps-heat-restart")
        deadline = time.monotonic() + 60
        while True:
            res = live.openstack("stack", "resource", "show", "ps-heat-restart", "slow")
            if res["resource_status"] == "CREATE_IN_PROGRESS":
                break
            assert time.monotonic() < deadline, res
            time.sleep(0.3)
        live.stop(kill=True)
        live = LiveCloud(data, port=live.port, extra_env=FAKE).start()
        info = wait_status(live, "ps-heat-restart", "CREATE_FAILED")
        assert info["stack_status_reason"] == "Engine went down during stack CREATE"
        res = live.openstack("stack", "resource", "show", "ps-heat-restart", "slow")
        assert res["resource_status"] == "CREATE_FAILED"
        live.openstack("stack", "delete", "--yes", "--wait", "ps-heat-restart")
        assert "ps-heat-restart" not in {s["Stack Name"] for s in
                                          live.openstack("stack", "list")}
    finally:
        live.stop()
