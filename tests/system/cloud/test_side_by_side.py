"""Two clouds side by side on one host (README: different --data-dir and --port), each with
the linux data plane and real container servers, and neither told a public range: each
picks its own, and each cloud's floating IP reaches that cloud's server (SSH answers with
its own name). Before, both took 172.24.4.0/24 and the second's floating IPs routed into
the first's bridge."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "runc", "ssh")):
    pytest.skip("needs root, ip, nft, dnsmasq, runc and ssh", allow_module_level=True)


def _ssh(key: Path, ip: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                           "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", f"cirros@{ip}",
                           *cmd], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def clouds():
    tmp = Path(tempfile.mkdtemp(prefix="ps-2c-"))
    env = {"POCKETSTACK_COMPUTE__DRIVER": "container", "POCKETSTACK_NETWORK__DRIVER": "linux"}
    made = []
    try:
        for name in ("a", "b"):  # one after the other: the second sees the first's bridge
            live = LiveCloud(tmp / name / "data", extra_env=env)
            made.append(live)
            live.start()
        yield tmp, made
    finally:
        for live in made:
            live.destroy(timeout=180)
        shutil.rmtree(tmp, ignore_errors=True)


def test_each_cloud_picks_its_own_public_range_and_floating_ips_work(clouds):
    tmp, (a, b) = clouds
    ranges = []
    fips = {}
    for name, live in (("a", a), ("b", b)):
        sub = live.openstack("subnet", "show", "public-subnet")
        ranges.append(ipaddress.ip_network(sub["cidr"]))
        assert "already holds" not in live.log(), live.log()[-2000:]
        key = tmp / f"key-{name}"
        key.write_text(live.openstack("keypair", "create", "k", user="demo", parse=False) + "\n")
        key.chmod(0o600)
        live.openstack("security", "group", "rule", "create", "--protocol", "tcp",
                       "--dst-port", "22", "default", user="demo")
        sid = live.openstack("server", "create", "--image", "busybox", "--flavor", "m1.tiny",
                             "--key-name", "k", "--network", "private", "--wait",
                             f"side-{name}", user="demo")["id"]
        fip = live.openstack("floating", "ip", "create", "public", user="demo")
        live.openstack("server", "add", "floating", "ip", sid, fip["floating_ip_address"],
                       user="demo", parse=False)
        fips[name] = (key, fip["floating_ip_address"])
    assert not ranges[0].overlaps(ranges[1]), ranges
    for name, (key, ip) in fips.items():
        deadline = time.monotonic() + 90
        while (res := _ssh(key, ip, "hostname")).returncode != 0:
            assert time.monotonic() < deadline, (name, ip, res.stderr)
            time.sleep(0.5)
        assert res.stdout.strip() == f"side-{name}"  # this cloud's server, not the other's
