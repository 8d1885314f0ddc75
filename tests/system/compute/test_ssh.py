"""SSH into guests end to end (root, real drivers): what every user does after
``openstack server create --key-name``. Per compute driver (containers under runc, VMs under
QEMU), one live cloud with the linux network driver: a key pair made by ``openstack keypair
create``, a server booted with it on the demo ``private`` network and on a second network
without DHCP, a floating IP, then the host's OpenSSH client logs in as ``cirros`` at the
floating IP (the public bridge's host address is the only one the test talks to).

The guest learns everything from the metadata service (pocketstack-cloud-init in the test
images, pocketstack/services/image/testimages/guest/): its hostname, the key, the second
NIC's static address (network_data.json) and the user data, run once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "nsenter",
                                                           "unshare", "ssh", "runc")):
    pytest.skip("needs root, ip, nft, dnsmasq, nsenter, unshare, runc and ssh (openssh-client)",
                allow_module_level=True)

PUBLIC_CIDR = f"172.28.{os.getpid() % 200 + 20}.0/24"
NET2_CIDR = "10.78.0.0/24"
# Runs once per instance: appends a line each time it runs, and writes what it saw.
USER_DATA = """#!/bin/sh
echo "ran $(date +%s)" >> /var/lib/ps-ssh-user-data
sync  # a hard reboot is a power cut: unsynced data may be lost, as on any disk
echo ps-ssh-user-data-ran
"""
DRIVERS = {
    "container": {"image": "busybox", "flavor": "m1.tiny", "login_timeout": 60},
    # the cloud-image-shaped qcow2 (MBR, syslinux, ext4 root); TCG on this host
    "qemu": {"image": "busybox-disk", "flavor": "ps-ssh-vm", "login_timeout": 240},
}


def _qemu_ready() -> str | None:
    if not shutil.which("qemu-system-x86_64"):
        return "qemu-system-x86_64 not installed"
    from pocketstack.services.image.testimages import SHARED_CACHES, find_kernel

    for cache in map(Path, SHARED_CACHES):
        if (cache / "disk.qcow2").is_file() and find_kernel(cache):
            return None
    return "no cached qcow2 test disk (run scripts/build-test-images --with-kernel)"


class Guest:
    """One driver's cloud, key and server."""

    def __init__(self, driver: str, live: LiveCloud, tmp: Path) -> None:
        self.driver = driver
        self.live = live
        self.tmp = tmp
        self.key = tmp / "ps-ssh-key.pem"
        self.name = f"ps-ssh-{driver}"
        self.id = ""
        self.fip = ""
        self.net2_ip = ""
        self.timings: dict[str, float] = {}

    def demo(self, *args: str, **kw):
        return self.live.openstack(*args, user="demo", **kw)

    def ssh(self, *cmd: str, key: Path | None = None, timeout: float = 30,
            extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ssh", "-i", str(key or self.key), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
             "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", *extra,
             f"cirros@{self.fip}", *cmd],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def wait_ssh(self, command: str, want: str, timeout: float = 30) -> str:
        """The output of ``command`` once it matches the regex ``want`` (the datasource
        may still be configuring the guest just after the first login)."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.ssh(command)
            if res.returncode == 0 and re.search(want, res.stdout):
                return res.stdout
            assert time.monotonic() < deadline, \
                (command, res.stdout, res.stderr, self.console()[-3000:])
            time.sleep(0.5)

    def console(self) -> str:
        return self.demo("console", "log", "show", self.id, parse=False)


@pytest.fixture(scope="module", params=sorted(DRIVERS))
def guest(request):
    driver = request.param
    if driver == "qemu" and (why := _qemu_ready()):
        pytest.skip(why)
    tmp = Path(tempfile.mkdtemp(prefix="ps-ssh-"))
    env = {"POCKETSTACK_COMPUTE__DRIVER": driver, "POCKETSTACK_NETWORK__DRIVER": "linux",
           "POCKETSTACK_NETWORK__PUBLIC_CIDR": PUBLIC_CIDR}
    live = LiveCloud(tmp / "data", extra_env=env)
    g = Guest(driver, live, tmp)
    try:
        live.start()
        spec = DRIVERS[driver]
        if driver == "qemu":
            live.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                           spec["flavor"])
        # the private key is printed once, by the create call
        g.key.write_text(g.demo("keypair", "create", "ps-ssh-key", parse=False) + "\n")
        g.key.chmod(0o600)
        g.demo("security", "group", "create", "ps-ssh-sg")
        g.demo("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
               "ps-ssh-sg")
        g.demo("security", "group", "rule", "create", "--protocol", "icmp", "ps-ssh-sg")
        g.demo("network", "create", "ps-ssh-net2")
        # no DHCP on it: only network_data.json can give the guest this address
        g.demo("subnet", "create", "--network", "ps-ssh-net2", "--subnet-range", NET2_CIDR,
               "--no-dhcp", "--gateway", "none", "ps-ssh-subnet2")
        ud = tmp / "user-data"
        ud.write_text(USER_DATA)
        t0 = time.monotonic()
        srv = g.demo("server", "create", "--image", spec["image"], "--flavor", spec["flavor"],
                     "--key-name", "ps-ssh-key", "--network", "private", "--network",
                     "ps-ssh-net2", "--security-group", "ps-ssh-sg", "--user-data", str(ud),
                     g.name)
        g.id = srv["id"]
        deadline = time.monotonic() + 180
        while (st := g.demo("server", "show", g.id))["status"] != "ACTIVE":
            assert st["status"] != "ERROR" and time.monotonic() < deadline, st
            time.sleep(0.2)
        g.timings["active"] = time.monotonic() - t0
        g.net2_ip = next(a["addr"] for a in g.live.sdk("demo").compute.get_server(g.id)
                         .addresses.get("ps-ssh-net2", []))
        g.fip = g.demo("floating", "ip", "create", "public")["floating_ip_address"]
        g.demo("server", "add", "floating", "ip", g.id, g.fip)
        deadline = time.monotonic() + spec["login_timeout"]
        while True:
            res = g.ssh("true", timeout=15)
            if res.returncode == 0:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"no SSH login to {g.fip} within {spec['login_timeout']} s: "
                            f"{res.stderr}\nconsole:\n{g.console()[-3000:]}")
            time.sleep(0.5)
        g.timings["ssh"] = time.monotonic() - t0
        print(f"{driver}: ACTIVE after {g.timings['active']:.1f} s, first SSH login after "
              f"{g.timings['ssh']:.1f} s")
        yield g
    finally:
        live.destroy(tmp, timeout=180)


def test_hostname_answers_the_servers_name(guest):
    res = guest.ssh("hostname")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == guest.name


def test_sudo_gives_root(guest):
    res = guest.ssh("sudo", "id", "-u")
    assert (res.returncode, res.stdout.strip()) == (0, "0"), res.stderr


def test_tempest_commands_run_in_the_guest(guest):
    # what tempest.scenario runs over SSH: addresses, partitions, a metadata fetch
    res = guest.ssh("ip -4 -o addr; cat /proc/partitions; lsblk -n -o NAME,SIZE; "
                    "wget -q -O - http://169.254.169.254/openstack/latest/meta_data.json")
    assert res.returncode == 0, res.stderr
    assert f'"uuid": "{guest.id}"' in res.stdout
    assert "major minor" in res.stdout
    # Tempest's lease renewal (renew_lease): SIGUSR1 to the DHCP client by its pid file
    res = guest.ssh("sudo /bin/kill -USR1 $(cat /var/run/udhcpc.eth0.pid)")
    assert res.returncode == 0, res.stderr


def test_ping_and_filesystems_as_tempest_uses_them(guest):
    # ping as the image's user (not root), to the network's gateway
    res = guest.ssh("ping -c 1 -W 3 $(ip route | awk '/^default/ {print $3; exit}')")
    assert res.returncode == 0 and re.search(r"\b1 (packets )?received", res.stdout), \
        (res.stdout, res.stderr)
    res = guest.ssh("dd if=/dev/zero of=/tmp/ps.img bs=1M count=8 2>/dev/null && "
                    "mkfs -t ext4 -q -F /tmp/ps.img && sudo blkid /tmp/ps.img")
    assert res.returncode == 0 and 'TYPE="ext4"' in res.stdout, (res.stdout, res.stderr)
    if guest.driver == "qemu":
        # a kernel file system mounted from a disk (the image's own FAT boot partition)
        res = guest.ssh("sudo mount -t vfat -o ro /dev/vda1 /mnt && ls /mnt; "
                        "sudo umount /mnt")
        assert res.returncode == 0 and "syslinux.cfg" in res.stdout, (res.stdout, res.stderr)


def test_metadata_service_takes_the_guests_password_once(guest):
    """Tempest's server basic ops: ``curl`` reads the EC2 public-ipv4 (the floating IP), and
    ``curl -X POST -d`` posts a password that ``openstack server password show`` returns;
    a second post is refused (Nova: once, until the API clears it). (OSC has no command for
    it: nova's get-password; openstacksdk's get_server_password.)"""
    compute = guest.live.sdk("demo").compute
    res = guest.ssh("curl http://169.254.169.254/latest/meta-data/public-ipv4")
    assert (res.returncode, res.stdout) == (0, guest.fip), (res.stdout, res.stderr)
    url = "http://169.254.169.254/openstack/2013-10-17/password"
    res = guest.ssh(f"curl -X POST -d ps-secret-1 {url}")
    assert res.returncode == 0, res.stderr
    assert compute.get_server_password(guest.id) == "ps-secret-1"
    res = guest.ssh(f"curl -X POST -d ps-secret-2 {url}")
    assert res.returncode != 0  # 409: set once
    assert guest.ssh(f"curl {url}").stdout == "ps-secret-1"
    compute.clear_server_password(guest.id)
    assert compute.get_server_password(guest.id) == ""


def test_second_nic_is_configured_from_network_data(guest):
    # its subnet has no DHCP: the address can only come from network_data.json
    guest.wait_ssh("ip -4 -o addr", rf"\binet {re.escape(guest.net2_ip)}/24\b")


def test_user_data_ran_once(guest):
    out = guest.wait_ssh("sudo cat /var/lib/ps-ssh-user-data", r"ran \d+")
    assert len(out.strip().splitlines()) == 1, out
    assert "ps-ssh-user-data-ran" in guest.console()


def test_only_the_key_pairs_key_logs_in(guest):
    other = guest.tmp / "other-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True)
    res = guest.ssh("true", key=other)
    assert res.returncode == 255 and "Permission denied" in res.stderr, res.stderr
    # no password logins at all (dropbear -s): the server offers only publickey
    res = guest.ssh("true", extra=("-o", "PreferredAuthentications=password",
                                   "-o", "PubkeyAuthentication=no"))
    assert res.returncode == 255 and "Permission denied (publickey)" in res.stderr, res.stderr


def test_every_server_has_its_own_host_key(guest):
    res = guest.ssh("sudo", "md5sum", "/etc/dropbear/dropbear_ed25519_host_key")
    assert res.returncode == 0, res.stderr
    from pocketstack.services.image.testimages import SHARED_CACHES

    # not in the image: made in the guest at first boot
    for cache in map(Path, SHARED_CACHES):
        if (cache / "rootfs.tar").is_file():
            names = subprocess.run(["tar", "-tf", str(cache / "rootfs.tar")],
                                   capture_output=True, text=True).stdout
            assert "dropbear_ed25519_host_key" not in names


def test_ssh_with_config_drive_and_metadata_service_blocked(guest):
    """--config-drive true, and the metadata service blocked for that server (a security
    group with no egress rule: only DHCP and replies leave it): the hostname, the key and
    the second NIC's static address come from the config drive (/config-drive in a
    container, the config-2 ISO in a VM), so the same SSH login still works."""
    g = Guest(guest.driver, guest.live, guest.tmp)
    g.key, g.name = guest.key, f"ps-ssh-cd-{guest.driver}"
    sg = g.demo("security", "group", "create", "ps-ssh-nometa")
    net = g.live.sdk("demo").network
    for rule in list(net.security_group_rules(security_group_id=sg["id"])):
        net.delete_security_group_rule(rule)  # the default "any egress" rules
    g.demo("security", "group", "rule", "create", "--protocol", "tcp", "--dst-port", "22",
           "ps-ssh-nometa")
    spec = DRIVERS[guest.driver]
    srv = g.demo("server", "create", "--image", spec["image"], "--flavor", spec["flavor"],
                 "--key-name", "ps-ssh-key", "--network", "private", "--network",
                 "ps-ssh-net2", "--security-group", "ps-ssh-nometa", "--config-drive", "true",
                 g.name)
    g.id = srv["id"]
    try:
        deadline = time.monotonic() + 180
        while (st := g.demo("server", "show", g.id))["status"] != "ACTIVE":
            assert st["status"] != "ERROR" and time.monotonic() < deadline, st
            time.sleep(0.2)
        assert st["config_drive"] == "True", st
        net2_ip = next(a["addr"] for a in g.live.sdk("demo").compute.get_server(g.id)
                       .addresses.get("ps-ssh-net2", []))
        g.fip = g.demo("floating", "ip", "create", "public")["floating_ip_address"]
        g.demo("server", "add", "floating", "ip", g.id, g.fip)
        g.wait_ssh("hostname", rf"^{re.escape(g.name)}$", timeout=spec["login_timeout"])
        g.wait_ssh("ip -4 -o addr", rf"\binet {re.escape(net2_ip)}/24\b")
        # the block holds: the guest cannot reach the metadata service...
        res = g.ssh("timeout 5 wget -q -O - http://169.254.169.254/openstack/latest/"
                    "meta_data.json")
        assert res.returncode != 0 and g.id not in res.stdout, res.stdout
        # ...so what it knows came from the config drive, which it says it used
        assert f"datasource config-drive, instance {g.id}" in g.console()
    finally:
        g.demo("server", "delete", "--wait", g.id, parse=False)


def _disks(guest: Guest) -> list[str]:
    """The disks lsblk lists in the guest, as Tempest's RemoteClient.list_disks reads them."""
    res = guest.ssh("lsblk -lnb --nodeps -o NAME,TYPE")
    assert res.returncode == 0, res.stderr
    return sorted(n for n, t in (line.split() for line in res.stdout.splitlines()) if t == "disk")


def test_guest_sees_its_own_cpus_uptime_and_disks(guest):
    """What Tempest's validation reads in a guest: ``grep -c ^processor /proc/cpuinfo``
    against the flavor's vCPUs, /proc/uptime across a hard reboot, lsblk's disks across a
    volume attach. A container shares the host's kernel, so by itself it would see the
    host's CPUs, uptime and disks (container_views.py gives it its own). Runs last: it
    reboots the module's server. User data still ran only once afterwards."""
    vcpus = int(guest.demo("flavor", "show", DRIVERS[guest.driver]["flavor"])["vcpus"])
    res = guest.ssh("grep -c ^processor /proc/cpuinfo; cut -f1 -d. /proc/uptime")
    assert res.returncode == 0, res.stderr
    cpus, uptime = map(int, res.stdout.split())
    assert cpus == vcpus, res.stdout
    assert uptime < 600, uptime  # booted with this module's cloud, not with the host
    boot = time.time() - uptime
    before = _disks(guest)
    assert before, "lsblk lists no disk at all"  # Tempest needs lsblk's TYPE column
    vol = guest.demo("volume", "create", "--size", "1", "ps-ssh-vol")["id"]
    deadline = time.monotonic() + 60
    while guest.demo("volume", "show", vol)["status"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    guest.demo("server", "add", "volume", guest.id, vol, parse=False)
    deadline = time.monotonic() + 60
    while len(after := _disks(guest)) != len(before) + 1:
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.5)
    guest.demo("server", "reboot", "--hard", "--wait", guest.id, parse=False)
    out = guest.wait_ssh("cut -f1 -d. /proc/uptime", r"^\d+", timeout=240)
    assert time.time() - int(out) > boot + 1, (boot, out)  # a new boot, by its own clock
    assert _disks(guest) == after
    out = guest.wait_ssh("sudo cat /var/lib/ps-ssh-user-data", r"ran \d+")
    assert len(out.strip().splitlines()) == 1, out  # user data: once per instance
    guest.demo("server", "remove", "volume", guest.id, vol, parse=False)
    deadline = time.monotonic() + 60
    while _disks(guest) != before:
        assert time.monotonic() < deadline, _disks(guest)
        time.sleep(0.5)
    guest.demo("volume", "delete", vol, parse=False)
