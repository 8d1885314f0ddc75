"""A pocketstack cloud in-process with the linux network driver, and stand-in servers.

Until compute's container driver exists, a "server" is a network namespace we create
(``ip netns add ps-st-...``) with a ``sleep`` in it; its pid is what compute would pass to
``plug_vif``. Everything is removed by exact name in teardown, and ``purge()`` removes what
the cloud created.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "busybox")):
    pytest.skip("needs root, ip, nft, dnsmasq and busybox", allow_module_level=True)

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev $interface
    ip addr add $ip/$mask dev $interface
    for r in $router; do ip route replace default via $r dev $interface; done
    set -- $staticroutes
    while [ $# -ge 2 ]; do ip route replace $1 via $2 dev $interface; shift 2; done
    ;;
esac
exit 0
"""


class Server:
    """A stand-in server: its own network namespace and a process living in it."""

    def __init__(self, name: str) -> None:
        self.ns = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "3600"])
        self.pid = self._child_pid()

    def _child_pid(self) -> int:
        import time
        for _ in range(50):
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                 text=True).stdout.split()
            if out:
                return int(out[0])
            time.sleep(0.02)
        return self.proc.pid  # ip netns exec execs the command directly

    def sh(self, *cmd: str, timeout: float = 20, check: bool = False
           ) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns, *cmd], capture_output=True,
                              text=True, timeout=timeout, check=check)

    def dhcp(self, script: Path) -> str:
        res = self.sh("busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-O", "staticroutes", "-t", "5", "-T", "1",
                      "-s", str(script), timeout=30)
        addr = self.sh("ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout
        return addr.split()[3].split("/")[0] if addr.split() else res.stderr

    def ping(self, addr: str, count: int = 1, wait: int = 1) -> bool:
        return self.sh("busybox", "ping", "-c", str(count), "-W", str(wait), addr).returncode == 0

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], check=False)


@pytest.fixture(scope="module")
def linux_cloud():
    from pocketstack.app import prepare
    from pocketstack.config import load_settings

    data_dir = Path(tempfile.mkdtemp(prefix="ps-network-sys-"))
    settings = load_settings(data_dir, env={}, port=8859)
    settings.network.driver = "linux"
    settings.network.public_cidr = f"172.31.{(os.getpid() % 200) + 20}.0/24"
    settings.network.private_cidr = "10.0.0.0/26"
    cloud = prepare(settings)
    svc = cloud.services["network"]
    import asyncio
    asyncio.run(svc.start())
    script = data_dir / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    svc.udhcpc_script = script
    yield cloud
    asyncio.run(svc.stop())
    svc.purge()
    shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def make_server():
    servers: list[Server] = []

    def make() -> Server:
        server = Server(f"ps-st-{uuid.uuid4().hex[:8]}")
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()
