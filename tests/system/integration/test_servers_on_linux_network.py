"""Compute and network together (root): real container servers booted through the API
(openstacksdk against a live ``pocketstack up`` with the container compute driver and the
linux network driver) on real bridges, with DHCP, security groups, floating IPs, SNAT and
metadata seen from inside the servers.

"Inside a server" is its own network namespace: ``nsenter -t <init pid> -n`` with the
host's busybox, or the server's own console log (what its init and udhcpc printed).
The cloud has its own data dir (/tmp/ps-integ-*), port (8890-8899) and public CIDR; teardown
is ``pocketstack down --purge`` on that data dir, then a check that none of the cloud's
namespaces, links or cgroups is left.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "busybox",
                                                           "nsenter", "unshare")):
    pytest.skip("needs root, ip, nft, dnsmasq, busybox, nsenter and unshare",
                allow_module_level=True)

PUBLIC_CIDR = f"172.30.{os.getpid() % 200 + 20}.0/24"
ENV = {"POCKETSTACK_COMPUTE__DRIVER": "container", "POCKETSTACK_NETWORK__DRIVER": "linux",
       "POCKETSTACK_NETWORK__PUBLIC_CIDR": PUBLIC_CIDR}
USER_DATA = ("#!/bin/sh\n"
             "echo \"ps-integ-ud $(wget -qO- http://169.254.169.254/openstack/latest/meta_data.json"
             " | grep -o '\"uuid\": \"[^\"]*\"')\"\n")


def host_names() -> set[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    netns = subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
    return names | {line.split()[0] for line in netns.splitlines() if line.strip()}


def wait_active(conn, server_id: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        srv = conn.compute.get_server(server_id)
        if srv.status in ("ACTIVE", "ERROR"):
            assert srv.status == "ACTIVE", srv.fault
            return srv
        assert time.monotonic() < deadline, f"{server_id} stuck in {srv.status}"
        time.sleep(0.1)


class Env:
    """The live cloud and what the module booted on it."""

    def __init__(self, live: LiveCloud) -> None:
        self.live = live
        self.servers: dict[str, object] = {}
        self.ids: dict[str, str] = {}

    def pid(self, name: str) -> int:
        state = self.live.data_dir / "compute/instances" / self.ids[name] / "state.json"
        return json.loads(state.read_text())["init_pid"]

    def sh(self, name: str, *cmd: str, timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", "-t", str(self.pid(name)), "-n", *cmd],
                              capture_output=True, text=True, timeout=timeout)

    def ping(self, name: str, addr: str, wait: int = 1) -> bool:
        return self.sh(name, "busybox", "ping", "-c", "1", "-W", str(wait), addr).returncode == 0

    def fixed_ip(self, name: str) -> str:
        return self.servers[name]["ip"]

    def inside_ip(self, name: str) -> str | None:
        out = self.sh(name, "ip", "-4", "-o", "addr", "show", "dev", "eth0").stdout.split()
        return out[3].split("/")[0] if len(out) > 3 else None


@pytest.fixture(scope="module")
def env():
    data_dir = Path(tempfile.mkdtemp(prefix="ps-integ-"))
    before = host_names()
    live = LiveCloud(data_dir / "data", extra_env=ENV)  # a free port: runs may overlap
    e = Env(live)
    try:
        live.start()
        admin = live.sdk()
        demo = live.sdk("demo")
        # Project B: its own user and a network over the SAME addresses as demo's private
        # network (10.0.0.0/26 inside 10.0.0.0/24), so only L2 isolation keeps them apart.
        tag = uuid.uuid4().hex[:6]
        proj = admin.identity.create_project(name=f"ps-integ-b-{tag}", domain_id="default")
        pw = uuid.uuid4().hex
        user = admin.identity.create_user(name=f"ps-integ-b-{tag}", password=pw,
                                          domain_id="default", default_project_id=proj.id)
        role = admin.identity.find_role("member")
        admin.identity.assign_project_role_to_user(proj, user, role)
        other = live.sdk(user.name, project=proj.name, password=pw)
        bnet = other.network.create_network(name="ps-integ-bnet")
        other.network.create_subnet(network_id=bnet.id, ip_version=4, cidr="10.0.0.0/24",
                                    allocation_pools=[{"start": "10.0.0.100",
                                                       "end": "10.0.0.200"}])
        e.key = demo.compute.create_keypair(name=f"ps-integ-key-{tag}")
        e.sg_web = demo.network.create_security_group(name=f"ps-integ-web-{tag}")
        private = demo.network.find_network("private", ignore_missing=False)
        image = admin.image.find_image("busybox", ignore_missing=False)
        flavor = admin.compute.find_flavor("m1.tiny", ignore_missing=False)
        t0 = time.monotonic()
        boots = {
            "a1": (demo, private.id, {"key_name": e.key.name,
                                      "user_data": base64.b64encode(USER_DATA.encode()).decode()}),
            "a2": (demo, private.id, {}),
            "a3": (demo, private.id, {"security_groups": [{"name": e.sg_web.name}]}),
            "b1": (other, bnet.id, {}),
        }
        for name, (conn, net_id, kw) in boots.items():
            srv = conn.compute.create_server(name=f"ps-integ-{name}-{tag}", image_id=image.id,
                                             flavor_id=flavor.id, networks=[{"uuid": net_id}],
                                             **kw)
            e.ids[name] = srv.id
        for name, (conn, _, _) in boots.items():
            srv = wait_active(conn, e.ids[name])
            addrs = [a["addr"] for net in srv.addresses.values() for a in net]
            assert len(addrs) == 1, srv.addresses
            e.servers[name] = {"ip": addrs[0], "conn": conn}
        e.boot_seconds = time.monotonic() - t0
        e.demo, e.other, e.admin = demo, other, admin
        yield e
    finally:
        live.destroy(data_dir)
    from pocketstack.services.network.service import cloud_prefix

    prefix = cloud_prefix(live.data_dir)
    left = {n for n in host_names() - before if n.startswith(prefix)}
    assert not left, f"left behind: {left}"
    group = "pocketstack-" + hashlib.sha1(str(live.data_dir.resolve()).encode()).hexdigest()[:8]
    cgroups = [p for p in Path("/sys/fs/cgroup").glob(f"*/{group}")] + \
        [p for p in Path("/sys/fs/cgroup").glob(group)]
    assert not cgroups, f"cgroups left behind: {cgroups}"


def wait_lease(env: Env, name: str, timeout: float = 15) -> str:
    """The console (os-getConsoleOutput) once udhcpc has bound eth0."""
    conn = env.servers[name]["conn"]
    deadline = time.monotonic() + timeout
    while True:
        out = conn.compute.get_server_console_output(env.ids[name])["output"]
        if "pocketstack: eth0 " in out:
            return out
        assert time.monotonic() < deadline, f"{name} got no lease:\n{out}"
        time.sleep(0.1)


def test_dhcp_gives_each_server_its_ports_fixed_ip(env):
    for name in ("a1", "a2", "a3", "b1"):
        ip = env.fixed_ip(name)
        console = wait_lease(env, name)
        assert f"lease of {ip} obtained" in console, console
        assert env.inside_ip(name) == ip
    # the classless static route (option 121) to the metadata address was installed
    routes = env.sh("a1", "ip", "route").stdout
    assert "169.254.169.254 via" in routes, routes
    print(f"4 servers ACTIVE in {env.boot_seconds:.2f}s")


def test_servers_on_one_tenant_network_reach_each_other(env):
    wait_lease(env, "a1"), wait_lease(env, "a2")
    assert env.ping("a1", env.fixed_ip("a2"))
    assert env.ping("a2", env.fixed_ip("a1"))


def test_other_projects_network_cannot_reach_them(env):
    wait_lease(env, "b1")
    # b1's subnet (10.0.0.0/24) covers demo's addresses: only the separate bridge keeps
    # the packets apart, in both directions.
    assert ipaddress.ip_address(env.fixed_ip("a1")) in ipaddress.ip_network("10.0.0.0/24")
    assert not env.ping("b1", env.fixed_ip("a1"))
    assert not env.ping("b1", env.fixed_ip("a2"))
    assert not env.ping("a1", env.fixed_ip("b1"))


def test_floating_ip_reachable_from_host(env):
    demo = env.demo
    sg = demo.network.create_security_group(name=f"ps-integ-icmp-{uuid.uuid4().hex[:6]}")
    demo.network.create_security_group_rule(security_group_id=sg.id, direction="ingress",
                                            protocol="icmp")
    port = next(demo.network.ports(device_id=env.ids["a1"]))
    groups = list(port.security_group_ids)
    demo.network.update_port(port.id, security_group_ids=[*groups, sg.id])
    public = demo.network.find_network("public", ignore_missing=False)
    fip = demo.network.create_ip(floating_network_id=public.id, port_id=port.id)
    addr = fip.floating_ip_address
    assert ipaddress.ip_address(addr) in ipaddress.ip_network(PUBLIC_CIDR)

    def host_ping() -> bool:
        return subprocess.run(["busybox", "ping", "-c", "1", "-W", "1", addr],
                              capture_output=True).returncode == 0

    deadline = time.monotonic() + 20
    while not host_ping():
        assert time.monotonic() < deadline, f"floating IP {addr} not reachable from the host"
    demo.network.delete_ip(fip)
    deadline = time.monotonic() + 20
    while host_ping():
        assert time.monotonic() < deadline, f"floating IP {addr} still answers after delete"
    demo.network.update_port(port.id, security_group_ids=groups)
    demo.network.delete_security_group(sg)


# Runs inside a server's network namespace: ICMP echo probes every ~50 ms (a probe fails
# when no reply comes within 0.25 s) until one gives the wanted answer; prints the
# CLOCK_MONOTONIC time (system wide) at which that probe was sent. busybox ping only waits
# whole seconds, too coarse to measure "within 1 s".
PROBE = r"""
import os, select, socket, struct, sys, time
dst, want, limit = sys.argv[1], sys.argv[2] == "up", float(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
seq, end = 0, time.monotonic() + limit
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xFFFF); t += t >> 16
    return ~t & 0xFFFF
while time.monotonic() < end:
    seq += 1  # a new ICMP id per probe: each one a new flow, as each new ping process
    ident = (os.getpid() + seq) & 0xFFFF
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"pocketstack-probe"
    pkt = hdr[:2] + struct.pack("!H", csum(hdr + b"\0")) + hdr[4:]
    sent = time.monotonic()
    s.sendto(pkt, (dst, 0))
    got = False
    while not got and time.monotonic() < sent + 0.25:
        if select.select([s], [], [], max(0, sent + 0.25 - time.monotonic()))[0]:
            data = s.recv(2048)
            icmp = data[(data[0] & 0xF) * 4:]
            got = icmp[0] == 0 and struct.unpack("!HH", icmp[4:8]) == (ident, seq)
    if got == want:
        print(sent); sys.exit(0)
    time.sleep(max(0, sent + 0.05 - time.monotonic()))
sys.exit(1)
"""


def _first_time(env: Env, name: str, dst: str, want_up: bool, t0: float,
                limit: float = 3) -> float | None:
    """Seconds after t0 at which a probe from server ``name`` first gave the wanted answer."""
    res = env.sh(name, sys.executable, "-c", PROBE, dst, "up" if want_up else "down",
                 str(limit), timeout=limit + 10)
    return float(res.stdout) - t0 if res.returncode == 0 else None


def test_security_group_rule_changes_reachability_within_a_second(env):
    demo, target = env.demo, env.fixed_ip("a3")
    wait_lease(env, "a3")
    assert not env.ping("a1", target)  # a3's only group has no ingress rule
    assert _first_time(env, "a1", target, False, time.monotonic()) is not None  # the probe
    t0 = time.monotonic()
    rule = demo.network.create_security_group_rule(security_group_id=env.sg_web.id,
                                                   direction="ingress", protocol="icmp")
    added = _first_time(env, "a1", target, True, t0)
    assert added is not None and added <= 1.0, f"ingress rule took effect after {added}s"
    t0 = time.monotonic()
    demo.network.delete_security_group_rule(rule)
    removed = _first_time(env, "a1", target, False, t0)
    assert removed is not None and removed <= 1.0, f"rule removal took effect after {removed}s"
    print(f"rule add -> reachable {added:.3f}s, rule delete -> unreachable {removed:.3f}s")


def test_metadata_returns_key_and_user_data_inside_the_server(env):
    wait_lease(env, "a1")
    base = "http://169.254.169.254"

    def get(path: str) -> str:
        res = env.sh("a1", "busybox", "wget", "-q", "-O", "-", base + path)
        assert res.returncode == 0, (path, res.stderr)
        return res.stdout

    meta = json.loads(get("/openstack/latest/meta_data.json"))
    assert meta["uuid"] == env.ids["a1"]
    assert meta["public_keys"] == {env.key.name: env.key.public_key}
    assert get("/openstack/latest/user_data") == USER_DATA
    assert get("/latest/meta-data/public-keys/0/openssh-key").strip() == \
        env.key.public_key.strip()
    # the server's own user data (run once it had its lease) fetched metadata with the
    # image's busybox wget and printed its uuid on the console
    conn = env.servers["a1"]["conn"]
    deadline = time.monotonic() + 30
    want = f'ps-integ-ud "uuid": "{env.ids["a1"]}"'
    while want not in (out := conn.compute.get_server_console_output(env.ids["a1"])["output"]):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)


def test_snat_reaches_the_hosts_external_address(env):
    wait_lease(env, "a2")
    host_ip = str(next(ipaddress.ip_network(PUBLIC_CIDR).hosts()))
    assert env.ping("a2", host_ip, wait=2), env.sh("a2", "ip", "route").stdout
    # b1's network has no router: no way out
    assert not env.ping("b1", host_ip)


def _until(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, check
        time.sleep(0.2)


def test_admin_state_down_port_and_router_pass_nothing(env):
    """Neutron's admin_state_up, as Tempest's network scenarios check it: a port set down
    passes no traffic (its host end is down); a router set down has no namespace at all
    (Neutron's L3 agent removes it: no SNAT, no floating IPs). Set up again, both work."""
    demo = env.demo
    wait_lease(env, "a1"), wait_lease(env, "a2")
    a2 = env.fixed_ip("a2")
    port = next(demo.network.ports(device_id=env.ids["a2"]))
    demo.network.update_port(port, admin_state_up=False)
    _until(lambda: not env.ping("a1", a2))
    demo.network.update_port(port, admin_state_up=True)
    _until(lambda: env.ping("a1", a2))
    host_ip = str(next(ipaddress.ip_network(PUBLIC_CIDR).hosts()))
    router = demo.network.find_router("router1", ignore_missing=False)
    assert env.ping("a2", host_ip, wait=2)
    demo.network.update_router(router, admin_state_up=False)
    _until(lambda: not env.ping("a2", host_ip))
    demo.network.update_router(router, admin_state_up=True)
    _until(lambda: env.ping("a2", host_ip, wait=2))


def test_stopped_and_started_server_leases_its_address_again(env):
    conn, sid, ip = env.servers["a2"]["conn"], env.ids["a2"], env.fixed_ip("a2")
    old_pid = env.pid("a2")
    conn.compute.stop_server(sid)
    conn.compute.wait_for_server(conn.compute.get_server(sid), status="SHUTOFF", interval=0.1,
                                 wait=30)
    conn.compute.start_server(sid)
    wait_active(conn, sid)
    assert env.pid("a2") != old_pid  # a new init in a new network namespace
    deadline = time.monotonic() + 45
    while env.inside_ip("a2") != ip:
        assert time.monotonic() < deadline, conn.compute.get_server_console_output(sid)
        time.sleep(0.1)
    assert env.ping("a2", env.fixed_ip("a1"))


def test_second_nic_attached_live_keeps_its_name_and_detaches(env):
    """os-interface on a running container: the port on a second network appears in the
    server's namespace as eth1 with the port's MAC, DHCP on that network hands it the
    port's address, a hard reboot (a new namespace) plugs it as eth1 again, and a detach
    removes it from the server and the host."""
    conn, sid = env.servers["a3"]["conn"], env.ids["a3"]
    wait_lease(env, "a3")
    net2 = conn.network.create_network(name=f"ps-integ-n2-{uuid.uuid4().hex[:6]}")
    conn.network.create_subnet(network_id=net2.id, ip_version=4, cidr="10.9.8.0/24")
    att = conn.compute.create_server_interface(sid, net_id=net2.id)
    want_ip = att.fixed_ips[0]["ip_address"]
    assert {i.port_id for i in conn.compute.server_interfaces(sid)} >= {att.port_id}

    def link(name: str) -> str:
        return env.sh("a3", "ip", "-o", "link", "show", "dev", name).stdout

    assert att.mac_addr in link("eth1"), link("eth1")
    assert env.fixed_ip("a3") == env.inside_ip("a3")  # eth0 untouched
    deadline = time.monotonic() + 30
    while True:  # the network's dnsmasq may take a moment to learn the new host
        lease = env.sh("a3", "busybox", "udhcpc", "-i", "eth1", "-n", "-q", "-f", "-t", "3",
                       "-T", "1", "-s", "/bin/true")
        if f"lease of {want_ip} obtained" in lease.stderr + lease.stdout:
            break
        assert time.monotonic() < deadline, lease.stderr + lease.stdout
    # the metadata service describes both NICs (what cloud-init configures a second NIC by)
    nd = json.loads(env.sh("a3", "busybox", "wget", "-q", "-O", "-",
                           "http://169.254.169.254/openstack/latest/network_data.json").stdout)
    eth0_mac = link("eth0").split("link/ether ")[1].split()[0]
    assert [x["ethernet_mac_address"] for x in nd["links"]] == [eth0_mac, att.mac_addr]
    assert want_ip in [n["ip_address"] for n in nd["networks"]]
    old_pid = env.pid("a3")
    conn.compute.reboot_server(sid, "HARD")
    deadline = time.monotonic() + 60
    while env.pid("a3") == old_pid or att.mac_addr not in link("eth1"):
        assert time.monotonic() < deadline, link("eth1")
        time.sleep(0.1)
    wait_active(conn, sid)
    assert env.servers["a3"]["ip"] and "eth2" not in env.sh("a3", "ip", "-o", "link").stdout
    conn.compute.delete_server_interface(att.port_id, server=sid)
    assert "eth1" not in env.sh("a3", "ip", "-o", "link").stdout
    assert conn.network.find_port(att.port_id) is None  # made for the server: gone
    conn.network.delete_network(net2.id)
