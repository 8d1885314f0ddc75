"""DHCP: one dnsmasq per network, in the network's DHCP namespace, a host entry per port.

dnsmasq runs in ``static`` mode (it only answers ports it has a host entry for — the
port's MAC gets exactly the port's fixed IP), with option 121 routes for the metadata
address via the DHCP port and the default route via the subnet gateway. Host and option
files are rewritten atomically and dnsmasq is sent SIGHUP, which re-reads both.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
from pathlib import Path

from pocketstack.drivers.network.base import DhcpSpec
from pocketstack.drivers.network.linux.cmd import cmdline, pid_alive, read_pid, write_atomic

METADATA_IP = "169.254.169.254"


def files(state_dir: Path, spec: DhcpSpec) -> dict[str, str]:
    d = state_dir / "dhcp" / spec.network_id
    d.mkdir(parents=True, exist_ok=True, mode=0o755)
    return {k: str(d / k) for k in ("hosts", "opts", "pid")}


def render(spec: DhcpSpec) -> tuple[str, str, list[str]]:
    hosts = "".join(f"{h.mac},{h.hostname},{h.ip}\n" for h in spec.hosts)
    opts, ranges = [], []
    my_ips = {ipaddress.ip_interface(a).ip for a in spec.ips}
    for i, sub in enumerate(spec.subnets):
        net = ipaddress.ip_network(sub.cidr)
        tag = f"s{i}"
        ranges.append(f"--dhcp-range=set:{tag},{net.network_address},static,{net.netmask},"
                      "86400s")
        dhcp_ip = next((a for a in my_ips if a in net), None)
        routes = []
        if dhcp_ip is not None:
            routes.append(f"{METADATA_IP}/32,{dhcp_ip}")
        for hr in sub.host_routes:
            routes.append(f"{hr['destination']},{hr['nexthop']}")
        if sub.gateway_ip and ipaddress.ip_address(sub.gateway_ip) in net:
            opts.append(f"tag:{tag},option:router,{sub.gateway_ip}")
            routes.append(f"0.0.0.0/0,{sub.gateway_ip}")
        else:
            opts.append(f"tag:{tag},option:router")
        if routes:
            opts.append(f"tag:{tag},option:classless-static-route," + ",".join(routes))
        if sub.dns_nameservers:
            opts.append(f"tag:{tag},option:dns-server," + ",".join(sub.dns_nameservers))
        opts.append(f"tag:{tag},option:mtu,{spec.mtu}")
    return hosts, "".join(o + "\n" for o in opts), ranges


def running_pid(paths: dict[str, str]) -> int | None:
    pid = read_pid(paths["pid"])
    if pid and pid_alive(pid) and paths["pid"] in cmdline(pid):
        return pid
    return None


def ensure(state_dir: Path, spec: DhcpSpec) -> None:
    paths = files(state_dir, spec)
    hosts, opts, ranges = render(spec)
    changed = write_atomic(paths["hosts"], hosts)
    changed = write_atomic(paths["opts"], opts) or changed
    argv_file = paths["pid"] + ".argv"
    argv = ["ip", "netns", "exec", spec.namespace, "dnsmasq", "--no-hosts", "--no-resolv",
            "--conf-file=/dev/null", "--bind-interfaces", f"--interface={spec.device}",
            "--except-interface=lo", "--port=0", "--leasefile-ro", "--dhcp-authoritative",
            f"--pid-file={paths['pid']}", f"--dhcp-hostsfile={paths['hosts']}",
            f"--dhcp-optsfile={paths['opts']}", "--domain=openstacklocal", *ranges]
    argv_changed = write_atomic(argv_file, "\0".join(argv))
    pid = running_pid(paths)
    if pid is not None and argv_changed:
        stop(paths)
        pid = None
    if pid is None:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)
    elif changed:
        os.kill(pid, signal.SIGHUP)


def stop(paths: dict[str, str]) -> None:
    pid = running_pid(paths)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


def stop_network(state_dir: Path, network_id: str) -> None:
    d = state_dir / "dhcp" / network_id
    pidfile = str(d / "pid")
    pid = read_pid(pidfile)
    if pid and pid_alive(pid) and pidfile in cmdline(pid):
        os.kill(pid, signal.SIGTERM)
    for name in ("hosts", "opts", "pid", "pid.argv"):
        try:
            (d / name).unlink()
        except OSError:
            pass
    try:
        d.rmdir()
    except OSError:
        pass


def known_networks(state_dir: Path) -> list[str]:
    d = state_dir / "dhcp"
    return [p.name for p in d.iterdir()] if d.exists() else []
