"""The VM disk image in the shape of a real cloud image, built without mounting anything:
an MBR partition table with syslinux's boot code, partition 1 a small FAT boot partition
(syslinux, the kernel, the initramfs; made with mtools and installed with Debian's
mtools-based ``syslinux``, which work on an image file), partition 2 the ext4 root
(``mke2fs -d`` populates it from a directory). The initramfs' /init mounts the root named by
``pocketstack.root=`` and switches to it, so the guest's files live on the disk (and survive
a reboot, a snapshot, a shelve) as on cirros. ``qemu-img convert`` makes it qcow2.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
from pathlib import Path

SECTOR = 512
BOOT_START = 2048  # sectors: partitions start at 1 MiB, as fdisk and parted align them
BOOT_MB = 48
ROOT_MB = 192
ROOT_LABEL = "cirros-rootfs"
ROOT_UUID = "6f6b6574-7374-6163-6b00-000000000002"  # fixed: rebuilds are identical
MBR_CANDIDATES = ("/usr/lib/syslinux/mbr/mbr.bin", "/usr/lib/SYSLINUX/mbr.bin")
SYSLINUX_CFG = f"""SERIAL 0 115200
DEFAULT cirros
PROMPT 0
TIMEOUT 1
LABEL cirros
  KERNEL vmlinuz
  APPEND initrd=initrd.gz console=tty0 console=ttyS0,115200 pocketstack.root=LABEL={ROOT_LABEL}
"""
TOOLS = ("mformat", "mcopy", "syslinux", "mke2fs", "qemu-img")


class DiskError(RuntimeError):
    pass


def missing_tools() -> list[str]:
    """What the disk build needs and this host lacks (tool names, or the mbr.bin file)."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not any(Path(c).is_file() for c in MBR_CANDIDATES):
        missing.append("syslinux-common (mbr.bin)")
    return missing


def _run(*argv: str, env: dict | None = None) -> None:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=300,
                         env={**os.environ, **(env or {})})
    if res.returncode != 0:
        raise DiskError(f"{argv[0]} failed: {(res.stderr or res.stdout).strip()[-400:]}")


def _partition(boot: bool, ptype: int, start: int, count: int) -> bytes:
    # CHS fields are the "use LBA" values (0xFE/0xFF/0xFF) every modern tool writes
    return struct.pack("<B3sB3sII", 0x80 if boot else 0, b"\xfe\xff\xff", ptype,
                       b"\xfe\xff\xff", start, count)


def build_qcow2(out: Path, kernel: Path, initramfs: Path, root_tar: Path, mtime: int) -> None:
    """Write ``out`` (qcow2) from the kernel, the initramfs and the root tree (a tarball in
    the guest's ids). Raises DiskError with the reason."""
    missing = missing_tools()
    if missing:
        raise DiskError(f"missing {', '.join(missing)} (Debian: mtools syslinux "
                        "syslinux-common e2fsprogs qemu-utils)")
    mbr = next(Path(c) for c in MBR_CANDIDATES if Path(c).is_file()).read_bytes()[:440]
    env = {"E2FSPROGS_FAKE_TIME": str(mtime), "SOURCE_DATE_EPOCH": str(mtime),
           "MTOOLS_SKIP_CHECK": "1"}
    with tempfile.TemporaryDirectory(prefix="ps-disk-", dir=out.parent) as tmp:
        t = Path(tmp)
        # partition 1: FAT16 with syslinux, the kernel and the initramfs
        boot = t / "boot.img"
        with open(boot, "wb") as fh:
            fh.truncate(BOOT_MB << 20)
        _run("mformat", "-i", str(boot), "-v", "CIRROS-BOOT", "-N", "7073626f", "::", env=env)
        files = t / "bootfiles"
        files.mkdir()
        shutil.copyfile(kernel, files / "vmlinuz")
        shutil.copyfile(initramfs, files / "initrd.gz")
        (files / "syslinux.cfg").write_text(SYSLINUX_CFG)
        for f in files.iterdir():
            os.utime(f, (mtime, mtime))
        _run("mcopy", "-m", "-i", str(boot), *(str(f) for f in sorted(files.iterdir())), "::/",
             env=env)
        _run("syslinux", "--install", str(boot), env=env)
        # partition 2: ext4 populated from the root tree (extracted keeping its owners: as
        # root they are the guest's; mke2fs -d copies them)
        tree = t / "root"
        tree.mkdir()
        with tarfile.open(root_tar) as tar:
            tar.extractall(tree, filter="fully_trusted", numeric_owner=True)
        root = t / "root.img"
        _run("mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-U", ROOT_UUID,
             "-E", f"hash_seed={ROOT_UUID},root_owner=0:0", "-m", "0", "-d", str(tree),
             str(root), f"{ROOT_MB}M", env=env)
        # the whole disk: MBR, gap, partition 1, partition 2
        boot_sectors, root_sectors = (BOOT_MB << 20) // SECTOR, (ROOT_MB << 20) // SECTOR
        raw = t / "disk.raw"
        with open(raw, "wb") as fh:
            table = (_partition(True, 0x06, BOOT_START, boot_sectors)
                     + _partition(False, 0x83, BOOT_START + boot_sectors, root_sectors)
                     + b"\0" * 32)
            fh.write(mbr + struct.pack("<I", 0x706b7473) + b"\0\0" + table + b"\x55\xaa")
            fh.seek(BOOT_START * SECTOR)
            for part in (boot, root):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, fh, 1 << 20)
            fh.truncate((BOOT_START + boot_sectors + root_sectors) * SECTOR)
        tmp_out = t / "disk.qcow2"
        _run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(tmp_out))
        os.chmod(tmp_out, 0o644)
        os.replace(tmp_out, out)
