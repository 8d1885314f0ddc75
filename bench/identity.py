#!/usr/bin/env python3
"""Identity side by side: real Keystone 30.0 and pocketstack, one client (wrk), JSON out.

    python bench/identity.py [--duration 5] [--rounds 3] [--revocations 10000]

Keystone runs from its own virtualenv (``bench/.venv-keystone``, created with pip on first
use; override with POCKETSTACK_BENCH_KEYSTONE_VENV) under gunicorn (one sync worker), on
SQLite with Fernet tokens and ``[cache] enabled=true backend=dogpile.cache.memory``, set up
with keystone-manage db_sync / fernet_setup / credential_setup / bootstrap. pocketstack runs
as ``python -m pocketstack up`` in a fresh data dir. Both get the same projects and the
same requests:

- issue:    POST /v3/auth/tokens (password, project-scoped, with catalog)
- validate: GET /v3/auth/tokens with X-Subject-Token (another token of the admin)
- projects: GET /v3/projects as admin
- ceiling:  wrk against each server's trivial endpoint (pocketstack /healthcheck,
            Keystone GET /) — what this client can measure at all.

Keystone runs with its cache on, and so does pocketstack (validated tokens and hot reads are
cached for 2 s and dropped at any write in the process). A third server, pocketstack with
``[identity] token_cache_seconds = 0`` (no caches at all), shows validate and project list
when every request decrypts, queries and renders ("pocketstack_uncached").

wrk runs one connection, one thread; rounds alternate the two servers so background load on
the shared machine hits both alike; each metric is the median over the rounds.

Revocations: a token T is issued first, then N tokens are revoked the way each server records
a ``DELETE /v3/auth/tokens`` (Keystone 30 writes an audit-id event and an audit-chain event
and flushes its token cache; pocketstack writes one revoked_token row). The first revocation
goes through the API; the other N-1 rows are copies of the rows that call wrote, with new
audit ids, inserted straight into each database (10,000 API round trips would take
minutes). Then "validate T right after a revocation" (an uncached validation) is timed
with and without the N events.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, http, log, machine, median_run, password_body,  # noqa: E402
                    pocketstack_cmd, pocketstack_env, port_free, purge, stop, wait_http, wrk)

KEYSTONE_SPEC = "keystone==30.*"
VENV = Path(os.environ.get("POCKETSTACK_BENCH_KEYSTONE_VENV", ROOT / "bench" / ".venv-keystone"))
PASSWORD = "ps-bench-Secret-1"
PROJECTS = 20  # projects each side gets besides what bootstrap made

# oslo.config parses sys.argv when Keystone loads its config; under gunicorn that would be
# gunicorn's own arguments, so the wrapper empties it before importing the application.
WSGI_WRAPPER = """\
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
"""

KEYSTONE_CONF = """\
[DEFAULT]
use_stderr = true
debug = false
[database]
connection = sqlite:///{dir}/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = {dir}/fernet-keys
[fernet_receipts]
key_repository = {dir}/fernet-keys
[credential]
key_repository = {dir}/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
"""


def ensure_keystone_venv() -> Path:
    gunicorn = VENV / "bin" / "gunicorn"
    manage = VENV / "bin" / "keystone-manage"
    if gunicorn.exists() and manage.exists():
        return VENV
    log(f"creating {VENV} with {KEYSTONE_SPEC} and gunicorn (first run only)")
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    KEYSTONE_SPEC, "gunicorn"], check=True)
    return VENV


def keystone_version(venv: Path) -> str:
    out = subprocess.run([str(venv / "bin" / "python"), "-c",
                          "import importlib.metadata as m; print(m.version('keystone'))"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


class Server:
    name: str
    base: str  # URL of the identity API root (…/v3 is under it)
    trivial: str  # URL of the cheapest endpoint, for the client ceiling
    proc: subprocess.Popen | None = None
    workdir: Path

    def stop(self) -> None:
        stop(self.proc)
        if isinstance(self, Pocketstack):
            purge(self.workdir / "data")  # the host resources it made (networks...)

    def db_path(self) -> Path:
        raise NotImplementedError


class Keystone(Server):
    name = "keystone"

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.trivial = self.base + "/"
        self.workdir = Path(tempfile.mkdtemp(prefix="ps-bench-keystone-"))

    def start(self) -> None:
        venv = ensure_keystone_venv()
        d = self.workdir
        conf = d / "keystone.conf"
        conf.write_text(KEYSTONE_CONF.format(dir=d))
        (d / "ps_keystone_wsgi.py").write_text(WSGI_WRAPPER)
        manage = [str(venv / "bin" / "keystone-manage"), "--config-file", str(conf)]
        user = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
        logf = open(d / "keystone-manage.log", "ab")
        for args in (["db_sync"], ["fernet_setup", *user], ["credential_setup", *user],
                     ["bootstrap", "--bootstrap-password", PASSWORD,
                      "--bootstrap-admin-url", self.base + "/v3",
                      "--bootstrap-public-url", self.base + "/v3",
                      "--bootstrap-internal-url", self.base + "/v3",
                      "--bootstrap-region-id", "RegionOne"]):
            t = time.monotonic()
            subprocess.run(manage + args, check=True, stdout=logf, stderr=logf)
            log(f"keystone-manage {args[0]}: {time.monotonic() - t:.1f}s")
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["OS_KEYSTONE_CONFIG_FILES"] = str(conf)
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "--chdir", str(d), "--workers", "1",
             "--bind", f"127.0.0.1:{self.port}", "--timeout", "300",
             "ps_keystone_wsgi:application"],
            stdout=open(d / "gunicorn.log", "ab"), stderr=subprocess.STDOUT, env=env, cwd=d,
            start_new_session=True)
        wait_http(self.base + "/v3", 120, self.proc)

    def db_path(self) -> Path:
        return self.workdir / "keystone.db"


class Pocketstack(Server):
    name = "pocketstack"

    def __init__(self, port: int, cached: bool = True) -> None:
        self.cached = cached
        if not cached:
            self.name = "pocketstack_uncached"
        self.port = port
        self.base = f"http://127.0.0.1:{port}/identity"
        self.trivial = f"http://127.0.0.1:{port}/healthcheck"
        self.workdir = Path(tempfile.mkdtemp(prefix="ps-bench-identity-"))

    def start(self) -> None:
        data = self.workdir / "data"
        env = pocketstack_env(POCKETSTACK_IDENTITY__ADMIN_PASSWORD=PASSWORD,
                              POCKETSTACK_LOG_LEVEL="warning")
        if not self.cached:  # no validated-token cache, no read cache: every request works
            env["POCKETSTACK_IDENTITY__TOKEN_CACHE_SECONDS"] = "0"
        self.proc = subprocess.Popen(pocketstack_cmd(data, self.port), env=env, cwd=ROOT,
                                     stdout=open(self.workdir / "server.log", "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        wait_http(f"http://127.0.0.1:{self.port}/healthcheck", 120, self.proc)

    def db_path(self) -> Path:
        return self.workdir / "data" / "pocketstack.db"


# -- API helpers --------------------------------------------------------------------------------
def issue(server: Server) -> tuple[str, dict[str, Any]]:
    status, headers, body = http("POST", server.base + "/v3/auth/tokens", password_body(PASSWORD))
    if status != 201:
        raise RuntimeError(f"{server.name}: token issue answered {status}: {body}")
    return headers["x-subject-token"], body


def validate(server: Server, admin: str, subject: str) -> int:
    status, _, _ = http("GET", server.base + "/v3/auth/tokens",
                        headers={"X-Auth-Token": admin, "X-Subject-Token": subject})
    return status


def revoke(server: Server, admin: str, subject: str) -> None:
    status, _, body = http("DELETE", server.base + "/v3/auth/tokens",
                           headers={"X-Auth-Token": admin, "X-Subject-Token": subject})
    if status != 204:
        raise RuntimeError(f"{server.name}: revoke answered {status}: {body}")


def setup(server: Server, tag: str) -> dict[str, Any]:
    admin, _ = issue(server)
    subject, _ = issue(server)  # T: issued before any revocation
    for i in range(PROJECTS):
        status, _, body = http("POST", server.base + "/v3/projects", {"project": {
            "name": f"ps-bench-{tag}-{i}", "domain_id": "default",
            "description": "pocketstack benchmark project"}}, {"X-Auth-Token": admin})
        if status != 201:
            raise RuntimeError(f"{server.name}: project create answered {status}: {body}")
    status, _, body = http("GET", server.base + "/v3/projects", headers={"X-Auth-Token": admin})
    if status != 200:
        raise RuntimeError(f"{server.name}: project list answered {status}: {body}")
    return {"admin": admin, "subject": subject, "projects": len(body["projects"])}


def operations(server: Server, tokens: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        "password_token_issue": {"url": server.base + "/v3/auth/tokens", "method": "POST",
                                 "body": json.dumps(password_body(PASSWORD)),
                                 "headers": {"Content-Type": "application/json"}},
        "token_validate": {"url": server.base + "/v3/auth/tokens", "method": "GET",
                           "headers": {"X-Auth-Token": tokens["admin"],
                                       "X-Subject-Token": tokens["subject"]}},
        "project_list": {"url": server.base + "/v3/projects", "method": "GET",
                         "headers": {"X-Auth-Token": tokens["admin"]}},
        "client_ceiling": {"url": server.trivial, "method": "GET", "headers": {}},
    }


def uncached_validation_ms(server: Server, admin: str, subject: str, samples: int) -> float:
    """Validate T right after a real revocation (which empties both servers' caches)."""
    times = []
    for _ in range(samples):
        victim, _ = issue(server)
        revoke(server, admin, victim)
        t = time.perf_counter()
        status = validate(server, admin, subject)
        times.append((time.perf_counter() - t) * 1000)
        if status != 200:
            raise RuntimeError(f"{server.name}: validating T answered {status}")
    return round(statistics.median(times), 2)


def audit_id() -> str:
    return urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def revocation_rows(server: Server) -> tuple[str, list[str], list[tuple]]:
    table = "revocation_event" if isinstance(server, Keystone) else "revoked_token"
    with sqlite3.connect(server.db_path(), timeout=60) as conn:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})") if r[1] != "id"]
        rows = list(conn.execute(f"SELECT {', '.join(cols)} FROM {table}"))
    return table, cols, rows


def clone_revocations(server: Server, count: int, before: list[tuple]) -> int:
    """Copy the rows one API revocation wrote (those not in ``before``) ``count`` times
    with fresh audit ids (see the module doc)."""
    table, cols, after = revocation_rows(server)
    seen = set(before)
    rows = [dict(zip(cols, r)) for r in after if r not in seen]
    if not rows:
        raise RuntimeError(f"{server.name} wrote no revocation rows")
    with sqlite3.connect(server.db_path(), timeout=60) as conn:
        new = []
        for _ in range(count):
            aid = audit_id()
            for row in rows:
                copy = dict(row)
                for key in ("audit_id", "audit_chain_id"):
                    if copy.get(key):
                        copy[key] = aid
                new.append(copy)
        conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                         f"({', '.join('?' for _ in cols)})", [tuple(r[c] for c in cols)
                                                                for r in new])
        total = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--revocations", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=5, help="uncached validations timed")
    ap.add_argument("--keystone-port", type=int, default=8869)
    ap.add_argument("--pocketstack-port", type=int, default=8868)
    ap.add_argument("--uncached-port", type=int, default=8867,
                    help="a second pocketstack with its caches off (0: skip it)")
    args = ap.parse_args()
    for port in (args.keystone_port, args.pocketstack_port, args.uncached_port):
        if port and not port_free(port):
            raise SystemExit(f"port {port} is busy")

    servers: list[Server] = [Keystone(args.keystone_port), Pocketstack(args.pocketstack_port)]
    if args.uncached_port:
        servers.append(Pocketstack(args.uncached_port, cached=False))
    result: dict[str, Any] = {"benchmark": "identity", "machine": machine(),
                              "client": "wrk -t1 -c1", "duration_s": args.duration,
                              "rounds": args.rounds}
    try:
        for server in servers:
            t = time.monotonic()
            server.start()
            log(f"{server.name} up in {time.monotonic() - t:.1f}s")
        result["keystone_version"] = keystone_version(VENV)
        tokens = {s.name: setup(s, s.name) for s in servers}
        result["projects_listed"] = {s.name: tokens[s.name]["projects"] for s in servers}
        ops = {s.name: operations(s, tokens[s.name]) for s in servers}
        runs: dict[str, dict[str, list]] = {s.name: {op: [] for op in ops[s.name]} for s in servers}
        uncached_ops = ("token_validate", "project_list")
        for rnd in range(args.rounds):
            for op in ops["pocketstack"]:
                for server in (servers if rnd % 2 == 0 else list(reversed(servers))):
                    if server.name == "pocketstack_uncached" and op not in uncached_ops:
                        continue
                    spec = ops[server.name][op]
                    r = wrk(spec["url"], method=spec["method"], headers=spec["headers"],
                            body=spec.get("body"), duration=args.duration)
                    runs[server.name][op].append(r)
                    log(f"round {rnd + 1} {op:22s} {server.name:12s} {r['req_per_s']:9.1f}/s "
                        f"p50 {r['p50_ms']:7.2f} ms  errors {r['errors']}")
        per_op: dict[str, Any] = {}
        for op in ops["pocketstack"]:
            k = median_run(runs["keystone"][op])
            p = median_run(runs["pocketstack"][op])
            per_op[op] = {"keystone": k, "pocketstack": p,
                          "ratio_req_per_s": round(p["req_per_s"] / k["req_per_s"], 1)
                          if k["req_per_s"] else None}
            if runs.get("pocketstack_uncached", {}).get(op):
                u = median_run(runs["pocketstack_uncached"][op])
                per_op[op]["pocketstack_uncached"] = u
                per_op[op]["ratio_uncached_req_per_s"] = round(
                    u["req_per_s"] / k["req_per_s"], 1) if k["req_per_s"] else None
        result["operations"] = per_op

        log(f"revocations: timing uncached validation before and after {args.revocations}")
        rev: dict[str, Any] = {"revoked_tokens": args.revocations, "samples": args.samples}
        for server in servers[:2]:
            tk = tokens[server.name]
            before = uncached_validation_ms(server, tk["admin"], tk["subject"], args.samples)
            victim, _ = issue(server)
            before_rows = revocation_rows(server)[2]
            revoke(server, tk["admin"], victim)
            rows = clone_revocations(server, args.revocations - 1, before_rows)
            after = uncached_validation_ms(server, tk["admin"], tk["subject"], args.samples)
            rev[server.name] = {"validate_ms_no_events": before,
                                "validate_ms_with_events": after, "rows_in_table": rows,
                                "slowdown": round(after / before, 1) if before else None}
            log(f"{server.name}: uncached validate {before} ms -> {after} ms ({rows} rows)")
        result["revocations"] = rev
        p, k = per_op["token_validate"], per_op["project_list"]
        result["goals"] = {
            "validate_ratio_ge_20": (p["ratio_req_per_s"] or 0) >= 20,
            "project_list_ratio_ge_20": (k["ratio_req_per_s"] or 0) >= 20,
            "password_login_p50_lt_50ms":
                per_op["password_token_issue"]["pocketstack"]["p50_ms"] < 50,
            "revocations_flat": rev["pocketstack"]["validate_ms_with_events"]
                < 2 * max(rev["pocketstack"]["validate_ms_no_events"], 1.0),
        }
    finally:
        for server in servers:
            server.stop()
    print(json.dumps(result, indent=2))
    for server in servers:
        if os.environ.get("POCKETSTACK_BENCH_KEEP") != "1":
            import shutil

            shutil.rmtree(server.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
