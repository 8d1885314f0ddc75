"""glibc malloc tuning for the server process, applied once by `pocketstack up`.

Two findings, one setting:

Streamed bodies (image data, objects, every large body):
uvicorn/httptools/uvloop allocate a fresh ``bytes`` of ~256 KiB for every chunk of a
request body, several times over (socket read, parser callback, receive buffer). With
glibc's defaults the heap top is trimmed back to the kernel as soon as such a chunk is
freed and grown again for the next one, so every chunk pays its page faults (and the
kernel's zeroing) anew: measured on the 2-core CI box, uvicorn alone received 512 MiB at
~450 MiB/s that way, and at 1000+ MiB/s once freed memory stays in the process.

We keep up to ``TRIM`` bytes of free heap instead of returning it at once, and let
allocations up to ``MMAP`` come from the heap (an mmap'd chunk is unmapped on free, the
same churn). The process holds at most TRIM more idle memory per malloc arena.

One arena: glibc gives each thread that meets contention an arena of its own (up to 8
per core), and each kept its own TRIM of idle heap plus whatever 4 MiB download chunks it
last held. After six parallel 1 GiB image downloads the server stayed 231 MiB larger with
64 MiB x 16 arenas, 53 MiB with 16 MiB x 2, 13 MiB with 16 MiB x 1; upload and download
throughput did not move beyond this machine's noise (bench/image.py, A/B). Python's own
objects come from pymalloc, and threads mostly allocate holding the GIL, so one arena
costs little contention.

Password checks: every argon2 verification allocates a ~19 MiB work area. Left to itself,
glibc raises its mmap threshold after the first such block is freed, so later ones come
from the heap and stay resident (+20 MiB per concurrent login, for good). Setting the
threshold explicitly turns that dynamic adjustment off, and 19 MiB > ``MMAP`` keeps those
blocks mmapped and returned on free.

A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger("pocketstack")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 1
TRIM = 16 << 20
MMAP = 16 << 20  # above the 4 MiB batches an upload hands to its worker thread

_done = False


def tune() -> bool:
    """Apply the thresholds once; True when glibc accepted them."""
    global _done
    if _done:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM)) and \
            bool(libc.mallopt(M_ARENA_MAX, ARENAS))
    except (OSError, AttributeError) as exc:
        log.debug("mallopt unavailable: %s", exc)
        return False
    _done = ok
    return ok
