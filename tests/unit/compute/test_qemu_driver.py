"""The qemu compute driver's pure parts: command line, power state mapping, image checks
(no QEMU is started here; tests/system/compute/test_qemu_servers.py boots real VMs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from pocketstack.drivers.compute import REGISTRY
from pocketstack.drivers.compute.base import (CRASHED, NOSTATE, PAUSED, RUNNING, SHUTDOWN,
                                              SUSPENDED, ConsoleUnavailable, DriverError,
                                              InstanceSpec)
from pocketstack.drivers.compute.qemu import QemuDriver
from pocketstack.drivers.compute.qemu_process import (DEFAULT_APPEND, BootFds,
                                                      guest_device_name, kernel_cmdline,
                                                      nic_hex, power_state_of, qemu_argv,
                                                      safe_id)

CFG = {"id": "0a9a8fe7-57a6-4a95-9a57-eae5c4807c67", "vcpus": 2, "memory_mb": 512,
       "base_format": "raw", "macs": ["fa:16:3e:00:00:01"]}
SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


def _opt(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def _fds(cfg: dict, **kw) -> BootFds:
    """Made-up fd numbers: the argv names them, nothing opens them."""
    taps = {nic_hex(m): 40 + i for i, m in enumerate(dict.fromkeys(
        str(m).lower() for m in cfg.get("macs") or []))}
    return BootFds(disk=20, base=21, console=22, qmp=23, taps=taps, **kw)


def _argv(cfg: dict, accel: str = "tcg", **kw) -> list[str]:
    return qemu_argv(cfg, _fds(cfg, **kw), accel=accel)


def test_argv_disk_boot_flavor_console_qmp_nic():
    argv = _argv(CFG, accel="kvm:tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert _opt(argv, "-sandbox") == [SANDBOX]
    assert _opt(argv, "-accel") == ["kvm", "tcg"]
    assert _opt(argv, "-m") == ["512"] and _opt(argv, "-smp") == ["2"]
    # not daemonized (the sandbox denies fork and setsid), no pid file: the driver has the pid
    assert "-daemonize" not in argv and "-pidfile" not in argv
    assert _opt(argv, "-add-fd") == ["fd=20,set=1,opaque=root", "fd=21,set=2,opaque=base",
                                     "fd=22,set=3,opaque=console"]
    assert _opt(argv, "-chardev") == ["file,id=serial0,path=/dev/fdset/3,append=on",
                                      "socket,id=qmp,fd=23,server=on,wait=off"]
    assert _opt(argv, "-mon") == ["chardev=qmp,mode=control"] and "-qmp" not in argv
    root = json.loads(_opt(argv, "-blockdev")[0])
    # the backing chain is given, not read from the overlay's header (QEMU writes it)
    assert root == {"driver": "qcow2", "node-name": "root",
                    "file": {"driver": "file", "filename": "/dev/fdset/1"},
                    "backing": {"driver": "raw", "node-name": "base", "read-only": True,
                                "file": {"driver": "file", "filename": "/dev/fdset/2"}}}
    devices = _opt(argv, "-device")
    assert devices[0] == "virtio-blk-pci,drive=root,id=root-disk,bootindex=0"
    assert "virtio-net-pci,netdev=net-fa163e000001,mac=fa:16:3e:00:00:01,id=nic-fa163e000001,"\
        "romfile=" in devices
    assert _opt(argv, "-netdev") == ["tap,id=net-fa163e000001,fd=40"]
    assert "-kernel" not in argv
    # no host path anywhere: QEMU opens nothing by name
    assert not [a for a in argv if "/" in a and "/dev/fdset/" not in a
                and not a.startswith("/proc/self/fd/")]



def test_argv_consoles_are_sockets_in_the_console_directory_fd():
    argv = _argv(CFG, console_dir=30)
    d = "/proc/self/fd/30"
    assert _opt(argv, "-vga") == ["std"] and _opt(argv, "-display") == ["none"]
    assert _opt(argv, "-vnc") == [f"unix:{d}/vnc.sock"]
    assert _opt(argv, "-spice") == [f"unix=on,addr={d}/spice.sock,disable-ticketing=on"]
    # the serial port: a socket server that also appends all output to console.log (fd set 3)
    assert _opt(argv, "-chardev")[0] == (f"socket,id=serial0,path={d}/serial.sock,server=on,"
                                         "wait=off,logfile=/dev/fdset/3,logappend=on")
    assert _opt(argv, "-serial") == ["chardev:serial0"]
    assert 30 in _fds(CFG, console_dir=30).all()
    # still no host path, no TCP listener
    assert not [a for a in argv if "/" in a and "/dev/fdset/" not in a and d not in a]
    assert not [a for a in argv if "tcp:" in a or "port=" in a]

def test_argv_base_of_a_cow_format_names_no_backing_file_of_its_own():
    argv = _argv({**CFG, "base_format": "qcow2"})
    base = json.loads(_opt(argv, "-blockdev")[0])["backing"]
    assert base["driver"] == "qcow2" and base["backing"] is None
    with pytest.raises(DriverError, match="unknown disk format"):
        _argv({**CFG, "base_format": "file,filename=/etc/shadow"})


def test_argv_kernel_boot_and_volumes():
    cfg = {**CFG, "macs": [], "kernel": "/b/k", "ramdisk": "/b/r"}
    argv = _argv(cfg, kernel=30, ramdisk=31, volumes={"/dev/vdb": 32})
    assert _opt(argv, "-kernel") == ["/proc/self/fd/30"]
    assert _opt(argv, "-initrd") == ["/proc/self/fd/31"]
    assert _opt(argv, "-append") == [DEFAULT_APPEND]
    assert "-netdev" not in argv
    devices = _opt(argv, "-device")
    assert devices[0] == "virtio-blk-pci,drive=root,id=root-disk"  # linuxboot takes index 0
    assert "virtio-blk-pci,drive=vol-vdb,id=dev-vdb" in devices
    assert "fd=32,set=10,opaque=vol-vdb" in _opt(argv, "-add-fd")
    vol = json.loads(_opt(argv, "-blockdev")[1])
    assert vol == {"driver": "raw", "node-name": "vol-vdb",
                   "file": {"driver": "host_device", "filename": "/dev/fdset/10"}}


def test_argv_every_port_is_a_nic_named_by_its_mac_in_order():
    cfg = {**CFG, "macs": ["FA:16:3E:00:00:02", "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"]}
    argv = _argv(cfg)
    # the upper-case duplicate is the same port: one NIC each, in the config's order
    assert _opt(argv, "-netdev") == ["tap,id=net-fa163e000002,fd=40",
                                     "tap,id=net-fa163e000001,fd=41"]
    nics = [d for d in _opt(argv, "-device") if d.startswith("virtio-net-pci")]
    assert nics == [f"virtio-net-pci,netdev=net-{h},mac={m},id=nic-{h},romfile="
                    for h, m in (("fa163e000002", "fa:16:3e:00:00:02"),
                                 ("fa163e000001", "fa:16:3e:00:00:01"))]


@pytest.mark.parametrize("mac", ["fa:16:3e:00:00", "fa:16:3e:00:00:0g", "fa-16-3e-00-00-01",
                                 "fa:16:3e:00:00:001", "", "fa:16:3e:00:00:01,id=x",
                                 "fa:16:3e:00:00:0\n"])
def test_bad_macs_are_refused(mac):
    with pytest.raises(DriverError, match="invalid MAC"):
        nic_hex(mac)
    with pytest.raises(DriverError, match="invalid MAC"):
        qemu_argv({**CFG, "macs": [mac]}, BootFds(disk=3, base=4, console=5, qmp=6),
                  accel="tcg")


@pytest.mark.parametrize("line", [
    "root=/dev/vda console=ttyS0,115200n8 x,file=/etc/shadow -kernel /etc/shadow",
    "init=/bin/sh -- -drive file=/etc/shadow", "é ünïcode"])
def test_kernel_command_line_is_one_inert_argv_item(line):
    argv = _argv({**CFG, "kernel": "/b/k", "append": line}, kernel=30)
    assert _opt(argv, "-append") == [line]
    assert argv.count("-kernel") == 1 and "-drive" not in argv
    assert kernel_cmdline(line) == line


@pytest.mark.parametrize("line,msg", [
    ("console=ttyS0\n-drive file=/etc/shadow", "control characters"),
    ("a\0b", "control characters"), ("a\tb", "control characters"),
    ("a\x1b[2J", "control characters"), ("x" * 2048, "2048 bytes"), (["a"], "string")])
def test_kernel_command_lines_that_are_not_one_line_are_refused(line, msg):
    with pytest.raises(DriverError, match=msg):
        kernel_cmdline(line)
    with pytest.raises(DriverError, match=msg):
        _argv({**CFG, "kernel": "/b/k", "append": line}, kernel=30)


@pytest.mark.parametrize("dev", ["/dev/vdb", "/dev/sdc", "/dev/xvdb1"])
def test_guest_device_names(dev):
    assert guest_device_name(dev) == dev[5:]


@pytest.mark.parametrize("dev", ["vdb", "/dev/vd,b", "/dev/vdb,file=/etc/shadow",
                                 "/dev/../vdb", "/dev/vdé", "/dev/VDB", "/dev/", "/dev/v/db",
                                 "/dev/vdb\n", None, "/dev/" + "v" * 17])
def test_bad_guest_device_names_are_refused(tmp_path, dev):
    with pytest.raises(DriverError, match="invalid guest device"):
        guest_device_name(dev)
    d = _driver(tmp_path)
    d._dir("s1").mkdir(parents=True)
    d._write_json("s1", "config.json", {**CFG, "id": "s1"})
    with pytest.raises(DriverError, match="invalid guest device"):
        d.attach_block_device("h", "s1", "/dev/loop0", dev)
    assert d._read_json("s1", "volumes.json") == {}
    with pytest.raises(DriverError, match="invalid guest device"):
        _argv(CFG, volumes={dev: 33})


@pytest.mark.parametrize("value", ["../../etc", ".hidden", "", "a/b", "a,b", "a b", "x\n",
                                   None, "..", "a" * 300])
def test_unsafe_ids_are_refused(value):
    with pytest.raises(DriverError, match="invalid"):
        safe_id(value, "image id")


def test_image_ids_never_name_a_file_outside_the_bases(tmp_path):
    (tmp_path / "k").write_bytes(b"kernel")
    d = _driver(tmp_path)
    spec = _spec(tmp_path, b"\0" * 1024, disk_format="ami", kernel_path=tmp_path / "k",
                 image_properties={"kernel_id": "../../../tmp/x"})
    with pytest.raises(DriverError, match="invalid kernel image id"):
        d._boot_config(spec)
    assert not (tmp_path / "tmp").exists()


def test_kernel_command_line_is_checked_when_the_server_is_built(tmp_path):
    (tmp_path / "k").write_bytes(b"kernel")
    d = _driver(tmp_path)
    spec = _spec(tmp_path, b"\0" * 1024, disk_format="ami", kernel_path=tmp_path / "k",
                 image_properties={"kernel_id": "kid",
                                   "os_command_line": "quiet\n-hda /etc/shadow"})
    with pytest.raises(DriverError, match="os_command_line contains control characters"):
        d._boot_config(spec)
    spec.image_properties["os_command_line"] = "quiet x,file=/etc/shadow"
    assert d._boot_config(spec)["append"] == "quiet x,file=/etc/shadow"


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
    argv = _argv({**d._read_json("s1", "config.json"), "base_format": "raw"})
    assert _opt(argv, "-netdev")[1] == "tap,id=net-fa163e000009,fd=41"
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
    return QemuDriver(SimpleNamespace(compute=SimpleNamespace(
        qemu_accel="tcg", container_idmap_registry=str(tmp_path / "idmap")), data_dir=tmp_path))


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


needs_qemu_img = pytest.mark.skipif(not shutil.which("qemu-img"),
                                    reason="qemu-img not installed (qemu-utils)")
BOOT_SECTOR_DISK = b"\0" * 510 + b"\x55\xaa" + b"\0" * (2**20 - 512)


def _owner(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid


@needs_qemu_img
def test_overlay_disk_grows_with_the_flavor_and_never_shrinks(tmp_path):
    d = _driver(tmp_path)
    spec = _spec(tmp_path, BOOT_SECTOR_DISK, disk_format="raw")
    spec.root_gb = 0
    cfg = d._boot_config(spec)
    d._dir("s1").mkdir(parents=True)
    ids = d._ids("s1")
    d._write_json("s1", "config.json", cfg)
    d._create_disk("s1", cfg, ids)
    disk = d._dir("s1") / "disk.qcow2"
    if ids is not None:  # root: the server's own user has it; the base stays root's
        assert ids[0] >= 1_000_000_000 and _owner(disk) == ids
        assert d._read_json("s1", "idmap.json")["base"] == ids[0]
        assert _owner(Path(cfg["base"])) == (0, 0)
        assert oct(Path(cfg["base"]).stat().st_mode & 0o777) == "0o644"
        assert oct(d.base_dir.stat().st_mode & 0o777) == "0o700"
    assert oct(disk.stat().st_mode & 0o777) == "0o600"
    assert d._image_size(disk, "qcow2", ids) == 2**20  # flavor disk 0: the image's size
    assert d.list_instances("h") == ["s1"]
    spec.root_gb = 2
    d.resize(spec)
    assert d._image_size(disk, "qcow2", ids) == 2 * 2**30
    assert d._read_json("s1", "config.json")["root_gb"] == 2
    spec.root_gb, spec.vcpus = 1, 4
    with pytest.raises(DriverError, match="cannot shrink"):
        d.resize(spec)
    assert d._read_json("s1", "config.json")["vcpus"] == 1  # nothing changed
    # a snapshot: qemu-img as the server's user, into a file that ends up root's
    target = tmp_path / "snap"
    d.snapshot("h", "s1", target)
    with open(target, "rb") as fh:
        assert fh.read(2**20) == BOOT_SECTOR_DISK
    assert target.stat().st_size == 2 * 2**30 and _owner(target) == (0, 0)
    d.destroy("h", "s1")
    assert not d._dir("s1").exists() and d.list_instances("h") == []
    assert list(d.base_dir.iterdir()) == []
    assert not [f for f in (tmp_path / "idmap").glob("*") if f.name.isdigit()]  # freed


@pytest.mark.skipif(os.geteuid() != 0, reason="ranges of host users need root")
def test_server_of_an_older_release_gets_a_user_and_its_files_at_its_next_start(tmp_path):
    d = _driver(tmp_path)
    sd = d._dir("s1")
    sd.mkdir(parents=True, mode=0o755)
    for name in ("disk.qcow2", "console.log"):
        (sd / name).write_bytes(b"x")
        os.chmod(sd / name, 0o644)
    ids = d._ids("s1")
    assert ids[0] == ids[1] >= 1_000_000_000
    assert all(_owner(sd / n) == ids for n in ("disk.qcow2", "console.log"))
    assert oct(sd.stat().st_mode & 0o777) == "0o700" and _owner(sd) == (0, 0)
    assert d._ids("s1") == ids  # kept
    # two servers are two users
    d._dir("s2").mkdir()
    assert d._ids("s2")[0] not in (0, ids[0])
    # the registry lost (a /var/lib wiped): the recorded slot is claimed again
    for f in (tmp_path / "idmap").glob("*"):
        f.unlink()
    assert d._ids("s1") == ids
    # a symlink planted where QEMU's file would be is refused, never followed
    (sd / "console.log").unlink()
    (sd / "console.log").symlink_to("/etc/shadow")
    with pytest.raises(DriverError, match="not a regular file"):
        d._ids("s1")
    assert _owner(Path("/etc/shadow"))[0] == 0


def _qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


@needs_qemu_img
@pytest.mark.parametrize("kind", ["qcow2-backing", "qcow2-data-file", "vmdk-flat",
                                  "vmdk-absolute-extent"])
def test_images_that_name_another_file_are_refused(tmp_path, kind):
    """A tenant's image is the guest's disk: were it to name a host file (a backing file,
    an external data file, a vmdk extent), QEMU or a root qemu-img would open that file."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret\n".ljust(2**20, b"\0"))
    img = tmp_path / "image"
    if kind == "qcow2-backing":
        _qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", str(secret), "-F", "raw",
                  str(img), str(2**20))
        fmt = "qcow2"
    elif kind == "qcow2-data-file":
        _qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on",
                  str(img), str(2**20))
        fmt = "qcow2"
    else:  # a relative extent (next to the image), and a world-readable host file
        fmt = "vmdk"
        extent = "secret" if kind == "vmdk-flat" else "/etc/os-release"
        img.write_text(f'# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
                       f'createType="monolithicFlat"\nRW 1 FLAT "{extent}" 0\n')
    data = img.read_bytes()
    img.unlink()
    d = _driver(tmp_path)
    spec = _spec(tmp_path, data, disk_format=fmt, container_format="bare")
    spec.image_properties = {"kernel_id": "kid"}
    spec.kernel_path = tmp_path / "image"  # boots through a kernel: no boot sector check
    cfg = d._boot_config(spec)
    d._dir("s1").mkdir(parents=True)
    why = {"qcow2-backing": "has a backing file", "qcow2-data-file": "external file",
           "vmdk-flat": "cannot read",  # its extent is not next to the fd it reads
           "vmdk-absolute-extent": "vmdk of type 'monolithicFlat'"}[kind]
    with pytest.raises(DriverError, match=why):
        d._create_disk("s1", cfg, d._ids("s1"))
    assert not (d._dir("s1") / "disk.qcow2").exists()


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


def test_console_sockets_fit_a_socket_address_whatever_the_data_dir(tmp_path):
    short = QemuDriver(SimpleNamespace(compute=SimpleNamespace(qemu_accel="tcg"),
                                       data_dir=Path("/tmp/ps")))
    assert short.console_dir("9f1c") == Path("/tmp/ps/compute/qemu/9f1c/console")
    sid = "0b2f6a4e-5d1c-4e8a-9a71-3f0c2d9e8b17"
    deep = _driver(tmp_path / ("d" * 80))
    d = deep.console_dir(sid)
    assert d == Path(f"/run/pocketstack/qemu-{deep.tag}/{sid}.console")
    assert all(len(str(d / n)) < 108 for n in ("vnc.sock", "spice.sock", "serial.sock"))
    with pytest.raises(ConsoleUnavailable, match="no rdp console"):
        deep.console_socket("h", sid, "rdp")
    with pytest.raises(ConsoleUnavailable, match="not on this host"):
        deep.console_socket("h", sid, "vnc")
