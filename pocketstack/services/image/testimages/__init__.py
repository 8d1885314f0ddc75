"""Cirros-like test images that need no internet, built from Debian packages (as DevStack
uploads cirros).

- ``rootfs.tar``: a BusyBox root file system for container instances (Debian's
  ``busybox-static``: one static binary plus its applet links, /etc basics, /sbin/init);
- ``vmlinuz`` (aki) + ``initramfs.gz`` (ari): Debian's ``linux-image-amd64`` kernel and a
  BusyBox initramfs whose /init mounts the basics, loads the kernel's modules (Debian builds
  virtio, ext4, isofs, vfat, the IDE CD-ROM as modules; they sit next to the kernel in
  ``modules/``, from the same package), brings up e* NICs with DHCP (also hot-plugged
  ones), prints each NIC's address, the NICs and disks when they change, and a ready line on
  the console; ``disk.raw`` is the small ami root disk that names them;
- ``disk.qcow2``: the same system in the shape of a real cloud image (MBR, syslinux on a FAT
  boot partition, ext4 root the initramfs switches to; see disk.py).

Each carries an SSH server (Debian's dropbear: key logins only, host keys made in the guest
at first boot), the default user ``cirros`` with sudo, jq, mke2fs, lsblk and blkid (with the
shared libraries they need, extras.py), and ``pocketstack-cloud-init``, a small
cloud-init for the ConfigDrive/OpenStack datasources (guest/cloud-init.sh). The guest's
scripts are real files in guest/.

Outputs are deterministic (fixed mtimes, sorted entries) so their checksums are stable,
and are cached in the output directory (keyed by the inputs and this package's code; a
fresh build in a shared cache is used as is). ``build(download=False)`` (what ``up`` does)
never touches the network: it uses the installed Debian programs and a kernel already in
the cache or in /boot. ``scripts/build-test-images --with-kernel`` may download the
kernel package with ``apt-get download`` (Debian's mirror) and extract only the kernel.

Usage: python -m pocketstack.services.image.testimages [--out DIR] [--with-kernel]
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pocketstack.services.image.testimages import extras
from pocketstack.services.image.testimages.disk import DiskError, build_qcow2

MTIME = 1700000000  # fixed, so rebuilds are byte-identical
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
VERSION = "8"  # bump when the layout changes so caches rebuild


class CannotBuild(RuntimeError):
    pass


@dataclass
class Built:
    rootfs: Path
    kernel: Path | None = None
    initramfs: Path | None = None
    disk: Path | None = None
    qcow2: Path | None = None  # the cloud-image-shaped disk (MBR, boot loader, ext4 root)
    missing: list[str] = field(default_factory=list)


def _is_static_elf(path: Path) -> bool:
    """True for an ELF64 executable without PT_INTERP (i.e. statically linked)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            phoff = struct.unpack_from("<Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        if struct.unpack_from("<I", table, i * phentsize)[0] == 3:  # PT_INTERP
            return False
    return True


def find_busybox() -> Path | None:
    for cand in BUSYBOX_CANDIDATES:
        p = Path(cand)
        if p.is_file() and _is_static_elf(p):
            return p
    return None


SHARED_CACHES = ("/var/cache/pocketstack/test-images",
                 str(Path.home() / ".cache/pocketstack/test-images"))


def find_kernel(out: Path) -> Path | None:
    """A kernel to boot: the output dir's, the shared caches' (scripts/build-test-images
    --with-kernel), or the host's /boot."""
    for cached in (out / "vmlinuz", *(Path(c) / "vmlinuz" for c in SHARED_CACHES)):
        if cached.is_file():
            return cached
    for cand in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        if os.access(cand, os.R_OK):
            return Path(cand)
    return None


# Loaded in this order by the VM /init (each after its dependencies; the list is the
# initramfs' /lib/modules/order): PCI virtio transport, virtio NICs (eth0 for DHCP) and disks
# (volumes hot-plugged as /dev/vdX), the ACPI power button as an input device (so a graceful
# stop, QMP system_powerdown, powers the VM off), ext4 (mkfs.ext4 + mount of a volume, as
# Tempest's scenarios do), and what a config drive needs: ISO 9660 or vfat, on a virtio disk
# or an IDE CD-ROM.
VM_MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
              "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk", "evdev",
              "button", "crc16", "mbcache", "jbd2", "crc32c_generic", "ext4", "cdrom", "isofs",
              "fat", "vfat", "nls_cp437", "nls_ascii", "nls_utf8", "scsi_common", "scsi_mod",
              "libata", "ata_piix", "sr_mod")


def kernel_release(kernel: Path) -> str | None:
    """The release ("6.1.0-50-amd64") of a bzImage, from its setup header's version string."""
    try:
        with open(kernel, "rb") as fh:
            head = fh.read(0x10000)
        if head[0x202:0x206] != b"HdrS":
            return None
        ptr = struct.unpack_from("<H", head, 0x20E)[0] + 0x200
        return head[ptr:ptr + 256].split(b" ", 1)[0].decode() or None
    except (OSError, struct.error, UnicodeDecodeError):
        return None


def find_modules(kernel: Path) -> list[Path]:
    """The VM_MODULES built for ``kernel``: ``modules/`` next to it (written with the kernel
    by --with-kernel) or the host's /lib/modules for a /boot kernel; [] if none match."""
    release = kernel_release(kernel)
    if release is None:
        return []
    mdir = kernel.parent / "modules"
    try:
        ok = (mdir / "release").read_text().strip() == release
    except OSError:
        ok = False
    if ok:
        return [mdir / f"{m}.ko" for m in VM_MODULES if (mdir / f"{m}.ko").is_file()]
    found = {p.name[:-3]: p for p in Path(f"/lib/modules/{release}/kernel").rglob("*.ko")} \
        if Path(f"/lib/modules/{release}/kernel").is_dir() else {}
    return [found[m] for m in VM_MODULES if m in found]


def _applets(busybox: Path) -> list[str]:
    res = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise CannotBuild(f"{busybox} --list-full failed: {res.stderr.strip()}")
    return sorted({line.strip() for line in res.stdout.splitlines() if line.strip()})


# Users: root, and the default user `cirros` (home /home/cirros, shell /bin/sh, in group
# sudo). In a container `cirros` is uid 0 of the server's user namespace (see
# guest/sudo-container.sh for why); in a VM it is uid 1000 with a real setuid sudo.
PASSWD = {
    "container": "root:x:0:0:root:/root:/bin/sh\ncirros:x:0:0:cirros:/home/cirros:/bin/sh\n"
                 "nobody:x:65534:65534:nobody:/:/bin/false\n",
    "vm": "root:x:0:0:root:/root:/bin/sh\ncirros:x:1000:1000:cirros:/home/cirros:/bin/sh\n"
          "nobody:x:65534:65534:nobody:/:/bin/false\n",
}
GROUP = {
    "container": "root:x:0:\ntty:x:5:\nsudo:x:27:cirros\nnogroup:x:65534:\n",
    "vm": "root:x:0:\ntty:x:5:\nsudo:x:27:cirros\ncirros:x:1000:\nnogroup:x:65534:\n",
}
FILES = {
    "etc/hostname": "cirros\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/resolv.conf": "",
    "etc/shells": "/bin/sh\n/bin/ash\n",
    "etc/profile": "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                   "export PS1='\\u@\\h:\\w\\$ '\n",
    "etc/os-release": 'NAME="BusyBox"\nID=busybox\nID_LIKE=cirros\n'
                      'PRETTY_NAME="pocketstack busybox (cirros-like)"\n',
}
DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp",
        "root", "var", "var/run", "var/log", "var/lib", "run", "mnt", "home")
# The guest scripts (guest/*.sh), where each goes in both images.
SCRIPTS = (("usr/sbin/pocketstack-cloud-init", "cloud-init.sh"),
           ("usr/sbin/pocketstack-sshd-start", "sshd-start.sh"),
           ("etc/udhcpc.script", "udhcpc.sh"),
           ("sbin/mkfs", "mkfs.sh"),
           ("usr/bin/curl", "curl.sh"))


def _tree(busybox: Path, flavour: str, programs: list) -> list[tuple[str, str, int, bytes | str]]:
    """(kind, path, mode, data-or-target) entries of the ``flavour`` ("container" or "vm")
    root file system, sorted."""
    entries: list[tuple[str, str, int, bytes | str]] = []
    for d in DIRS:
        entries.append(("dir", d, 0o1777 if d == "tmp" else 0o755, b""))
    entries.append(("dir", "root/.ssh", 0o700, b""))
    entries.append(("dir", "home/cirros", 0o755, b""))
    entries.append(("dir", "home/cirros/.ssh", 0o700, b""))
    entries.append(("file", "bin/busybox", 0o755, busybox.read_bytes()))
    for applet in _applets(busybox):
        rel = applet.lstrip("/")
        if rel == "bin/busybox" or rel.startswith(("linuxrc",)):
            continue
        # relative to the link's own directory: bin/ls -> busybox, sbin/ip ->
        # ../bin/busybox, usr/bin/tail -> ../../bin/busybox
        depth = rel.count("/")
        entries.append(("link", rel, 0o777, "busybox" if rel.startswith("bin/") and depth == 1
                        else "../" * depth + "bin/busybox"))
    for path, text in FILES.items():
        entries.append(("file", path, 0o644, text.encode()))
    entries.append(("file", "etc/passwd", 0o644, PASSWD[flavour].encode()))
    entries.append(("file", "etc/group", 0o644, GROUP[flavour].encode()))
    for path, name in SCRIPTS:
        entries.append(("file", path, 0o755, extras.guest_file(name)))
    # `mkfs -t vfat` (Tempest's timestamp disks) finds mkfs.vfat: busybox has the FAT maker
    # only under its other name
    entries.append(("file", "sbin/mkfs.vfat", 0o755, b'#!/bin/sh\nexec mkdosfs "$@"\n'))
    entries += programs
    if flavour == "container":
        # /sbin/init is busybox's applet link; the container entry point is our script.
        entries.append(("file", "sbin/init", 0o755, extras.guest_file("init-container.sh")))
        entries.append(("file", "usr/bin/sudo", 0o755, extras.guest_file("sudo-container.sh")))
    seen: dict[str, tuple[str, str, int, bytes | str]] = {}
    for e in entries:
        seen[e[1]] = e
    # A user's PATH (dropbear's default for non-root) has no sbin: what is in sbin (busybox's
    # ip, ifconfig, route..., mkfs.ext4, blkid) also answers from /usr/bin, as on cirros.
    for e in list(seen.values()):
        name = e[1].rsplit("/", 1)[-1]
        if e[0] != "dir" and e[1].startswith(("sbin/", "usr/sbin/")) \
                and f"usr/bin/{name}" not in seen and f"bin/{name}" not in seen:
            seen[f"usr/bin/{name}"] = ("link", f"usr/bin/{name}", 0o777, f"../../{e[1]}")
    return sorted(seen.values(), key=lambda e: e[1])


def _write_atomic(path: Path, data_writer) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            data_writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # readable by the compute drivers, whoever runs them
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _tar(entries, fh) -> None:  # noqa: ANN001
    with tarfile.open(fileobj=fh, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for kind, path, mode, data in entries:
            info = tarfile.TarInfo(path)
            info.mtime, info.mode, info.uid, info.gid = MTIME, mode, 0, 0
            info.uname = info.gname = "root"
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = str(data)
                tar.addfile(info)
            else:
                assert isinstance(data, bytes)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def _cpio_newc(entries, fh) -> None:  # noqa: ANN001
    """A newc (SVR4, no CRC) cpio archive, what the kernel unpacks as an initramfs."""
    ino = 1

    def record(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        name_b = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08X}" for v in (
            ino, mode, 0, 0, 1, MTIME, len(data), 0, 0, 0, 0, len(name_b), 0))
        ino += 1
        out = hdr.encode() + name_b
        out += b"\0" * ((4 - len(out) % 4) % 4)
        out += data
        out += b"\0" * ((4 - len(data) % 4) % 4)
        fh.write(out)

    for kind, path, mode, data in entries:
        if kind == "dir":
            record(path, 0o040000 | mode, b"")
        elif kind == "link":
            record(path, 0o120000 | 0o777, str(data).encode())
        else:
            assert isinstance(data, bytes)
            record(path, 0o100000 | mode, data)
    record("TRAILER!!!", 0, b"")


def _download_kernel(out: Path) -> Path:
    """apt-get download the current linux-image-amd64 and extract only /boot/vmlinuz-* and
    the VM_MODULES (into ``modules/``, with the kernel's release)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CannotBuild("apt-get/dpkg-deb are not available to fetch linux-image-amd64")
    deps = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True,
                          text=True, timeout=60)
    pkg = next((line.split(":", 1)[1].strip() for line in deps.stdout.splitlines()
                if line.strip().startswith("Depends: linux-image-")), None)
    if not pkg:
        raise CannotBuild("cannot resolve linux-image-amd64 (apt-get update needed?)")
    with tempfile.TemporaryDirectory(prefix="ps-kernel-") as tmp:
        res = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True,
                             text=True, timeout=900)
        debs = list(Path(tmp).glob("*.deb"))
        if res.returncode != 0 or not debs:
            raise CannotBuild(f"apt-get download {pkg} failed: {res.stderr.strip()[-300:]}")
        fsys = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(debs[0])],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert fsys.stdout is not None
        kernel_data, release, modules = None, None, {}
        with tarfile.open(fileobj=fsys.stdout, mode="r|") as tar:
            for member in tar:
                name = member.name.lstrip("./")
                if not member.isfile():
                    continue
                base = name.rsplit("/", 1)[-1]
                if name.startswith("boot/vmlinuz-"):
                    src = tar.extractfile(member)
                    assert src is not None
                    kernel_data = src.read()
                elif name.startswith("lib/modules/") and base.split(".ko")[0] in VM_MODULES \
                        and base.endswith((".ko", ".ko.xz")):
                    src = tar.extractfile(member)
                    assert src is not None
                    data = src.read()
                    modules[base.split(".ko")[0]] = (lzma.decompress(data)
                                                     if base.endswith(".xz") else data)
                    release = name.split("/")[2]
        fsys.stdout.close()
        fsys.wait()
    if kernel_data is None:
        raise CannotBuild(f"{pkg} had no /boot/vmlinuz-*")
    _write_atomic(out / "vmlinuz", lambda fh: fh.write(kernel_data))
    if release:
        mdir = out / "modules"
        for m, data in modules.items():
            _write_atomic(mdir / f"{m}.ko", lambda fh, d=data: fh.write(d))
        _write_atomic(mdir / "release", lambda fh: fh.write(release.encode() + b"\n"))
    return out / "vmlinuz"


def _source_digest() -> str:
    """A digest of this package's code and guest/ files (init scripts, sudo.c): editing
    one rebuilds the images (VERSION need not be bumped for each edit)."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    for f in sorted([*here.glob("*.py"), *extras.GUEST.iterdir()]):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def _vm_entries(entries: list, modules: list[Path], sudo: bytes | None) -> list:
    """The VM's tree: the container tree with /init (and /sbin/init linking to it) the VM
    init, a setuid sudo, the kernel modules in load order, and the ACPI power button."""
    vm = [e for e in entries if e[1] not in ("sbin/init", "usr/bin/sudo", "etc/passwd",
                                              "etc/group")]
    # busybox setuid root, as ping needs a raw socket: Debian's static busybox drops root at
    # start for every applet but the few that need it (ping, traceroute, su, passwd...), and
    # its sh runs applets through /proc/self/exe, so `ping` works for cirros (who has sudo:
    # this opens nothing). A container ignores setuid (no_new_privs): cirros is root there.
    vm = [("file", e[1], 0o4755, e[3]) if e[1] == "bin/busybox" else e for e in vm]
    vm += [("link", "sbin/init", 0o777, "../init"),
           ("file", "init", 0o755, extras.guest_file("init-vm.sh")),
           ("file", "etc/passwd", 0o644, PASSWD["vm"].encode()),
           ("file", "etc/group", 0o644, GROUP["vm"].encode())]
    if sudo is not None:  # setuid root: the VM has no no_new_privs
        vm.append(("file", "usr/bin/sudo", 0o4755, sudo))
    if modules:
        order = "\n".join(m.name[:-3] for m in modules) + "\n"
        vm += [("dir", "lib", 0o755, b""), ("dir", "lib/modules", 0o755, b""),
               ("file", "lib/modules/order", 0o644, order.encode())] + [
            ("file", f"lib/modules/{m.name}", 0o644, m.read_bytes()) for m in modules]
    vm += [("dir", "etc/acpi", 0o755, b""), ("dir", "etc/acpi/PWRF", 0o755, b""),
           ("file", "etc/acpi/PWRF/00000080", 0o755, extras.guest_file("power-button.sh"))]
    seen = {e[1]: e for e in vm}
    return sorted(seen.values(), key=lambda e: e[1])


def _stamp(out: Path) -> dict:
    try:
        return json.loads((out / "build.json").read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _fresh(out: Path, key: dict, vm: bool) -> bool:
    """``out`` holds images built from ``key``'s inputs (the VM's too when ``vm``)."""
    names = ["rootfs.tar"] + (["initramfs.gz", "disk.raw"] if vm else [])
    return {k: v for k, v in _stamp(out).items() if k != "missing"} == key \
        and all((out / n).is_file() for n in names)


def _build_vm(out: Path, vmlinuz: Path, entries: list, modules: list[Path],
              missing: list[str]) -> None:
    """initramfs.gz, disk.raw (the ami) and disk.qcow2 in ``out``; what could not be
    made is added to ``missing``."""
    sudo = extras.setuid_sudo()
    if sudo is None:
        missing.append("gcc (the VM's sudo)")
    vm_entries = _vm_entries(entries, modules, sudo)

    _write_atomic(out / "initramfs.gz", lambda fh: _write_cpio_gz(vm_entries, fh))
    # The ami: a small empty raw root disk; the system lives in the initramfs.
    _write_atomic(out / "disk.raw", lambda fh: fh.truncate(1 << 20))
    qcow2, vm_root, boot_ramfs = out / "disk.qcow2", out / "vm-rootfs.tar", out / "boot.gz"
    qcow2.unlink(missing_ok=True)
    _write_atomic(vm_root, lambda fh: _tar(vm_entries, fh))
    # The disk's own initramfs only mounts the root: busybox, /init and the modules for a
    # virtio disk with ext4 (a third of the full one: syslinux reads it through the BIOS,
    # which under TCG takes seconds per megabyte). The rest loads from the root.
    boot_entries = _boot_entries(vm_entries)
    _write_atomic(boot_ramfs, lambda fh: _write_cpio_gz(boot_entries, fh))
    try:
        build_qcow2(qcow2, vmlinuz, boot_ramfs, vm_root, MTIME)
    except DiskError as exc:
        missing.append(f"qcow2 disk: {exc}")
    finally:
        vm_root.unlink(missing_ok=True)
        boot_ramfs.unlink(missing_ok=True)


# What the disk's initramfs loads to mount its ext4 root from a virtio disk, in load order.
ROOT_MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                "virtio_pci", "virtio_blk", "crc16", "mbcache", "jbd2", "crc32c_generic",
                "ext4")


def _boot_entries(vm_entries: list) -> list:
    keep = {"bin/busybox", "init", "sbin/init", "etc/passwd", "etc/group", "etc/hostname"}
    out = []
    for e in vm_entries:
        kind, path = e[0], e[1]
        if kind == "dir" and not path.startswith(("home", "root", "etc/")) or path in keep \
                or (kind == "link" and str(e[3]).endswith("busybox")):
            out.append(e)
        elif path.startswith("lib/modules/") and path[12:-3] in ROOT_MODULES:
            out.append(e)
    names = {e[1][12:-3] for e in out if e[1].startswith("lib/modules/")}
    order = "".join(f"{m}\n" for m in ROOT_MODULES if m in names)
    out.append(("file", "lib/modules/order", 0o644, order.encode()))
    return sorted(out, key=lambda e: e[1])


def _write_cpio_gz(entries: list, fh) -> None:  # noqa: ANN001
    # level 6: a third of level 9's time for a few percent more bytes
    with gzip.GzipFile(fileobj=fh, mode="wb", mtime=MTIME, compresslevel=6) as gz:
        _cpio_newc(entries, gz)


def build(out: Path, *, kernel: bool = True, download: bool = False) -> Built:
    """Build (or reuse) the test images in ``out``. Raises CannotBuild with the reason.
    What the images had to leave out (a Debian package not installed: no SSH server, no
    jq, no qcow2 disk) is named in ``Built.missing``."""
    out = Path(out)
    busybox = find_busybox()
    if busybox is None:
        raise CannotBuild("no static busybox (install Debian's busybox-static)")
    vmlinuz = find_kernel(out) if kernel else None
    if kernel and download and (vmlinuz is None or (
            vmlinuz.parent == out and len(find_modules(vmlinuz)) < len(VM_MODULES))):
        vmlinuz = _download_kernel(out)  # (again, for a cached kernel without its modules)
    modules = find_modules(vmlinuz) if vmlinuz is not None else []
    programs, program_key, missing = extras.programs()
    key = {"version": VERSION, "busybox": str(busybox),
           "busybox_mtime": int(busybox.stat().st_mtime), "size": busybox.stat().st_size,
           "modules": [[str(m), m.stat().st_size] for m in modules],
           "kernel": [str(vmlinuz), vmlinuz.stat().st_size] if vmlinuz else None,
           "programs": program_key, "source": _source_digest()}
    # Built already, with this very code and these inputs, in a shared cache
    # (scripts/build-test-images)? Then `up` seeds those files: no rebuild per data dir.
    for shared in (Path(c) for c in SHARED_CACHES):
        if shared.resolve() != out.resolve() and _fresh(shared, key, vmlinuz is not None):
            out = shared
            break
    stamp = out / "build.json"
    rootfs, initramfs, disk = out / "rootfs.tar", out / "initramfs.gz", out / "disk.raw"
    qcow2 = out / "disk.qcow2"
    old = _stamp(out)
    if not _fresh(out, key, vmlinuz is not None):
        entries = _tree(busybox, "container", programs)
        _write_atomic(rootfs, lambda fh: _tar(entries, fh))
        if vmlinuz is not None:
            _build_vm(out, vmlinuz, entries, modules, missing)
        _write_atomic(stamp, lambda fh: fh.write(json.dumps({**key, "missing": missing}).encode()))
    else:
        missing = old.get("missing", [])
    built = Built(rootfs=rootfs, missing=list(missing))
    if vmlinuz is not None:
        built.kernel, built.initramfs, built.disk = vmlinuz, initramfs, disk
        built.qcow2 = qcow2 if qcow2.is_file() else None
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get(
        "POCKETSTACK_TEST_IMAGES", SHARED_CACHES[0] if os.geteuid() == 0 else SHARED_CACHES[1]))
    parser.add_argument("--with-kernel", action="store_true",
                        help="also provide vmlinuz (downloads linux-image-amd64 if needed)")
    args = parser.parse_args(argv)
    try:
        built = build(Path(args.out), kernel=args.with_kernel, download=args.with_kernel)
    except CannotBuild as exc:
        print(f"build-test-images: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: (v if isinstance(v, list) else str(v) if v else None)
                      for k, v in built.__dict__.items()}))
    return 0

