"""Small objects live in their database rows, larger ones in blob files (store.py, "Inline
objects"). Through swiftclient: which kind makes a file, replacing one kind by the other,
and the paths that read an inline object's bytes from somewhere other than a GET of it
(ranges, server-side copy, versions, DLO segments found by listing, SLO segments)."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

from pocketstack.services.object_store.store import INLINE_MAX


def unique(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def blob_files(cloud) -> set[Path]:  # noqa: ANN001
    return {p for p in (cloud.data_dir / "objects").rglob("*") if p.is_file()}


def settle(cloud, want: int, timeout: float = 10) -> set[Path]:  # noqa: ANN001
    """Replaced blobs are unlinked by a background thread: wait for the count."""
    deadline = time.monotonic() + timeout
    while True:
        files = blob_files(cloud)
        if len(files) == want or time.monotonic() > deadline:
            return files
        time.sleep(0.05)


def data(n: int, seed: str) -> bytes:
    unit = hashlib.sha256(seed.encode()).digest()
    return (unit * (n // len(unit) + 1))[:n]


def test_small_objects_make_no_file_and_large_ones_do(cloud, conn):
    c = unique("inline")
    conn.put_container(c)
    base = len(blob_files(cloud))
    small, edge, large = data(4096, "s"), data(INLINE_MAX, "e"), data(INLINE_MAX + 1, "l")
    conn.put_object(c, "small", contents=small)
    conn.put_object(c, "edge", contents=edge)
    assert len(settle(cloud, base)) == base
    conn.put_object(c, "large", contents=large)
    assert len(settle(cloud, base + 1)) == base + 1
    for name, body in (("small", small), ("edge", edge), ("large", large)):
        headers, got = conn.get_object(c, name)
        assert got == body and headers["etag"] == hashlib.md5(body).hexdigest()
        assert conn.get_object(c, name, headers={"Range": "bytes=10-19"})[1] == body[10:20]
    # replace a file-backed object by a small one and back: one file at a time
    conn.put_object(c, "large", contents=small)
    assert len(settle(cloud, base)) == base
    assert conn.get_object(c, "large")[1] == small
    conn.put_object(c, "small", contents=large)
    assert len(settle(cloud, base + 1)) == base + 1
    assert conn.get_object(c, "small")[1] == large
    head = conn.head_container(c)
    assert int(head["x-container-object-count"]) == 3
    assert int(head["x-container-bytes-used"]) == len(small) + len(edge) + len(large)
    for name in ("small", "edge", "large"):
        conn.delete_object(c, name)
    assert len(settle(cloud, base)) == base
    assert int(conn.head_container(c)["x-container-bytes-used"]) == 0


def test_inline_bytes_through_copy_versions_and_large_objects(conn):
    c, v = unique("inl-copy"), unique("inl-hist")
    conn.put_container(v)
    conn.put_container(c, headers={"X-History-Location": v})
    conn.put_object(c, "doc", contents=b"version one")
    conn.put_object(c, "doc", contents=b"version two")
    old = [o["name"] for o in conn.get_container(v)[1]]
    assert len(old) == 1 and conn.get_object(v, old[0])[1] == b"version one"
    # server-side copy of an inline object
    conn.put_object(c, "copy", contents=b"", headers={"X-Copy-From": f"/{c}/doc"})
    assert conn.get_object(c, "copy")[1] == b"version two"
    # DLO: segments are found by listing (no bytes with the rows), then read
    for i in range(3):
        conn.put_object(c, f"seg/{i:02d}", contents=f"part-{i};".encode())
    conn.put_object(c, "dlo", contents=b"", headers={"X-Object-Manifest": f"{c}/seg/"})
    assert conn.get_object(c, "dlo")[1] == b"part-0;part-1;part-2;"
    assert conn.get_object(c, "dlo", headers={"Range": "bytes=6-12"})[1] == b";part-1"
    # SLO over inline segments; its manifest is a small object too
    manifest = [{"path": f"/{c}/seg/{i:02d}", "etag": None, "size_bytes": None}
                for i in (2, 0)]
    conn.put_object(c, "slo", contents=json.dumps(manifest),
                    query_string="multipart-manifest=put")
    assert conn.get_object(c, "slo")[1] == b"part-2;part-0;"
    got = json.loads(conn.get_object(c, "slo", query_string="multipart-manifest=get")[1])
    assert [s["name"] for s in got] == [f"/{c}/seg/02", f"/{c}/seg/00"]
