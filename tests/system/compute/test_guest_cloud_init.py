"""The images' pocketstack-cloud-init, run for real (root): in a chroot of the built
container rootfs, in new network, UTS and mount namespaces (a veth carries the port's
MAC), with a config drive directory at /config-drive as the container driver mounts it.
It must set the hostname, write the key pair into ~cirros/.ssh/authorized_keys, give the
NIC the static address of network_data.json, run the user data once per instance (not
again on the next boot), and never let what the tenant chose (the server's name, a key)
reach a command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from pocketstack.services.image import testimages

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"),
                                 reason="needs root and unshare")]

MAC = "02:00:5e:aa:bb:01"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKd0cGlzYXRlc3RrZXlmb3Jwb2NrZXRzdGFjaw ps@test"
USER_DATA = "#!/bin/sh\necho \"ran\" >> /var/lib/ps-ci-count\n"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    try:
        built = testimages.build(tmp_path_factory.mktemp("ci-img"), kernel=False)
    except testimages.CannotBuild as exc:
        pytest.skip(str(exc))
    if "jq" in built.missing:
        pytest.skip("no jq in the image")
    r = tmp_path_factory.mktemp("ci-root")
    with tarfile.open(built.rootfs) as tar:
        tar.extractall(r, filter="fully_trusted", numeric_owner=True)
    os.mknod(r / "dev/null", 0o666 | 0o020000, os.makedev(1, 3))
    return r


def _config_drive(root: Path, name: str, keys: dict, user_data: str | None,
                  instance: str) -> None:
    d = root / "config-drive/openstack/latest"
    shutil.rmtree(root / "config-drive", ignore_errors=True)
    d.mkdir(parents=True)
    (d / "meta_data.json").write_text(json.dumps({
        "uuid": instance, "name": name, "hostname": name, "public_keys": keys,
        "keys": [{"name": k, "type": "ssh", "data": v} for k, v in keys.items()]}))
    (d / "network_data.json").write_text(json.dumps({
        "links": [{"id": "tap0", "type": "bridge", "ethernet_mac_address": MAC}],
        "networks": [{"id": "network0", "link": "tap0", "type": "ipv4",
                      "ip_address": "10.79.0.5", "netmask": "255.255.255.0",
                      "routes": [{"network": "10.80.0.0", "netmask": "255.255.0.0",
                                  "gateway": "10.79.0.1"}]}]}))
    if user_data is not None:
        (d / "user_data").write_text(user_data)


def _boot(root: Path) -> subprocess.CompletedProcess:
    """One 'boot': cloud-init in fresh namespaces, then what the guest then looks like."""
    script = f"""
set -e
ip link add ps-ci0 address {MAC} type veth peer name ps-ci1
mount -t sysfs sysfs {root}/sys
mount -t proc proc {root}/proc
rm -rf {root}/run/pocketstack-cloud-init
chroot {root} /usr/sbin/pocketstack-cloud-init
echo "--- hostname $(chroot {root} hostname)"
echo "--- addr $(ip -4 -o addr show dev ps-ci0 | awk '{{print $4}}')"
echo "--- route $(ip route show 10.80.0.0/16)"
"""
    return subprocess.run(["unshare", "--net", "--uts", "--mount", "--fork", "sh", "-c",
                           script], capture_output=True, text=True, timeout=60)


def test_config_drive_gives_hostname_key_static_nic_and_user_data_once(root):
    instance = str(uuid.uuid4())
    _config_drive(root, "ps-ci-guest", {"mykey": KEY}, USER_DATA, instance)
    res = _boot(root)
    assert res.returncode == 0, res.stderr + res.stdout
    out = res.stdout
    assert f"datasource config-drive, instance {instance}" in out
    assert "--- hostname ps-ci-guest" in out
    assert (root / "etc/hostname").read_text() == "ps-ci-guest\n"
    assert "--- addr 10.79.0.5/24" in out, out
    assert "10.80.0.0/16 via 10.79.0.1" in out, out
    keys = root / "home/cirros/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert (root / "var/lib/ps-ci-count").read_text() == "ran\n"
    # the next boot of the same instance: everything again but the user data
    res = _boot(root)
    assert res.returncode == 0 and "--- addr 10.79.0.5/24" in res.stdout, res.stderr
    assert (root / "var/lib/ps-ci-count").read_text() == "ran\n"
    # a new instance (a rebuild from a snapshot keeps the files) runs its user data
    _config_drive(root, "ps-ci-guest", {"mykey": KEY}, USER_DATA, str(uuid.uuid4()))
    assert _boot(root).returncode == 0
    assert (root / "var/lib/ps-ci-count").read_text() == "ran\nran\n"


def test_tenant_chosen_names_and_keys_never_reach_a_command_line(root):
    pwned = root / "tmp/ps-ci-pwned"
    pwned.unlink(missing_ok=True)
    evil = "evil;touch /tmp/ps-ci-pwned`touch /tmp/ps-ci-pwned`$(touch /tmp/ps-ci-pwned)"
    keys = {"k1": KEY, "k2": "$(touch /tmp/ps-ci-pwned)", "k3": "ssh-rsa AAAA\ncommand=x"}
    _config_drive(root, evil, keys, None, str(uuid.uuid4()))
    res = _boot(root)
    assert res.returncode == 0, res.stderr
    assert not pwned.exists()
    name = (root / "etc/hostname").read_text().strip()
    assert name and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789.-") and len(name) <= 63
    assert f"--- hostname {name}" in res.stdout
    # only lines that look like public keys: the rest is dropped
    lines = (root / "home/cirros/.ssh/authorized_keys").read_text().splitlines()
    assert lines == sorted([KEY, "ssh-rsa AAAA"]), lines
