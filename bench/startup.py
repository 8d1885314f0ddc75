#!/usr/bin/env python3
"""Set-up speed and idle memory of `pocketstack up`, as JSON.

    python bench/startup.py [--runs 5] [--port 8867]

- new_data_dir_s: from launching ``python -m pocketstack up --data-dir NEW`` to the first
  token issued (POST /v3/auth/tokens answered 201 with the generated admin password).
- existing_data_dir_s: the same, restarting on the data dir the previous run made.
- detached_up_s: wall time of ``pocketstack up -d`` (it returns once a token was issued).
- idle_rss_mb: resident memory of the whole cloud (supervisor + server, their children, and
  the helpers started in sessions of their own such as dnsmasq and metadata proxies, found
  by their command lines naming the data dir) a few seconds after ``up -d`` became ready
  and nothing asked anything.
Each time is the median of ``--runs`` runs. Goals (the issue): ≤ 10 s new, ≤ 3 s existing,
≤ 200 MB idle.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, cloud_rss_kb, http, log, machine, password_body,  # noqa: E402
                    pocketstack_cmd, pocketstack_env, port_free, purge, stop, tree_rss_kb)


def first_token_time(data_dir: Path, port: int, timeout: float = 120) -> tuple[float, subprocess.Popen]:
    """Start the server and return seconds until a password token was issued."""
    url = f"http://127.0.0.1:{port}/identity/v3/auth/tokens?nocatalog"
    start = time.monotonic()
    proc = subprocess.Popen(pocketstack_cmd(data_dir, port), env=pocketstack_env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=open(data_dir.parent / "up.log", "ab"),
                            start_new_session=True)
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"pocketstack exited with {proc.returncode}; see "
                               f"{data_dir.parent / 'up.log'}")
        pw_file = data_dir / "passwords.json"
        if pw_file.exists():
            try:
                password = json.loads(pw_file.read_text())["admin"]
                status, _, _ = http("POST", url, password_body(password), timeout=10)
                if status == 201:
                    return time.monotonic() - start, proc
            except (OSError, ValueError, KeyError):
                pass
        time.sleep(0.02)
    stop(proc)
    raise RuntimeError("pocketstack did not issue a token in time")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, default=8867)
    ap.add_argument("--idle", type=float, default=5.0, help="seconds idle before RSS")
    args = ap.parse_args()
    if not port_free(args.port):
        raise SystemExit(f"port {args.port} is busy")
    work = Path(tempfile.mkdtemp(prefix="ps-bench-startup-"))
    result: dict[str, Any] = {"benchmark": "startup", "machine": machine(), "runs": args.runs}
    try:
        new_times, existing_times = [], []
        for i in range(args.runs):
            data = work / f"data-{i}"
            data.mkdir(parents=True)
            t, proc = first_token_time(data, args.port)
            new_times.append(t)
            stop(proc)
            t2, proc = first_token_time(data, args.port)
            existing_times.append(t2)
            stop(proc)
            if i > 0:  # data-0 is reused below for `up -d`
                purge(data)
            log(f"run {i + 1}: new data dir {t:.2f}s, existing {t2:.2f}s")
        result["new_data_dir_s"] = round(statistics.median(new_times), 2)
        result["existing_data_dir_s"] = round(statistics.median(existing_times), 2)
        result["all_new_s"] = [round(t, 2) for t in new_times]
        result["all_existing_s"] = [round(t, 2) for t in existing_times]

        # Detached: the way a person runs it; then the whole tree's idle memory.
        data = work / "data-0"
        cli = [sys.executable, "-m", "pocketstack"]
        env = pocketstack_env()
        detached = []
        rss, tree = [], []
        for i in range(max(1, min(3, args.runs))):
            t = time.monotonic()
            subprocess.run(cli + ["up", "-d", "--data-dir", str(data), "--port", str(args.port)],
                           env=env, cwd=ROOT, check=True, capture_output=True, timeout=120)
            detached.append(time.monotonic() - t)
            runtime = json.loads((data / "runtime.json").read_text())
            time.sleep(args.idle)
            tree.append(tree_rss_kb(runtime["supervisor_pid"]) / 1024)
            rss.append(cloud_rss_kb(runtime["supervisor_pid"], data) / 1024)
            subprocess.run(cli + ["down", "--data-dir", str(data)], env=env, cwd=ROOT,
                           check=True, capture_output=True, timeout=60)
            log(f"up -d {detached[-1]:.2f}s, idle RSS {rss[-1]:.0f} MB (supervisor+server "
                f"{tree[-1]:.0f} MB)")
        result["detached_up_s"] = round(statistics.median(detached), 2)
        result["idle_rss_mb"] = round(statistics.median(rss), 1)
        result["idle_rss_supervisor_and_server_mb"] = round(statistics.median(tree), 1)
        result["goals"] = {"new_le_10s": result["new_data_dir_s"] <= 10,
                           "existing_le_3s": result["existing_data_dir_s"] <= 3,
                           "idle_rss_le_200mb": result["idle_rss_mb"] <= 200}
    finally:
        for data in sorted(work.glob("data-*")):  # never leave a server or host state behind
            purge(data)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
