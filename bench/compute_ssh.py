"""bench/compute.py --only ssh: boot -> first successful SSH login, what a user waits for
after ``openstack server create --key-name`` (container driver, and QEMU under whatever
accelerator the driver picks: TCG on a host without usable KVM).

Per boot, as the demo user through the REST APIs: POST /servers (the cirros-like test
image, the demo ``private`` network, a key pair, a security group opening port 22), poll
until ACTIVE, point a floating IP at the server's port, then run the host's OpenSSH client
(``ssh -i key cirros@FIP true``) every 50 ms until one login succeeds. Reported: p50/p90 of
POST -> ACTIVE and POST -> first login, per driver, beside the goals (container 1 s, VM
under TCG 20 s). One boot at a time; each server is deleted before the next.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import http, password_body, purge, stop

GOALS_S = {"container": 1.0, "qemu": 20.0}
IMAGES = {"container": "busybox", "qemu": "busybox-disk"}
PUBLIC_CIDR = "172.27.250.0/24"


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class _Api:
    def __init__(self, port: int, data: Path, user: str) -> None:
        pw = json.loads((data / "passwords.json").read_text())[user]
        self.base = f"http://127.0.0.1:{port}"
        status, headers, _ = http("POST", f"{self.base}/identity/v3/auth/tokens?nocatalog",
                                  password_body(pw, user=user, project=user))
        assert status == 201, status
        self.tok = headers["x-subject-token"]

    def __call__(self, method: str, path: str, body=None):  # noqa: ANN001, ANN204
        return http(method, self.base + path, body,
                    {"X-Auth-Token": self.tok, "OpenStack-API-Version": "compute 2.37"})


def _first(api: _Api, path: str, key: str) -> dict:
    _, _, body = api("GET", path)
    assert body.get(key), (path, body)
    return body[key][0]


def bench_ssh(start, n: int, drivers: tuple[str, ...] = ("container", "qemu")) -> dict:  # noqa: ANN001
    """``start(data_dir, port, **env)`` starts a cloud (bench/compute.py's)."""
    if shutil.which("ssh") is None:
        return {"skipped": "no ssh client (Debian openssh-client)"}
    out: dict = {}
    for i, driver in enumerate(drivers):
        data, port = Path(f"/tmp/ps-compute-bench-ssh-{driver}/data"), 8850 + i
        env = {"POCKETSTACK_COMPUTE__DRIVER": driver, "POCKETSTACK_NETWORK__DRIVER": "linux",
               "POCKETSTACK_NETWORK__PUBLIC_CIDR": PUBLIC_CIDR}
        proc = start(data, port, **env)
        try:
            out[driver] = _bench_driver(port, data, driver, n)
        finally:
            stop(proc)
            purge(data, **env)
    return out


def _bench_driver(port: int, data: Path, driver: str, n: int) -> dict:
    admin, demo = _Api(port, data, "admin"), _Api(port, data, "demo")
    _, _, body = demo("GET", f"/image/v2/images?name={IMAGES[driver]}")
    if not body.get("images"):
        return {"skipped": f"no {IMAGES[driver]} image (scripts/build-test-images "
                           "--with-kernel)"}
    image = body["images"][0]["id"]
    flavor = "1"
    if driver == "qemu":
        status, _, b = admin("POST", "/compute/v2.1/flavors", {"flavor": {
            "name": "ps-bench-ssh-vm", "ram": 256, "vcpus": 1, "disk": 1}})
        assert status == 200, b
        flavor = b["flavor"]["id"]
    tmp = Path(tempfile.mkdtemp(prefix="ps-bench-ssh-"))
    try:
        status, _, b = demo("POST", "/compute/v2.1/os-keypairs",
                            {"keypair": {"name": "ps-bench-ssh"}})
        assert status in (200, 201), b  # 201 from microversion 2.2
        key = tmp / "key"
        key.write_text(b["keypair"]["private_key"])
        key.chmod(0o600)
        status, _, b = demo("POST", "/network/v2.0/security-groups",
                            {"security_group": {"name": "ps-bench-ssh"}})
        assert status == 201, b
        for proto, port_min in (("tcp", 22), ("icmp", None)):
            rule = {"security_group_id": b["security_group"]["id"], "direction": "ingress",
                    "protocol": proto, "ethertype": "IPv4"}
            if port_min:
                rule.update(port_range_min=port_min, port_range_max=port_min)
            status, _, r = demo("POST", "/network/v2.0/security-group-rules",
                                {"security_group_rule": rule})
            assert status == 201, r
        private = _first(demo, "/network/v2.0/networks?name=private", "networks")["id"]
        public = _first(demo, "/network/v2.0/networks?name=public", "networks")["id"]
        status, _, b = demo("POST", "/network/v2.0/floatingips",
                            {"floatingip": {"floating_network_id": public}})
        assert status == 201, b
        fip_id, fip = b["floatingip"]["id"], b["floatingip"]["floating_ip_address"]
        active, login = [], []
        for i in range(n + 1):
            a, s = _boot_and_login(demo, image, flavor, private, fip_id, fip, key, driver, i)
            if i:  # the first one warms the image cache, the bridges and dnsmasq
                active.append(a)
                login.append(s)
        return {"driver": driver, "image": IMAGES[driver], "boots": n,
                "active_p50_s": round(statistics.median(active), 3),
                "active_p90_s": round(_pct(active, 0.9), 3),
                "ssh_login_p50_s": round(statistics.median(login), 3),
                "ssh_login_p90_s": round(_pct(login, 0.9), 3),
                "goal_ssh_login_s": GOALS_S[driver]}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _boot_and_login(demo: _Api, image: str, flavor: str, private: str, fip_id: str,
                    fip: str, key: Path, driver: str, i: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    status, _, b = demo("POST", "/compute/v2.1/servers", {"server": {
        "name": f"ps-bench-ssh-{i}", "imageRef": image, "flavorRef": flavor,
        "networks": [{"uuid": private}], "key_name": "ps-bench-ssh",
        "security_groups": [{"name": "ps-bench-ssh"}]}})
    assert status == 202, b
    sid = b["server"]["id"]
    try:
        while True:
            _, _, b = demo("GET", f"/compute/v2.1/servers/{sid}")
            assert b["server"]["status"] != "ERROR", b["server"].get("fault")
            if b["server"]["status"] == "ACTIVE":
                break
            time.sleep(0.01)
        t_active = time.perf_counter() - t0
        port = _first(demo, f"/network/v2.0/ports?device_id={sid}", "ports")["id"]
        status, _, b = demo("PUT", f"/network/v2.0/floatingips/{fip_id}",
                            {"floatingip": {"port_id": port}})
        assert status == 200, b
        limit = 60 if driver == "container" else 240
        # port 22 open first (a connect every 20 ms, 0.2 s each: an ssh whose SYN goes
        # unanswered would wait out its whole ConnectTimeout), then a login every 50 ms
        while True:
            try:
                socket.create_connection((fip, 22), timeout=0.2).close()
                break
            except OSError:
                assert time.perf_counter() - t0 < limit, f"port 22 not open within {limit} s"
                time.sleep(0.02)
        while True:
            res = subprocess.run(
                ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no",
                 "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                 "-o", "ConnectTimeout=1", "-o", "LogLevel=ERROR", f"cirros@{fip}", "true"],
                capture_output=True, stdin=subprocess.DEVNULL, timeout=30)
            if res.returncode == 0:
                break
            assert time.perf_counter() - t0 < limit, \
                f"no SSH login within {limit} s: {res.stderr.decode()[-300:]}"
            time.sleep(0.05)
        return t_active, time.perf_counter() - t0
    finally:
        demo("DELETE", f"/compute/v2.1/servers/{sid}")
        deadline = time.monotonic() + 60
        while demo("GET", f"/compute/v2.1/servers/{sid}")[0] != 404 \
                and time.monotonic() < deadline:
            time.sleep(0.1)
