"""Seeds 000 and 004 through the real `openstack` CLI, on a private cloud (the seed deletes
DevStack's flavors, which the shared session's other tests may use).

Fake compute driver: 3 hypervisors of 40 vCPUs / 256 GB with 2 K20m GPUs each.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import LiveCloud

SEED_FLAVORS = [  # nova flavor-create NAME auto RAM DISK VCPUS --is-public True
    ("m1.16xlarge", 262144, 160, 96), ("m1.8xlarge", 131072, 80, 48),
    ("m1.4xlarge", 65536, 40, 24), ("m1.2xlarge", 32768, 40, 12),
    ("m1.xlarge", 16384, 30, 6), ("m1.large", 8192, 20, 3), ("m1.medium", 4096, 20, 2),
    ("m1.small", 2048, 20, 1), ("g1.2xlarge", 32768, 40, 12), ("g1.4xlarge", 65536, 40, 24),
]
GPU = {"g1.2xlarge": "K20m:1", "g1.4xlarge": "K20m:2"}


@pytest.fixture(scope="module")
def seed_cloud(tmp_path_factory):
    live = LiveCloud(tmp_path_factory.mktemp("seed000") / "data").start()
    yield live
    live.stop()


_SDK = {}


def wait_status(cloud, server, statuses, project="fabric", timeout=30):
    """Poll through openstacksdk (in-process, fast); the seed's commands go through the CLI."""
    conn = _SDK.get((id(cloud), project)) or _SDK.setdefault((id(cloud), project),
                                                             cloud.sdk(project=project))
    deadline = time.monotonic() + timeout
    while True:
        srv = conn.compute.find_server(server, ignore_missing=False)
        srv = conn.compute.get_server(srv.id)
        if srv.status in statuses:
            return srv
        assert time.monotonic() < deadline, f"{server} stuck in {srv.status}"
        time.sleep(0.1)


def test_seed000_flavor_table_quotas_and_gpu_scheduling(seed_cloud):
    c = seed_cloud
    c.openstack("flavor", "delete", "cirros256", "ds1G", "ds2G", "ds4G", "ds512M", "m1.large",
                "m1.medium", "m1.small", "m1.tiny", "m1.xlarge")
    for name, ram, disk, vcpus in SEED_FLAVORS:
        args = ["flavor", "create", "--ram", str(ram), "--disk", str(disk), "--vcpus",
                str(vcpus), "--public"]
        if name in GPU:
            args += ["--property", f"pci_passthrough:alias={GPU[name]}"]
        created = c.openstack(*args, name)
        assert (created["ram"], created["disk"], created["vcpus"]) == (ram, disk, vcpus)
    listed = {f["Name"]: f for f in c.openstack("flavor", "list", "--long")}
    assert set(listed) == {f[0] for f in SEED_FLAVORS}
    assert c.openstack("flavor", "show", "g1.2xlarge")["properties"] == {
        "pci_passthrough:alias": "K20m:1"}

    admin = c.sdk()
    fabric = admin.identity.create_project(name="fabric", domain_id="default")
    admin.identity.assign_project_role_to_user(
        fabric, admin.identity.find_user("admin", domain_id="default"),
        admin.identity.find_role("admin"))
    c.openstack("quota", "set", "fabric", "--cores", "200", parse=False)
    c.openstack("quota", "set", "fabric", "--instances", "50", parse=False)
    c.openstack("quota", "set", "fabric", "--ram", "1048576", parse=False)
    quota = {q["Resource"]: q["Limit"] for q in c.openstack("quota", "show", "fabric")}
    assert (quota["cores"], quota["instances"], quota["ram"]) == (200, 50, 1048576)

    image = admin.image.find_image("busybox", ignore_missing=False).id
    # 3 hosts x 2 GPUs: three g1.4xlarge take every K20m; one more GPU server cannot fit.
    c.openstack("server", "create", "--flavor", "g1.4xlarge", "--image", image,
                "--nic", "none", "--min", "3", "--max", "3", "gpu4", project="fabric")
    hosts = {wait_status(c, f"gpu4-{i}", {"ACTIVE"}).compute_host for i in (1, 2, 3)}
    assert len(hosts) == 3  # PCI devices spread them over the three hypervisors
    c.openstack("server", "create", "--flavor", "g1.2xlarge", "--image", image,
                "--nic", "none", "gpu-extra", project="fabric")
    wait_status(c, "gpu-extra", {"ERROR"})
    fault = c.openstack("server", "show", "gpu-extra", project="fabric")["fault"]
    assert fault["code"] == 500
    assert fault["message"].startswith("No valid host was found.")
    assert "PCI devices for K20m:1" in fault["message"]

    hv = c.openstack("hypervisor", "stats", "show")
    stats = {r["Field"]: r["Value"] for r in hv} if isinstance(hv, list) else hv
    assert int(stats["count"]) == 3 and int(stats["running_vms"]) == 3

    usage = c.openstack("usage", "list")
    mine = [u for u in usage if u["Project"] in ("fabric", fabric.id)]
    assert mine and len(mine[0]["Servers"]) == 4  # the failed GPU server counts too
    assert mine[0]["CPU Hours"] > 0


def test_disabled_host_takes_no_new_servers_and_novalidhost_reason(seed_cloud):
    c = seed_cloud
    c.openstack("compute", "service", "set", "--disable", "--disable-reason", "maintenance",
                "fake-3", "nova-compute", parse=False)
    admin = c.sdk()
    svc = {s.host: s for s in admin.compute.services()}
    assert svc["fake-3"].status == "disabled"
    assert svc["fake-3"].disabled_reason == "maintenance"
    image = admin.image.find_image("busybox", ignore_missing=False).id
    group = c.openstack("server", "group", "create", "--policy", "anti-affinity", "spread",
                        project="fabric")
    c.openstack("server", "create", "--flavor", "m1.small", "--image", image, "--nic", "none",
                "--hint", f"group={group['id']}", "--min", "3", "--max", "3", "spread",
                project="fabric")
    states = [wait_status(c, f"spread-{i}", {"ACTIVE", "ERROR"}) for i in (1, 2, 3)]
    active = [s for s in states if s.status == "ACTIVE"]
    errors = [s for s in states if s.status == "ERROR"]
    assert len(active) == 2 and len(errors) == 1
    assert {s.compute_host for s in active} == {"fake-1", "fake-2"}
    assert "anti-affinity" in errors[0].fault["message"] or (
        "compute service" in errors[0].fault["message"])
    c.openstack("compute", "service", "set", "--enable", "fake-3", "nova-compute", parse=False)
    # vCPU shortage in words: 0 of 3 hosts have 700 free vCPUs (40 x 16 = 640 each).
    c.openstack("flavor", "create", "--ram", "1024", "--disk", "1", "--vcpus", "700", "x1.huge")
    c.openstack("quota", "set", "fabric", "--cores", "5000", parse=False)
    c.openstack("server", "create", "--flavor", "x1.huge", "--image", image, "--nic",
                "none", "huge-1", project="fabric")
    wait_status(c, "huge-1", {"ERROR"})
    shown = c.openstack("server", "show", "huge-1", project="fabric")
    assert shown["fault"]["message"] == ("No valid host was found. 0 of 3 hosts have 700 "
                                         "free vCPUs.")


def test_seed004_lock_forbids_terminate(seed_cloud):
    c = seed_cloud
    admin = c.sdk()
    fabric = admin.identity.find_project("fabric", domain_id="default")
    user = admin.identity.create_user(name="fabric", password="Fabric_123", domain_id="default")
    admin.identity.assign_project_role_to_user(fabric, user, admin.identity.find_role("member"))
    image = admin.image.find_image("busybox", ignore_missing=False).id
    c.openstack("server", "create", "--flavor", "m1.small", "--image", image, "--nic",
                "none", "precious", user="fabric", project="fabric", password="Fabric_123")
    wait_status(c, "precious", {"ACTIVE"})
    c.openstack("server", "lock", "precious", user="fabric", project="fabric",
                password="Fabric_123")
    res = c.openstack("server", "delete", "precious", user="fabric", project="fabric",
                      password="Fabric_123", check=False)
    assert res.returncode != 0 and "locked" in (res.stderr + res.stdout)
    assert wait_status(c, "precious", {"ACTIVE"}).status == "ACTIVE"
    c.openstack("server", "unlock", "precious", user="fabric", project="fabric",
                password="Fabric_123")
    events = c.openstack("server", "event", "list", "precious", project="fabric")
    assert [e["Action"] for e in events][:3] == ["unlock", "lock", "create"]
    c.openstack("server", "delete", "--wait", "precious", user="fabric", project="fabric",
                password="Fabric_123")
    assert admin.compute.find_server("precious", all_projects=True) is None
