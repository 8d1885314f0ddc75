"""An in-memory data plane: records what a real driver would build, moves no packets.

It is first class: unit tests and scale runs (thousands of ports) use it, and it documents
the semantics a real driver must have — ``sync`` makes ``state`` equal the topology
(adding and removing), ``plug_vif`` is idempotent, ``unplug_vif`` of an unknown port is a
no-op, and everything is keyed by the host names the service chose.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pocketstack.drivers.network.base import (
    Capabilities, NetworkDriver, PortSpec, Topology)


@dataclass
class FakeHostState:
    bridges: dict[str, object] = field(default_factory=dict)
    namespaces: dict[str, object] = field(default_factory=dict)
    dhcp: dict[str, object] = field(default_factory=dict)
    vifs: dict[str, tuple[PortSpec, int]] = field(default_factory=dict)  # veth -> (port, pid)
    rules: dict[str, list] = field(default_factory=dict)  # veth -> rules
    ifnames: dict[str, str] = field(default_factory=dict)  # veth -> ethN in the namespace


class FakeNetworkDriver(NetworkDriver):
    capabilities = Capabilities(real_dataplane=False, dhcp=True, security_groups=True,
                                floating_ips=True, metadata=True, vlan=True, vxlan=True)

    def __init__(self, prefix: str = "psfake") -> None:
        self.prefix = prefix
        self.state = FakeHostState()
        self.syncs = 0
        self._lock = threading.Lock()

    def sync(self, topology: Topology) -> list[str]:
        with self._lock:
            self.syncs += 1
            self.state.bridges = {n.bridge: n for n in topology.networks}
            self.state.namespaces = {r.namespace: r for r in topology.routers}
            self.state.namespaces.update({d.namespace: d for d in topology.dhcp})
            self.state.dhcp = {d.network_id: d for d in topology.dhcp}
            wanted = {p.veth: p for p in topology.ports}
            for veth in list(self.state.vifs):
                if veth not in wanted:  # the port is gone from the database
                    del self.state.vifs[veth]
                    self.state.rules.pop(veth, None)
                    self.state.ifnames.pop(veth, None)
                else:
                    self.state.vifs[veth] = (wanted[veth], self.state.vifs[veth][1])
                    self.state.rules[veth] = list(wanted[veth].rules)
            return []

    def has_network(self, bridge: str) -> bool:
        return bridge in self.state.bridges

    def plug_vif(self, port: PortSpec, netns_pid: int) -> str:
        with self._lock:
            taken = {name for veth, name in self.state.ifnames.items()
                     if veth != port.veth and self.state.vifs.get(veth, (None, 0))[1] == netns_pid}
            name = self.state.ifnames.get(port.veth)
            if name is None or name in taken:
                name = next(f"eth{n}" for n in range(len(taken) + 1) if f"eth{n}" not in taken)
            self.state.vifs[port.veth] = (port, netns_pid)
            self.state.ifnames[port.veth] = name
            self.state.rules[port.veth] = list(port.rules)
            return name

    def unplug_vif(self, port: PortSpec) -> None:
        with self._lock:
            self.state.vifs.pop(port.veth, None)
            self.state.ifnames.pop(port.veth, None)
            self.state.rules.pop(port.veth, None)

    def apply_security(self, ports: list[PortSpec]) -> None:
        with self._lock:
            for port in ports:
                if port.veth in self.state.vifs:
                    self.state.rules[port.veth] = list(port.rules)

    def purge(self) -> None:
        with self._lock:
            self.state = FakeHostState()
