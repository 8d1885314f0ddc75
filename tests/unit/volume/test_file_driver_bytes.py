"""The file backend's byte access used by backup and restore: holes are neither read nor
written, so an empty volume backs up and restores in well under a second and stays sparse."""

from __future__ import annotations

import os
from pathlib import Path

from pocketstack.drivers.volume.file import FileVolumeDriver

MiB = 1024 * 1024
CHUNK = 8 * MiB


def rchar() -> int:
    """Bytes this process got from read() so far (holes read count, skipped ones don't)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def make(tmp_path: Path, size: int) -> tuple[FileVolumeDriver, Path]:
    drv = FileVolumeDriver(tmp_path)
    path = drv.volume_path("v")
    with open(path, "wb") as fh:
        fh.truncate(size)
    return drv, path


def test_holes_read_as_zeros_and_zero_writes_keep_the_file_sparse(tmp_path):
    drv, path = make(tmp_path, 1024 * MiB)
    payload = os.urandom(MiB)
    drv.write_bytes("v", 300 * MiB + 5, payload)
    read_before = rchar()
    chunks = [drv.read_bytes("v", off, CHUNK) for off in range(0, 1024 * MiB, CHUNK)]
    for off in range(0, 1024 * MiB, CHUNK):
        if not off <= 300 * MiB < off + CHUNK:
            drv.write_bytes("v", off, bytes(CHUNK))
    read = rchar() - read_before
    whole = b"".join(chunks)
    assert len(whole) == 1024 * MiB
    assert whole[300 * MiB + 5: 301 * MiB + 5] == payload
    assert whole.count(0, 0, 300 * MiB) == 300 * MiB
    assert path.stat().st_blocks * 512 <= 4 * MiB  # only the written MiB is allocated
    # only the chunk holding data was read: reading the holes took ~3 s per GiB here
    assert read < 2 * CHUNK, read


def test_zeros_written_over_data_replace_it(tmp_path):
    drv, _ = make(tmp_path, 64 * MiB)
    drv.write_bytes("v", 0, b"\xff" * CHUNK)
    drv.write_bytes("v", 0, bytes(CHUNK))
    assert drv.read_bytes("v", 0, CHUNK) == bytes(CHUNK)
    drv.write_bytes("v", 4096, b"x" * 10)
    assert drv.read_bytes("v", 4090, 20) == bytes(6) + b"x" * 10 + bytes(4)


def test_reads_stop_at_the_end_of_the_volume(tmp_path):
    drv, _ = make(tmp_path, 10 * MiB)
    assert len(drv.read_bytes("v", 8 * MiB, CHUNK)) == 2 * MiB
    assert drv.read_bytes("v", 10 * MiB, CHUNK) == b""
    drv.write_bytes("v", 9 * MiB, b"y")
    tail = drv.read_bytes("v", 8 * MiB, CHUNK)
    assert len(tail) == 2 * MiB and tail[MiB] == ord("y")
