"""What the cirros-like images carry besides busybox: Debian's own programs copied from the
host with the shared libraries they need (found with ldd), and the VM's small setuid sudo
compiled from ``guest/sudo.c``. Nothing is downloaded: a program that is not installed is
left out and named in ``missing`` (scripts/install installs them all).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

GUEST = Path(__file__).parent / "guest"

# (path in the image, candidates on the host, Debian package, extra names linking to it)
PROGRAMS = (
    ("usr/sbin/dropbear", ("/usr/sbin/dropbear",), "dropbear-bin", ()),
    ("usr/bin/dropbearkey", ("/usr/bin/dropbearkey",), "dropbear-bin", ()),
    ("usr/bin/jq", ("/usr/bin/jq",), "jq", ()),
    ("sbin/mke2fs", ("/usr/sbin/mke2fs", "/sbin/mke2fs"), "e2fsprogs",
     ("sbin/mkfs.ext4", "sbin/mkfs.ext3", "sbin/mkfs.ext2")),
    ("usr/bin/lsblk", ("/usr/bin/lsblk", "/bin/lsblk"), "util-linux", ()),
    ("sbin/blkid", ("/usr/sbin/blkid", "/sbin/blkid"), "util-linux", ()),
)
# Configuration files the programs read, copied when present.
CONFIG_FILES = (("etc/mke2fs.conf", "/etc/mke2fs.conf"),)
LIB_DIR = "lib/x86_64-linux-gnu"
INTERP = "lib64/ld-linux-x86-64.so.2"


def _first(cands: tuple[str, ...]) -> Path | None:
    for c in cands:
        if Path(c).is_file() and os.access(c, os.X_OK):
            return Path(c)
    return None


def _libraries(binary: Path) -> list[Path]:
    """The shared libraries (and the interpreter) ``binary`` loads, per ldd."""
    res = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        return []  # static, or not for this machine
    libs = []
    for line in res.stdout.splitlines():
        m = re.search(r"(/\S+) \(0x", line)
        if m and "vdso" not in line:
            libs.append(Path(m.group(1)))
    return libs


def programs() -> tuple[list[tuple[str, str, int, bytes | str]], list[str], list[str]]:
    """(tree entries, cache-key parts, missing packages) for PROGRAMS and their libraries."""
    if shutil.which("ldd") is None:
        return [], [], sorted({p[2] for p in PROGRAMS})
    entries: list[tuple[str, str, int, bytes | str]] = []
    key: list[str] = []
    missing: list[str] = []
    libs: dict[str, Path] = {}
    for dest, cands, package, links in PROGRAMS:
        host = _first(cands)
        if host is None:
            missing.append(package)
            continue
        data = host.read_bytes()
        entries.append(("file", dest, 0o755, data))
        key.append(f"{dest}:{hashlib.sha256(data).hexdigest()[:16]}")
        for link in links:
            entries.append(("link", link, 0o777, Path(dest).name))
        for lib in _libraries(host):
            libs.setdefault(lib.name, lib)
    for name, lib in sorted(libs.items()):
        data = lib.resolve().read_bytes()
        if name == Path(INTERP).name:
            entries.append(("file", f"{LIB_DIR}/{name}", 0o755, data))
            entries.append(("link", INTERP, 0o777, f"../{LIB_DIR}/{name}"))
        else:
            entries.append(("file", f"{LIB_DIR}/{name}", 0o644, data))
        key.append(f"{name}:{hashlib.sha256(data).hexdigest()[:16]}")
    if libs:
        entries += [("dir", "lib", 0o755, b""), ("dir", LIB_DIR, 0o755, b""),
                    ("dir", "lib64", 0o755, b"")]
    for dest, src in CONFIG_FILES:
        if Path(src).is_file():
            entries.append(("file", dest, 0o644, Path(src).read_bytes()))
    return entries, key, sorted(set(missing))


def setuid_sudo() -> bytes | None:
    """guest/sudo.c built static (gcc -static), or None without gcc and a static libc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    with tempfile.TemporaryDirectory(prefix="ps-sudo-") as tmp:
        out = Path(tmp) / "sudo"
        res = subprocess.run([gcc, "-static", "-Os", "-s", "-Wall", "-o", str(out),
                              str(GUEST / "sudo.c")], capture_output=True, text=True,
                             timeout=120)
        if res.returncode != 0 or not out.is_file():
            return None
        return out.read_bytes()


def guest_file(name: str) -> bytes:
    return (GUEST / name).read_bytes()
