"""The Linux data plane: bridges, namespaces, nftables, dnsmasq (see the sibling modules).

State this driver keeps outside the kernel lives in ``<data_dir>/network/``: dnsmasq files
per network, the metadata socket, and ``vifs.json`` (which process's namespace each plugged
port went into, so security rules can be re-applied after a restart).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from pocketstack.drivers.network.base import (
    Capabilities, DriverError, NetworkDriver, PortSpec, Topology)
from pocketstack.drivers.network.linux import bridges, dnsmasq, metadata, nftables, routers
from pocketstack.drivers.network.linux.cmd import (ip, ip_batch, links, netns_links, pid_alive,
                                                   run, write_atomic)

log = logging.getLogger("pocketstack.network.linux")


class LinuxNetworkDriver(NetworkDriver):
    capabilities = Capabilities(real_dataplane=True, dhcp=True, security_groups=True,
                                floating_ips=True, metadata=True, vlan=True, vxlan=True)

    def __init__(self, prefix: str, settings: Any) -> None:
        self.prefix = prefix
        self.settings = settings
        self.degraded: list[str] = []  # make_driver hands it the cloud's degraded list
        self.mappings = settings.network.mappings()
        self.state_dir = Path(settings.data_dir) / "network"
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.socket_path = self.state_dir / "metadata.sock"
        # dnsmasq re-reads its host file after dropping root, so its files live where it
        # can read them (the data dir is 0700): /run/pocketstack/<prefix>/dhcp/<network>.
        self.dhcp_root = Path("/run/pocketstack") / prefix
        self.dhcp_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dhcp_root, 0o755)
        os.chmod(self.dhcp_root.parent, 0o755)
        self.sg_table = f"{prefix}sg"
        self._lock = threading.RLock()  # ports and security rules (the plug path)
        self._l3_lock = threading.Lock()  # bridges, namespaces, DHCP (the sync path)
        self._plugged_at: dict[str, float] = {}
        self._applied: dict[str, str] = {}  # object -> fingerprint of what we last applied
        # veth -> pid of the namespace it is plugged into, and its name in there (ethN)
        self.vifs: dict[str, int] = {}
        self.ifnames: dict[str, str] = {}
        self._load_vifs()
        self._specs: dict[str, PortSpec] = {}
        self._members: dict[str, list[str]] = {}
        self.host_mode = nftables.host_mode_available()
        self.metadata_handler: metadata.Handler | None = None
        self._metadata: metadata.MetadataServer | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self.metadata_handler is not None and self._metadata is None:
            self._metadata = metadata.MetadataServer(self.socket_path, self.metadata_handler)
            self._metadata.start()

    def stop(self) -> None:
        if self._metadata is not None:
            self._metadata.stop()
            self._metadata = None

    def _load_vifs(self) -> None:
        try:
            saved = json.loads((self.state_dir / "vifs.json").read_text())
        except (OSError, ValueError):
            return
        for veth, value in saved.items():
            # older releases saved only the pid: every port was eth0 then
            pid, name = (value, "eth0") if isinstance(value, int) else value
            self.vifs[veth], self.ifnames[veth] = int(pid), str(name)

    def _save_vifs(self) -> None:
        write_atomic(str(self.state_dir / "vifs.json"), json.dumps(
            {v: [pid, self.ifnames.get(v, "eth0")] for v, pid in self.vifs.items()},
            sort_keys=True))

    def _ifname_for(self, veth: str, netns_pid: int) -> str:
        """The port keeps the name it had (a replug into a restarted server's new
        namespace); a new port takes the lowest free ethN in the namespace."""
        taken = netns_links(netns_pid)
        old = self.ifnames.get(veth)
        if old and old not in taken:
            return old
        n = 0
        while f"eth{n}" in taken:
            n += 1
        return f"eth{n}"

    def _ours(self, name: str) -> bool:
        return name.startswith(self.prefix) and len(name) > len(self.prefix) + 1

    # -- convergence ----------------------------------------------------------------------
    def sync(self, topology: Topology) -> list[str]:
        with self._l3_lock:
            return self._sync(topology)

    def _sync(self, topo: Topology) -> list[str]:
        errors: list[str] = []
        p = self.prefix
        root = links()
        mtus = {n.bridge: n.mtu for n in topo.networks}
        wanted_links: set[str] = set()
        for n in topo.networks:
            idx = n.bridge[len(p) + 1:]
            wanted_links |= {n.bridge, f"{p}t{idx}", f"{p}u{idx}"}
            if n.network_type == "vlan" and n.physical_network:
                wanted_links.add(bridges.trunk_name(p, n.physical_network))
            key = f"net:{n.bridge}"
            fp = repr(n)
            if self._applied.get(key) == fp and n.bridge in root:
                continue
            try:
                note = bridges.ensure_network(p, n, root, self.mappings,
                                              self.settings.network.vxlan_local_ip)
                if note and note not in self.degraded:
                    log.warning("%s", note)
                    self.degraded.append(note)  # the cloud's list (status shows it)
                self._applied[key] = fp
            except DriverError as exc:
                errors.append(f"network {n.id}: {exc}")
        root = links()
        known_ns = routers.all_namespaces()
        wanted_ns: set[str] = set()
        for r in topo.routers:
            wanted_ns.add(r.namespace)
            ifaces = r.interfaces + ([r.gateway] if r.gateway else [])
            wanted_links |= {routers.host_end(i.device, p) for i in ifaces}
            key, fp = f"router:{r.namespace}", repr(r)
            if self._applied.get(key) == fp and r.namespace in known_ns and all(
                    routers.host_end(i.device, p) in root for i in ifaces):
                continue
            try:
                routers.ensure_router(p, r, known_ns, root, mtus)
                self._applied[key] = fp
            except DriverError as exc:
                errors.append(f"router {r.id}: {exc}")
        for d in topo.dhcp:
            wanted_ns.add(d.namespace)
            wanted_links.add(routers.host_end(d.device, p))
            key = f"dhcp:{d.namespace}"
            fp = repr((d.namespace, d.bridge, d.device, d.mac, d.ips, d.subnets, d.mtu,
                       d.metadata))
            try:
                if self._applied.get(key) == fp and d.namespace in known_ns and \
                        routers.host_end(d.device, p) in root and \
                        dnsmasq.running_pid(dnsmasq.files(self.dhcp_root, d)) is not None:
                    dnsmasq.ensure(self.dhcp_root, d)  # host entries only: rewrite + SIGHUP
                    continue
                routers.ensure_ns(d.namespace, known_ns, forwarding=False)
                ns_links = links(d.namespace)
                from pocketstack.drivers.network.base import RouterInterfaceSpec
                iface = RouterInterfaceSpec(port_id="", bridge=d.bridge, mac=d.mac, ips=d.ips,
                                            device=d.device)
                routers.ensure_iface(p, d.namespace, iface, ns_links, root, d.mtu,
                                     extra=[f"{dnsmasq.METADATA_IP}/32"] if d.metadata else [])
                routers.prune_ifaces(d.namespace, {d.device}, p, ns_links)
                dnsmasq.ensure(self.dhcp_root, d)
                if d.metadata:
                    metadata.ensure_proxy(self.dhcp_root, d.namespace, d.network_id,
                                          self.socket_path)
                self._applied[key] = fp
            except (DriverError, OSError) as exc:
                errors.append(f"dhcp {d.network_id}: {exc}")
        wanted_dhcp = {d.network_id for d in topo.dhcp}
        for net_id in dnsmasq.known_networks(self.dhcp_root):
            if net_id not in wanted_dhcp:
                metadata.stop_proxy(self.dhcp_root, net_id)
                dnsmasq.stop_network(self.dhcp_root, net_id)
        for ns in known_ns:
            if self._ours(ns) and ns not in wanted_ns:
                routers.delete_ns(ns)
                self._applied.pop(f"router:{ns}", None)
                self._applied.pop(f"dhcp:{ns}", None)
        with self._lock:
            # a port plugged after this topology was read is not in it yet: keep it
            fresh = {v for v, t in self._plugged_at.items() if t >= topo.built_at}
            wanted_links |= {port.veth for port in topo.ports} | fresh
            for name in links():
                if self._ours(name) and name not in wanted_links:
                    ip("link", "del", name, check=False)
                    self._applied.pop(f"net:{name}", None)
            for veth in list(self.vifs):
                if veth not in wanted_links:
                    del self.vifs[veth]
                    self.ifnames.pop(veth, None)
                    self._plugged_at.pop(veth, None)
            self._save_vifs()
            # admin_state_up: a port set down passes nothing (its host end is down)
            present = links()
            for port in topo.ports:
                key, state = f"admin:{port.veth}", "up" if port.admin_state_up else "down"
                if port.veth in present and self._applied.get(key) != state:
                    ip("link", "set", port.veth, state, check=False)
                    self._applied[key] = state
            self._members = topo.group_members
            try:
                known = {port.veth for port in topo.ports}
                self._apply_security(topo.ports + [self._specs[v] for v in fresh
                                                   if v in self._specs and v not in known],
                                     force=False)
            except DriverError as exc:
                errors.append(f"security groups: {exc}")
        return errors

    # -- ports ----------------------------------------------------------------------------
    def has_network(self, bridge: str) -> bool:
        return os.path.exists(f"/sys/class/net/{bridge}")

    def plug_vif(self, port: PortSpec, netns_pid: int) -> str:
        if not pid_alive(netns_pid):
            raise DriverError(f"process {netns_pid} does not exist")
        guest = f"{self.prefix}g{port.veth[len(self.prefix) + 1:]}"
        with self._lock:
            if not self.has_network(port.bridge):
                raise DriverError(f"bridge {port.bridge} of network {port.network_id} is missing")
            exists = os.path.exists(f"/sys/class/net/{port.veth}")
            if not (exists and self.vifs.get(port.veth) == netns_pid):
                if exists:
                    ip("link", "del", port.veth, check=False)
                name = self._ifname_for(port.veth, netns_pid)
                try:
                    ip_batch([f"link add {port.veth} mtu {port.mtu} type veth peer name {guest} "
                              f"mtu {port.mtu}", f"link set {guest} netns {netns_pid}",
                              f"link set {port.veth} master {port.bridge}",
                              f"link set {port.veth} {'up' if port.admin_state_up else 'down'}"])
                    run(["nsenter", f"--net=/proc/{netns_pid}/ns/net", "ip", "-batch", "-"],
                        input=f"link set {guest} name {name}\nlink set {name} address {port.mac}\n"
                              f"link set {name} up\nlink set lo up\n")
                except DriverError:
                    ip("link", "del", port.veth, check=False)
                    raise
                self.ifnames[port.veth] = name
            else:
                master = os.path.basename(os.path.realpath(
                    f"/sys/class/net/{port.veth}/master"))
                if master != port.bridge:
                    ip("link", "set", port.veth, "master", port.bridge)
            self.vifs[port.veth] = netns_pid
            self._plugged_at[port.veth] = time.monotonic()
            self._save_vifs()
            self._applied.pop(f"sg:{port.veth}", None)
            self._apply_security([port], force=False, only=True)
            return self.ifnames.get(port.veth, "eth0")

    def unplug_vif(self, port: PortSpec) -> None:
        with self._lock:
            ip("link", "del", port.veth, check=False)
            self.vifs.pop(port.veth, None)
            self.ifnames.pop(port.veth, None)
            self._plugged_at.pop(port.veth, None)
            self._save_vifs()
            self._applied.pop(f"sg:{port.veth}", None)
            self._specs.pop(port.veth, None)
            self._apply_security([], force=False, only=True)

    def apply_security(self, ports: list[PortSpec]) -> None:
        with self._lock:
            self._apply_security(ports, force=True, only=True)

    def _apply_security(self, ports: list[PortSpec], force: bool, only: bool = False) -> None:
        """Anti-spoofing for every plugged port, and the security group rules.

        ``only``: ``ports`` is a subset (a port just plugged, an explicit update); otherwise
        it is the whole topology and replaces what we know.
        """
        if not only:
            self._specs = {port.veth: port for port in ports}
        else:
            self._specs.update({port.veth: port for port in ports})
        plugged = [port for veth, port in sorted(self._specs.items()) if veth in self.vifs]
        batch = ""
        spoof = nftables.spoof_ruleset(self.sg_table, plugged)
        if force or self._applied.get("spoof") != spoof:
            batch += spoof
        rules = nftables.host_ruleset(self.sg_table, plugged, self._members) \
            if self.host_mode else ""
        if self.host_mode and (force or self._applied.get("rules") != rules):
            batch += rules
        if batch:  # both tables in one atomic nft transaction
            run(["nft", "-f", "-"], input=batch)
            self._applied["spoof"], self._applied["rules"] = spoof, rules
        if self.host_mode:
            return
        for port in ports:
            if port.veth not in self.vifs:
                continue
            pid = self.vifs[port.veth]
            name = self.ifnames.get(port.veth, "eth0")
            text = nftables.port_ruleset(self.sg_table, port, name)
            key = f"sg:{port.veth}"
            if (not force and self._applied.get(key) == text) or not pid_alive(pid):
                continue
            nftables.apply_port(self.sg_table, port, pid, name)
            self._applied[key] = text

    # -- purge ----------------------------------------------------------------------------
    def purge(self) -> None:
        with self._lock:
            for net_id in dnsmasq.known_networks(self.dhcp_root):
                metadata.stop_proxy(self.dhcp_root, net_id)
                dnsmasq.stop_network(self.dhcp_root, net_id)
            for ns in routers.all_namespaces():
                if self._ours(ns):
                    routers.delete_ns(ns)
            for name in links():
                if self._ours(name):
                    ip("link", "del", name, check=False)
            nftables.delete_host(self.sg_table)
            nftables.delete_host_rules(self.sg_table)
            self.vifs.clear()
            self.ifnames.clear()
            self._save_vifs()
            self._applied.clear()
            for path in (self.socket_path, self.dhcp_root / "dhcp", self.dhcp_root):
                try:
                    path.rmdir() if path.is_dir() else path.unlink()
                except OSError:
                    pass
