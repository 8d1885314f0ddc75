"""50 concurrent boots on 3 small fake hypervisors (2 vCPUs each, allocation ratio 1.0):
exactly 6 become ACTIVE, the rest ERROR with the real reason, and no host is overcommitted."""

from __future__ import annotations

import concurrent.futures
import time

from tests.conftest import LiveCloud

ENV = {"POCKETSTACK_COMPUTE__DRIVER": "fake", "POCKETSTACK_COMPUTE__FAKE_HOSTS": "3",
       "POCKETSTACK_COMPUTE__FAKE_HOST_VCPUS": "2",
       "POCKETSTACK_COMPUTE__CPU_ALLOCATION_RATIO": "1.0"}


def test_fifty_concurrent_boots_never_overcommit(tmp_path):
    live = LiveCloud(tmp_path / "data", extra_env=ENV).start()
    try:
        conn = live.sdk()
        project = conn.identity.find_project("admin").id
        conn.compute.put(f"/os-quota-sets/{project}", json={"quota_set": {
            "instances": 100, "cores": 100, "ram": 100000}})
        image = conn.image.find_image("busybox", ignore_missing=False).id

        def boot(i):
            r = conn.compute.post("/servers", json={"server": {
                "name": f"oc-{i}", "imageRef": image, "flavorRef": "1", "networks": "none"}},
                microversion="2.37")
            return r.status_code

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            assert set(pool.map(boot, range(50))) == {202}
        deadline = time.monotonic() + 120
        while True:
            servers = list(conn.compute.servers(details=True))
            if all(s.status in ("ACTIVE", "ERROR") for s in servers):
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
        active = [s for s in servers if s.status == "ACTIVE"]
        errors = [s for s in servers if s.status == "ERROR"]
        assert len(active) == 6 and len(errors) == 44
        assert all(e.fault["message"] == "No valid host was found. 0 of 3 hosts have 1 free "
                   "vCPUs." for e in errors)
        per_host = {}
        for s in active:
            per_host[s.compute_host] = per_host.get(s.compute_host, 0) + 1
        assert per_host == {"fake-1": 2, "fake-2": 2, "fake-3": 2}
        for hv in conn.compute.get("/os-hypervisors/detail").json()["hypervisors"]:
            assert hv["vcpus_used"] == 2 <= hv["vcpus"]
    finally:
        live.stop()
