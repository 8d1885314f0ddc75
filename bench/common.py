"""Shared benchmark plumbing: start/stop servers, tiny HTTP helpers, wrk with JSON output.

Benchmarks here print JSON on stdout; progress goes to stderr. Load comes from wrk (Debian
package) with one connection and one thread unless a benchmark says otherwise, so the
number measured is the server's per-request latency, not the client's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Printed by the Lua `done` hook: one line of JSON after the marker.
_WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "mean_us": %.1f, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not busy
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def wrk(url: str, *, method: str = "GET", headers: dict[str, str] | None = None,
        body: str | None = None, duration: float = 5.0, connections: int = 1,
        threads: int = 1) -> dict[str, Any]:
    """Run wrk against ``url``; returns req/s, p50/p90/p99 in ms and the error counts."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    lines = [f"wrk.method = {lua_string(method)}"]
    for key, value in (headers or {}).items():
        lines.append(f"wrk.headers[{lua_string(key)}] = {lua_string(value)}")
    if body is not None:
        lines.append(f"wrk.body = {lua_string(body)}")
    script = "\n".join(lines) + "\n" + _WRK_DONE
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="ps-bench-", delete=False) as fh:
        fh.write(script)
        path = fh.name
    try:
        res = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration))}s",
             "--timeout", "30s", "-s", path, url],
            capture_output=True, text=True, timeout=duration + 120)
    finally:
        os.unlink(path)
    for line in res.stdout.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[len("WRKJSON "):])
            break
    else:
        raise RuntimeError(f"wrk gave no result: {res.stdout}\n{res.stderr}")
    secs = raw["duration_us"] / 1e6
    errors = sum(raw["errors"].values())
    return {"req_per_s": round(raw["requests"] / secs, 1) if secs else 0.0,
            "p50_ms": round(raw["p50_us"] / 1000, 2), "p90_ms": round(raw["p90_us"] / 1000, 2),
            "p99_ms": round(raw["p99_us"] / 1000, 2), "requests": raw["requests"],
            "errors": errors}


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median of each metric over repeated wrk runs (rounds interleave the two servers)."""
    out: dict[str, Any] = {}
    for key in ("req_per_s", "p50_ms", "p90_ms", "p99_ms"):
        out[key] = round(statistics.median(r[key] for r in runs), 2)
    out["requests"] = sum(r["requests"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds"] = len(runs)
    return out


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         timeout: float = 60) -> tuple[int, dict[str, str], Any]:
    data = None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status, rh = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, rh = exc.read(), exc.code, dict(exc.headers)
    parsed = None
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = raw.decode(errors="replace")
    return status, {k.lower(): v for k, v in rh.items()}, parsed


def password_body(password: str, user: str = "admin", project: str = "admin") -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"id": "default"}}}}}


def wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> float:
    """Poll ``url`` until it answers (any status); returns the seconds waited."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return time.monotonic() - start
        except urllib.error.HTTPError:
            return time.monotonic() - start
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def stop(proc: subprocess.Popen | None, timeout: float = 20) -> None:
    """Stop a server we started (its whole process group: we start each in its own)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def pocketstack_cmd(data_dir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pocketstack", "up", "--data-dir", str(data_dir),
            "--port", str(port), *extra]


def pocketstack_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POCKETSTACK_", "OS_"))}
    env.update(extra)
    return env


def purge(data_dir: Path, **env: str) -> None:
    """`pocketstack down --purge`: stop it if it runs, remove the host resources the cloud
    made (namespaces, bridges, dnsmasq...) and its data dir. ``env``: the driver settings
    the cloud ran with (the purge asks those drivers)."""
    if data_dir.exists():
        subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge", "--data-dir",
                        str(data_dir)], env=pocketstack_env(**env), cwd=ROOT,
                       capture_output=True, timeout=120)


def cloud_rss_kb(pid: int, data_dir: Path) -> int:
    """The whole cloud: ``pid``'s process tree plus the helpers it started in their own
    sessions (dnsmasq, metadata proxies...), found by their command lines naming the data
    dir."""
    tree = _tree_pids(pid)
    needle = str(data_dir).encode()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in tree:
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if needle in fh.read():
                        tree.add(int(entry))
            except OSError:
                pass
    return sum(_rss_kb(p) for p in tree)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree_pids(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, stack = set(), [pid]
    while stack:
        p = stack.pop()
        out.add(p)
        stack.extend(children.get(p, []))
    return out


def tree_rss_kb(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants (kB, from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_1m": round(load1, 2), "loadavg_5m": round(load5, 2),
            "python": sys.version.split()[0]}
