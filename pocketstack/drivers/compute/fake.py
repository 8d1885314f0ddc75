"""The fake hypervisor: N simulated hosts, instant operations, no real processes.

It keeps the semantics a real driver must have (idempotent spawn/destroy, power states
that follow the calls, console output that exists) so the workers and the API behave
the same as with real servers; use it for unit tests and scale runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pocketstack.drivers.compute.base import (NOSTATE, PAUSED, RUNNING, SHUTDOWN, SUSPENDED,
                                              ComputeDriver, DriverCapabilities, DriverError,
                                              HostResources, InstanceSpec, PciDeviceInfo)


def parse_pci_devices(text: str) -> list[tuple[str, str, int]]:
    """``"10de:1028:2,8086:1520:4"`` -> [("10de", "1028", 2), ...]."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        bits = part.split(":")
        if len(bits) != 3 or not bits[2].isdigit():
            raise ValueError(f"bad PCI device spec {part!r}; use vendor:product:count")
        out.append((bits[0].lower(), bits[1].lower(), int(bits[2])))
    return out


class FakeDriver(ComputeDriver):
    name = "fake"
    # Every console protocol, so the API's URL creation can be exercised; console_socket()
    # (the base's) still answers ConsoleUnavailable: there is nothing to connect to.
    capabilities = DriverCapabilities(hypervisor_type="fake", real_processes=False,
                                      instances_survive_restart=False,
                                      console_protocols=frozenset({"vnc", "spice", "serial"}))

    def __init__(self, *, hosts: int = 3, vcpus: int = 40, memory_mb: int = 262144,
                 disk_gb: int = 1600, pci_devices: str = "", host_prefix: str = "fake") -> None:
        self.host_count = hosts
        self.vcpus, self.memory_mb, self.disk_gb = vcpus, memory_mb, disk_gb
        self.pci = parse_pci_devices(pci_devices)
        self.host_prefix = host_prefix
        self._lock = threading.Lock()
        # host -> server id -> {"power": int, "spec": InstanceSpec, "console": [str]}
        self._instances: dict[str, dict[str, dict]] = {}

    def init_host(self) -> None:
        pass

    def host_names(self) -> list[str]:
        width = max(len(str(self.host_count)), 1)
        return [f"{self.host_prefix}-{i:0{width}d}" for i in range(1, self.host_count + 1)]

    def list_hosts(self) -> list[HostResources]:
        hosts = []
        for i, name in enumerate(self.host_names()):
            devices = []
            for vendor, product, count in self.pci:
                for n in range(count):
                    devices.append(PciDeviceInfo(f"0000:{(i % 250) + 1:02x}:{len(devices):02x}.{n % 8}",
                                                 vendor, product))
            hosts.append(HostResources(host=name, hypervisor_hostname=name, vcpus=self.vcpus,
                                       memory_mb=self.memory_mb, local_gb=self.disk_gb,
                                       hypervisor_type="fake", hypervisor_version=1000,
                                       host_ip="127.0.0.1",
                                       cpu_info={"arch": "x86_64", "model": "fake",
                                                 "vendor": "pocketstack",
                                                 "topology": {"sockets": 1, "cores": self.vcpus,
                                                              "threads": 1}, "features": []},
                                       pci_devices=devices))
        return hosts

    def _get(self, host: str, server_id: str) -> dict:
        inst = self._instances.get(host, {}).get(server_id)
        if inst is None:
            raise DriverError(f"Instance {server_id} could not be found on {host}.")
        return inst

    def list_instances(self, host: str) -> list[str]:
        with self._lock:
            return list(self._instances.get(host, {}))

    def spawn(self, spec: InstanceSpec) -> None:
        if spec.host not in set(self.host_names()):
            raise DriverError(f"Host {spec.host} is not managed by this driver.")
        with self._lock:
            self._instances.setdefault(spec.host, {})[spec.id] = {
                "power": RUNNING, "spec": spec,
                "console": [f"fake console: {spec.hostname} booted ({spec.vcpus} vCPU, "
                            f"{spec.memory_mb} MB)"] + (
                    ["fake console: config drive attached (config-2)"]
                    if spec.config_drive is not None else [])}

    def destroy(self, host: str, server_id: str) -> None:
        with self._lock:
            self._instances.get(host, {}).pop(server_id, None)

    def _set_power(self, host: str, server_id: str, state: int, line: str) -> None:
        with self._lock:
            inst = self._get(host, server_id)
            inst["power"] = state
            inst["console"].append(line)

    def power_off(self, host: str, server_id: str, timeout: float = 10) -> None:
        self._set_power(host, server_id, SHUTDOWN, "fake console: powered off")

    def power_on(self, spec: InstanceSpec) -> None:
        with self._lock:
            known = spec.id in self._instances.get(spec.host, {})
        if not known:
            self.spawn(spec)
            return
        self._set_power(spec.host, spec.id, RUNNING, "fake console: powered on")

    def pause(self, host: str, server_id: str) -> None:
        self._set_power(host, server_id, PAUSED, "fake console: paused")

    def unpause(self, host: str, server_id: str) -> None:
        self._set_power(host, server_id, RUNNING, "fake console: unpaused")

    def suspend(self, host: str, server_id: str) -> None:
        self._set_power(host, server_id, SUSPENDED, "fake console: suspended")

    def resume(self, host: str, server_id: str) -> None:
        self._set_power(host, server_id, RUNNING, "fake console: resumed")

    def get_power_state(self, host: str, server_id: str) -> int:
        with self._lock:
            inst = self._instances.get(host, {}).get(server_id)
            return NOSTATE if inst is None else inst["power"]

    def attach_block_device(self, host: str, server_id: str, host_device: str,
                            guest_device: str) -> None:
        with self._lock:
            self._get(host, server_id).setdefault("block_devices", {})[guest_device] = host_device

    def detach_block_device(self, host: str, server_id: str, guest_device: str) -> None:
        with self._lock:
            inst = self._instances.get(host, {}).get(server_id)
            if inst is not None:
                inst.get("block_devices", {}).pop(guest_device, None)

    def console_output(self, host: str, server_id: str, length: int | None = None) -> str:
        with self._lock:
            lines = list(self._get(host, server_id)["console"])
        if length is not None:
            lines = lines[-length:] if length > 0 else []
        return "".join(line + "\n" for line in lines)

    def snapshot(self, host: str, server_id: str, target: Path) -> None:
        with self._lock:
            spec = self._get(host, server_id)["spec"]
        data = spec.image_path.read_bytes() if spec.image_path and spec.image_path.exists() else b""
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_bytes(data)
        os_replace(tmp, target)

    def rescue(self, spec: InstanceSpec, rescue: InstanceSpec) -> None:
        with self._lock:
            inst = self._get(spec.host, spec.id)
            inst["power"], inst["rescue"] = RUNNING, rescue
            inst["console"].append(f"fake console: rescue boot from image {rescue.image_id}, "
                                   f"disks: rescue, {spec.id}")

    def unrescue(self, spec: InstanceSpec) -> None:
        with self._lock:
            inst = self._get(spec.host, spec.id)
            inst.pop("rescue", None)
            inst["power"] = RUNNING
            inst["console"].append("fake console: unrescued, booted its own disk")

    def resize(self, spec: InstanceSpec) -> None:
        with self._lock:
            inst = self._get(spec.host, spec.id)
            inst["spec"] = spec
            inst["console"].append(f"fake console: resized to {spec.vcpus} vCPU, "
                                   f"{spec.memory_mb} MB")


def os_replace(src: Path, dst: Path) -> None:
    import os

    os.replace(src, dst)
