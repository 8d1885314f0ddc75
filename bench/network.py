#!/usr/bin/env python3
"""Network benchmarks, JSON out.

    python bench/network.py [--duration 5] [--rounds 3] [--ports 100] [--rules 1000]

- port_create: POST /network/v2.0/ports through HTTP on a live ``pocketstack up`` with the
  fake data plane, measured by wrk (1 connection for latency; 4 for throughput) — each
  request allocates a MAC and an address and records the port. Median over rounds; the
  client's ceiling is wrk against /healthcheck on the same server. Goal p50 <= 10 ms.
- wire_ports (root only, linux driver, in-process): N stand-in servers (namespaces made
  beforehand, not timed); timed: allocate_for_server + plug_vif for each (veth into the
  namespace, bridge, DHCP host entry, security rules). Goal <= 10 s for 100.
- sg_update (root only): one plugged port in a group that already has R rules; timed: from
  the API call adding one more rule to the rule being live in the server's namespace
  (polled with nft). Median over rounds. Goal <= 1 s with 1,000 rules.
No peer runs here (Neutron needs its agents, RabbitMQ and OVS/linuxbridge); no ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import (http, log, machine, median_run, password_body,  # noqa: E402
                    pocketstack_cmd, pocketstack_env, stop, wait_http, wrk)

PORT = 8851


def bench_port_create(duration: float, rounds: int) -> dict:
    data = Path(tempfile.mkdtemp(prefix="ps-network-bench-"))
    logf = open(data.parent / f"{data.name}.log", "wb")
    proc = subprocess.Popen(pocketstack_cmd(data, PORT), env=pocketstack_env(
        POCKETSTACK_NETWORK__DRIVER="fake"), stdout=logf, stderr=logf,
        start_new_session=True)
    base = f"http://127.0.0.1:{PORT}"
    try:
        try:
            wait_http(base + "/healthcheck", 60, proc)
        except RuntimeError:
            raise RuntimeError((data.parent / f"{data.name}.log").read_text()[-2000:]) from None
        pw = json.loads((data / "passwords.json").read_text())["admin"]
        _, h, _ = http("POST", base + "/identity/v3/auth/tokens", password_body(pw))
        token = h["x-subject-token"]
        auth = {"X-Auth-Token": token}
        _, _, tok = http("GET", base + "/identity/v3/auth/tokens",
                         headers={**auth, "X-Subject-Token": token})
        project = tok["token"]["project"]["id"]
        http("PUT", f"{base}/network/v2.0/quotas/{project}", {"quota": {"port": -1}}, auth)
        _, _, net = http("POST", base + "/network/v2.0/networks",
                         {"network": {"name": "bench"}}, auth)
        http("POST", base + "/network/v2.0/subnets", {"subnet": {
            "network_id": net["network"]["id"], "ip_version": 4, "cidr": "10.128.0.0/12"}},
            auth)
        body = json.dumps({"port": {"network_id": net["network"]["id"]}})
        one, four, ceiling = [], [], []
        for _ in range(rounds):
            one.append(wrk(base + "/network/v2.0/ports", method="POST", body=body,
                           headers={**auth, "Content-Type": "application/json"},
                           duration=duration))
            four.append(wrk(base + "/network/v2.0/ports", method="POST", body=body,
                            headers={**auth, "Content-Type": "application/json"},
                            duration=duration, connections=4, threads=2))
            ceiling.append(wrk(base + "/healthcheck", duration=duration))
        _, _, listing = http("GET", base + "/network/v2.0/ports?fields=id&limit=1", None, auth)
        return {"one_connection": median_run(one), "four_connections": median_run(four),
                "client_ceiling": median_run(ceiling),
                "goal_p50_ms": 10, "driver": "fake"}
    finally:
        stop(proc)
        shutil.rmtree(data, ignore_errors=True)


class _Servers:
    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen]] = []

    def make(self) -> tuple[str, int]:
        name = f"ps-bn-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "3600"])
        self.items.append((name, proc))
        for _ in range(100):
            out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                 text=True).stdout.split()
            if out:
                return name, int(out[0])
            time.sleep(0.01)
        return name, proc.pid

    def close(self) -> None:
        for name, proc in self.items:
            proc.kill()
            proc.wait()
            subprocess.run(["ip", "netns", "del", name], check=False)


def _linux_cloud(data: Path):
    from pocketstack.app import prepare
    from pocketstack.config import load_settings

    settings = load_settings(data, env={})
    settings.network.driver = "linux"
    settings.network.create_default_networks = False
    cloud = prepare(settings)
    svc = cloud.services["network"]
    asyncio.run(svc.start())
    return cloud, svc


def bench_linux(n_ports: int, n_rules: int, rounds: int) -> dict:
    from pocketstack.context import RequestContext

    data = Path(tempfile.mkdtemp(prefix="ps-network-bench-"))
    servers = _Servers()
    cloud, svc = _linux_cloud(data)
    admin = RequestContext.internal()
    ctx = RequestContext(user_id="bench", project_id="bench-" + uuid.uuid4().hex[:6],
                         roles=frozenset({"member"}))
    try:
        svc.quotas.update(admin, ctx.project_id, {"quota": {
            "port": -1, "security_group_rule": -1, "security_group": -1}})
        net = svc.networks.create(ctx, {"name": "wire"})
        svc.subnets.create(ctx, {"network_id": net["id"], "ip_version": 4,
                                 "cidr": "10.129.0.0/22"})
        svc.reconcile_now()
        targets = [servers.make() for _ in range(n_ports)]
        t0 = time.monotonic()
        for i, (_, pid) in enumerate(targets):
            ports = svc.allocate_for_server(ctx, f"srv-{i}", [{"uuid": net["id"]}], [], "bench")
            svc.plug_vif(ports[0]["id"], pid)
        wire_s = time.monotonic() - t0
        # security group update with R rules in place
        sg = svc.security_groups.create(ctx, {"name": "big"})
        svc.security_group_rules.create_bulk(ctx, [
            {"security_group_id": sg["id"], "direction": "ingress", "protocol": "tcp",
             "port_range_min": 1 + i, "port_range_max": 1 + i} for i in range(n_rules)])
        ns, pid = servers.make()
        ports = svc.allocate_for_server(ctx, "srv-sg", [{"uuid": net["id"]}], [sg["id"]],
                                        "bench")
        svc.plug_vif(ports[0]["id"], pid)
        timings = []
        for r in range(rounds):
            dport = 60000 + r
            t0 = time.monotonic()
            svc.security_group_rules.create(ctx, {
                "security_group_id": sg["id"], "direction": "ingress", "protocol": "udp",
                "port_range_min": dport, "port_range_max": dport})
            while time.monotonic() - t0 < 10:
                veth = svc.topology.port_spec(ports[0]["id"]).veth
                where = [] if getattr(svc.driver, "host_mode", False) else [
                    "ip", "netns", "exec", ns]
                chain = f"i_{veth}" if where == [] else "psin"
                out = subprocess.run([*where, "nft", "list", "chain", "inet",
                                      f"{svc.prefix}sg", chain], capture_output=True,
                                     text=True).stdout
                if f"udp dport {dport} accept" in out:
                    break
            timings.append(time.monotonic() - t0)
        rule_count = len(svc.topology.port_spec(ports[0]["id"]).rules)
        return {"wire_ports": {"ports": n_ports, "seconds": round(wire_s, 2),
                               "per_port_ms": round(wire_s * 1000 / n_ports, 1),
                               "goal_s": 10},
                "sg_update": {"rules_in_place": rule_count,
                              "median_s": round(statistics.median(timings), 3),
                              "max_s": round(max(timings), 3), "rounds": rounds, "goal_s": 1}}
    finally:
        asyncio.run(svc.stop())
        svc.purge()
        servers.close()
        shutil.rmtree(data, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ports", type=int, default=100)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--skip-linux", action="store_true")
    args = parser.parse_args()
    out: dict = {"machine": machine()}
    log("port create (fake driver, HTTP, wrk)...")
    out["port_create"] = bench_port_create(args.duration, args.rounds)
    if os.geteuid() == 0 and not args.skip_linux:
        log(f"wiring {args.ports} ports and a security group update with {args.rules} rules "
            "(linux driver)...")
        out.update(bench_linux(args.ports, args.rules, args.rounds))
    else:
        out["linux"] = "skipped (needs root)"
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
