"""Large objects: Dynamic (X-Object-Manifest) and Static (multipart-manifest) manifests.

A DLO is the concatenation, in listing order, of the objects named
``<container>/<prefix>*``; its ETag is the quoted MD5 of their ETags. An SLO's blob is the
JSON manifest as Swift stores it (name, hash, bytes, content_type, optional range); its
ETag is the quoted MD5 of the segment ETags (with ranges as Swift does).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson

from pocketstack.errors import BadRequest, Conflict
from pocketstack.services.object_store.names import check_container, check_object
from pocketstack.services.object_store.store import ObjectRecord

if TYPE_CHECKING:
    from pocketstack.services.object_store.service import ObjectStorageService

MAX_MANIFEST_SEGMENTS = 1000
MAX_MANIFEST_SIZE = 8 * 1024 * 1024
MAX_DEPTH = 10


@dataclass
class Segment:
    record: ObjectRecord
    range_start: int
    length: int


def split_path(path: str) -> tuple[str, str]:
    """'/container/object' or 'container/object' -> (container, object)."""
    path = unquote(path).lstrip("/")
    container, _, name = path.partition("/")
    if not container or not name:
        raise BadRequest(f"Invalid segment path {path!r}: expected container/object")
    return check_container(container), check_object(name)


def segments(service: "ObjectStorageService", record: ObjectRecord, depth: int = 0
             ) -> list[Segment]:
    """The plain-object segments that make up a large object, in order (sync)."""
    if depth > MAX_DEPTH:
        raise Conflict("Too many levels of nested large object manifests.")
    store = service.store
    out: list[Segment] = []
    if record.is_slo:
        for item in manifest(service, record):
            container, name = split_path(item["name"])
            seg = store.find(record.account, container, name)
            if seg is None:
                raise Conflict(f"Large object segment {item['name']} is missing.")
            start, length = _range(item, seg)
            if seg.is_slo or seg.dlo_manifest:
                out.extend(_slice(segments(service, seg, depth + 1), start, length))
            else:
                out.append(Segment(seg, start, length))
        return out
    manifest_path = record.dlo_manifest or ""
    container, _, prefix = unquote(manifest_path).partition("/")
    for seg in store.list_objects(record.account, container, prefix=prefix, limit=10000):
        if isinstance(seg, str):
            continue
        # Like Swift, DLO segments are read raw: a DLO manifest under its own prefix (a
        # common layout) contributes its own, usually empty, data, not itself again.
        if seg.is_slo:
            out.extend(segments(service, seg, depth + 1))
        else:
            out.append(Segment(seg, 0, seg.size))
    return out


def _range(item: dict[str, Any], seg: ObjectRecord) -> tuple[int, int]:
    spec = item.get("range")
    if not spec:
        return 0, seg.size
    first, _, last = str(spec).partition("-")
    start = int(first) if first else max(0, seg.size - int(last))
    stop = int(last) + 1 if first and last else seg.size
    return start, max(0, min(stop, seg.size) - start)


def _slice(segs: list[Segment], start: int, length: int) -> list[Segment]:
    out, offset, end = [], 0, start + length
    for seg in segs:
        lo, hi = offset, offset + seg.length
        offset = hi
        if hi <= start or lo >= end:
            continue
        cut_lo = max(start, lo) - lo
        cut_hi = min(end, hi) - lo
        out.append(Segment(seg.record, seg.range_start + cut_lo, cut_hi - cut_lo))
    return out


def manifest(service: "ObjectStorageService", record: ObjectRecord) -> list[dict[str, Any]]:
    data = b"".join(service.store.read(record))
    return orjson.loads(data)


def dlo_etag_and_size(service: "ObjectStorageService", record: ObjectRecord) -> tuple[str, int]:
    segs = segments(service, record)
    md5 = hashlib.md5(usedforsecurity=False)
    for seg in segs:
        md5.update(seg.record.etag.encode())
    return md5.hexdigest(), sum(s.length for s in segs)


def build_slo(service: "ObjectStorageService", account: str, body: bytes
              ) -> tuple[bytes, str, int]:
    """Validate a multipart-manifest=put body (sync). Returns (stored manifest, etag, size)."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise BadRequest("Manifest is too large.")
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise BadRequest("Manifest must be valid JSON.") from None
    if not isinstance(items, list) or not items:
        raise BadRequest("Manifest must be a non-empty JSON list of segments.")
    if len(items) > MAX_MANIFEST_SEGMENTS:
        raise BadRequest(f"Too many segments: at most {MAX_MANIFEST_SEGMENTS}.")
    problems: list[str] = []
    stored: list[dict[str, Any]] = []
    md5 = hashlib.md5(usedforsecurity=False)
    total = 0
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "path" not in item:
            problems.append(f"Index {index}: missing path")
            continue
        unknown = set(item) - {"path", "etag", "size_bytes", "range"}
        if unknown:
            problems.append(f"Index {index}: unknown key(s) {', '.join(sorted(unknown))}")
            continue
        try:
            container, name = split_path(str(item["path"]))
        except BadRequest as exc:
            problems.append(f"Index {index}: {exc.message}")
            continue
        seg = service.store.find(account, container, name)
        if seg is None:
            problems.append(f"{item['path']}, 404 Not Found")
            continue
        seg_etag = seg.etag.strip('"')
        size = seg.size
        if item.get("etag") not in (None, "") and str(item["etag"]).strip('"') != seg_etag:
            problems.append(f"{item['path']}, Etag Mismatch")
            continue
        if item.get("size_bytes") not in (None, "") and int(item["size_bytes"]) != size:
            problems.append(f"{item['path']}, Size Mismatch")
            continue
        entry: dict[str, Any] = {"name": f"/{container}/{name}", "hash": seg_etag,
                                 "bytes": size, "content_type": seg.content_type,
                                 "last_modified": _iso(seg.timestamp)}
        if seg.is_slo:
            entry["sub_slo"] = True
        if item.get("range"):
            entry["range"] = str(item["range"])
            start, length = _range(entry, seg)
            if length <= 0:
                problems.append(f"Index {index}: unsatisfiable range")
                continue
            md5.update(f"{seg_etag}:{start}-{start + length - 1};".encode())
            total += length
        else:
            md5.update(seg_etag.encode())
            total += size
        stored.append(entry)
    if problems:
        raise BadRequest("Errors:\n" + "\n".join(problems))
    return orjson.dumps(stored), md5.hexdigest(), total


def _iso(ts: float) -> str:
    from pocketstack.services.object_store.names import listing_date

    return listing_date(ts)
