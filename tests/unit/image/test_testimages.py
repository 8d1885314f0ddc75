"""The cirros-like test images as built (pocketstack/services/image/testimages): what the
container rootfs and the VM initramfs hold, that every link resolves, that no SSH host key
is baked in, and the qcow2 disk's shape (MBR, bootable FAT with syslinux, ext4 root)."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

import pytest

from pocketstack.services.image import testimages
from pocketstack.services.image.testimages import disk as disk_mod
from pocketstack.services.image.testimages import extras


def _build(out: Path, **kw) -> testimages.Built:
    try:
        return testimages.build(out, **kw)
    except testimages.CannotBuild as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory) -> dict[str, tarfile.TarInfo | bytes]:
    built = _build(tmp_path_factory.mktemp("ti"), kernel=False)
    assert built.kernel is None and built.initramfs is None
    out: dict = {}
    with tarfile.open(built.rootfs) as tar:
        for m in tar.getmembers():
            out[m.name] = m
            if m.isfile():
                out[m.name + "#data"] = tar.extractfile(m).read()
    return out


def _cpio(data: bytes) -> dict[str, tuple[int, int, bytes]]:
    """name -> (mode, uid, data) of a newc archive."""
    entries, off = {}, 0
    while True:
        hdr = data[off:off + 110]
        assert hdr[:6] == b"070701", hdr[:6]
        f = [int(hdr[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, uid, size, namesize = f[1], f[2], f[6], f[11]
        name = data[off + 110:off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        body = data[off:off + size]
        off = (off + size + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, uid, body)


def _resolve(tree: set[str], links: dict[str, str], path: str) -> str | None:
    """Follow ``path`` through the tree's symlinks; None if it dangles."""
    for _ in range(20):
        if path in links:
            target = links[path]
            base = PurePosixPath(path).parent
            path = str(PurePosixPath(target.lstrip("/")) if target.startswith("/")
                       else base / target)
            parts: list[str] = []
            for p in PurePosixPath(path).parts:
                if p == "..":
                    parts = parts[:-1]
                elif p != ".":
                    parts.append(p)
            path = "/".join(parts)
        elif path in tree:
            return path
        else:
            return None
    return None


def test_every_link_in_the_rootfs_resolves(rootfs):
    members = [m for k, m in rootfs.items() if not k.endswith("#data")]
    links = {m.name: m.linkname for m in members if m.issym()}
    tree = {m.name for m in members if not m.issym()}
    dangling = sorted(n for n in links if _resolve(tree, links, n) is None)
    assert not dangling, dangling[:10]
    # the applets a user's PATH (no sbin) needs answer from /usr/bin too
    for name in ("usr/bin/ip", "sbin/ip", "usr/bin/tail", "bin/sh"):
        assert _resolve(tree, links, name) == "bin/busybox", name
    if "sbin/mke2fs" in tree:
        assert _resolve(tree, links, "usr/bin/mkfs.ext4") == "sbin/mke2fs"
    assert _resolve(tree, links, "usr/bin/mkfs") == "sbin/mkfs"


def test_default_user_and_container_sudo(rootfs):
    passwd = rootfs["etc/passwd#data"].decode().splitlines()
    assert passwd[0].startswith("root:x:0:0:")  # getpwuid(0) still says root
    cirros = next(line for line in passwd if line.startswith("cirros:")).split(":")
    # uid 0 of the container's own user namespace (no_new_privs: no setuid sudo there)
    assert (cirros[2], cirros[5], cirros[6]) == ("0", "/home/cirros", "/bin/sh")
    assert "/bin/sh" in rootfs["etc/shells#data"].decode().split()
    assert not rootfs["bin/busybox"].mode & 0o4000
    sudo = rootfs["usr/bin/sudo"]
    assert sudo.isfile() and not sudo.mode & 0o4000
    assert rootfs["usr/bin/sudo#data"].startswith(b"#!/bin/sh")
    assert rootfs["sbin/init#data"] == extras.guest_file("init-container.sh")
    assert rootfs["home/cirros/.ssh"].mode == 0o700


def test_ssh_server_and_tools_but_no_host_key(rootfs):
    if not Path("/usr/sbin/dropbear").is_file():
        pytest.skip("dropbear-bin not installed")
    for path in ("usr/sbin/dropbear", "usr/bin/dropbearkey", "usr/bin/jq",
                 "usr/sbin/pocketstack-cloud-init", "usr/sbin/pocketstack-sshd-start",
                 "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"):
        assert path in rootfs, path
    # every server makes its own host keys at first boot
    assert not [n for n in rootfs if "dropbear" in n and "host_key" in n]
    sshd = rootfs["usr/sbin/pocketstack-sshd-start#data"].decode()
    assert "dropbear -R -s" in sshd  # keys made on demand; no password logins at all


def test_tools_tempest_scenarios_call_by_name(rootfs):
    # `sudo mkfs -t vfat` (the scenarios' timestamp disks): the front end finds mkfs.vfat
    assert rootfs["sbin/mkfs.vfat"].mode & 0o111
    assert b"mkdosfs" in rootfs["sbin/mkfs.vfat#data"]
    assert rootfs["sbin/mkfs#data"] == extras.guest_file("mkfs.sh")
    # `curl URL` and `curl -X POST -d DATA URL` (the metadata checks) over busybox's wget
    assert rootfs["usr/bin/curl#data"] == extras.guest_file("curl.sh")
    assert rootfs["usr/bin/curl"].mode & 0o111
    # the DHCP client stays and leaves its pid where Tempest signals it to renew
    assert "-p \"/var/run/udhcpc.$1.pid\"" in extras.guest_file("init-vm.sh").decode()


def test_libraries_of_each_program_are_in_the_image(rootfs):
    if shutil.which("ldd") is None or not Path("/usr/bin/jq").is_file():
        pytest.skip("no ldd or jq")
    for lib in extras._libraries(Path("/usr/bin/jq")):
        assert f"lib/x86_64-linux-gnu/{lib.name}" in rootfs, lib


def test_the_image_is_rebuilt_when_the_guest_scripts_change(tmp_path, monkeypatch):
    first = _build(tmp_path, kernel=False)
    stamp = json.loads((tmp_path / "build.json").read_text())
    before = first.rootfs.stat().st_mtime_ns
    again = _build(tmp_path, kernel=False)  # cached
    assert again.rootfs.stat().st_mtime_ns == before
    monkeypatch.setattr(testimages, "_source_digest", lambda: "changed")
    _build(tmp_path, kernel=False)
    assert json.loads((tmp_path / "build.json").read_text())["source"] == "changed" \
        != stamp["source"]


@pytest.fixture(scope="module")
def vm_build(tmp_path_factory):
    """A VM build around a stand-in kernel file (the disk build never runs it)."""
    out = tmp_path_factory.mktemp("ti-vm")
    (out / "vmlinuz").write_bytes(b"\0" * 4096)
    return _build(out, kernel=True)


def test_vm_initramfs_has_the_vm_init_a_setuid_sudo_and_uid_1000_cirros(vm_build):
    assert vm_build.initramfs is not None
    files = _cpio(gzip.decompress(vm_build.initramfs.read_bytes()))
    assert files["init"][2] == extras.guest_file("init-vm.sh")
    assert files["sbin/init"][2] == b"../init"
    passwd = files["etc/passwd"][2].decode()
    assert "cirros:x:1000:1000:cirros:/home/cirros:/bin/sh" in passwd
    assert "sudo:x:27:cirros" in files["etc/group"][2].decode()
    assert files["bin/busybox"][0] & 0o4000  # ping as cirros (busybox drops root otherwise)
    if extras.setuid_sudo() is None:
        pytest.skip("no gcc: the VM has no sudo")
    mode, uid, data = files["usr/bin/sudo"]
    assert mode & 0o4000 and uid == 0 and data.startswith(b"\x7fELF")


def test_static_sudo_refuses_users_outside_group_sudo(tmp_path):
    if extras.setuid_sudo() is None:
        pytest.skip("no gcc")
    sudo = tmp_path / "sudo"
    sudo.write_bytes(extras.setuid_sudo())
    sudo.chmod(0o755)
    # not setuid here: it runs as whoever calls it; as an ordinary uid it must refuse
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
                          str(sudo), "id", "-u"], capture_output=True, text=True)
    if res.returncode != 0 and "setpriv" in res.stderr:
        pytest.skip(res.stderr)
    assert res.returncode == 1 and "not in the sudo group" in res.stderr, res
    res = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534",
                          "--groups", "27", str(sudo), "-x"], capture_output=True, text=True)
    assert res.returncode == 1 and "unsupported option -x" in res.stderr, res


def test_qcow2_disk_has_an_mbr_a_bootable_syslinux_fat_and_an_ext4_root(vm_build, tmp_path):
    if disk_mod.missing_tools():
        pytest.skip(f"missing {disk_mod.missing_tools()}")
    assert vm_build.qcow2 is not None, vm_build.missing
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json",
                                      str(vm_build.qcow2)], capture_output=True, text=True,
                                     check=True).stdout)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(vm_build.qcow2), str(raw)],
                   check=True)
    with open(raw, "rb") as fh:
        mbr = fh.read(512)
        assert mbr[510:] == b"\x55\xaa"
        parts = [struct.unpack_from("<B3sB3sII", mbr, 446 + 16 * i) for i in range(4)]
        (boot_flag, _, boot_type, _, boot_start, boot_len) = parts[0]
        (root_flag, _, root_type, _, root_start, root_len) = parts[1]
        assert (boot_flag, boot_type, boot_start) == (0x80, 0x06, 2048)
        assert (root_flag, root_type, root_start) == (0, 0x83, boot_start + boot_len)
        assert parts[2][4] == parts[3][4] == 0
        fh.seek(root_start * 512 + 1024)
        sb = fh.read(1024)
        assert struct.unpack_from("<H", sb, 0x38)[0] == 0xEF53  # ext4 magic
        assert sb[0x78:0x88].rstrip(b"\0").decode() == disk_mod.ROOT_LABEL
        fh.seek(boot_start * 512)
        fat = io.BytesIO(fh.read(boot_len * 512))
    part = tmp_path / "boot.img"
    part.write_bytes(fat.getvalue())
    listing = subprocess.run(["mdir", "-a", "-b", "-i", str(part), "::/"], capture_output=True,
                             text=True, env={"MTOOLS_SKIP_CHECK": "1", "PATH": "/usr/bin:/bin"})
    names = {Path(n).name.lower() for n in listing.stdout.split()}
    assert {"ldlinux.sys", "syslinux.cfg", "vmlinuz", "initrd.gz"} <= names, listing
