"""Format inspection: what is refused, what passes, what virtual_size is recorded."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pocketstack.services.image import formats
from pocketstack.services.image.formats import InvalidImageData, check, detect

needs_qemu_img = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img")


def reader(data: bytes):
    return lambda off, n: data[off:off + n] if off >= 0 and n > 0 else b""


def file_reader(path: Path):
    data = path.read_bytes()
    return reader(data), len(data)


def qemu_img(tmp_path: Path, fmt: str, *extra: str, size: str = "16M",
             name: str | None = None) -> Path:
    out = tmp_path / (name or f"img.{fmt}")
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *extra, str(out), size], check=True)
    return out


def qcow2_header(version: int = 3, backing: bool = False, incompatible: int = 0,
                 cluster_bits: int = 16, size: int = 1 << 30) -> bytes:
    hdr = bytearray(512)
    hdr[0:4] = b"QFI\xfb"
    struct.pack_into(">I", hdr, 4, version)
    if backing:
        struct.pack_into(">QI", hdr, 8, 200, 10)
        hdr[200:210] = b"/etc/shado"
    struct.pack_into(">I", hdr, 20, cluster_bits)
    struct.pack_into(">Q", hdr, 24, size)
    if version == 3:
        struct.pack_into(">Q", hdr, 72, incompatible)
        struct.pack_into(">I", hdr, 96, 4)
        struct.pack_into(">I", hdr, 100, 104)
    return bytes(hdr)


def test_random_bytes_are_raw():
    data = os.urandom(4096)
    assert detect(reader(data), len(data)).format in ("raw", "mbr")
    assert check(reader(data), len(data), "raw", True).virtual_size == 4096


def test_qcow2_header_virtual_size():
    hdr = qcow2_header()
    found = check(reader(hdr), len(hdr), "qcow2", True)
    assert found.format == "qcow2" and found.virtual_size == 1 << 30


@pytest.mark.parametrize("hdr, words", [
    (qcow2_header(backing=True), "backing file"),
    (qcow2_header(incompatible=0x4), "external data file"),
    (qcow2_header(version=7), "version"),
    (qcow2_header(cluster_bits=40), "cluster_bits"),
    (qcow2_header(incompatible=1 << 40), "unknown incompatible"),
    (qcow2_header()[:50], "truncated"),
])
def test_unsafe_or_malformed_qcow2_is_refused(hdr, words):
    for declared in ("qcow2", "raw"):
        with pytest.raises(InvalidImageData) as exc:
            check(reader(hdr), len(hdr), declared, False)
        assert words in exc.value.message


def test_qcow2_declared_raw_is_refused_even_without_require_match():
    hdr = qcow2_header()
    with pytest.raises(InvalidImageData, match="does not match stream data qcow2"):
        check(reader(hdr), len(hdr), "raw", False)


def test_require_match_decides_unrecognised_content_under_inspectable_format():
    data = os.urandom(2048)
    with pytest.raises(InvalidImageData):
        check(reader(data), len(data), "qcow2", True)
    assert check(reader(data), len(data), "qcow2", False).virtual_size is None
    # formats nobody can inspect (kernels, ramdisks) are always fine
    assert check(reader(data), len(data), "aki", True).format in ("raw", "mbr")


def test_vmdk_descriptor_is_refused():
    text = (b'# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
            b'RW 2048 FLAT "/etc/shadow" 0\n')
    for declared in ("vmdk", "raw", "qcow2"):
        with pytest.raises(InvalidImageData, match="descriptor"):
            check(reader(text), len(text), declared, False)


@needs_qemu_img
def test_real_qcow2_with_backing_file_is_refused(tmp_path):
    base = qemu_img(tmp_path, "raw", name="base.raw")
    top = tmp_path / "top.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", "raw",
                    str(top)], check=True)
    read, size = file_reader(top)
    with pytest.raises(InvalidImageData, match="backing file"):
        check(read, size, "qcow2", True)


@needs_qemu_img
def test_real_qcow2_with_data_file_is_refused(tmp_path):
    img = qemu_img(tmp_path, "qcow2", "-o", f"data_file={tmp_path / 'data.raw'}")
    read, size = file_reader(img)
    with pytest.raises(InvalidImageData, match="external data file"):
        check(read, size, "qcow2", True)


@needs_qemu_img
@pytest.mark.parametrize("fmt, opts, expect", [
    ("qcow2", (), 16 << 20),
    ("vmdk", ("-o", "subformat=monolithicSparse"), 16 << 20),
    ("vmdk", ("-o", "subformat=streamOptimized"), 16 << 20),
    ("vpc", ("-o", "subformat=dynamic"), None),
    ("vhdx", (), 16 << 20),
    ("vdi", (), 16 << 20),
])
def test_real_images_are_recognised(tmp_path, fmt, opts, expect):
    img = qemu_img(tmp_path, fmt, *opts)
    declared = {"vpc": "vhd"}.get(fmt, fmt)
    read, size = file_reader(img)
    found = check(read, size, declared, True)
    assert found.format == declared
    if expect is not None:
        assert found.virtual_size == expect
    else:  # vhd rounds to its CHS geometry
        assert abs(found.virtual_size - (16 << 20)) < (1 << 20)
    # and the same bytes under another rich name are refused
    with pytest.raises(InvalidImageData):
        check(read, size, "raw", False)


@needs_qemu_img
def test_vmdk_monolithic_flat_is_refused(tmp_path):
    img = qemu_img(tmp_path, "vmdk", "-o", "subformat=monolithicFlat", name="flat.vmdk")
    read, size = file_reader(img)
    with pytest.raises(InvalidImageData):
        check(read, size, "vmdk", False)


def test_vhd_differencing_is_refused():
    footer = bytearray(512)
    footer[0:8] = b"conectix"
    struct.pack_into(">Q", footer, 48, 1 << 20)
    struct.pack_into(">I", footer, 60, 4)
    data = bytes(1024) + bytes(footer)
    with pytest.raises(InvalidImageData, match="differencing"):
        check(reader(data), len(data), "vhd", False)


def test_iso_detected(tmp_path):
    data = bytearray(0x8000 + 2048)
    data[0x8001:0x8006] = b"CD001"
    struct.pack_into("<I", data, 0x8050, 10)
    struct.pack_into("<H", data, 0x8080, 2048)
    found = check(reader(bytes(data)), len(data), "iso", True)
    assert found.format == "iso" and found.virtual_size == 20480
    assert check(reader(bytes(data)), len(data), "raw", True).format == "raw"


def test_rich_formats_set():
    assert {"qcow2", "vmdk", "vhd", "vhdx", "vdi"} <= formats.RICH


def _tar(*names: str, link: str | None = None) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 3
            tar.addfile(info, io.BytesIO(b"abc"))
        if link:
            info = tarfile.TarInfo("hard")
            info.type = tarfile.LNKTYPE
            info.linkname = link
            tar.addfile(info)
    return buf.getvalue()


def test_container_rootfs_tar_checks():
    good = _tar("bin/busybox", "etc/passwd")
    formats.check_container(reader(good), len(good), "docker", True)
    for bad in (_tar("../../etc/cron.d/x"), _tar("/etc/shadow"),
                _tar("ok", link="../../../etc/shadow")):
        with pytest.raises(InvalidImageData, match="outside"):
            formats.check_container(reader(bad), len(bad), "docker", False)
    junk = os.urandom(4096)
    with pytest.raises(InvalidImageData, match="tar"):
        formats.check_container(reader(junk), len(junk), "docker", True)
    formats.check_container(reader(junk), len(junk), "docker", False)  # not enforced
    formats.check_container(reader(junk), len(junk), "bare", True)  # not a container image
    truncated = good[:700]
    with pytest.raises(InvalidImageData):
        formats.check_container(reader(truncated), len(truncated), "docker", True)


def test_seed_rootfs_passes(tmp_path):
    from pocketstack.services.image import testimages

    try:
        built = testimages.build(tmp_path, kernel=False)
    except testimages.CannotBuild as exc:
        pytest.skip(str(exc))
    data = built.rootfs.read_bytes()
    formats.check_container(reader(data), len(data), "docker", True)
    assert check(reader(data), len(data), "raw", True).format == "raw"
