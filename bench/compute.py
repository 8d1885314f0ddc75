#!/usr/bin/env python3
"""Compute benchmarks, JSON on stdout:

    python bench/compute.py [--boots 20] [--vm-boots 5] [--servers 1000] [--hosts 1000]
                            [--sched-hosts 10000] [--hotplugs 20]
                            [--ssh-boots 5] [--console-urls 20] [--fb-updates 40]
                            [--only boot|vm-boot|scale|scheduler|hotplug|ssh|console]
                            [--baseline GIT_REF]

1. boot: POST /servers -> ACTIVE with the container driver (real namespaces, cgroups,
   rootfs copy of the busybox image), one at a time, networks "none"; p50/p90 of the time
   from the POST until GET /servers/{id} says ACTIVE (polled every 5 ms). Nova's published
   median for the same step (create -> ACTIVE) is 4.0 s; the ratio is against that.
2. scale: one multi-create of --servers servers on --hosts fake hypervisors (fake driver),
   wall time from the POST until every server is ACTIVE (whole stack: API, quota, scheduler,
   atomic DB claims, task queue, driver).
3. scheduler: Scheduler.select_destinations (placement-like prefilter, the seed's 12 filters,
   RAM/CPU weighers, in-memory consumption) at --sched-hosts fake hypervisors, in process,
   p50/p90 over 1,000 placements. The DB claim that follows each selection is measured in (2).
4. vm-boot: the same POST with the qemu driver and the seeded busybox ami (Debian kernel +
   BusyBox initramfs, TCG unless KVM is usable and faster), networks "none", one at a time:
   p50/p90 of POST -> ACTIVE and of POST -> the guest's "booted" line in
   os-getConsoleOutput (polled every 50 ms).
5. hotplug: os-interface on a running container server with the linux network driver (real
   bridges, veths, dnsmasq, nftables): POST /servers/{id}/os-interface with a second
   network, then DELETE of that port, --hotplugs times. The POST returns once the port is
   made, plugged into the server's namespace as eth1 and its rules applied; the DELETE
   once it is unplugged and deleted. p50/p90 of each (no peer number: Nova publishes none).
6. ssh: boot -> first successful SSH login as cirros at a floating IP, container and QEMU
   (bench/compute_ssh.py), beside boot -> ACTIVE of the same runs; goals 1 s and 20 s.
7. console: a QEMU VM's console through the API and the WebSocket proxy: POST
   remote-consoles -> first framebuffer update p50/p90, and the VNC stream's bytes/s through
   the proxy against a direct read of QEMU's socket, same run (bench/compute_console.py).
--baseline REF runs the code of REF (a git worktree in /tmp/ps-compute-bench-baseline)
in the same run: boot alternates one server at a time between a cloud on REF and one on
this tree; scale runs once on each. Each side and the ratios are reported (e.g. the cost
of confining containers: --baseline <the commit before it>).
Servers run on ports 8845-8848 in /tmp/ps-compute-bench-*; all are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (http, log, machine, password_body, pocketstack_cmd,  # noqa: E402
                          pocketstack_env, purge, stop, wait_http)

NOVA_MEDIAN_BOOT_S = 4.0


# The source tree the clouds run from: this one, or a baseline's worktree (--baseline).
SOURCE: dict[str, Path | None] = {"dir": None}


def start(data_dir: Path, port: int, **env: str) -> subprocess.Popen:
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    src = SOURCE["dir"]
    if src is not None:  # `python -m` imports from the working directory first
        env["PYTHONPATH"] = str(src)
    proc = subprocess.Popen(pocketstack_cmd(data_dir, port), env=pocketstack_env(**env),
                            stdout=subprocess.DEVNULL, stderr=open(data_dir.parent / f"{data_dir.name}.log", "w"),
                            start_new_session=True, cwd=src)
    wait_http(f"http://127.0.0.1:{port}/healthcheck", 120, proc)
    return proc


def token(port: int, data_dir: Path) -> str:
    pw = json.loads((data_dir / "passwords.json").read_text())["admin"]
    status, headers, _ = http("POST", f"http://127.0.0.1:{port}/identity/v3/auth/tokens?nocatalog",
                              password_body(pw))
    assert status == 201, status
    return headers["x-subject-token"]


def api(port: int, tok: str, method: str, path: str, body=None):  # noqa: ANN001, ANN201
    return http(method, f"http://127.0.0.1:{port}/compute/v2.1{path}", body,
                {"X-Auth-Token": tok, "OpenStack-API-Version": "compute 2.37"})


def image_id(port: int, tok: str) -> str:
    status, _, body = http("GET", f"http://127.0.0.1:{port}/image/v2/images?name=busybox",
                           headers={"X-Auth-Token": tok})
    return body["images"][0]["id"]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _boot_once(port: int, tok: str, img: str, name: str, networks: object = "none",
               poll: float = 0.005) -> tuple[str, float]:
    """POST a server and poll until ACTIVE: (its id, seconds from the POST)."""
    t0 = time.perf_counter()
    status, _, body = api(port, tok, "POST", "/servers", {"server": {
        "name": name, "imageRef": img, "flavorRef": "1", "networks": networks}})
    assert status == 202, body
    sid = body["server"]["id"]
    while True:
        _, _, b = api(port, tok, "GET", f"/servers/{sid}")
        if b["server"]["status"] in ("ACTIVE", "ERROR"):
            break
        time.sleep(poll)
    assert b["server"]["status"] == "ACTIVE", b["server"].get("fault")
    return sid, time.perf_counter() - t0


def _boot_stats(times: list[float]) -> dict:
    p50 = statistics.median(times)
    return {"driver": "container", "boots": len(times), "p50_s": round(p50, 3),
            "p90_s": round(pct(times, 0.9), 3), "min_s": round(min(times), 3),
            "goal_p50_s": 0.3, "nova_published_median_s": NOVA_MEDIAN_BOOT_S,
            "speedup_vs_nova": round(NOVA_MEDIAN_BOOT_S / p50, 1)}


def bench_boot(n: int, baseline: Path | None = None) -> dict:
    """``n`` boots one at a time; with ``baseline`` (a source tree) a second cloud runs
    that code beside this one and the boots alternate between the two, so both see the
    same machine (this one is shared and noisy)."""
    clouds = [("current", None, Path("/tmp/ps-compute-bench-c/data"), 8845)]
    if baseline is not None:
        clouds.append(("baseline", baseline, Path("/tmp/ps-compute-bench-c0/data"), 8849))
    procs, ctx = [], []
    try:
        for label, src, data, port in clouds:
            SOURCE["dir"] = src
            procs.append(start(data, port, POCKETSTACK_COMPUTE__DRIVER="container",
                               POCKETSTACK_NETWORK__DRIVER="fake"))
            tok = token(port, data)
            ctx.append((label, port, tok, image_id(port, tok), [], []))
        SOURCE["dir"] = None
        for i in range(n + 2):
            for label, port, tok, img, times, ids in (ctx if i % 2 else ctx[::-1]):
                sid, dt = _boot_once(port, tok, img, f"ps-bench-{i}")
                ids.append(sid)
                if i >= 2:  # the first two warm the image cache and the code paths
                    times.append(dt)
                if len(ids) >= 4:  # keep at most 4 running per cloud: 2 shared cores
                    api(port, tok, "DELETE", f"/servers/{ids.pop(0)}")
        for label, port, tok, img, times, ids in ctx:
            for sid in ids:
                api(port, tok, "DELETE", f"/servers/{sid}")
        time.sleep(2)
        out = {label: _boot_stats(times) for label, _, _, _, times, _ in ctx}
        if baseline is None:
            return out["current"]
        out["p50_ratio_current_vs_baseline"] = round(
            out["current"]["p50_s"] / out["baseline"]["p50_s"], 2)
        return out
    finally:
        SOURCE["dir"] = None
        for proc in procs:
            stop(proc)


def bench_vm_boot(n: int) -> dict:
    data, port = Path("/tmp/ps-compute-bench-q/data"), 8847
    proc = start(data, port, POCKETSTACK_COMPUTE__DRIVER="qemu",
                 POCKETSTACK_NETWORK__DRIVER="fake")
    try:
        tok = token(port, data)
        status, _, body = http("GET", f"http://127.0.0.1:{port}/image/v2/images?name=busybox-vm",
                               headers={"X-Auth-Token": tok})
        if not body.get("images"):
            return {"skipped": "no busybox-vm image (scripts/build-test-images --with-kernel)"}
        img = body["images"][0]["id"]
        active, booted, ids = [], [], []
        for i in range(n):
            t0 = time.perf_counter()
            status, _, body = api(port, tok, "POST", "/servers", {"server": {
                "name": f"ps-bench-vm-{i}", "imageRef": img, "flavorRef": "1",
                "networks": "none"}})
            assert status == 202, body
            sid = body["server"]["id"]
            ids.append(sid)
            t_active = None
            while True:
                if t_active is None:
                    _, _, b = api(port, tok, "GET", f"/servers/{sid}")
                    state = b["server"]["status"]
                    assert state != "ERROR", b["server"].get("fault")
                    if state == "ACTIVE":
                        t_active = time.perf_counter() - t0
                else:
                    _, _, b = api(port, tok, "POST", f"/servers/{sid}/action",
                                  {"os-getConsoleOutput": {"length": 50}})
                    if "pocketstack-busybox: booted" in (b or {}).get("output", ""):
                        break
                assert time.perf_counter() - t0 < 180, "no boot within 180 s"
                time.sleep(0.05)
            active.append(t_active)
            booted.append(time.perf_counter() - t0)
            if len(ids) >= 2:  # 2 shared cores: keep at most 2 guests running
                api(port, tok, "DELETE", f"/servers/{ids.pop(0)}")
        for sid in ids:
            api(port, tok, "DELETE", f"/servers/{sid}")
        time.sleep(2)
        return {"driver": "qemu", "boots": n,
                "active_p50_s": round(statistics.median(active), 3),
                "active_p90_s": round(pct(active, 0.9), 3),
                "booted_p50_s": round(statistics.median(booted), 3),
                "booted_p90_s": round(pct(booted, 0.9), 3),
                "nova_published_median_s": NOVA_MEDIAN_BOOT_S}
    finally:
        stop(proc)


def bench_scale(servers: int, hosts: int) -> dict:
    data, port = Path("/tmp/ps-compute-bench-f/data"), 8846
    proc = start(data, port, POCKETSTACK_COMPUTE__DRIVER="fake",
                 POCKETSTACK_COMPUTE__FAKE_HOSTS=str(hosts),
                 POCKETSTACK_NETWORK__DRIVER="fake")
    try:
        tok = token(port, data)
        img = image_id(port, tok)
        _, _, me = http("GET", f"http://127.0.0.1:{port}/identity/v3/auth/tokens",
                        headers={"X-Auth-Token": tok, "X-Subject-Token": tok})
        project = me["token"]["project"]["id"]
        api(port, tok, "PUT", f"/os-quota-sets/{project}", {"quota_set": {
            "instances": servers, "cores": servers, "ram": servers * 512}})
        t0 = time.perf_counter()
        status, _, body = api(port, tok, "POST", "/servers", {"server": {
            "name": "ps-scale", "imageRef": img, "flavorRef": "1", "networks": "none",
            "min_count": servers, "max_count": servers}})
        assert status == 202, body
        accepted = time.perf_counter() - t0
        while True:
            _, _, b = api(port, tok, "GET", f"/servers/detail?status=BUILD&limit=1")
            if not b["servers"]:
                break
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        _, _, errs = api(port, tok, "GET", "/servers?status=ERROR")
        _, _, stats = api(port, tok, "GET", "/os-hypervisors/statistics")
        _, _, hv = api(port, tok, "GET", "/os-hypervisors/detail")
        used_hosts = sum(1 for h in hv["hypervisors"] if h["running_vms"])
        return {"driver": "fake", "servers": servers, "hypervisors": hosts,
                "wall_s": round(wall, 2), "api_accept_s": round(accepted, 2),
                "servers_per_s": round(servers / wall, 1), "errors": len(errs["servers"]),
                "running_vms": stats["hypervisor_statistics"]["running_vms"],
                "hypervisors_used": used_hosts, "goal_wall_s": 20}
    finally:
        stop(proc)


def bench_scheduler(n_hosts: int, rounds: int = 1000) -> dict:
    from pocketstack.config import ComputeSettings
    from pocketstack.scheduler.host_state import HostState, RequestSpec
    from pocketstack.scheduler.manager import Scheduler

    conf = ComputeSettings()
    hosts = [HostState(id=str(i), host=f"fake-{i}", nodename=f"fake-{i}", vcpus=40,
                       memory_mb=262144, local_gb=1600,
                       supported_instances=[("x86_64", "fake", "hvm")])
             for i in range(n_hosts)]
    sched = Scheduler(conf, lambda: hosts)
    sched.refresh()
    spec = RequestSpec(vcpus=1, memory_mb=2048, disk_gb=20)
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        sched.select_destinations(spec, 1, [f"s{i}"])
        times.append(time.perf_counter() - t0)
    return {"hypervisors": n_hosts, "placements": rounds,
            "filters": [type(f).__name__ for f in sched.filters],
            "max_placement_results": conf.max_placement_results,
            "p50_ms": round(statistics.median(times) * 1000, 3),
            "p90_ms": round(pct(times, 0.9) * 1000, 3), "goal_p50_ms": 5}


def bench_hotplug(n: int) -> dict:
    data, port = Path("/tmp/ps-compute-bench-h/data"), 8848
    proc = start(data, port, POCKETSTACK_COMPUTE__DRIVER="container",
                 POCKETSTACK_NETWORK__DRIVER="linux",
                 POCKETSTACK_NETWORK__PUBLIC_CIDR="172.31.250.0/24")
    try:
        tok = token(port, data)
        nets = []
        for i, cidr in enumerate(("10.88.1.0/24", "10.88.2.0/24")):
            _, _, b = http("POST", f"http://127.0.0.1:{port}/network/v2.0/networks",
                           {"network": {"name": f"ps-bench-hp{i}"}}, {"X-Auth-Token": tok})
            nets.append(b["network"]["id"])
            status, _, b = http("POST", f"http://127.0.0.1:{port}/network/v2.0/subnets",
                                {"subnet": {"network_id": nets[-1], "ip_version": 4,
                                            "cidr": cidr}}, {"X-Auth-Token": tok})
            assert status == 201, b
        sid, _ = _boot_once(port, tok, image_id(port, tok), "ps-bench-hp",
                            networks=[{"uuid": nets[0]}], poll=0.05)
        attach, detach = [], []
        for i in range(n + 1):
            t0 = time.perf_counter()
            status, _, b = api(port, tok, "POST", f"/servers/{sid}/os-interface",
                               {"interfaceAttachment": {"net_id": nets[1]}})
            t1 = time.perf_counter()
            assert status == 200, b
            status, _, _ = api(port, tok, "DELETE",
                               f"/servers/{sid}/os-interface/{b['interfaceAttachment']['port_id']}")
            t2 = time.perf_counter()
            assert status == 202, status
            if i:  # the first one warms the second network's bridge and dnsmasq
                attach.append(t1 - t0)
                detach.append(t2 - t1)
        api(port, tok, "DELETE", f"/servers/{sid}")
        time.sleep(2)
        return {"driver": "container + linux network", "hotplugs": n,
                "attach_p50_ms": round(statistics.median(attach) * 1000, 1),
                "attach_p90_ms": round(pct(attach, 0.9) * 1000, 1),
                "detach_p50_ms": round(statistics.median(detach) * 1000, 1),
                "detach_p90_ms": round(pct(detach, 0.9) * 1000, 1)}
    finally:
        stop(proc)
        purge(data, POCKETSTACK_COMPUTE__DRIVER="container",
              POCKETSTACK_NETWORK__DRIVER="linux")


def run_baseline(args: argparse.Namespace) -> dict:
    """boot and scale on the code of ``args.baseline`` (a worktree), for the ratios."""
    repo = Path(__file__).resolve().parent.parent
    tree = Path("/tmp/ps-compute-bench-baseline")
    subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                   capture_output=True)
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree),
                    args.baseline], check=True, capture_output=True)
    res: dict = {"ref": args.baseline}
    SOURCE["dir"] = tree
    try:
        if args.only in (None, "boot") and os.geteuid() == 0:
            log(f"container boots, alternating with {args.baseline}...")
            res["boot"] = bench_boot(args.boots, baseline=tree)
        if args.only in (None, "scale"):
            log(f"{args.servers} servers on {args.hosts} fake hypervisors, {args.baseline}...")
            res["scale"] = bench_scale(args.servers, args.hosts)
    finally:
        SOURCE["dir"] = None
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                       capture_output=True)
    return res


def ratios(out: dict) -> dict:
    base, r = out.get("baseline", {}), {}
    if "p50_ratio_current_vs_baseline" in base.get("boot", {}):
        r["boot_p50_vs_baseline"] = base["boot"]["p50_ratio_current_vs_baseline"]
    if "wall_s" in base.get("scale", {}) and "wall_s" in out.get("scale", {}):
        r["scale_wall_vs_baseline"] = round(out["scale"]["wall_s"] / base["scale"]["wall_s"], 2)
    return r


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boots", type=int, default=20)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--sched-hosts", type=int, default=10000)
    ap.add_argument("--vm-boots", type=int, default=5)
    ap.add_argument("--hotplugs", type=int, default=20)
    ap.add_argument("--ssh-boots", type=int, default=5)
    ap.add_argument("--console-urls", type=int, default=20)
    ap.add_argument("--fb-updates", type=int, default=40)
    ap.add_argument("--only", choices=("boot", "vm-boot", "scale", "scheduler", "hotplug",
                                       "ssh", "console"))
    ap.add_argument("--baseline", metavar="GIT_REF",
                    help="also run boot and scale on this commit's code, side by side")
    args = ap.parse_args()
    out: dict = {"machine": machine()}
    if args.baseline:
        out["baseline"] = run_baseline(args)
    if args.only in (None, "scheduler"):
        log("scheduler select_destinations...")
        out["scheduler"] = bench_scheduler(args.sched_hosts)
    if args.only in (None, "boot") and not args.baseline:  # with one: in "baseline"
        if os.geteuid() != 0:
            out["boot"] = {"skipped": "the container driver needs root"}
        else:
            log("container boots...")
            out["boot"] = bench_boot(args.boots)
    if args.only in (None, "vm-boot"):
        if os.geteuid() != 0:
            out["vm_boot"] = {"skipped": "the qemu driver needs root"}
        else:
            log("qemu VM boots...")
            out["vm_boot"] = bench_vm_boot(args.vm_boots)
    if args.only in (None, "hotplug"):
        if os.geteuid() != 0:
            out["hotplug"] = {"skipped": "the container and linux network drivers need root"}
        else:
            log("interface hot-plug on a container...")
            out["hotplug"] = bench_hotplug(args.hotplugs)
    if args.only in (None, "ssh"):
        if os.geteuid() != 0:
            out["ssh"] = {"skipped": "the container, qemu and linux network drivers need root"}
        else:
            from bench.compute_ssh import bench_ssh

            log("boot -> first SSH login, container and qemu...")
            out["ssh"] = bench_ssh(start, args.ssh_boots)
    if args.only in (None, "console"):
        if os.geteuid() != 0:
            out["console"] = {"skipped": "the qemu driver needs root"}
        else:
            from bench.compute_console import bench_console

            log("VM console: URL -> first framebuffer update, proxy throughput...")
            out["console"] = bench_console(start, args.console_urls, args.fb_updates)
    if args.only in (None, "scale"):
        log(f"{args.servers} servers on {args.hosts} fake hypervisors...")
        out["scale"] = bench_scale(args.servers, args.hosts)
    if args.baseline:
        out["ratios"] = ratios(out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
