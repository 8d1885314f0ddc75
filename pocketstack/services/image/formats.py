"""Disk image format inspection: what the uploaded bytes really are, and are they safe.

Uploaded data is checked against its declared ``disk_format`` before the image may go
active (glance's format_inspector, CVE-2022-47951 / CVE-2024-32498 class of problems).
An image that a hypervisor or ``qemu-img`` would follow to *another* file on the host is
refused outright, whatever the settings:

- qcow2 with a backing file or an external data file, or a malformed qcow2 header;
- QED (backing files), LUKS, VHD differencing disks, VHDX with a parent locator, VDI
  differencing images;
- VMDK text descriptors and VMDK create types other than monolithicSparse and
  streamOptimized (their extents name other files);
- content of a rich format (qcow2, vmdk, vhd, vhdx, vdi, ...) declared as something else,
  e.g. a qcow2 uploaded as ``raw`` (the classic way to smuggle a backing file).

Content that is no recognised format under a declared inspectable format (random bytes
called ``qcow2``) is refused when ``require_format_match`` is set (glance's
``[image_format] require_image_format_match``, default true) and allowed otherwise; such
data cannot make qemu read host files.

Inspection reads only headers, footers and small metadata tables through ``read_at``
(offset, n) -> bytes, so it works on a temp file before commit without loading the image.
"""

from __future__ import annotations

import io
import struct
import tarfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from pocketstack.errors import BadRequest

ReadAt = Callable[[int, int], bytes]

DISK_FORMATS = ("ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso",
                "ploop")
CONTAINER_FORMATS = ("ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed")
# Formats that point qemu at structure inside the file (and possibly at other files).
RICH = {"qcow2", "qed", "vmdk", "vhd", "vhdx", "vdi", "luks"}
# Declared formats whose content we can recognise (so "unrecognised" means "mismatch").
INSPECTABLE = {"qcow2", "vmdk", "vhd", "vhdx", "vdi", "iso"}
# Detected formats a plain block device (raw) image legitimately looks like.
RAW_LIKE = {"raw", "gpt", "mbr", "iso"}
VMDK_ALLOWED_TYPES = ("monolithicSparse", "streamOptimized")


class InvalidImageData(BadRequest):
    kind = "InvalidImageData"


@dataclass(frozen=True)
class Inspection:
    format: str  # what the content is: qcow2, vmdk, ..., or raw when unrecognised
    virtual_size: int | None


def _u32be(b: bytes, off: int) -> int:
    return struct.unpack_from(">I", b, off)[0]


def _u64be(b: bytes, off: int) -> int:
    return struct.unpack_from(">Q", b, off)[0]


def _u16le(b: bytes, off: int) -> int:
    return struct.unpack_from("<H", b, off)[0]


def _u32le(b: bytes, off: int) -> int:
    return struct.unpack_from("<I", b, off)[0]


def _u64le(b: bytes, off: int) -> int:
    return struct.unpack_from("<Q", b, off)[0]


# -- per-format probes: return (format, virtual_size) or raise InvalidImageData ---------------

def _qcow2(head: bytes, size: int) -> tuple[str, int]:
    if len(head) < 72:
        raise InvalidImageData("qcow2 header is truncated.")
    version = _u32be(head, 4)
    if version not in (2, 3):
        raise InvalidImageData(f"qcow2 header has unsupported version {version}.")
    backing_offset, backing_size = _u64be(head, 8), _u32be(head, 16)
    cluster_bits = _u32be(head, 20)
    virtual = _u64be(head, 24)
    if not 9 <= cluster_bits <= 21:
        raise InvalidImageData(f"qcow2 header is malformed (cluster_bits {cluster_bits}).")
    if backing_offset or backing_size:
        raise InvalidImageData("qcow2 images with a backing file are not allowed.")
    if version == 3:
        if len(head) < 104:
            raise InvalidImageData("qcow2 v3 header is truncated.")
        incompatible = _u64be(head, 72)
        header_length = _u32be(head, 100)
        if incompatible & 0x4:
            raise InvalidImageData("qcow2 images with an external data file are not allowed.")
        if incompatible & ~0x1F:
            raise InvalidImageData("qcow2 header has unknown incompatible features.")
        if header_length < 104 or header_length > (1 << cluster_bits):
            raise InvalidImageData("qcow2 header is malformed (header_length).")
        # Header extensions: refuse an external data file name even without the bit.
        off = header_length
        for _ in range(64):
            if off + 8 > len(head):
                break
            ext_type, ext_len = _u32be(head, off), _u32be(head, off + 4)
            if ext_type == 0:
                break
            if ext_type == 0x44415441:  # "DATA": external data file name
                raise InvalidImageData("qcow2 images with an external data file are not "
                                       "allowed.")
            off += 8 + ((ext_len + 7) & ~7)
    return "qcow2", virtual


def _vmdk_descriptor_type(text: bytes) -> str | None:
    for line in text.decode("latin-1").splitlines():
        line = line.strip()
        if line.lower().startswith("createtype"):
            _, _, value = line.partition("=")
            return value.strip().strip('"')
    return None


def _vmdk_sparse(head: bytes, read_at: ReadAt) -> tuple[str, int]:
    if len(head) < 64:
        raise InvalidImageData("VMDK header is truncated.")
    capacity = _u64le(head, 12)
    desc_offset, desc_size = _u64le(head, 28), _u64le(head, 36)
    if not desc_offset or not desc_size or desc_size > 2048:
        raise InvalidImageData("VMDK sparse header has no usable embedded descriptor.")
    descriptor = read_at(desc_offset * 512, desc_size * 512)
    create_type = _vmdk_descriptor_type(descriptor.split(b"\0", 1)[0])
    if create_type not in VMDK_ALLOWED_TYPES:
        raise InvalidImageData(f"VMDK create type {create_type!r} is not allowed; only "
                               f"{', '.join(VMDK_ALLOWED_TYPES)} are.")
    return "vmdk", capacity * 512


def _vhd_footer(footer: bytes) -> tuple[str, int]:
    disk_type = _u32be(footer, 60)
    if disk_type == 4:
        raise InvalidImageData("VHD differencing disks (with a parent) are not allowed.")
    if disk_type not in (2, 3):
        raise InvalidImageData(f"VHD footer is malformed (disk type {disk_type}).")
    return "vhd", _u64be(footer, 48)


_VHDX_REGION_METADATA = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
_VHDX_VIRTUAL_SIZE = uuid.UUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8").bytes_le
_VHDX_PARENT_LOCATOR = uuid.UUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C").bytes_le


def _vhdx(read_at: ReadAt) -> tuple[str, int | None]:
    region = read_at(192 * 1024, 64 * 1024)
    if region[:4] != b"regi":
        raise InvalidImageData("VHDX region table is malformed.")
    count = _u32le(region, 8)
    if count > 2047:
        raise InvalidImageData("VHDX region table is malformed.")
    meta_off = meta_len = None
    for i in range(count):
        entry = region[16 + 32 * i: 48 + 32 * i]
        if len(entry) < 32:
            raise InvalidImageData("VHDX region table is truncated.")
        if entry[:16] == _VHDX_REGION_METADATA:
            meta_off, meta_len = _u64le(entry, 16), _u32le(entry, 24)
    if meta_off is None:
        raise InvalidImageData("VHDX has no metadata region.")
    table = read_at(meta_off, 64 * 1024)
    if table[:8] != b"metadata":
        raise InvalidImageData("VHDX metadata table is malformed.")
    entries = _u16le(table, 10)
    virtual = None
    for i in range(min(entries, 2047)):
        entry = table[32 + 32 * i: 64 + 32 * i]
        if len(entry) < 32:
            raise InvalidImageData("VHDX metadata table is truncated.")
        item, offset = entry[:16], _u32le(entry, 16)
        if item == _VHDX_PARENT_LOCATOR:
            raise InvalidImageData("VHDX differencing disks (with a parent) are not allowed.")
        if item == _VHDX_VIRTUAL_SIZE:
            value = read_at(meta_off + offset, 8)
            if len(value) == 8:
                virtual = _u64le(value, 0)
    return "vhdx", virtual


def _vdi(head: bytes) -> tuple[str, int]:
    if len(head) < 0x178:
        raise InvalidImageData("VDI header is truncated.")
    image_type = _u32le(head, 0x4C)
    if image_type == 4:
        raise InvalidImageData("VDI differencing images are not allowed.")
    return "vdi", _u64le(head, 0x170)


def detect(read_at: ReadAt, size: int) -> Inspection:
    """What the content is. Raises InvalidImageData for unsafe or malformed content."""
    head = read_at(0, 64 * 1024)
    if head[:4] == b"QFI\xfb":
        return Inspection(*_qcow2(head, size))
    if head[:4] == b"QED\x00":
        return Inspection("qed", None)
    if head[:6] == b"LUKS\xba\xbe":
        return Inspection("luks", None)
    if head[:4] == b"KDMV":
        return Inspection(*_vmdk_sparse(head, read_at))
    if head[:4] == b"COWD":
        raise InvalidImageData("VMDK (ESX vmfsSparse) images are not allowed.")
    if head.lstrip()[:21] == b"# Disk DescriptorFile" or (
            b"createType" in head[:4096] and b"RW " in head[:4096]):
        raise InvalidImageData("VMDK descriptor files (which name other files as extents) "
                               "are not allowed.")
    if head[:8] == b"vhdxfile":
        return Inspection(*_vhdx(read_at))
    if head[:8] == b"conectix":
        return Inspection(*_vhd_footer(head[:512]))
    if size >= 512:
        footer = read_at(size - 512, 512)
        if footer[:8] == b"conectix":
            return Inspection(*_vhd_footer(footer))
    if len(head) >= 0x44 and _u32le(head, 0x40) == 0xBEDA107F:
        return Inspection(*_vdi(head))
    iso = read_at(0x8001, 5)
    if iso == b"CD001":
        desc = read_at(0x8000, 2048)
        if len(desc) >= 0x82:
            return Inspection("iso", _u32le(desc, 0x50) * _u16le(desc, 0x80))
        return Inspection("iso", None)
    if len(head) >= 520 and head[510:512] == b"\x55\xaa":
        return Inspection("gpt" if head[512:520] == b"EFI PART" else "mbr", size)
    return Inspection("raw", size)


def check(read_at: ReadAt, size: int, disk_format: str | None,
          require_match: bool) -> Inspection:
    """Inspect uploaded data against ``disk_format``; return what to record.

    Raises InvalidImageData (400) when the data must not become this image.
    """
    found = detect(read_at, size)
    declared = disk_format or "raw"
    if found.format == declared:
        return found
    if found.format in RICH:
        raise InvalidImageData(f"Image disk_format {declared} does not match stream data "
                               f"{found.format}.")
    # found is raw-like (raw, gpt, mbr, iso)
    if declared == "raw":
        return Inspection("raw", size)
    if declared == "iso" and found.format == "gpt":
        return Inspection("iso", found.virtual_size)  # hybrid ISOs carry a GPT
    if declared in INSPECTABLE and require_match:
        raise InvalidImageData(f"Image disk_format {declared} does not match stream data "
                               f"{found.format}.")
    return Inspection(found.format, None)


# -- container images (container_format docker / ova): tar archives --------------------------

class _ReadAtFile(io.RawIOBase):
    """A seekable read-only file over ``read_at``, for tarfile."""

    def __init__(self, read_at: ReadAt, size: int) -> None:
        self._read_at, self._size, self._pos = read_at, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf) -> int:  # noqa: ANN001
        data = self._read_at(self._pos, len(buf))
        buf[:len(data)] = data
        self._pos += len(data)
        return len(data)


def _unsafe_member(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith("/") or ".." in parts


def check_container(read_at: ReadAt, size: int, container_format: str | None,
                    require_match: bool) -> None:
    """A ``docker`` (root file system) or ``ova`` image must be a tar archive (docker may
    be gzip-compressed) whose members stay inside it: no absolute names, no ``..``, no
    hard links out. Raises InvalidImageData."""
    if container_format not in ("docker", "ova") or size == 0:
        return
    head = read_at(0, 512)
    gz = head[:2] == b"\x1f\x8b"
    if not (len(head) >= 262 and head[257:262] == b"ustar") and not (
            gz and container_format == "docker"):
        if require_match:
            raise InvalidImageData(f"Image container_format {container_format} needs a tar "
                                   "archive; the data is not one.")
        return
    try:
        with tarfile.open(fileobj=io.BufferedReader(_ReadAtFile(read_at, size), 1 << 20),
                          mode="r:gz" if gz else "r:") as tar:
            for n, member in enumerate(tar):
                if n > 1_000_000:
                    raise InvalidImageData("The tar archive has too many members.")
                if _unsafe_member(member.name):
                    raise InvalidImageData(f"The tar archive member {member.name!r} would "
                                           "land outside the root file system.")
                if member.islnk() and _unsafe_member(member.linkname):
                    raise InvalidImageData(f"The tar archive hard link {member.name!r} "
                                           "points outside the archive.")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise InvalidImageData(f"The tar archive is malformed: {exc}") from None
