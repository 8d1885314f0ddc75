"""Object storage side by side: pocketstack's S3 API and moto's S3 server (moto[server]),
started here in the same run, driven by the same client. JSON on stdout.

- small_put_c<N> / small_get_c<N>: 4 KiB objects through presigned URLs (so wrk needs no
  signing code; pocketstack still verifies every SigV4 signature, moto verifies none), wrk
  with N connections (each of --connections) rotating over --keys keys. req/s, p50/p99.
- large_put / large_get: one 64 MiB object over a presigned URL with http.client,
  MiB/s (median of --rounds).
- swift_small_put_c<N> / swift_small_get_c<N>: the same small objects through
  pocketstack's Swift API (X-Auth-Token), which has no peer here.
- ceiling: wrk against pocketstack's /healthcheck (the framework's floor per request).

pocketstack commits every write before answering: objects up to 64 KiB (the small ones
here) in their database row, through SQLite's WAL and a shared group commit; larger ones
in a file with fsync of file and directory, then the row. Both survive kill -9 of the
server. moto keeps objects in memory. Rounds alternate the two servers.

    python bench/object.py [--duration 5] [--rounds 3] [--connections 8,32]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (log, password_body, pocketstack_cmd, pocketstack_env,  # noqa: E402
                    port_free, purge, stop, wait_http, wrk)

ROOT = Path(__file__).resolve().parent.parent
PS_PORT, MOTO_PORT = 8832, 8833
SMALL = 4096
LARGE = 64 * 1024 * 1024
WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d}\n', summary.requests, summary.duration, latency:percentile(50),
    latency:percentile(99), e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_rotating(base: str, method: str, paths: list[str], body: bytes | None,
                 headers: dict[str, str], duration: int, connections: int) -> dict[str, Any]:
    """wrk over a list of request paths (presigned URLs differ per key)."""
    lua = ["paths = {" + ",".join(json.dumps(p) for p in paths) + "}", "i = 0"]
    lua.append("hdrs = {" + ",".join(f"[{json.dumps(k)}] = {json.dumps(v)}"
                                     for k, v in headers.items()) + "}")
    body_lit = "nil"
    if body is not None:
        body_lit = json.dumps(body.decode("ascii"))
    lua.append(f"""request = function()
  i = i % #paths + 1
  return wrk.format({json.dumps(method)}, paths[i], hdrs, {body_lit})
end""")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="ps-bench-obj-",
                                     delete=False) as fh:
        fh.write("\n".join(lua) + WRK_DONE)
        script = fh.name
    try:
        res = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{duration}s",
                              "--timeout", "30s", "-s", script, base],
                             capture_output=True, text=True, timeout=duration + 120)
    finally:
        os.unlink(script)
    for line in res.stdout.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[8:])
            secs = raw["duration_us"] / 1e6
            return {"req_per_s": round(raw["requests"] / secs, 1),
                    "p50_ms": round(raw["p50_us"] / 1000, 2),
                    "p99_ms": round(raw["p99_us"] / 1000, 2), "errors": raw["errors"]}
    raise RuntimeError(f"wrk gave no result: {res.stdout}\n{res.stderr}")


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {k: round(statistics.median(r[k] for r in runs), 2) for k in runs[0]
           if k != "errors"}
    out["errors"] = sum(r["errors"] for r in runs)
    out["rounds"] = len(runs)
    return out


def transfer(url: str, method: str, body: bytes | None) -> float:
    """Seconds for one request with a (large) body or a streamed, discarded response."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    path = parts.path + ("?" + parts.query if parts.query else "")
    start = time.perf_counter()
    conn.request(method, path, body=body,
                 headers={"Content-Length": str(len(body))} if body is not None else {})
    resp = conn.getresponse()
    while resp.read(1 << 20):
        pass
    elapsed = time.perf_counter() - start
    conn.close()
    if resp.status not in (200, 201):
        raise RuntimeError(f"{method} {url} -> {resp.status}")
    return elapsed


class Target:
    def __init__(self, name: str, endpoint: str, access: str, secret: str) -> None:
        import boto3

        self.name = name
        self.endpoint = endpoint
        self.client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access,
                                   aws_secret_access_key=secret, region_name="us-east-1")
        self.base = f"{urlsplit(endpoint).scheme}://{urlsplit(endpoint).netloc}"

    def presign(self, method: str, key: str) -> str:
        op = {"GET": "get_object", "PUT": "put_object"}[method]
        url = self.client.generate_presigned_url(op, Params={"Bucket": "bench", "Key": key},
                                                 ExpiresIn=3600)
        parts = urlsplit(url)
        return parts.path + "?" + parts.query


def start_pocketstack(data_dir: Path) -> tuple[subprocess.Popen, str, dict[str, str]]:
    from common import http as call

    proc = subprocess.Popen(pocketstack_cmd(data_dir, PS_PORT), cwd=ROOT,
                            env=pocketstack_env(), stdout=subprocess.DEVNULL,
                            stderr=open(data_dir.parent / "pocketstack.log", "wb"),
                            start_new_session=True)
    base = f"http://127.0.0.1:{PS_PORT}"
    wait_http(base + "/healthcheck", 120, proc)
    password = json.loads((data_dir / "passwords.json").read_text())["admin"]
    status, headers, body = call("POST", base + "/identity/v3/auth/tokens",
                                 password_body(password))
    token = headers["x-subject-token"]
    user, project = body["token"]["user"]["id"], body["token"]["project"]["id"]
    status, _, cred = call("POST", f"{base}/identity/v3/users/{user}/credentials/OS-EC2",
                           {"tenant_id": project}, {"X-Auth-Token": token})
    if status not in (200, 201):
        raise RuntimeError(f"EC2 credential create failed: {status} {cred}")
    cred = cred["credential"]
    return proc, base, {"access": cred["access"], "secret": cred["secret"], "token": token,
                        "account": f"AUTH_{project}"}


def start_moto() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(MOTO_PORT)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_http(f"http://127.0.0.1:{MOTO_PORT}/moto-api/", 60, proc)
    return proc


def main() -> None:
    global PS_PORT, MOTO_PORT  # noqa: PLW0603 - read by the start helpers
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", default="8,32",
                    help="wrk connection counts for the small-object runs (comma list)")
    ap.add_argument("--keys", type=int, default=200)
    ap.add_argument("--port", type=int, default=PS_PORT, help="pocketstack's port")
    ap.add_argument("--moto-port", type=int, default=MOTO_PORT)
    ap.add_argument("--tmp-prefix", default="ps-object-bench-",
                    help="prefix of the temp data dir (under $TMPDIR)")
    args = ap.parse_args()
    PS_PORT, MOTO_PORT = args.port, args.moto_port
    conns = [int(c) for c in str(args.connections).split(",")]
    for port in (PS_PORT, MOTO_PORT):
        if not port_free(port):
            raise SystemExit(f"port {port} is busy")
    tmp = Path(tempfile.mkdtemp(prefix=args.tmp_prefix))
    ps_proc = moto_proc = None
    try:
        log("starting pocketstack and moto")
        ps_proc, ps_base, cred = start_pocketstack(tmp / "data")
        moto_proc = start_moto()
        import moto

        targets = [Target("pocketstack", ps_base + "/s3", cred["access"], cred["secret"]),
                   Target("moto", f"http://127.0.0.1:{MOTO_PORT}", "testing", "testing")]
        # ASCII so the wrk Lua script can carry it as a plain string literal
        small = base64.b32encode(os.urandom(SMALL))[:SMALL]
        keys = [f"small/{i:05d}" for i in range(args.keys)]
        for t in targets:
            t.client.create_bucket(Bucket="bench")
            for k in keys:
                t.client.put_object(Bucket="bench", Key=k, Body=small)
        swift_path = f"/object-store/v1/{cred['account']}/bench-swift"
        conn = http.client.HTTPConnection("127.0.0.1", PS_PORT)
        conn.request("PUT", swift_path, headers={"X-Auth-Token": cred["token"]})
        conn.getresponse().read()
        for k in keys:
            conn.request("PUT", f"{swift_path}/{k}", body=small,
                         headers={"X-Auth-Token": cred["token"]})
            conn.getresponse().read()
        conn.close()
        presigned = {t.name: {m: [t.presign(m, k) for k in keys] for m in ("GET", "PUT")}
                     for t in targets}
        small_ops = [f"small_{op}_c{c}" for c in conns for op in ("put", "get")]
        runs: dict[str, dict[str, list]] = {
            t.name: {**{op: [] for op in small_ops}, "large_put": [], "large_get": []}
            for t in targets}
        swift_runs: dict[str, list] = {f"swift_{op}": [] for op in small_ops}
        ceiling = []
        big = os.urandom(LARGE)
        for rnd in range(args.rounds):
            log(f"round {rnd + 1}/{args.rounds}")
            for t in targets:
                p = presigned[t.name]
                for c in conns:
                    runs[t.name][f"small_put_c{c}"].append(wrk_rotating(
                        t.base, "PUT", p["PUT"], small, {"Content-Length": str(SMALL)},
                        args.duration, c))
                    runs[t.name][f"small_get_c{c}"].append(wrk_rotating(
                        t.base, "GET", p["GET"], None, {}, args.duration, c))
                put_url = t.base + t.presign("PUT", "large")
                secs = transfer(put_url, "PUT", big)
                runs[t.name]["large_put"].append({"mib_per_s": round(64 / secs, 1),
                                                  "seconds": round(secs, 3), "errors": 0})
                secs = transfer(t.base + t.presign("GET", "large"), "GET", None)
                runs[t.name]["large_get"].append({"mib_per_s": round(64 / secs, 1),
                                                  "seconds": round(secs, 3), "errors": 0})
            auth = {"X-Auth-Token": cred["token"]}
            paths = [f"{swift_path}/{k}" for k in keys]
            for c in conns:
                swift_runs[f"swift_small_put_c{c}"].append(wrk_rotating(
                    ps_base, "PUT", paths, small, {**auth, "Content-Length": str(SMALL)},
                    args.duration, c))
                swift_runs[f"swift_small_get_c{c}"].append(wrk_rotating(
                    ps_base, "GET", paths, None, auth, args.duration, c))
            ceiling.append(wrk(ps_base + "/object-store/healthcheck", duration=args.duration,
                               connections=conns[0]))
        results = {name: {op: median(rs) for op, rs in ops.items()}
                   for name, ops in runs.items()}
        ps, mo = results["pocketstack"], results["moto"]
        ratios = {op: round(ps[op]["req_per_s"] / mo[op]["req_per_s"], 2)
                  for op in small_ops if mo[op]["req_per_s"]}
        ratios.update({op: round(ps[op]["mib_per_s"] / mo[op]["mib_per_s"], 2)
                       for op in ("large_put", "large_get") if mo[op]["mib_per_s"]})
        print(json.dumps({
            "benchmark": "object",
            "client": f"wrk -t1 -c{'/'.join(map(str, conns))} (small), http.client (64 MiB)",
            "duration_s": args.duration, "rounds": args.rounds, "small_bytes": SMALL,
            "large_bytes": LARGE, "keys": args.keys, "moto_version": moto.__version__,
            "results": results,
            "pocketstack_swift": {op: median(rs) for op, rs in swift_runs.items()},
            "ceiling_healthcheck": median([{k: v for k, v in c.items()
                                            if k in ("req_per_s", "p50_ms", "p99_ms",
                                                     "errors")} for c in ceiling]),
            "ratio_pocketstack_over_moto": ratios,
            "notes": "pocketstack commits every object before answering (up to 64 KiB in "
                     "its SQLite row through a shared group commit; larger ones fsynced to a "
                     "file, then the row) and verifies SigV4 on every request; moto keeps "
                     "objects in memory and does not verify signatures.",
        }, indent=2))
    finally:
        stop(ps_proc)
        stop(moto_proc)
        # The cloud's network slice made namespaces, bridges and dnsmasq on the host.
        purge(tmp / "data")
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
