"""``pocketstack down --purge`` leaves nothing of the cloud behind on the host, per compute
driver: processes (servers, QEMU, console keepers, netns holders, dnsmasq, lxcfs), network
namespaces, links, nft tables, loop devices and cgroups — counted before and after. The
purge runs from a plain shell (no POCKETSTACK_COMPUTE__DRIVER), as a person types it: the
cloud's servers outlive it by design, so the purge must find them whatever driver ran them."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveCloud

pytestmark = pytest.mark.system

if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "runc", "losetup")):
    pytest.skip("needs root, ip, nft, dnsmasq, runc and losetup", allow_module_level=True)


def _qemu_missing() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 not installed"
    from pocketstack.services.image.testimages import SHARED_CACHES, find_kernel

    if not any(find_kernel(Path(c)) for c in SHARED_CACHES):
        return "no cached test kernel (scripts/build-test-images --with-kernel)"
    return None


def _refers_to(pid: str, marks: tuple[str, ...]) -> bool:
    try:
        texts = [Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")]
        texts.append(os.readlink(f"/proc/{pid}/cwd"))
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                texts.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
            except OSError:
                pass
    except OSError:
        return False
    return any(m in t for t in texts for m in marks)


def footprint(data_dir: Path) -> dict[str, set[str]]:
    """What of the cloud at ``data_dir`` exists on the host now, by the names and paths it
    uses (its network prefix, its cgroup group, its data and socket directories)."""
    real = str(data_dir.resolve())
    net = "ps" + hashlib.sha1(str(data_dir).encode()).hexdigest()[:4]
    tag = hashlib.sha1(real.encode()).hexdigest()[:8]
    marks = (real, f"/run/pocketstack/qemu-{tag}")
    me = str(os.getpid())
    procs = {f"{p} {Path(f'/proc/{p}/comm').read_text().strip()}" for p in os.listdir("/proc")
             if p.isdigit() and p != me and _refers_to(p, marks)}
    links = set(subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
                .stdout.split("\n"))
    links = {ln.split(":")[1].strip().split("@")[0] for ln in links if ln.count(":") >= 2}
    netns = set(subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
                .stdout.split())
    tables = set(subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
                 .stdout.split("\n"))
    loops = set(subprocess.run(["losetup", "-a", "-n", "-O", "NAME,BACK-FILE"],
                               capture_output=True, text=True).stdout.split("\n"))
    cgroups = {str(p) for p in Path("/sys/fs/cgroup").glob(f"*/pocketstack-{tag}")}
    cgroups |= {str(p) for p in Path("/sys/fs/cgroup").glob(f"pocketstack-{tag}")}
    return {
        "processes": procs,
        "links": {x for x in links if x.startswith(net)},
        "netns": {x for x in netns if x.startswith(net)},
        "nft tables": {x for x in tables if net in x},
        "loop devices": {x for x in loops if real in x},
        "cgroups": cgroups,
        "mounts": {ln for ln in Path("/proc/self/mountinfo").read_text().splitlines()
                   if real in ln},
    }


@pytest.mark.parametrize("driver", ["container", "qemu"])
def test_down_purge_leaves_nothing(driver):
    if driver == "qemu" and (why := _qemu_missing()):
        pytest.skip(why)
    tmp = Path(tempfile.mkdtemp(prefix=f"ps-purge-{driver}-"))
    data = tmp / "data"
    env = {"POCKETSTACK_COMPUTE__DRIVER": driver, "POCKETSTACK_NETWORK__DRIVER": "linux"}
    live = LiveCloud(data, extra_env=env)
    try:
        live.start()
        image = "busybox-vm" if driver == "qemu" else "busybox"
        if driver == "qemu":
            live.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                           "ps-purge-vm")
        flavor = "ps-purge-vm" if driver == "qemu" else "m1.tiny"
        sid = live.openstack("server", "create", "--image", image, "--flavor", flavor,
                             "--network", "private", "--wait", "ps-purge", user="demo",
                             timeout=300)["id"]
        vid = live.openstack("volume", "create", "--size", "1", "ps-purge", user="demo")["id"]
        deadline = time.monotonic() + 60
        while live.openstack("volume", "show", vid, user="demo")["status"] != "available":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        live.openstack("server", "add", "volume", sid, vid, user="demo", parse=False)
        fip = live.openstack("floating", "ip", "create", "public", user="demo")
        live.openstack("server", "add", "floating", "ip", sid, fip["floating_ip_address"],
                       user="demo", parse=False)
        deadline = time.monotonic() + 60
        while live.openstack("volume", "show", vid, user="demo")["status"] != "in-use":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        running = footprint(data)
        # the cloud really made each kind of thing this test counts
        kinds = ["processes", "links", "netns", "nft tables"]
        if driver == "container":  # a VM gets its volume as a file, and runs in no cgroup of ours
            kinds += ["loop devices", "cgroups", "mounts"]
        for kind in kinds:
            assert running[kind], (kind, running)
        live.stop()  # the servers keep running without it, by design
        plain = {k: v for k, v in os.environ.items() if not k.startswith("POCKETSTACK_")}
        res = subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge",
                              "--data-dir", str(data)], env=plain, cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        left = {k: v for k, v in footprint(data).items() if v}
        assert not left, left
        assert not data.exists()
    finally:
        live.destroy(tmp, timeout=300)
