"""Real virtual machines (root): the qemu compute driver booting the seeded busybox ami
(Debian kernel + busybox initramfs through kernel_id/ramdisk_id) under QEMU (TCG here, no
KVM), driven through the real `openstack` CLI against a live ``pocketstack up`` with the
linux network driver: boot, console, pause, stop/start, kill -9 of pocketstack and
re-adoption of the running QEMU, DHCP of the port's fixed IP inside the guest, volume
and NIC hot-plug, and delete leaving nothing behind.

The cloud has its own data dir (/tmp/ps-qemu-*), port (8960-8969) and public CIDR; teardown
is ``pocketstack down --purge``, then a check that no QEMU, namespace or link is left.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketstack.services.image.testimages import find_modules
from tests.conftest import LiveCloud

pytestmark = pytest.mark.system

KERNEL = Path("/var/cache/pocketstack/test-images/vmlinuz")
if os.geteuid() != 0:
    pytest.skip("VMs need root (network namespaces, taps)", allow_module_level=True)
if not shutil.which("qemu-system-x86_64") or not shutil.which("qemu-img"):
    pytest.skip("qemu-system-x86_64/qemu-img not installed (Debian qemu-system-x86, "
                "qemu-utils)", allow_module_level=True)
if not KERNEL.is_file():
    pytest.skip(f"no cached kernel {KERNEL} (run scripts/build-test-images --with-kernel)",
                allow_module_level=True)
if not any(m.name == "virtio_net.ko" for m in find_modules(KERNEL)):
    pytest.skip(f"no virtio modules for {KERNEL} (the VM would have no NIC; run "
                "scripts/build-test-images --with-kernel)", allow_module_level=True)
if not all(shutil.which(t) for t in ("ip", "nft", "dnsmasq", "nsenter", "unshare")):
    pytest.skip("needs ip, nft, dnsmasq, nsenter and unshare", allow_module_level=True)

PUBLIC_CIDR = f"172.31.{os.getpid() % 200 + 20}.0/24"
ENV = {"POCKETSTACK_COMPUTE__DRIVER": "qemu", "POCKETSTACK_NETWORK__DRIVER": "linux",
       "POCKETSTACK_NETWORK__PUBLIC_CIDR": PUBLIC_CIDR}
BOOTED = "pocketstack-busybox: booted"
FLAVOR = "ps-qemu-256"


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class VM:
    """The live cloud and the one server the module boots on it."""

    def __init__(self, live: LiveCloud) -> None:
        self.live = live
        self.id = ""
        self.fixed_ip = ""
        self.timings: dict[str, float] = {}

    @property
    def dir(self) -> Path:
        return self.live.data_dir / "compute/qemu" / self.id

    def state(self) -> dict:
        return json.loads((self.dir / "state.json").read_text())

    def status(self) -> str:
        return self.live.openstack("server", "show", self.id)["status"]

    def wait_status(self, want: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (st := self.status()) != want:
            assert st != "ERROR" and time.monotonic() < deadline, \
                f"{self.id}: {st}, wanted {want}: {self.live.openstack('server', 'show', self.id)}"
            time.sleep(0.3)

    def console(self) -> str:
        return self.live.openstack("console", "log", "show", self.id, parse=False)

    def wait_console(self, pattern: str, count: int = 1, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while True:
            out = self.console()
            if len(re.findall(pattern, out)) >= count:
                return out
            assert time.monotonic() < deadline, f"no {pattern!r} (x{count}) on the console:\n" \
                                                f"{out[-3000:]}"
            time.sleep(0.5)

    def qmp_hmp(self, command: str) -> str:
        from pocketstack.drivers.compute.qemu_process import QMP

        with QMP(self.state()["qmp"], timeout=10) as q:
            return q.cmd("human-monitor-command", **{"command-line": command})

    def qmp(self, *cmds: str) -> list:
        """Ask the running QEMU through its own monitor socket."""
        from pocketstack.drivers.compute.qemu_process import QMP

        with QMP(self.state()["qmp"], timeout=10) as q:
            return [q.cmd(c) for c in cmds]


@pytest.fixture(scope="module")
def vm():
    base = Path(tempfile.mkdtemp(prefix="ps-qemu-"))
    live = LiveCloud(base / "data", extra_env=ENV)  # a free port: runs may overlap
    v = VM(live)
    pids: list[int] = []
    try:
        live.start()
        live.openstack("network", "create", "ps-qemu-net")
        live.openstack("subnet", "create", "--network", "ps-qemu-net", "--subnet-range",
                       "10.77.0.0/24", "ps-qemu-subnet")
        # disk 0: the root disk is the image's size (1 MiB), which keeps snapshots small
        live.openstack("flavor", "create", "--ram", "256", "--disk", "0", "--vcpus", "1",
                       FLAVOR)
        yield v
    finally:
        if v.id and v.dir.exists():
            try:
                st = v.state()
                pids = [st.get("qemu_pid"), st.get("netns_pid")]
            except (OSError, ValueError):
                pass
        live.destroy()
        for pid in filter(None, pids):  # only if the purge failed to
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def test_boot_console_and_fixed_ip(vm):
    c = vm.live
    t0 = time.monotonic()
    srv = c.openstack("server", "create", "--image", "busybox-vm", "--flavor", FLAVOR,
                      "--network", "ps-qemu-net", "ps-qemu-vm1")
    vm.id = srv["id"]
    vm.wait_status("ACTIVE")
    vm.timings["active"] = time.monotonic() - t0
    pid = vm.state()["qemu_pid"]
    assert alive(pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"qemu-system-x86_64" in cmdline[0]
    assert cmdline[cmdline.index(b"-m") + 1] == b"256"  # the flavor's RAM
    # QEMU runs in a network namespace of its own.
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    # a copy-on-write overlay over the image
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json",
                                      str(vm.dir / "disk.qcow2")], capture_output=True,
                                     text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info.get("backing-filename")
    out = vm.wait_console(BOOTED)
    vm.timings["booted"] = time.monotonic() - t0
    assert "Linux version" in out
    # The guest's udhcpc got the port's fixed IP from dnsmasq (by the port's MAC, which the
    # guest NIC carries): the veth -> bridge -> tap path in the server's namespace works.
    addrs = re.findall(r"\d+\.\d+\.\d+\.\d+", json.dumps(c.openstack("server", "show",
                                                                       vm.id)["addresses"]))
    assert len(addrs) == 1, addrs
    vm.fixed_ip = addrs[0]
    assert f"pocketstack-busybox: eth0 {vm.fixed_ip}/24" in out, out[-2000:]
    (st,) = vm.qmp("query-status")
    assert st["status"] == "running"
    print(f"create->ACTIVE {vm.timings['active']:.1f}s, ->booted {vm.timings['booted']:.1f}s")


def test_pause_unpause(vm):
    c = vm.live
    c.openstack("server", "pause", vm.id, parse=False)
    vm.wait_status("PAUSED")
    assert vm.qmp("query-status")[0]["status"] == "paused"
    c.openstack("server", "unpause", vm.id, parse=False)
    vm.wait_status("ACTIVE")
    assert vm.qmp("query-status")[0]["status"] == "running"


def test_resize_then_stop_start(vm):
    c = vm.live
    pid = vm.state()["qemu_pid"]
    # resize: the new flavor's memory applies at the next power on (the VM runs on)
    c.openstack("flavor", "create", "--ram", "384", "--disk", "0", "--vcpus", "1",
                "ps-qemu-384")
    c.openstack("server", "resize", "--flavor", "ps-qemu-384", vm.id, parse=False)
    vm.wait_status("VERIFY_RESIZE")
    c.openstack("server", "resize", "confirm", vm.id, parse=False)
    vm.wait_status("ACTIVE")
    assert vm.state()["qemu_pid"] == pid
    assert json.loads((vm.dir / "config.json").read_text())["memory_mb"] == 384
    c.openstack("server", "stop", vm.id, parse=False)
    vm.wait_status("SHUTOFF", timeout=60)
    assert not alive(pid)
    # graceful: QMP system_powerdown, the guest's acpid saw the power button and powered off
    assert "pocketstack-busybox: power button, powering off" in vm.console()
    assert (vm.dir / "disk.qcow2").exists()
    c.openstack("server", "start", vm.id, parse=False)
    vm.wait_status("ACTIVE")
    pid2 = vm.state()["qemu_pid"]
    assert pid2 != pid and alive(pid2)
    cmdline = Path(f"/proc/{pid2}/cmdline").read_bytes().split(b"\0")
    assert cmdline[cmdline.index(b"-m") + 1] == b"384"
    out = vm.wait_console(BOOTED, count=2)
    # the port was plugged again into the same namespace and the new boot got its address
    assert out.count(f"pocketstack-busybox: eth0 {vm.fixed_ip}/24") == 2, out[-2000:]


def test_hard_reboot_is_a_new_qemu(vm):
    c = vm.live
    pid = vm.state()["qemu_pid"]
    c.openstack("server", "reboot", "--hard", "--wait", vm.id, parse=False)
    vm.wait_status("ACTIVE")
    pid2 = vm.state()["qemu_pid"]
    assert pid2 != pid and alive(pid2) and not alive(pid)


def test_snapshot_of_the_running_vm(vm):
    c = vm.live
    pid = vm.state()["qemu_pid"]
    img = c.openstack("server", "image", "create", "--name", "ps-qemu-snap1", "--wait", vm.id)
    try:
        img = c.openstack("image", "show", img["id"])
        assert img["status"] == "active"
        assert img["disk_format"] == "ami"  # the server's image's format (raw data)
        assert img["size"] == 2**20  # the image's 1 MiB disk (flavor disk 0)
        props = img["properties"]
        assert props["instance_uuid"] == vm.id and props["kernel_id"]  # still bootable
        assert vm.status() == "ACTIVE" and vm.state()["qemu_pid"] == pid
        assert vm.qmp("query-status")[0]["status"] == "running"  # resumed after the copy
    finally:
        c.openstack("image", "delete", img["id"], parse=False)


def boot_sector_disk(path: Path, text: bytes) -> None:
    """A 1 MiB raw disk whose boot sector writes ``text`` to COM1 and halts (no kernel)."""
    code = bytes([0xFA, 0x31, 0xC0, 0x8E, 0xD8, 0xFC])  # cli; ds = 0; cld
    msg_at = 0x7C00 + len(code) + 17
    code += bytes([0xBE, msg_at & 0xFF, msg_at >> 8, 0xBA, 0xF8, 0x03])  # si = msg; dx = COM1
    code += bytes([0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8])  # lodsb; jz done; out; loop
    code += bytes([0xF4, 0xEB, 0xFD])  # done: hlt; jmp done
    sector = (code + text + b"\0").ljust(510, b"\0") + b"\x55\xaa"
    path.write_bytes(sector.ljust(2**20, b"\0"))


def test_raw_disk_image_boots_through_the_firmware(vm, tmp_path):
    c = vm.live
    boot_sector_disk(tmp_path / "bs.img", b"pocketstack-bootsector: hello\r\n")
    img = c.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                      "--file", str(tmp_path / "bs.img"), "ps-qemu-bootsector")
    srv = c.openstack("server", "create", "--image", img["id"], "--flavor", FLAVOR,
                      "--nic", "none", "--wait", "ps-qemu-bs1")
    try:
        assert srv["status"] == "ACTIVE"
        cfg = json.loads((c.data_dir / "compute/qemu" / srv["id"] / "config.json").read_text())
        assert "kernel" not in cfg and cfg["base_format"] == "raw"
        deadline = time.monotonic() + 60
        while "pocketstack-bootsector: hello" not in (out := c.openstack(
                "console", "log", "show", srv["id"], parse=False)):
            assert time.monotonic() < deadline, out
            time.sleep(0.5)
    finally:
        c.openstack("server", "delete", "--wait", srv["id"], parse=False)
        c.openstack("image", "delete", img["id"], parse=False)
    assert not (c.data_dir / "compute/qemu" / srv["id"]).exists()


def test_container_image_is_refused_with_a_reason(vm):
    c = vm.live
    srv = c.openstack("server", "create", "--image", "busybox", "--flavor", FLAVOR,
                      "--nic", "none", "ps-qemu-bad1")
    deadline = time.monotonic() + 60
    while (shown := c.openstack("server", "show", srv["id"]))["status"] != "ERROR":
        assert time.monotonic() < deadline, shown
        time.sleep(0.5)
    assert "container root file system" in json.dumps(shown.get("fault")), shown
    c.openstack("server", "delete", "--wait", srv["id"], parse=False)
    assert not (c.data_dir / "compute/qemu" / srv["id"]).exists()


def test_kill9_readopts_the_running_vm(vm):
    c = vm.live
    pid = vm.state()["qemu_pid"]
    c.stop(kill=True)
    assert alive(pid)  # the VM runs on without pocketstack
    c.start()
    vm.wait_status("ACTIVE")
    assert vm.state()["qemu_pid"] == pid and alive(pid)
    assert c.openstack("server", "show", vm.id)["OS-EXT-STS:power_state"] in ("Running", 1)
    assert vm.qmp("query-status")[0]["status"] == "running"


def test_volume_hotplug_attach_detach(vm):
    c = vm.live
    vol = c.openstack("volume", "create", "--size", "1", "ps-qemu-vol1")
    deadline = time.monotonic() + 60
    while (st := c.openstack("volume", "show", vol["id"])["status"]) != "available":
        assert st not in ("error",) and time.monotonic() < deadline, st
        time.sleep(0.5)
    c.openstack("server", "add", "volume", vm.id, vol["id"], parse=False)
    att = c.openstack("server", "volume", "list", vm.id)
    assert [a["Device"] for a in att] == ["/dev/vdb"], att
    blocks = {b.get("inserted", {}).get("node-name"): b for b in vm.qmp("query-block")[0]}
    assert "vol-vdb" in blocks, blocks
    host_dev = blocks["vol-vdb"]["inserted"]["file"]
    assert host_dev.startswith("/dev/"), host_dev
    # the guest kernel saw the new virtio disk
    vm.wait_console(r"pocketstack-busybox: disks vda vdb", timeout=60)
    c.openstack("server", "remove", "volume", vm.id, vol["id"], parse=False)
    assert "vol-vdb" not in {b.get("inserted", {}).get("node-name")
                             for b in vm.qmp("query-block")[0]}
    assert c.openstack("server", "volume", "list", vm.id) == []
    # ...and let it go (the guest acknowledged the ACPI eject)
    vm.wait_console(r"disks vda vdb[\s\S]*pocketstack-busybox: disks vda(?! vdb)", timeout=60)
    c.openstack("volume", "delete", vol["id"], parse=False)


def _links(holder: int) -> dict[str, str]:
    """The server namespace's links: name -> its `ip -o link` line."""
    out = subprocess.run(["nsenter", f"--net=/proc/{holder}/ns/net", "ip", "-o", "link"],
                         capture_output=True, text=True, check=True).stdout
    return {line.split(": ")[1].split("@")[0]: line for line in out.splitlines()}


def _nic_macs(vm: VM) -> list[str]:
    """The MACs of the guest's NICs, as QEMU's monitor lists them."""
    return re.findall(r"model=virtio-net-pci,macaddr=([0-9a-f:]+)", vm.qmp_hmp("info network"))


def test_interface_hotplug_attach_detach(vm, monkeypatch):
    """attach_interface / detach_interface of the driver (what os-interface calls) on the
    running VM, with a made-up port: the test plugs its link into the server's namespace
    as the network service would (a veth renamed eth7 carrying the port's MAC)."""
    from pocketstack.drivers.compute import qemu_nics
    from pocketstack.drivers.compute.base import DriverError
    from pocketstack.drivers.compute.qemu import QemuDriver

    c = vm.live
    drv = QemuDriver(SimpleNamespace(compute=SimpleNamespace(qemu_accel="tcg"),
                                     data_dir=c.data_dir))
    mac, h = "fa:16:3e:7e:57:01", "fa163e7e5701"
    host_end = f"ps-qn{os.getpid() % 100000}"
    holder = vm.state()["netns_pid"]
    port_mac = _nic_macs(vm)[0]

    def attached() -> None:
        assert _nic_macs(vm) == [port_mac, mac]
        links = _links(holder)
        assert f" master b{h} " in links[f"t{h}"] and f" master b{h} " in links["eth7"]
        # the port's link carries another MAC (the bridge would keep the guest's frames)
        assert f"link/ether fe{mac[2:]} " in links["eth7"] and f"alias {mac}" in links["eth7"]
        assert json.loads((vm.dir / "config.json").read_text())["macs"] == [port_mac, mac]

    try:
        subprocess.run(["ip", "link", "add", host_end, "type", "veth", "peer", "name",
                        host_end + "g"], check=True)
        subprocess.run(["ip", "link", "set", host_end + "g", "netns", str(holder)], check=True)
        subprocess.run(["nsenter", f"--net=/proc/{holder}/ns/net", "ip", "-batch", "-"],
                       input=f"link set {host_end}g name eth7\nlink set eth7 address {mac}\n"
                             "link set eth7 up\n", text=True, check=True)
        drv.attach_interface("", vm.id, mac)
        drv.attach_interface("", vm.id, mac)  # idempotent
        attached()
        # the guest kernel saw the new virtio NIC (and asked for DHCP on it)
        vm.wait_console(r"pocketstack-busybox: nics eth0 eth1\b", timeout=60)

        drv.detach_interface("", vm.id, mac)
        assert _nic_macs(vm) == [port_mac]
        links = _links(holder)
        assert f"t{h}" not in links and f"b{h}" not in links
        assert "master" not in links["eth7"]  # until the network service unplugs it
        assert json.loads((vm.dir / "config.json").read_text())["macs"] == [port_mac]
        # the guest acknowledged the ACPI eject
        vm.wait_console(r"nics eth0 eth1\b[\s\S]*pocketstack-busybox: nics eth0(?! eth1)",
                        timeout=60)
        drv.detach_interface("", vm.id, mac)  # absent is success

        # again, with the link still carrying the rewritten MAC: its alias names the port
        drv.attach_interface("", vm.id, mac)
        attached()

        # a paused guest cannot acknowledge the eject: the detach reports it, but the port
        # is cut off (compute releases it regardless) and the NIC leaves on unpause
        c.openstack("server", "pause", vm.id, parse=False)
        vm.wait_status("PAUSED")
        monkeypatch.setattr(qemu_nics, "UNPLUG_TIMEOUT", 1)
        with pytest.raises(DriverError, match="did not release its NIC"):
            drv.detach_interface("", vm.id, mac)
        assert f"t{h}" not in _links(holder)
        assert json.loads((vm.dir / "config.json").read_text())["macs"] == [port_mac]
        with pytest.raises(DriverError, match="not yet released"):
            drv.attach_interface("", vm.id, mac)
        c.openstack("server", "unpause", vm.id, parse=False)
        vm.wait_status("ACTIVE")
        deadline = time.monotonic() + 30
        while _nic_macs(vm) != [port_mac]:
            assert time.monotonic() < deadline, vm.qmp_hmp("info network")
            time.sleep(0.2)
        drv.attach_interface("", vm.id, mac)
        attached()

        # a stop/start boots QEMU with config.json's NICs (the ports the compute service
        # names at power on, when it names them), and the namespace keeps only their taps
        boots = vm.console().count(BOOTED)
        c.openstack("server", "stop", vm.id, parse=False)
        vm.wait_status("SHUTOFF", timeout=60)
        c.openstack("server", "start", vm.id, parse=False)
        vm.wait_status("ACTIVE")
        macs = json.loads((vm.dir / "config.json").read_text())["macs"]
        assert macs[0] == port_mac and set(macs) <= {port_mac, mac}, macs
        cmdline = Path(f"/proc/{vm.state()['qemu_pid']}/cmdline").read_bytes().split(b"\0")
        # each NIC's tap, opened by the driver and inherited by QEMU (an unprivileged user)
        assert [re.sub(rb"fd=\d+$", b"fd=N", a) for a in cmdline if a.startswith(b"tap,")] \
            == [f"tap,id=net-{m.replace(':', '')},fd=N".encode() for m in macs]
        assert _nic_macs(vm) == macs
        taps = sorted(n for n in _links(holder) if re.fullmatch(r"[bt][0-9a-f]{12}", n))
        assert taps == sorted(f"{k}{m.replace(':', '')}" for m in macs for k in "bt"), taps
        out = vm.wait_console(BOOTED, count=boots + 1)
        last = out[out.rindex("Linux version"):]
        assert f"pocketstack-busybox: eth0 {vm.fixed_ip}/24" in last, last
        if mac in macs:  # kept: it asked for an address and got none (no DHCP behind it)
            assert "pocketstack-busybox: eth1 no-address" in last, last
        print(f"after stop/start the made-up NIC was {'kept' if mac in macs else 'dropped'}")
        drv.detach_interface("", vm.id, mac)
        assert _nic_macs(vm) == [port_mac]
        assert f"t{h}" not in _links(holder)
    finally:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True)
    # the port's own NIC still works: its bridge and tap are there, eth0 on its bridge
    ph = port_mac.replace(":", "")
    links = _links(holder)
    assert f" master b{ph} " in links.get(f"t{ph}", "") and f" master b{ph} " in \
        links.get("eth0", ""), links


def test_two_networks_are_two_nics_and_os_interface_hotplugs(vm):
    """A VM booted on two networks has a NIC per port, each with its fixed IP by DHCP; `server
    remove port` takes one out of the guest, `server add network` hot-plugs a new one, which
    gets its address from the network's dnsmasq through the namespace's bridge and tap."""
    c = vm.live
    c.openstack("network", "create", "ps-qemu-net2")
    c.openstack("subnet", "create", "--network", "ps-qemu-net2", "--subnet-range",
                "10.78.0.0/24", "ps-qemu-subnet2")
    srv = c.openstack("server", "create", "--image", "busybox-vm", "--flavor", FLAVOR,
                      "--network", "ps-qemu-net", "--network", "ps-qemu-net2", "--wait",
                      "ps-qemu-vm2")
    two = VM(c)
    two.id = srv["id"]
    try:
        def port(net: str) -> tuple[str, str, str]:
            """(id, MAC, fixed IP) of the server's one port on ``net``"""
            (p,) = c.openstack("port", "list", "--server", two.id, "--network", net)
            return p["ID"], p["MAC Address"], p["Fixed IP Addresses"][0]["ip_address"]

        (p1, mac1, ip1), (p2, mac2, ip2) = port("ps-qemu-net"), port("ps-qemu-net2")
        out = two.wait_console(BOOTED)
        assert f"pocketstack-busybox: eth0 {ip1}/24" in out, out[-2000:]
        assert f"pocketstack-busybox: eth1 {ip2}/24" in out, out[-2000:]
        assert _nic_macs(two) == [mac1, mac2]

        c.openstack("server", "remove", "port", two.id, p2, parse=False)
        assert _nic_macs(two) == [mac1]
        two.wait_console(r"pocketstack-busybox: nics eth0(?! eth1)", timeout=60)

        c.openstack("server", "add", "network", two.id, "ps-qemu-net2", parse=False)
        _, mac3, ip3 = port("ps-qemu-net2")
        assert mac3 != mac2 and _nic_macs(two) == [mac1, mac3]
        # the hot-plugged NIC's DHCP went out through the namespace's new bridge and tap
        two.wait_console(rf"nics eth0(?! eth1)[\s\S]*pocketstack-busybox: eth1 {ip3}/24",
                         timeout=60)
        # both ports are plugged again after a stop/start: each NIC gets its address on
        # the next boot. The namespace holder says it is older than this release's (as one
        # started before an upgrade would), so the start replaces it and its namespace.
        c.openstack("server", "stop", two.id, parse=False)
        two.wait_status("SHUTOFF", timeout=60)
        st = two.state()
        old_holder = st.pop("netns_v") and st["netns_pid"]
        (two.dir / "state.json").write_text(json.dumps(st))
        c.openstack("server", "start", two.id, parse=False)
        out = two.wait_console(BOOTED, count=2)
        last = out[out.rindex("Linux version"):]
        assert f"pocketstack-busybox: eth0 {ip1}/24" in last, last
        assert f"pocketstack-busybox: eth1 {ip3}/24" in last, last
        assert _nic_macs(two) == [mac1, mac3]
        assert two.state()["netns_pid"] != old_holder and not alive(old_holder)
    finally:
        c.openstack("server", "delete", "--wait", two.id, parse=False)
        c.openstack("subnet", "delete", "ps-qemu-subnet2", parse=False)
        c.openstack("network", "delete", "ps-qemu-net2", parse=False)
    assert not two.dir.exists()


def test_delete_leaves_nothing(vm):
    c = vm.live
    st = vm.state()
    qemu, holder = st["qemu_pid"], st["netns_pid"]
    netns = os.readlink(f"/proc/{holder}/ns/net")
    c.openstack("server", "delete", "--wait", vm.id, parse=False)
    assert not alive(qemu) and not alive(holder)
    assert not vm.dir.exists()
    assert not list((c.data_dir / "compute/qemu-base").glob("*"))
    # no process is left in the server's namespace
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                assert os.readlink(p / "ns/net") != netns, f"pid {p.name} still in it"
            except OSError:
                pass
