"""The qemu compute driver's pure parts: command line, power state mapping, image checks
(no QEMU is started here; tests/system/compute/test_qemu_servers.py boots real VMs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketstack.drivers.compute import REGISTRY
from pocketstack.drivers.compute.base import (CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN,
                                              SUSPENDED, DriverError, InstanceSpec)
from pocketstack.drivers.compute.qemu import QemuDriver
from pocketstack.drivers.compute.qemu_process import (DEFAULT_APPEND, nic_hex,
                                                      power_state_of, qemu_argv)

CFG = {"id": "0a9a8fe7-57a6-4a95-9a57-eae5c4807c67", "vcpus": 2, "memory_mb": 512,
       "macs": ["fa:16:3e:00:00:01"]}


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_argv_disk_boot_flavor_console_qmp_nic():
    argv = qemu_argv(CFG, disk="/d/disk.qcow2", console="/d/console.log", qmp="/d/qmp.sock",
                     pidfile="/d/qemu.pid", accel="kvm:tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert _opt(argv, "-accel") == ["kvm", "tcg"]
    assert _opt(argv, "-m") == ["512"] and _opt(argv, "-smp") == ["2"]
    assert "-daemonize" in argv and _opt(argv, "-pidfile") == ["/d/qemu.pid"]
    assert _opt(argv, "-qmp") == ["unix:/d/qmp.sock,server=on,wait=off"]
    assert _opt(argv, "-chardev") == ["file,id=serial0,path=/d/console.log,append=on"]
    root = json.loads(_opt(argv, "-blockdev")[0])
    assert root == {"driver": "qcow2", "node-name": "root",
                    "file": {"driver": "file", "filename": "/d/disk.qcow2"}}
    devices = _opt(argv, "-device")
    assert devices[0] == "virtio-blk-pci,drive=root,id=root-disk,bootindex=0"
    assert "virtio-net-pci,netdev=net-fa163e000001,mac=fa:16:3e:00:00:01,id=nic-fa163e000001,"\
        "romfile=" in devices
    assert _opt(argv, "-netdev") == ["tap,id=net-fa163e000001,ifname=tfa163e000001,script=no,"
                                     "downscript=no"]
    assert "-kernel" not in argv


def test_argv_kernel_boot_and_volumes():
    cfg = {**CFG, "macs": [], "kernel": "/b/k", "ramdisk": "/b/r"}
    argv = qemu_argv(cfg, disk="/d/disk.qcow2", console="c", qmp="q", pidfile="p",
                     accel="tcg", volumes={"/dev/vdb": "/dev/loop7"})
    assert _opt(argv, "-kernel") == ["/b/k"] and _opt(argv, "-initrd") == ["/b/r"]
    assert _opt(argv, "-append") == [DEFAULT_APPEND]
    assert "-netdev" not in argv
    devices = _opt(argv, "-device")
    assert devices[0] == "virtio-blk-pci,drive=root,id=root-disk"  # linuxboot takes index 0
    assert "virtio-blk-pci,drive=vol-vdb,id=dev-vdb" in devices
    vol = json.loads(_opt(argv, "-blockdev")[1])
    assert vol == {"driver": "raw", "node-name": "vol-vdb",
                   "file": {"driver": "host_device", "filename": "/dev/loop7"}}


def test_argv_every_port_is_a_nic_named_by_its_mac_in_order():
    cfg = {**CFG, "macs": ["FA:16:3E:00:00:02", "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]}
    argv = qemu_argv(cfg, disk="d", console="c", qmp="q", pidfile="p", accel="tcg")
    # the upper-case duplicate is the same port: one NIC each, in the config's order
    assert _opt(argv, "-netdev") == [
        f"tap,id=net-{h},ifname=t{h},script=no,downscript=no"
        for h in ("fa163e000002", "fa163e000001")]
    nics = [d for d in _opt(argv, "-device") if d.startswith("virtio-net-pci")]
    assert nics == [f"virtio-net-pci,netdev=net-{h},mac={m},id=nic-{h},romfile="
                    for h, m in (("fa163e000002", "fa:16:3e:00:00:02"),
                                 ("fa163e000001", "fa:16:3e:00:00:01"))]


@pytest.mark.parametrize("mac", ["fa:16:3e:00:00", "fa:16:3e:00:00:0g", "fa-16-3e-00-00-01",
                                 "fa:16:3e:00:00:001", ""])
def test_bad_macs_are_refused(mac):
    with pytest.raises(DriverError, match="invalid MAC"):
        nic_hex(mac)
    with pytest.raises(DriverError, match="invalid MAC"):
        qemu_argv({**CFG, "macs": [mac]}, disk="d", console="c", qmp="q", pidfile="p",
                  accel="tcg")


def test_interfaces_of_a_stopped_server_are_kept_for_its_next_boot(tmp_path):
    d = _driver(tmp_path)
    with pytest.raises(DriverError, match="not on this host"):
        d.attach_interface("h", "s1", "fa:16:3e:00:00:09")
    d._dir("s1").mkdir(parents=True)
    d._write_json("s1", "config.json", {**CFG, "id": "s1"})
    d.attach_interface("h", "s1", "FA:16:3E:00:00:09")
    d.attach_interface("h", "s1", "fa:16:3e:00:00:09")  # idempotent
    assert d._read_json("s1", "config.json")["macs"] == ["fa:16:3e:00:00:01",
                                                         "fa:16:3e:00:00:09"]
    argv = qemu_argv(d._read_json("s1", "config.json"), disk="d", console="c", qmp="q",
                     pidfile="p", accel="tcg")
    assert _opt(argv, "-netdev")[1].startswith("tap,id=net-fa163e000009,ifname=tfa163e000009,")
    d.detach_interface("h", "s1", "fa:16:3e:00:00:01")
    assert d._read_json("s1", "config.json")["macs"] == ["fa:16:3e:00:00:09"]
    d.detach_interface("h", "s1", "fa:16:3e:00:00:01")  # absent is success
    d.detach_interface("h", "gone", "fa:16:3e:00:00:01")
    assert d._read_json("s1", "config.json")["macs"] == ["fa:16:3e:00:00:09"]
    with pytest.raises(DriverError, match="invalid MAC"):
        d.attach_interface("h", "s1", "nonsense")


@pytest.mark.parametrize("status,state", [
    ("running", RUNNING), ("paused", PAUSED), ("suspended", SUSPENDED), ("shutdown", SHUTDOWN),
    ("guest-panicked", CRASHED), ("internal-error", CRASHED), ("bogus", NOSTATE)])
def test_power_state_mapping(status, state):
    assert power_state_of(status) == state


def _driver(tmp_path: Path) -> QemuDriver:
    return QemuDriver(SimpleNamespace(compute=SimpleNamespace(qemu_accel="tcg"),
                                      data_dir=tmp_path))


def _spec(tmp_path: Path, data: bytes, **kw) -> InstanceSpec:
    img = tmp_path / "image"
    img.write_bytes(data)
    return InstanceSpec(id="s1", name="s1", hostname="s1", host="h", vcpus=1, memory_mb=256,
                        root_gb=1, image_id="img1", image_path=img, **kw)


@pytest.mark.parametrize("kw,msg", [
    ({"disk_format": "raw", "container_format": "docker"}, "container root file system"),
    ({"disk_format": "aki", "container_format": "aki"}, "boot the ami image"),
    ({"disk_format": "iso", "container_format": "bare"}, "disk_format iso"),
])
def test_images_it_cannot_boot_are_refused_with_a_reason(tmp_path, kw, msg):
    with pytest.raises(DriverError, match=msg):
        _driver(tmp_path)._boot_config(_spec(tmp_path, b"\0" * 1024, **kw))


def test_raw_disk_without_boot_sector_or_kernel_is_refused(tmp_path):
    tar = bytearray(1024)
    tar[257:262] = b"ustar"
    with pytest.raises(DriverError, match="tar archive"):
        _driver(tmp_path)._boot_config(_spec(tmp_path, bytes(tar), disk_format="raw"))
    with pytest.raises(DriverError, match="no boot sector"):
        _driver(tmp_path)._boot_config(_spec(tmp_path, b"\0" * 1024, disk_format="raw"))


def test_boot_config_pins_base_kernel_and_ramdisk(tmp_path):
    (tmp_path / "k").write_bytes(b"kernel")
    (tmp_path / "r").write_bytes(b"ramdisk")
    d = _driver(tmp_path)
    spec = _spec(tmp_path, b"\0" * 1024, disk_format="ami", kernel_path=tmp_path / "k",
                 ramdisk_path=tmp_path / "r",
                 image_properties={"kernel_id": "kid", "ramdisk_id": "rid"},
                 network_info=[{"id": "p1", "mac_address": "fa:16:3e:aa:bb:cc"}])
    cfg = d._boot_config(spec)
    assert cfg["base_format"] == "raw" and cfg["macs"] == ["fa:16:3e:aa:bb:cc"]
    assert Path(cfg["kernel"]).read_bytes() == b"kernel"
    assert Path(cfg["ramdisk"]).read_bytes() == b"ramdisk"
    assert Path(cfg["kernel"]).parent == d.base_dir and Path(cfg["base"]).name == "img1"
    # An unreferenced base goes with its last server.
    d._gc_bases()
    assert list(d.base_dir.iterdir()) == []


def test_registry_has_qemu():
    assert "qemu" in REGISTRY


def test_vm_initramfs_modules_must_match_the_kernel_release(tmp_path):
    from pocketstack.services.image.testimages import VM_MODULES, find_modules, kernel_release

    head = bytearray(0x400)
    head[0x202:0x206] = b"HdrS"
    head[0x20E:0x210] = (0x100).to_bytes(2, "little")  # version string at 0x300
    head[0x300:0x320] = b"6.1.0-99-amd64 (x@y) #1 SMP\0"
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(bytes(head))
    assert kernel_release(kernel) == "6.1.0-99-amd64"
    mdir = tmp_path / "modules"
    mdir.mkdir()
    for m in ("virtio_net", "virtio"):
        (mdir / f"{m}.ko").write_bytes(b"ko")
    (mdir / "release").write_text("6.1.0-98-amd64\n")
    assert find_modules(kernel) == []  # other kernel's modules would not load
    (mdir / "release").write_text("6.1.0-99-amd64\n")
    assert [p.name for p in find_modules(kernel)] == ["virtio.ko", "virtio_net.ko"]
    assert VM_MODULES.index("virtio") < VM_MODULES.index("virtio_net")


@pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img not installed (qemu-utils)")
def test_overlay_disk_grows_with_the_flavor_and_never_shrinks(tmp_path):
    d = _driver(tmp_path)
    spec = _spec(tmp_path, b"\0" * 510 + b"\x55\xaa" + b"\0" * (2**20 - 512),
                 disk_format="raw")
    spec.root_gb = 0
    cfg = d._boot_config(spec)
    d._dir("s1").mkdir(parents=True)
    d._write_json("s1", "config.json", cfg)
    d._create_disk("s1", cfg)
    disk = d._dir("s1") / "disk.qcow2"
    assert d._image_size(disk, "qcow2") == 2**20  # flavor disk 0: the image's size
    assert d.list_instances("h") == ["s1"]
    spec.root_gb = 2
    d.resize(spec)
    assert d._image_size(disk, "qcow2") == 2 * 2**30
    assert d._read_json("s1", "config.json")["root_gb"] == 2
    spec.root_gb, spec.vcpus = 1, 4
    with pytest.raises(DriverError, match="cannot shrink"):
        d.resize(spec)
    assert d._read_json("s1", "config.json")["vcpus"] == 1  # nothing changed
    d.destroy("h", "s1")
    assert not d._dir("s1").exists() and d.list_instances("h") == []
    assert list(d.base_dir.iterdir()) == []


def test_power_on_boots_the_ports_the_caller_names(tmp_path, monkeypatch):
    d = _driver(tmp_path)
    d._dir("s1").mkdir(parents=True)
    (d._dir("s1") / "disk.qcow2").write_bytes(b"")
    d._write_json("s1", "config.json", {**CFG, "id": "s1", "macs": ["fa:16:3e:00:00:01",
                                                                    "fa:16:3e:00:00:02"]})
    booted: list[list[str]] = []
    monkeypatch.setattr(d, "_start", lambda sid: booted.append(
        d._read_json(sid, "config.json")["macs"]))
    spec = InstanceSpec(id="s1", name="s1", hostname="s1", host="h", vcpus=2, memory_mb=512,
                        root_gb=1)
    d.power_on(spec)  # no ports named (no network service): the remembered ones
    spec.network_info = [{"mac_address": "FA:16:3E:00:00:03"}, {"mac_address": "fa:16:3e:00:00:01"}]
    d.power_on(spec)  # the network service's ports now, in its order
    assert booted == [["fa:16:3e:00:00:01", "fa:16:3e:00:00:02"],
                      ["fa:16:3e:00:00:03", "fa:16:3e:00:00:01"]]
