"""Confined VMs (root): with the qemu compute driver every server's QEMU runs as an
unprivileged host user of its own (the machine-wide idmap registry the container driver
uses too), with no capabilities, no_new_privs and QEMU's seccomp sandbox, owns the files it
writes and opens no host path by name (the driver hands it fds). Booted through the real
`openstack` CLI by the NON-ADMIN ``demo`` user, on the linux network driver and the file
volume driver: two servers are two users; console, stop/start, kill -9 of pocketstack and
re-adoption, NIC and volume hot-plug all work as that user; image properties that try to
inject QEMU options or name host files are inert or refused; a server of the release before
confinement gets its user at its next start; delete frees the user.

The cloud has its own data dir (/tmp/ps-qemu-iso-*), a free port and its own public CIDR;
teardown is ``pocketstack down --purge``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pocketstack.drivers.compute.idmap import DEFAULT_REGISTRY
from pocketstack.services.image.testimages import find_modules
from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

KERNEL = Path("/var/cache/pocketstack/test-images/vmlinuz")
if os.geteuid() != 0:
    pytest.skip("VMs need root (network namespaces, taps)", allow_module_level=True)
if not shutil.which("qemu-system-x86_64") or not shutil.which("qemu-img"):
    pytest.skip("qemu-system-x86_64/qemu-img not installed (Debian qemu-system-x86, "
                "qemu-utils)", allow_module_level=True)
if not KERNEL.is_file() or not any(m.name == "virtio_net.ko" for m in find_modules(KERNEL)):
    pytest.skip(f"no cached kernel {KERNEL} with its virtio modules (run "
                "scripts/build-test-images --with-kernel)", allow_module_level=True)
if not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "nsenter", "unshare", "setpriv",
                                     "losetup")):
    pytest.skip("needs ip, nft, dnsmasq, nsenter, unshare, setpriv and losetup",
                allow_module_level=True)

PUBLIC_CIDR = f"172.31.{(os.getpid() + 100) % 200 + 20}.0/24"
ENV = {"POCKETSTACK_COMPUTE__DRIVER": "qemu", "POCKETSTACK_NETWORK__DRIVER": "linux",
       "POCKETSTACK_VOLUME__DRIVER": "file", "POCKETSTACK_NETWORK__PUBLIC_CIDR": PUBLIC_CIDR}
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"
BOOTED = "pocketstack-busybox: booted"
FLAVOR = "ps-qi-256"
# What a confined QEMU may hold open besides its own server's files and its image's bases.
DEVICES = ("/dev/null", "/dev/net/tun", "/dev/kvm")


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return {k: v.strip() for k, _, v in (line.partition(":") for line in fh)}


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def open_files(pid: int) -> list[str]:
    """What each of the process's fds refers to."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def owner(path: Path | str) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


class Cloud:
    def __init__(self, live: LiveCloud) -> None:
        self.live = live
        self.vms: dict[str, str] = {}  # name -> server id

    def os(self, *args: str, **kw) -> object:
        """The CLI as the demo project's member (not an admin)."""
        return self.live.openstack(*args, user="demo", **kw)

    def dir(self, sid: str) -> Path:
        return self.live.data_dir / "compute/qemu" / sid

    def state(self, sid: str) -> dict:
        return json.loads((self.dir(sid) / "state.json").read_text())

    def pid(self, sid: str) -> int:
        return self.state(sid)["qemu_pid"]

    def show(self, sid: str) -> dict:
        return self.os("server", "show", sid)

    def wait_status(self, sid: str, want: str, timeout: float = 90) -> dict:
        deadline = time.monotonic() + timeout
        while (srv := self.show(sid))["status"] != want:
            assert (srv["status"] != "ERROR" or want == "ERROR") and \
                time.monotonic() < deadline, f"{sid}: {srv['status']}, wanted {want}: {srv}"
            time.sleep(0.3)
        return srv

    def console(self, sid: str) -> str:
        return self.os("console", "log", "show", sid, parse=False)

    def wait_console(self, sid: str, pattern: str, count: int = 1, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, out := self.console(sid))) < count:
            assert time.monotonic() < deadline, \
                f"no {pattern!r} (x{count}) on the console:\n{out[-3000:]}"
            time.sleep(0.5)
        return out

    def ids(self, sid: str) -> tuple[int, int]:
        """The server's QEMU user as the driver recorded it."""
        base = json.loads((self.dir(sid) / "idmap.json").read_text())["base"]
        return base, base

    def assert_confined(self, sid: str) -> tuple[int, int]:
        pid = self.pid(sid)
        st = status(pid)
        uids, gids = st["Uid"].split(), st["Gid"].split()
        assert len(set(uids)) == 1 and len(set(gids)) == 1, st  # real, effective, saved, fs
        uid, gid = int(uids[0]), int(gids[0])
        assert uid != 0 and gid != 0 and (uid, gid) == self.ids(sid)
        assert st["Groups"] == "", st  # no supplementary groups (disk, kvm, root...)
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", st
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, (cap, st[cap])
        argv = cmdline(pid)
        assert argv[argv.index("-sandbox") + 1] == SANDBOX
        assert "-daemonize" not in argv and "-runas" not in argv
        assert os.getsid(pid) == pid  # a session of its own: it outlives pocketstack
        # the registry entry names this server's directory
        slot = json.loads((self.dir(sid) / "idmap.json").read_text())["slot"]
        assert json.loads((DEFAULT_REGISTRY / str(slot)).read_text())["owner"] == \
            str(self.dir(sid))
        # what it holds open: its own server's files, its bases, taps, volumes; no path of
        # anything else on the host
        d, base = str(self.dir(sid)), str(self.live.data_dir / "compute/qemu-base")
        for f in open_files(pid):
            assert f.startswith((d + "/", base + "/", "anon_inode:", "socket:", "pipe:",
                                 "/dev/loop")) or f in DEVICES, f
        return uid, gid


@pytest.fixture(scope="module")
def cloud():
    base = Path(tempfile.mkdtemp(prefix="ps-qemu-iso-"))
    live = LiveCloud(base / "data", extra_env=ENV)
    c = Cloud(live)
    pids: list[int] = []
    try:
        live.start()
        live.openstack("flavor", "create", "--ram", "256", "--disk", "0", "--vcpus", "1",
                       "--public", FLAVOR)
        yield c
    finally:
        for sid in c.vms.values():
            try:
                st = c.state(sid)
                pids += [st.get("qemu_pid"), st.get("netns_pid")]
            except (OSError, ValueError):
                pass
        live.destroy(timeout=180)
        for pid in filter(None, pids):  # only if the purge failed to
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def test_each_vm_is_an_unprivileged_user_of_its_own(cloud, tmp_path):
    user_data = tmp_path / "user-data.sh"
    user_data.write_text("#!/bin/sh\necho pocketstack-user-data > /dev/console\n")
    for name in ("qi-a", "qi-b"):
        srv = cloud.os("server", "create", "--image", "busybox-vm", "--flavor", FLAVOR,
                       "--network", "private", "--user-data", str(user_data), name)
        cloud.vms[name] = srv["id"]
    users = {}
    for name, sid in cloud.vms.items():
        srv = cloud.wait_status(sid, "ACTIVE")
        users[name] = cloud.assert_confined(sid)
        uid, gid = users[name]
        d = cloud.dir(sid)
        # the files QEMU writes are its user's, 0600; the directory and the driver's
        # records are root's (it cannot replace them, nor reach them by path)
        for f in ("disk.qcow2", "console.log", "qemu.log", cloud.state(sid)["qmp"]):
            assert owner(d / f) == (uid, gid, 0o600), f
        assert stat.S_ISSOCK(os.lstat(cloud.state(sid)["qmp"]).st_mode)
        assert owner(d) == (0, 0, 0o700)
        for f in ("config.json", "state.json", "idmap.json"):
            assert owner(d / f)[:2] == (0, 0)
        cfg = json.loads((d / "config.json").read_text())
        for key in ("base", "kernel", "ramdisk"):  # read-only to it
            assert owner(cfg[key]) == (0, 0, 0o644)
        assert owner(Path(cfg["base"]).parent)[2] == 0o700
        # the guest booted, got its fixed IP by DHCP, and its console reaches the tenant
        ip = re.findall(r"\d+\.\d+\.\d+\.\d+", json.dumps(srv["addresses"]))[0]
        out = cloud.wait_console(sid, rf"pocketstack-busybox: eth0 {re.escape(ip)}/\d+")
        assert BOOTED in out and "Linux version" in out
    (ua, ga), (ub, gb) = users["qi-a"], users["qi-b"]
    assert ua != ub and ga != gb
    # as user a: not b's disk, not its own by path, not /etc/shadow
    a, b = cloud.dir(cloud.vms["qi-a"]), cloud.dir(cloud.vms["qi-b"])
    for path in (b / "disk.qcow2", a / "disk.qcow2", cloud.live.data_dir / "passwords.json",
                 "/etc/shadow"):
        res = subprocess.run(["head", "-c1", str(path)], user=ua, group=ga, extra_groups=[],
                             capture_output=True, text=True)
        assert res.returncode != 0 and "Permission denied" in res.stderr, (path, res)


def test_kill9_of_pocketstack_keeps_the_vm_and_readopts_it(cloud):
    sid = cloud.vms["qi-a"]
    pid = cloud.pid(sid)
    cloud.live.stop(kill=True)
    assert alive(pid)  # not daemonized, but in a session of its own
    cloud.live.start()
    cloud.wait_status(sid, "ACTIVE")
    assert cloud.pid(sid) == pid
    cloud.os("server", "pause", sid, parse=False)  # QMP to the re-adopted QEMU
    cloud.wait_status(sid, "PAUSED")
    cloud.os("server", "unpause", sid, parse=False)
    cloud.wait_status(sid, "ACTIVE")
    cloud.assert_confined(sid)


def test_stop_start_runs_as_the_same_user(cloud):
    sid = cloud.vms["qi-a"]
    uid = cloud.assert_confined(sid)
    pid = cloud.pid(sid)
    cloud.os("server", "stop", sid, parse=False)
    cloud.wait_status(sid, "SHUTOFF")
    assert not alive(pid)
    cloud.os("server", "start", sid, parse=False)
    cloud.wait_status(sid, "ACTIVE")
    assert cloud.pid(sid) != pid and cloud.assert_confined(sid) == uid
    cloud.wait_console(sid, BOOTED, count=2)


def test_nic_hotplug_as_that_user(cloud):
    sid = cloud.vms["qi-a"]
    cloud.os("network", "create", "qi-net2")
    cloud.os("subnet", "create", "--network", "qi-net2", "--subnet-range", "10.79.0.0/24",
             "qi-subnet2")
    boots = cloud.console(sid).count(BOOTED)
    cloud.wait_console(sid, BOOTED, count=boots)
    taps = sum(f == "/dev/net/tun" for f in open_files(cloud.pid(sid)))
    cloud.os("server", "add", "network", sid, "qi-net2", parse=False)
    (port,) = cloud.os("port", "list", "--server", sid, "--network", "qi-net2")
    ip = port["Fixed IP Addresses"][0]["ip_address"]
    cloud.wait_console(sid, rf"pocketstack-busybox: eth1 {re.escape(ip)}/\d+", timeout=60)
    # the new tap was opened by the driver and handed over: QEMU holds one more
    assert sum(f == "/dev/net/tun" for f in open_files(cloud.pid(sid))) == taps + 1
    cloud.assert_confined(sid)
    cloud.os("server", "remove", "port", sid, port["ID"], parse=False)
    cloud.wait_console(sid, r"eth1 [\d.]+/24[\s\S]*pocketstack-busybox: nics eth0(?! eth1)",
                       timeout=60)
    assert sum(f == "/dev/net/tun" for f in open_files(cloud.pid(sid))) == taps


def test_volume_hotplug_and_boot_as_that_user(cloud):
    sid = cloud.vms["qi-a"]
    vol = cloud.os("volume", "create", "--size", "1", "qi-vol1")
    deadline = time.monotonic() + 60
    while (st := cloud.os("volume", "show", vol["id"])["status"]) != "available":
        assert st != "error" and time.monotonic() < deadline, st
        time.sleep(0.3)
    cloud.os("server", "add", "volume", sid, vol["id"], parse=False)
    dev = json.loads((cloud.dir(sid) / "volumes.json").read_text())["/dev/vdb"]
    before = owner(dev)
    cloud.wait_console(sid, r"pocketstack-busybox: disks vda vdb", timeout=60)
    # QEMU got the device's fd: the node keeps its owner and mode (root's)
    assert dev in open_files(cloud.pid(sid)) and owner(dev) == before and before[0] == 0
    cloud.assert_confined(sid)
    # at boot too: the driver opens it and QEMU inherits it (-add-fd)
    out = cloud.console(sid)
    boots, seen = out.count(BOOTED), out.count("disks vda vdb")
    cloud.os("server", "stop", sid, parse=False)
    cloud.wait_status(sid, "SHUTOFF")
    cloud.os("server", "start", sid, parse=False)
    cloud.wait_status(sid, "ACTIVE")
    assert any(a.endswith(",opaque=vol-vdb") for a in cmdline(cloud.pid(sid)))
    cloud.wait_console(sid, BOOTED, count=boots + 1)
    out = cloud.wait_console(sid, "disks vda vdb", count=seen + 1, timeout=30)
    assert dev in open_files(cloud.pid(sid)), out[-1000:]
    cloud.os("server", "remove", "volume", sid, vol["id"], parse=False)
    cloud.wait_console(sid, r"disks vda vdb[\s\S]*pocketstack-busybox: disks vda(?! vdb)",
                       timeout=60)
    assert dev not in open_files(cloud.pid(sid)) and owner(dev) == before
    cloud.os("volume", "delete", vol["id"], parse=False)


def _vm_image(cloud: Cloud, tmp_path: Path, name: str, **props: str) -> str:
    """An ami of the demo project booting the public busybox kernel and ramdisk."""
    vm = cloud.os("image", "show", "busybox-vm")["properties"]
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(2**20))
    args = ["image", "create", "--disk-format", "ami", "--container-format", "ami",
            "--file", str(disk), "--property", f"kernel_id={vm['kernel_id']}",
            "--property", f"ramdisk_id={vm['ramdisk_id']}"]
    for k, v in props.items():
        args += ["--property", f"{k}={v}"]
    return cloud.os(*args, name)["id"]


def _fault(cloud: Cloud, sid: str) -> str:
    srv = cloud.wait_status(sid, "ERROR", timeout=60)
    return json.dumps(srv.get("fault"))


def test_image_properties_cannot_inject_qemu_options(cloud, tmp_path):
    line = ("root=/dev/vda console=ttyS0 x,file=/etc/shadow -drive file=/etc/shadow,if=virtio "
            "-kernel /etc/shadow")
    img = _vm_image(cloud, tmp_path, "qi-inert", os_command_line=line,
                    hw_disk_bus="virtio,file=/etc/shadow",
                    hw_vif_model="virtio,netdev=x,script=/etc/shadow",
                    hw_qemu_guest_agent="yes,chardev=x,path=/etc/shadow")
    srv = cloud.os("server", "create", "--image", img, "--flavor", FLAVOR, "--network",
                   "private", "--property", "k=v,file=/etc/shadow", "qi,file=/etc/shadow")
    sid = cloud.vms["qi-inert"] = srv["id"]
    cloud.wait_status(sid, "ACTIVE")
    cloud.assert_confined(sid)
    argv = cmdline(cloud.pid(sid))
    # the whole line is -append's one argument, handed to the guest kernel as it is
    assert argv[argv.index("-append") + 1] == line
    assert [a for a in argv if "/etc/shadow" in a] == [line]
    assert "-drive" not in argv and argv.count("-kernel") == 1
    out = cloud.wait_console(sid, BOOTED)
    assert "x,file=/etc/shadow" in out  # the guest's own command line ("Command line: ...")
    assert "root:" not in out
    cloud.os("server", "delete", "--wait", sid, parse=False)
    del cloud.vms["qi-inert"]

    # a newline would end the kernel's line: refused, with the reason
    img = _vm_image(cloud, tmp_path, "qi-newline",
                    os_command_line="root=/dev/vda console=ttyS0\n-hda /etc/shadow")
    srv = cloud.os("server", "create", "--image", img, "--flavor", FLAVOR, "--nic", "none",
                   "qi-newline")
    assert "os_command_line contains control characters" in _fault(cloud, srv["id"])
    cloud.os("server", "delete", "--wait", srv["id"], parse=False)


def test_images_naming_host_files_or_other_projects_images_are_refused(cloud, tmp_path):
    # a disk whose header names a host file: the image service refuses the upload (and the
    # driver would refuse it as a base: tests/unit/compute/test_qemu_driver.py)
    bad = tmp_path / "backing.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "/etc/shadow",
                    "-F", "raw", str(bad), "1M"], check=True)
    vmdk = tmp_path / "flat.vmdk"
    vmdk.write_text('# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                    'createType="monolithicFlat"\nRW 1 FLAT "/etc/shadow" 0\n')
    for name, fmt, path in (("qi-backing", "qcow2", bad), ("qi-vmdk", "vmdk", vmdk)):
        res = cloud.os("image", "create", "--disk-format", fmt, "--container-format", "bare",
                       "--file", str(path), name, check=False)
        assert res.returncode != 0 and "400" in res.stderr, res  # the upload is refused
        for img in cloud.os("image", "list", "--name", name):  # unless the CLI removed it
            assert img["Status"] != "active"  # nothing to boot
            cloud.os("image", "delete", img["ID"], parse=False)

    # kernel_id naming another project's private image: not loaded into this guest
    private = cloud.live.openstack("image", "create", "--disk-format", "aki",
                                   "--container-format", "aki", "--private", "--file",
                                   str(KERNEL), "qi-admins-kernel")["id"]
    vm = cloud.os("image", "show", "busybox-vm")["properties"]
    disk = tmp_path / "disk.raw"
    disk.write_bytes(bytes(2**20))
    img = cloud.os("image", "create", "--disk-format", "ami", "--container-format", "ami",
                   "--file", str(disk), "--property", f"kernel_id={private}", "--property",
                   f"ramdisk_id={vm['ramdisk_id']}", "qi-foreign-kernel")["id"]
    srv = cloud.os("server", "create", "--image", img, "--flavor", FLAVOR, "--nic", "none",
                   "qi-foreign")
    fault = _fault(cloud, srv["id"])
    assert private in fault and "could not be found" in fault, fault
    assert not (cloud.live.data_dir / "compute/qemu-base" / private).exists()
    cloud.os("server", "delete", "--wait", srv["id"], parse=False)
    cloud.live.openstack("image", "delete", private, parse=False)


def test_server_of_the_release_before_confinement_gets_its_user_at_start(cloud):
    """As an upgrade finds it: QEMU ran as root, its files root's, no idmap.json, the
    directory 0755, bases the image store's 0600."""
    from pocketstack.drivers.compute.idmap import IdmapRegistry

    sid = cloud.vms["qi-b"]
    d = cloud.dir(sid)
    cloud.os("server", "stop", sid, parse=False)
    cloud.wait_status(sid, "SHUTOFF")
    rec = json.loads((d / "idmap.json").read_text())
    IdmapRegistry().free(rec["slot"], d)
    (d / "idmap.json").unlink()
    os.chmod(d, 0o755)
    for f in ("disk.qcow2", "console.log", "qemu.log"):
        os.chown(d / f, 0, 0)
        os.chmod(d / f, 0o644)
    cfg = json.loads((d / "config.json").read_text())
    for key in ("base", "kernel", "ramdisk"):
        os.chmod(cfg[key], 0o600)
    boots = cloud.console(sid).count(BOOTED)
    cloud.os("server", "start", sid, parse=False)
    cloud.wait_status(sid, "ACTIVE")
    uid, gid = cloud.assert_confined(sid)
    assert (d / "idmap.json").exists()
    for f in ("disk.qcow2", "console.log", "qemu.log"):
        assert owner(d / f) == (uid, gid, 0o600), f
    assert owner(d) == (0, 0, 0o700)
    for key in ("base", "kernel", "ramdisk"):
        assert owner(cfg[key]) == (0, 0, 0o644)
    cloud.wait_console(sid, BOOTED, count=boots + 1)


def test_delete_frees_the_user(cloud):
    users = {}
    for name, sid in list(cloud.vms.items()):
        rec = json.loads((cloud.dir(sid) / "idmap.json").read_text())
        users[sid] = (cloud.ids(sid)[0], rec, cloud.pid(sid), cloud.state(sid)["netns_pid"])
        cloud.os("server", "delete", "--wait", sid, parse=False)
        del cloud.vms[name]
    for sid, (uid, rec, qemu, holder) in users.items():
        assert not cloud.dir(sid).exists() and not alive(qemu) and not alive(holder)
        slot = DEFAULT_REGISTRY / str(rec["slot"])
        assert not slot.exists() or json.loads(slot.read_text())["owner"] != \
            str(cloud.dir(sid))
        for p in Path("/proc").iterdir():  # no QEMU runs as that user any more
            if p.name.isdigit():
                try:
                    st = status(int(p.name))
                except OSError:
                    continue
                assert not (st["Uid"].split()[0] == str(uid) and
                            st["Name"].startswith(("qemu", "ps-qemu"))), p.name
