#!/usr/bin/env python3
"""Image data throughput: PUT /file and GET /file against a plain local file copy of the
same bytes, in the same run, on the same file system. Prints one JSON object.

    python bench/image.py [--size-mib 512] [--runs 3] [--port 8821] [--keep]

It starts its own pocketstack (data dir /tmp/ps-image-bench, fake network/compute) and
stops it at the end. The HTTP client is not the bottleneck: it sends with
``socket.sendfile`` (zero copy) and receives with ``recv_into`` a reused buffer; its
ceiling (the same transfer to a socket sink that only reads) is reported too.

Baselines: ``cp`` = shutil.copyfile (sendfile/copy_file_range) + fsync, which is what a
durable upload must also do (pocketstack fsyncs before the image is active); ``cp_nosync``
without the fsync. The upload also hashes md5 + sha512 and inspects the format, which a
copy does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20


def start_cloud(data_dir: Path, port: int) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "pocketstack.toml").write_text(
        '[image]\nseed_default_image = false\n[network]\ndriver = "fake"\n'
        '[compute]\ndriver = "fake"\n')
    log = open(data_dir.parent / f"{data_dir.name}.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pocketstack", "up", "--data-dir",
                             str(data_dir), "--port", str(port)], cwd=ROOT, stdout=log,
                            stderr=log)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("pocketstack did not start; see the log")
            time.sleep(0.1)
    raise SystemExit("pocketstack did not become ready")


def get_token(port: int, data_dir: Path) -> str:
    password = json.loads((data_dir / "passwords.json").read_text())["admin"]
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
    req = urllib.request.Request(f"http://127.0.0.1:{port}/identity/v3/auth/tokens",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        return resp.headers["X-Subject-Token"]


def api(port: int, token: str, method: str, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/image{path}", method=method,
                                 data=json.dumps(body).encode() if body else None,
                                 headers={"X-Auth-Token": token,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def read_response(sock: socket.socket, buf: bytearray) -> tuple[int, int]:
    """Read one HTTP response (Content-Length body); return (status, body bytes)."""
    view = memoryview(buf)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        head += chunk
    header, _, rest = head.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    got = len(rest)
    while got < length:
        n = sock.recv_into(view, min(len(buf), length - got))
        if not n:
            raise ConnectionError("short body")
        got += n
    return status, got


def upload(port: int, token: str, image_id: str, path: Path, size: int) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock, open(path, "rb") as fh:
        sock.sendall((f"PUT /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: bench\r\n"
                      f"X-Auth-Token: {token}\r\nContent-Type: application/octet-stream\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode())
        t0 = time.perf_counter()
        sock.sendfile(fh)
        status, _ = read_response(sock, bytearray(65536))
        elapsed = time.perf_counter() - t0
    if status != 204:
        raise SystemExit(f"upload answered {status}")
    return elapsed


def download(port: int, token: str, image_id: str, size: int) -> float:
    buf = bytearray(4 * MiB)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        t0 = time.perf_counter()
        sock.sendall((f"GET /image/v2/images/{image_id}/file HTTP/1.1\r\nHost: bench\r\n"
                      f"X-Auth-Token: {token}\r\n\r\n").encode())
        status, got = read_response(sock, buf)
        elapsed = time.perf_counter() - t0
    if status != 200 or got != size:
        raise SystemExit(f"download answered {status} with {got} bytes")
    return elapsed


def client_ceiling(path: Path, size: int) -> float:
    """The same sendfile -> recv_into transfer over loopback to a sink that only reads."""
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def sink() -> None:
        conn, _ = srv.accept()
        buf = memoryview(bytearray(4 * MiB))
        got = 0
        while got < size:
            n = conn.recv_into(buf)
            if not n:
                break
            got += n
        conn.sendall(b"k")
        conn.close()

    t = threading.Thread(target=sink)
    t.start()
    with socket.create_connection(("127.0.0.1", port)) as sock, open(path, "rb") as fh:
        t0 = time.perf_counter()
        sock.sendfile(fh)
        sock.recv(1)
        elapsed = time.perf_counter() - t0
    t.join()
    srv.close()
    return elapsed


def hash_ceiling(size: int) -> float:
    """md5 and sha512 of ``size`` bytes on two threads, as the upload computes them: the
    most an upload can do on this machine right now, whatever the HTTP path costs."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    block = bytes(4 * MiB)
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha512()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        for _ in range(size // len(block)):
            a, b = pool.submit(md5.update, block), pool.submit(sha.update, block)
            a.result()
            b.result()
    return time.perf_counter() - t0


def copy(src: Path, dst: Path, fsync: bool) -> float:
    t0 = time.perf_counter()
    shutil.copyfile(src, dst)
    if fsync:
        fd = os.open(dst, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    elapsed = time.perf_counter() - t0
    dst.unlink()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--port", type=int, default=8821)
    ap.add_argument("--data-dir", default="/tmp/ps-image-bench")
    ap.add_argument("--keep", action="store_true", help="keep the data dir")
    args = ap.parse_args()
    data_dir = Path(args.data_dir)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    size = args.size_mib * MiB
    proc = start_cloud(data_dir / "data", args.port)
    results: dict[str, list[float]] = {k: [] for k in (
        "cp", "cp_nosync", "upload", "download", "client_ceiling", "hash_ceiling")}
    try:
        src = data_dir / "source.raw"
        block = os.urandom(MiB)
        with open(src, "wb") as fh:
            for _ in range(args.size_mib):
                fh.write(block)
        token = get_token(args.port, data_dir / "data")
        for _ in range(args.runs):
            results["cp"].append(copy(src, data_dir / "data" / "copy.raw", True))
            results["cp_nosync"].append(copy(src, data_dir / "data" / "copy.raw", False))
            results["client_ceiling"].append(client_ceiling(src, size))
            results["hash_ceiling"].append(hash_ceiling(size))
            image = api(args.port, token, "POST", "/v2/images", {
                "name": "ps-img-bench", "disk_format": "raw", "container_format": "bare"})
            results["upload"].append(upload(args.port, token, image["id"], src, size))
            results["download"].append(download(args.port, token, image["id"], size))
            api(args.port, token, "DELETE", f"/v2/images/{image['id']}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)

    def mib_s(seconds: float) -> float:
        return round(args.size_mib / seconds, 1)

    med = {k: statistics.median(v) for k, v in results.items()}
    out = {
        "benchmark": "image-data",
        "size_mib": args.size_mib, "runs": args.runs,
        "median_mib_s": {k: mib_s(v) for k, v in med.items()},
        "all_mib_s": {k: [mib_s(x) for x in v] for k, v in results.items()},
        "ratio_vs_cp": {"upload": round(med["cp"] / med["upload"], 2),
                        "download": round(med["cp"] / med["download"], 2)},
        "ratio_vs_cp_nosync": {"upload": round(med["cp_nosync"] / med["upload"], 2),
                               "download": round(med["cp_nosync"] / med["download"], 2)},
        "goal": ">= 0.7 of cp",
        "cpus": os.cpu_count(),
        "loadavg_at_end": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
