"""What the scheduler knows about one hypervisor, and what it is asked to place."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class HostState:
    id: str
    host: str
    nodename: str
    vcpus: int
    memory_mb: int
    local_gb: int
    vcpus_used: int = 0
    memory_mb_used: int = 0
    local_gb_used: int = 0
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserved_host_memory_mb: int = 0
    enabled: bool = True
    up: bool = True
    availability_zone: str = "nova"
    aggregates: list[dict[str, str]] = field(default_factory=list)  # each aggregate's metadata
    hypervisor_type: str = "fake"
    hypervisor_version: int = 1
    cpu_info: dict[str, Any] = field(default_factory=dict)
    supported_instances: list[tuple[str, str, str]] = field(default_factory=list)
    pci_free: dict[tuple[str, str], int] = field(default_factory=dict)  # (vendor, product) -> n
    instances: set[str] = field(default_factory=set)

    @property
    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_allocation_ratio - self.vcpus_used

    @property
    def free_ram_mb(self) -> float:
        return (self.memory_mb - self.reserved_host_memory_mb) * self.ram_allocation_ratio \
            - self.memory_mb_used

    @property
    def free_disk_gb(self) -> float:
        return self.local_gb * self.disk_allocation_ratio - self.local_gb_used

    def consume(self, server_id: str, vcpus: int, memory_mb: int, disk_gb: int,
                pci: dict[tuple[str, str], int] | None = None) -> None:
        self.vcpus_used += vcpus
        self.memory_mb_used += memory_mb
        self.local_gb_used += disk_gb
        self.instances.add(server_id)
        for key, n in (pci or {}).items():
            self.pci_free[key] = self.pci_free.get(key, 0) - n

    def release(self, server_id: str, vcpus: int, memory_mb: int, disk_gb: int,
                pci: dict[tuple[str, str], int] | None = None) -> None:
        self.vcpus_used -= vcpus
        self.memory_mb_used -= memory_mb
        self.local_gb_used -= disk_gb
        self.instances.discard(server_id)
        for key, n in (pci or {}).items():
            self.pci_free[key] = self.pci_free.get(key, 0) + n


@dataclass
class PciRequest:
    alias: str
    count: int
    specs: list[tuple[str, str]]  # acceptable (vendor_id, product_id)


@dataclass
class RequestSpec:
    vcpus: int
    memory_mb: int
    disk_gb: int
    extra_specs: dict[str, str] = field(default_factory=dict)
    image_properties: dict[str, Any] = field(default_factory=dict)
    availability_zone: str | None = None
    same_host: list[str] = field(default_factory=list)
    different_host: list[str] = field(default_factory=list)
    group_policy: str | None = None
    group_hosts: list[str] = field(default_factory=list)  # hosts of the group's members (with repeats)
    group_rules: dict[str, Any] = field(default_factory=dict)
    ignore_hosts: set[str] = field(default_factory=set)  # RetryFilter: hosts that already failed
    pci_requests: list[PciRequest] = field(default_factory=list)
    force_host: str | None = None
