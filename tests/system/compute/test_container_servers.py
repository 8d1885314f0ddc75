"""Real container servers (root): processes, namespaces, cgroup limits, hostname, console,
power actions on the real processes, re-adoption after kill -9, and a crash during 50
concurrent boots. Everything lives under the test's own data dir and cgroup group
(pocketstack-<hash of that dir>), and is removed by the cloud's own delete path."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="container servers need root")]

ENV = {"POCKETSTACK_COMPUTE__DRIVER": "container"}


def cgroup_group(data_dir: Path) -> str:
    return "pocketstack-" + hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]


def state(data_dir: Path, server_id: str) -> dict:
    return json.loads((data_dir / "compute/instances" / server_id / "state.json").read_text())


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait(conn, server_id, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        srv = conn.compute.get_server(server_id)
        if srv.status in statuses:
            return srv
        assert time.monotonic() < deadline, f"{server_id} stuck in {srv.status}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def real_cloud(tmp_path_factory):
    live = LiveCloud(tmp_path_factory.mktemp("ctr") / "data", extra_env=ENV).start()
    yield live
    # servers a failed test left running (they outlive the cloud by design), by its names
    live.destroy()


def _boot(conn, name, flavor="m1.tiny", user_data=None, networks="none"):
    image = conn.image.find_image("busybox", ignore_missing=False)
    fl = conn.compute.find_flavor(flavor, ignore_missing=False)
    kw = {}
    if user_data is not None:
        kw["user_data"] = base64.b64encode(user_data.encode()).decode()
    return conn.compute.create_server(name=name, image_id=image.id, flavor_id=fl.id,
                                      networks=networks, **kw)


def test_container_server_lifecycle(real_cloud):
    c = real_cloud
    conn = c.sdk()
    srv = _boot(conn, "ps-sys-c1", flavor="m1.small",
                user_data="#!/bin/sh\necho ps-user-data-ran\n")
    srv = wait(conn, srv.id, {"ACTIVE", "ERROR"})
    assert srv.status == "ACTIVE", srv.fault
    st = state(c.data_dir, srv.id)
    init = st["init_pid"]
    assert alive(init)
    # Own namespaces (pid, mnt, uts, ipc, net), hostname = server name.
    for ns in ("pid", "mnt", "uts", "ipc", "net"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")
    host = subprocess.run(["nsenter", "-t", str(init), "-u", "hostname"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert host == "ps-sys-c1"
    # Root file system is the server's own copy of the image (pivot_root: the host sees
    # the same files through /proc/<init>/root, not the path).
    rootfs = c.data_dir / "compute/instances" / srv.id / "rootfs"
    assert os.path.samefile(f"/proc/{init}/root/.pocketstack-boot", rootfs / ".pocketstack-boot")
    # Cgroup limits from the flavor (m1.small: 2048 MB, 1 vCPU).
    group = cgroup_group(c.data_dir)
    mem = Path(f"/sys/fs/cgroup/memory/{group}/{srv.id}/memory.limit_in_bytes")
    if mem.exists():
        assert int(mem.read_text()) == 2048 * 2**20
        cpu = Path(f"/sys/fs/cgroup/cpu/{group}/{srv.id}")
        assert int((cpu / "cpu.cfs_quota_us").read_text()) == int(
            (cpu / "cpu.cfs_period_us").read_text())
        assert int((cpu / "cpu.shares").read_text()) == 1024
        assert str(init) in Path(f"/sys/fs/cgroup/pids/{group}/{srv.id}/cgroup.procs").read_text()
    # Diagnostics (admin, 2.48) read the same cgroup: the flavor's limit, real usage.
    diag = conn.compute.get(f"/servers/{srv.id}/diagnostics", microversion="2.48").json()
    assert diag["state"] == "running" and diag["hypervisor"] == "lxc"
    assert diag["memory_details"]["maximum"] == 2048 and diag["memory_details"]["used"] >= 0
    assert diag["uptime"] is not None and diag["uptime"] >= 0
    if mem.exists():  # v1: cpuacct.usage; v2: cpu.stat usage_usec
        assert diag["cpu_details"][0]["time"] > 0
    # Console output through os-getConsoleOutput.
    deadline = time.monotonic() + 30
    while "ps-user-data-ran" not in (out := conn.compute.get_server_console_output(srv.id)["output"]):
        assert time.monotonic() < deadline, out
        time.sleep(0.1)
    assert "pocketstack: booting ps-sys-c1" in out
    # pause = freezer on the real processes
    conn.compute.pause_server(srv.id)
    wait(conn, srv.id, {"PAUSED"})
    frozen = Path(f"/sys/fs/cgroup/freezer/{group}/{srv.id}/freezer.state")
    if frozen.exists():
        assert frozen.read_text().strip() == "FROZEN"
    with open(f"/proc/{init}/status") as fh:
        assert any(line.startswith("State:") and ("S" in line or "D" in line) for line in fh)
    conn.compute.unpause_server(srv.id)
    wait(conn, srv.id, {"ACTIVE"})
    # stop kills the process tree; start boots a new one from the same disk
    conn.compute.stop_server(srv.id)
    wait(conn, srv.id, {"SHUTOFF"})
    assert not alive(init)
    conn.compute.start_server(srv.id)
    wait(conn, srv.id, {"ACTIVE"})
    init2 = state(c.data_dir, srv.id)["init_pid"]
    assert init2 != init and alive(init2)
    # hard reboot: another new process
    conn.compute.reboot_server(srv.id, "HARD")
    wait(conn, srv.id, {"ACTIVE"})
    deadline = time.monotonic() + 30
    while state(c.data_dir, srv.id)["init_pid"] == init2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    init3 = state(c.data_dir, srv.id)["init_pid"]
    # delete removes processes, cgroups and the disk
    conn.compute.delete_server(srv.id)
    conn.compute.wait_for_delete(conn.compute.get_server(srv.id), wait=30)
    assert not alive(init3)
    assert not (c.data_dir / "compute/instances" / srv.id).exists()
    assert not Path(f"/sys/fs/cgroup/memory/{group}/{srv.id}").exists()


def test_restart_readopts_running_servers(real_cloud):
    c = real_cloud
    conn = c.sdk()
    srv = wait(conn, _boot(conn, "ps-sys-adopt").id, {"ACTIVE"})
    init = state(c.data_dir, srv.id)["init_pid"]
    c.stop(kill=True)  # kill -9: the server keeps running without us
    assert alive(init)
    c.start()
    conn = c.sdk()
    again = wait(conn, srv.id, {"ACTIVE", "SHUTOFF", "ERROR"})
    assert again.status == "ACTIVE"
    assert state(c.data_dir, srv.id)["init_pid"] == init  # adopted, not restarted
    names = [s.name for s in conn.compute.servers()]
    assert names.count("ps-sys-adopt") == 1
    conn.compute.delete_server(srv.id)
    conn.compute.wait_for_delete(conn.compute.get_server(srv.id), wait=30)
    assert not alive(init)


def _console_has(conn, server_id, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in (out := conn.compute.get_server_console_output(server_id)["output"]):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    return out


def _idmap(data_dir: Path, server_id: str) -> dict:
    return json.loads((data_dir / "compute/instances" / server_id / "idmap.json").read_text())


def test_snapshot_and_rebuild_keep_guest_ids_in_each_servers_range(real_cloud):
    """A guest's files carry guest uids: on the host they sit in the server's own range, a
    snapshot takes the range off again (the image is the guest's view), a server booted
    from it gets them in its range, and a rebuild re-shifts the new disk."""
    c = real_cloud
    conn = c.sdk()
    a = _boot(conn, "ps-sys-snap-a", user_data=(
        "#!/bin/sh\nmkdir -p /home/u && echo ps-snap-data > /home/u/f && "
        "chown 1000:1001 /home/u/f && echo ps-snap-ready\n"))
    a = wait(conn, a.id, {"ACTIVE", "ERROR"})
    assert a.status == "ACTIVE", a.fault
    _console_has(conn, a.id, "ps-snap-ready")
    ida = _idmap(c.data_dir, a.id)
    f_host = c.data_dir / "compute/instances" / a.id / "rootfs/home/u/f"
    assert (f_host.stat().st_uid, f_host.stat().st_gid) == (ida["base"] + 1000, ida["base"] + 1001)
    assert (c.data_dir / "compute/instances" / a.id / "rootfs").stat().st_uid == ida["base"]
    image = conn.compute.create_server_image(a.id, "ps-sys-snap-img", wait=True, timeout=120)
    conn.image.wait_for_status(conn.image.get_image(image.id), "active", wait=120)
    b = conn.compute.create_server(
        name="ps-sys-snap-b", image_id=image.id, networks="none",
        flavor_id=conn.compute.find_flavor("m1.tiny", ignore_missing=False).id,
        user_data=base64.b64encode(b"#!/bin/sh\nstat -c 'ids %u %g' /home/u/f; "
                                   b"cat /home/u/f\n").decode())
    b = wait(conn, b.id, {"ACTIVE", "ERROR"})
    assert b.status == "ACTIVE", b.fault
    out = _console_has(conn, b.id, "ps-snap-data")
    assert "ids 1000 1001" in out
    idb = _idmap(c.data_dir, b.id)
    assert idb["base"] != ida["base"]
    fb = c.data_dir / "compute/instances" / b.id / "rootfs/home/u/f"
    assert fb.stat().st_uid == idb["base"] + 1000
    # rebuild onto the plain image: a fresh disk, shifted into the same range
    busybox = conn.image.find_image("busybox", ignore_missing=False)
    conn.compute.rebuild_server(b.id, image=busybox.id)
    time.sleep(0.5)
    b = wait(conn, b.id, {"ACTIVE", "ERROR"})
    assert b.status == "ACTIVE", b.fault
    assert not fb.exists()
    assert _idmap(c.data_dir, b.id)["base"] == idb["base"]
    assert (c.data_dir / "compute/instances" / b.id / "rootfs/bin").stat().st_uid == idb["base"]
    for srv in (a, b):
        conn.compute.delete_server(srv.id)
    for srv in (a, b):
        conn.compute.wait_for_delete(srv, wait=30)
    conn.image.delete_image(image.id)
    registry = Path("/var/lib/pocketstack/idmap")
    owners = [json.loads(f.read_text())["owner"] for f in registry.iterdir()
              if f.name.isdigit()] if registry.exists() else []
    assert not any(o.endswith((a.id, b.id)) for o in owners)  # both ranges freed


def test_resize_and_suspend_act_on_the_confined_server(real_cloud):
    """Resize changes the runc-made cgroup's limits in place (the guest keeps running as
    the same unprivileged host user); suspend freezes it and resume thaws it."""
    c = real_cloud
    conn = c.sdk()
    srv = wait(conn, _boot(conn, "ps-sys-resize").id, {"ACTIVE", "ERROR"})
    assert srv.status == "ACTIVE", srv.fault
    init = state(c.data_dir, srv.id)["init_pid"]
    group = cgroup_group(c.data_dir)
    mem = Path(f"/sys/fs/cgroup/memory/{group}/{srv.id}/memory.limit_in_bytes")
    v1 = mem.exists()
    if v1:
        assert int(mem.read_text()) == 512 * 2**20
    small = conn.compute.find_flavor("m1.small", ignore_missing=False)
    conn.compute.resize_server(srv.id, small.id)
    wait(conn, srv.id, {"VERIFY_RESIZE"})
    conn.compute.confirm_server_resize(srv.id)
    wait(conn, srv.id, {"ACTIVE"})
    if v1:
        assert int(mem.read_text()) == 2048 * 2**20
    assert state(c.data_dir, srv.id)["init_pid"] == init and alive(init)
    with open(f"/proc/{init}/status") as fh:
        uid = next(int(line.split()[1]) for line in fh if line.startswith("Uid:"))
    assert uid >= 1_000_000_000
    conn.compute.suspend_server(srv.id)
    wait(conn, srv.id, {"SUSPENDED"})
    frozen = Path(f"/sys/fs/cgroup/freezer/{group}/{srv.id}/freezer.state")
    if frozen.exists():
        assert frozen.read_text().strip() == "FROZEN"
    conn.compute.resume_server(srv.id)
    wait(conn, srv.id, {"ACTIVE"})
    if frozen.exists():
        assert frozen.read_text().strip() == "THAWED"
    conn.compute.delete_server(srv.id)
    conn.compute.wait_for_delete(conn.compute.get_server(srv.id), wait=30)
    assert not alive(init)


def test_kill9_during_50_concurrent_boots(tmp_path):
    data = tmp_path / "data"
    live = LiveCloud(data, extra_env=ENV).start()
    try:
        conn = live.sdk()
        project = conn.identity.find_project("admin").id
        conn.set_compute_quotas(project, instances=100, cores=200, ram=200000)
        image = conn.image.find_image("busybox", ignore_missing=False)
        flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
        conn.compute.post("/servers", json={"server": {
            "name": "ps-sys-crash", "imageRef": image.id, "flavorRef": flavor.id,
            "networks": "none", "min_count": 50, "max_count": 50}},
            microversion="2.37")
        time.sleep(0.5)  # some booted, some in flight
        live.stop(kill=True)
        live.start()
        conn = live.sdk()
        deadline = time.monotonic() + 120
        while True:
            servers = list(conn.compute.servers(name="ps-sys-crash"))
            if all(s.status in ("ACTIVE", "ERROR") for s in servers):
                break
            assert time.monotonic() < deadline, {s.status for s in servers}
            time.sleep(0.3)
        assert len(servers) == 50
        for s in servers:
            if s.status == "ERROR":
                assert s.fault and s.fault.get("message")
        active = [s for s in servers if s.status == "ACTIVE"]
        pids = {s.id: state(data, s.id)["init_pid"] for s in active}
        assert all(alive(p) for p in pids.values())
        # exactly one process tree per ACTIVE server, none for the others
        inst = {p.name for p in (data / "compute/instances").iterdir()}
        assert inst == {s.id for s in active}
        for s in servers:
            conn.compute.delete_server(s.id)
        deadline = time.monotonic() + 120
        while list(conn.compute.servers(name="ps-sys-crash")):
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert not any(alive(p) for p in pids.values())
        group = cgroup_group(data)
        for ctl in ("memory", "cpu", "cpuacct", "freezer", "pids"):
            d = Path(f"/sys/fs/cgroup/{ctl}/{group}")
            assert not d.exists() or not [x for x in d.iterdir() if x.is_dir()]
        usage = conn.compute.get(f"/os-quota-sets/{project}/detail").json()["quota_set"]
        assert usage["instances"]["in_use"] == 0 and usage["cores"]["in_use"] == 0
        stats = conn.compute.get("/os-hypervisors/statistics").json()["hypervisor_statistics"]
        assert stats["vcpus_used"] == 0 and stats["running_vms"] == 0
    finally:
        live.destroy()  # down --purge: what a failure left running (servers, lxcfs)
        group = cgroup_group(data)
        for ctl in ("memory", "cpu", "cpuacct", "freezer", "pids"):
            d = Path(f"/sys/fs/cgroup/{ctl}/{group}")
            if d.exists():
                for sub in d.iterdir():
                    if sub.is_dir():
                        try:
                            sub.rmdir()
                        except OSError:
                            pass
                try:
                    d.rmdir()
                except OSError:
                    pass
