#!/usr/bin/env python3
"""Block storage benchmark: POST /volumes (1 GiB) -> status "available", per driver.

For each driver that can run here (fake, file; lvm where a VG "cinder-volumes" exists and
the kernel has device-mapper) a fresh pocketstack is started on its own port and data dir,
then:
  - sequential: N creates, each timed from the POST until GET shows "available" (polled
    every 5 ms); p50/p90/max reported, plus the same for delete -> 404;
  - concurrent: C clients creating N volumes together (throughput, p50), then quota
    accounting is checked against the number created.
No peer: a real Cinder cannot run on this machine (no RabbitMQ, no device-mapper for its
LVM driver), so there is no side-by-side ratio; the client ceiling (a GET of one volume)
is reported so the create numbers can be read against it.

Usage: python bench/volume.py [--n 30] [--concurrency 10] [--drivers fake,file]
Prints JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (http, log, machine, password_body, pocketstack_cmd,  # noqa: E402
                    pocketstack_env, stop, wait_http)

PORTS = {"fake": 8875, "file": 8876, "lvm": 8877}


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(statistics.median(ms), 2), "p90_ms": round(pct(ms, 0.9), 2),
            "max_ms": round(max(ms), 2), "n": len(ms)}


class Client:
    def __init__(self, base: str, password: str) -> None:
        status, headers, body = http("POST", f"{base}/identity/v3/auth/tokens",
                                     password_body(password))
        assert status == 201, body
        self.token = headers["x-subject-token"]
        project = body["token"]["project"]["id"]
        self.url = f"{base}/volume/v3/{project}"
        self.h = {"X-Auth-Token": self.token}

    def create(self, size: int = 1) -> str:
        status, _, body = http("POST", f"{self.url}/volumes", {"volume": {"size": size}},
                               self.h)
        assert status == 202, body
        return body["volume"]["id"]

    def status(self, vid: str) -> str | None:
        status, _, body = http("GET", f"{self.url}/volumes/{vid}", None, self.h)
        return None if status == 404 else body["volume"]["status"]

    def wait(self, vid: str, want: str | None, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(vid)
            if st == want:
                return
            if st is not None and st.startswith("error"):
                raise RuntimeError(f"volume {vid} went to {st}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"volume {vid} stuck in {st}")
            time.sleep(0.005)

    def delete(self, vid: str) -> None:
        status, _, body = http("DELETE", f"{self.url}/volumes/{vid}", None, self.h)
        assert status == 202, body


def run_driver(driver: str, n: int, concurrency: int) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix=f"ps-volume-bench-{driver}-"))
    port = PORTS[driver]
    env = pocketstack_env(POCKETSTACK_VOLUME__DRIVER=driver,
                          POCKETSTACK_IDENTITY__ADMIN_PASSWORD="bench-admin")
    proc = subprocess.Popen(pocketstack_cmd(data_dir, port), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=open(data_dir / "log", "wb"))
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/healthcheck", 60, proc)
        c = Client(base, "bench-admin")
        # The driver really in use is the one in the pool name (a real driver that cannot
        # work here falls back to fake, loudly, in the ready line).
        _, _, pools = http("GET", f"{c.url}/scheduler-stats/get_pools", None, c.h)
        pool = pools["pools"][0]["name"]
        if f"@{driver}#" not in pool:
            return {"driver": driver, "available": False,
                    "reason": f"the cloud fell back to {pool}: the {driver} backend cannot "
                              "run on this machine (see its degraded note)"}
        http("PUT", f"{c.url}/os-quota-sets/{c.url.rsplit('/', 1)[1]}",
             {"quota_set": {"volumes": -1, "gigabytes": -1}}, c.h)
        # client ceiling: one GET of a volume, sequential
        probe = c.create()
        c.wait(probe, "available")
        t0 = time.perf_counter()
        for _ in range(50):
            c.status(probe)
        ceiling_ms = (time.perf_counter() - t0) / 50 * 1000
        create_ms, delete_ms, ids = [], [], []
        for _ in range(n):
            t = time.perf_counter()
            vid = c.create()
            c.wait(vid, "available")
            create_ms.append((time.perf_counter() - t) * 1000)
            ids.append(vid)
        for vid in ids:
            t = time.perf_counter()
            c.delete(vid)
            c.wait(vid, None)
            delete_ms.append((time.perf_counter() - t) * 1000)
        # concurrent creates
        lat: list[float] = []
        made: list[str] = []
        lock = threading.Lock()
        per = max(1, n // concurrency)

        def worker() -> None:
            cl = Client(base, "bench-admin")
            for _ in range(per):
                t = time.perf_counter()
                vid = cl.create()
                cl.wait(vid, "available")
                with lock:
                    lat.append((time.perf_counter() - t) * 1000)
                    made.append(vid)

        threads = [threading.Thread(target=worker) for _ in range(concurrency)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t0
        _, _, q = http("GET", f"{c.url}/os-quota-sets/{c.url.rsplit('/', 1)[1]}?usage=True",
                       None, c.h)
        in_use = q["quota_set"]["volumes"]["in_use"]
        for vid in made + [probe]:
            c.delete(vid)
        for vid in made + [probe]:
            c.wait(vid, None)
        leftover = list((data_dir / "volumes").glob("volume-*")) if (
            data_dir / "volumes").exists() else []
        return {"driver": driver, "available": True,
                "create_to_available_1GiB": summary(create_ms),
                "delete_to_gone": summary(delete_ms),
                "concurrent": {"clients": concurrency, **summary(lat),
                               "volumes_per_s": round(len(lat) / wall, 1),
                               "quota_in_use_matches": in_use == len(made) + 1},
                "client_ceiling_get_ms": round(ceiling_ms, 2),
                "files_left_after_delete": len(leftover)}
    finally:
        stop(proc)
        # remove what the cloud made on the host (network namespaces, bridges...) by name
        subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge", "--data-dir",
                        str(data_dir)], env=env, capture_output=True, timeout=120)
        shutil.rmtree(data_dir, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--drivers", default="fake,file,lvm")
    args = ap.parse_args()
    results = []
    for driver in args.drivers.split(","):
        if driver in ("file", "lvm") and os.geteuid() != 0:
            results.append({"driver": driver, "available": False, "reason": "needs root"})
            continue
        log(f"bench volume: {driver}")
        results.append(run_driver(driver, args.n, args.concurrency))
    print(json.dumps({"benchmark": "volume create->available", "machine": machine(),
                      "peer": None, "peer_note": "no real Cinder can run on this machine",
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
