"""Test images that need no internet, built from Debian packages (as DevStack's cirros).

- ``rootfs.tar``: a BusyBox root file system for container instances (Debian's
  ``busybox-static``: one static binary plus its applet links, /etc basics, /sbin/init);
- ``vmlinuz`` (aki) + ``initramfs.gz`` (ari): Debian's ``linux-image-amd64`` kernel and a
  BusyBox initramfs whose /init mounts the basics, loads the kernel's virtio modules (Debian
  builds them as modules; they sit next to the kernel in ``modules/``, from the same
  package), brings up e* NICs with DHCP (also hot-plugged ones), prints each NIC's address,
  the NICs and disks when they change, and a ready line on the console; ``disk.raw`` is the small ami root disk that names them.

Outputs are deterministic (fixed mtimes, sorted entries) so their checksums are stable,
and are cached in the output directory. ``build(download=False)`` (what ``up`` does)
never touches the network: it uses the installed busybox-static and a kernel already in
the cache or in /boot. ``scripts/build-test-images --with-kernel`` may download the
kernel package with ``apt-get download`` (Debian's mirror) and extract only the kernel.

Usage: python -m pocketstack.services.image.testimages [--out DIR] [--with-kernel]
"""

from __future__ import annotations

import argparse
import glob
import gzip
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
from dataclasses import dataclass
from pathlib import Path

MTIME = 1700000000  # fixed, so rebuilds are byte-identical
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
VERSION = "5"  # bump when the layout changes so caches rebuild


class CannotBuild(RuntimeError):
    pass


@dataclass
class Built:
    rootfs: Path
    kernel: Path | None = None
    initramfs: Path | None = None
    disk: Path | None = None


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


# Loaded in this order by the VM /init (each after its dependencies): PCI virtio transport,
# virtio NICs (eth0 for DHCP) and disks (volumes hot-plugged as /dev/vdX), and the ACPI power
# button as an input device, so a graceful stop (QMP system_powerdown) powers the VM off.
VM_MODULES = ("virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
              "virtio_pci", "failover", "net_failover", "virtio_net", "virtio_blk", "evdev",
              "button")


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


INIT_CONTAINER = """#!/bin/sh
# pocketstack busybox container init: basics, then stay up until told to stop.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
hostname -F /etc/hostname 2>/dev/null
echo "pocketstack-busybox: up"
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"""

INIT_VM = """#!/bin/sh
# pocketstack busybox initramfs /init
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
ip link set lo up
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci \\
         failover net_failover virtio_net virtio_blk evdev button; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko 2>/dev/null
done
# The power button (/etc/acpi/PWRF/00000080) powers off, as a cloud image's acpid would.
mkdir -p /var/log
acpid 2>/dev/null
nic_up() {
  ip link set "$1" up
  udhcpc -i "$1" -q -n -t 5 -T 2 -s /etc/udhcpc.script >/dev/null 2>&1
  set -- "$1" $(ip -o -4 addr show dev "$1")
  echo "pocketstack-busybox: $1 ${5:-no-address}" > /dev/console
}
nics() { ls /sys/class/net | grep '^e' | tr '\n' ' '; }
for nic in /sys/class/net/e*; do
  [ -e "$nic" ] || continue
  nic_up "${nic##*/}"
done
# Disks and NICs coming and going (volumes and ports hot-plugged), as console lines; a new
# NIC asks for DHCP as the boot ones did (in the background: it may get no answer).
(
  old=""
  oldn=$(nics)
  while :; do
    cur=$(ls /sys/block | grep '^vd' | tr '\n' ' ')
    [ "$cur" != "$old" ] && echo "pocketstack-busybox: disks ${cur:-none}" > /dev/console
    old=$cur
    curn=$(nics)
    if [ "$curn" != "$oldn" ]; then
      echo "pocketstack-busybox: nics ${curn:-none}" > /dev/console
      for n in $curn; do
        case " $oldn " in *" $n "*) ;; *) nic_up "$n" & ;; esac
      done
    fi
    oldn=$curn
    sleep 1
  done
) &
echo "pocketstack-busybox: booted $(uname -r)" > /dev/console
exec setsid cttyhack /bin/sh
"""

POWER_BUTTON = """#!/bin/sh
echo "pocketstack-busybox: power button, powering off" > /dev/console
sync
poweroff -f
"""

UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route add default via ${router%% *} dev "$interface"
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
"""

FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hostname": "busybox\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/resolv.conf": "",
    "etc/os-release": 'NAME="BusyBox"\nID=busybox\nPRETTY_NAME="pocketstack busybox"\n',
}
DIRS = ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp",
        "root", "var", "var/run", "run", "mnt")


def _tree(busybox: Path) -> list[tuple[str, str, int, bytes | str]]:
    """(kind, path, mode, data-or-target) entries of the root file system, sorted."""
    entries: list[tuple[str, str, int, bytes | str]] = []
    for d in DIRS:
        entries.append(("dir", d, 0o1777 if d == "tmp" else 0o755, b""))
    entries.append(("file", "bin/busybox", 0o755, busybox.read_bytes()))
    for applet in _applets(busybox):
        rel = applet.lstrip("/")
        if rel == "bin/busybox" or rel.startswith(("linuxrc",)):
            continue
        depth = rel.count("/")
        entries.append(("link", rel, 0o777, "../" * (depth - 1) + "bin/busybox"
                        if depth > 1 else "busybox"))
    for path, text in FILES.items():
        entries.append(("file", path, 0o644, text.encode()))
    entries.append(("file", "etc/udhcpc.script", 0o755, UDHCPC_SCRIPT.encode()))
    # /sbin/init is busybox's applet link; the container entry point is our script.
    entries = [e for e in entries if e[1] != "sbin/init"]
    entries.append(("file", "sbin/init", 0o755, INIT_CONTAINER.encode()))
    seen: dict[str, tuple[str, str, int, bytes | str]] = {}
    for e in entries:
        seen[e[1]] = e
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


def build(out: Path, *, kernel: bool = True, download: bool = False) -> Built:
    """Build (or reuse) the test images in ``out``. Raises CannotBuild with the reason."""
    out = Path(out)
    busybox = find_busybox()
    if busybox is None:
        raise CannotBuild("no static busybox (install Debian's busybox-static)")
    vmlinuz = find_kernel(out) if kernel else None
    if kernel and download and (vmlinuz is None or (
            vmlinuz.parent == out and len(find_modules(vmlinuz)) < len(VM_MODULES))):
        vmlinuz = _download_kernel(out)  # (again, for a cached kernel without its modules)
    modules = find_modules(vmlinuz) if vmlinuz is not None else []
    stamp = out / "build.json"
    key = {"version": VERSION, "busybox": str(busybox),
           "busybox_mtime": int(busybox.stat().st_mtime), "size": busybox.stat().st_size,
           "modules": [[str(m), m.stat().st_size] for m in modules]}
    rootfs, initramfs, disk = out / "rootfs.tar", out / "initramfs.gz", out / "disk.raw"
    fresh = stamp.is_file() and json.loads(stamp.read_text() or "{}") == key
    if not (fresh and rootfs.is_file() and initramfs.is_file() and disk.is_file()):
        entries = _tree(busybox)
        _write_atomic(rootfs, lambda fh: _tar(entries, fh))
        vm_entries = [e for e in entries if e[1] != "sbin/init"] + [
            ("link", "sbin/init", 0o777, "../init"), ("file", "init", 0o755, INIT_VM.encode())]
        if modules:
            vm_entries += [("dir", "lib", 0o755, b""), ("dir", "lib/modules", 0o755, b"")] + [
                ("file", f"lib/modules/{m.name}", 0o644, m.read_bytes()) for m in modules]
        vm_entries += [("dir", "etc/acpi", 0o755, b""), ("dir", "etc/acpi/PWRF", 0o755, b""),
                       ("file", "etc/acpi/PWRF/00000080", 0o755, POWER_BUTTON.encode())]
        vm_entries.sort(key=lambda e: e[1])

        def write_initramfs(fh) -> None:  # noqa: ANN001
            with gzip.GzipFile(fileobj=fh, mode="wb", mtime=MTIME) as gz:
                _cpio_newc(vm_entries, gz)
        _write_atomic(initramfs, write_initramfs)
        # The ami: a small empty raw root disk; the system lives in the initramfs.
        _write_atomic(disk, lambda fh: fh.truncate(1 << 20))
        _write_atomic(stamp, lambda fh: fh.write(json.dumps(key).encode()))
    built = Built(rootfs=rootfs)
    if vmlinuz is not None:
        built.kernel, built.initramfs, built.disk = vmlinuz, initramfs, disk
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
    print(json.dumps({k: (str(v) if v else None) for k, v in built.__dict__.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
