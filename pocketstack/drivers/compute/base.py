"""The compute driver contract: what a hypervisor must do for the compute workers.

Drivers know nothing of HTTP or the database: the worker passes an ``InstanceSpec`` in and
records what comes back. Every method is called from a worker thread and must be safe to
call again after a crash (idempotent): the worker retries what was in flight at restart.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Nova's power states (nova/compute/power_state.py); the API shows the integers.
NOSTATE = 0
RUNNING = 1
PAUSED = 3
SHUTDOWN = 4
CRASHED = 6
SUSPENDED = 7


class DriverError(Exception):
    """A driver operation failed; the message is shown to users in the server's fault."""


class ConsoleUnavailable(DriverError):
    """The driver has no console of this protocol for this server, or it is not running; str() is the reason."""


@dataclass(frozen=True)
class DriverCapabilities:
    hypervisor_type: str
    real_processes: bool  # servers are real processes on this machine
    instances_survive_restart: bool  # servers keep running while pocketstack is down
    supports_pause: bool = True
    supports_suspend: bool = True
    supports_console_output: bool = True
    supports_snapshot: bool = True
    supports_resize: bool = True
    needs_image_file: bool = False  # spawn needs the image's data file (a rootfs tar)
    # Remote-console protocols the API may hand out URLs for ('vnc', 'spice', 'serial');
    # console_socket() answers for a running server.
    console_protocols: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PciDeviceInfo:
    address: str
    vendor_id: str
    product_id: str


@dataclass
class HostResources:
    """One hypervisor the driver manages, with its capacity (before allocation ratios)."""

    host: str
    hypervisor_hostname: str
    vcpus: int
    memory_mb: int
    local_gb: int
    hypervisor_type: str
    hypervisor_version: int = 1
    host_ip: str = "127.0.0.1"
    cpu_info: dict[str, Any] = field(default_factory=dict)
    pci_devices: list[PciDeviceInfo] = field(default_factory=list)


@dataclass
class InstanceSpec:
    """Everything a driver needs to create one server."""

    id: str
    name: str
    hostname: str
    host: str
    vcpus: int
    memory_mb: int
    root_gb: int
    image_id: str = ""
    image_path: Path | None = None  # a rootfs tarball for the container driver
    image_properties: dict[str, Any] = field(default_factory=dict)
    disk_format: str = ""  # the image's (a VM driver's overlay and snapshots follow it)
    container_format: str = ""
    kernel_path: Path | None = None  # kernel_id / ramdisk_id images' files (aki/ari boot)
    ramdisk_path: Path | None = None
    user_data: bytes | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    key_data: str | None = None
    network_info: list[dict[str, Any]] = field(default_factory=list)
    pci_devices: list[str] = field(default_factory=list)  # claimed device addresses
    # The server's config drive (ISO 9660, label config-2; root's 0600 file) or None. A VM
    # gets it as a read-only disk passed by fd; a container the ISO's files read-only at
    # /config-drive.
    config_drive: Path | None = None


@dataclass
class InstanceDiagnostics:
    """What a driver can measure about one running server (Nova's server diagnostics).
    None means the driver cannot tell; the API shows null, never a guess."""

    power_state: int = NOSTATE
    uptime_s: int | None = None  # seconds since the server's processes started
    memory_max_mb: int | None = None  # the enforced memory limit
    memory_used_mb: int | None = None
    cpu_time_ns: int | None = None  # CPU time used by all of the server's vCPUs together


class ComputeDriver(abc.ABC):
    name: str = "abstract"
    capabilities: DriverCapabilities

    @abc.abstractmethod
    def init_host(self) -> None:
        """Prepare the machine (directories, cgroup parents). Called once at start."""

    def degraded(self) -> list[str]:
        """Why this driver runs with less than its whole function on this machine (after
        ``init_host``), each a sentence for the ready line and ``pocketstack status``."""
        return []

    @abc.abstractmethod
    def list_hosts(self) -> list[HostResources]:
        """The hypervisors this driver runs, with their total capacity and PCI devices."""

    @abc.abstractmethod
    def list_instances(self, host: str) -> list[str]:
        """Ids of the servers that exist on ``host`` (running or not). Used to re-adopt
        servers at restart and to find orphans."""

    @abc.abstractmethod
    def spawn(self, spec: InstanceSpec) -> None:
        """Create and start the server; when this returns it is running.

        Idempotent: if the server already exists and runs, return. If this fails, any
        partial server must be completely cleaned up before the DriverError is raised.
        """

    @abc.abstractmethod
    def destroy(self, host: str, server_id: str) -> None:
        """Stop the server and remove everything it had (processes, files, cgroups).
        Idempotent: destroying a server that does not exist succeeds."""

    @abc.abstractmethod
    def power_off(self, host: str, server_id: str, timeout: float = 10) -> None:
        """Stop the server's processes (gracefully, then by force after ``timeout``);
        its disk stays. Idempotent."""

    @abc.abstractmethod
    def power_on(self, spec: InstanceSpec) -> None:
        """Start a stopped server from its existing disk. Idempotent."""

    def reboot(self, spec: InstanceSpec, hard: bool) -> None:
        """Restart the server; soft asks the processes to exit first."""
        self.power_off(spec.host, spec.id, timeout=0 if hard else 10)
        self.power_on(spec)

    @abc.abstractmethod
    def pause(self, host: str, server_id: str) -> None:
        """Freeze every process of the server (they keep their memory). Idempotent."""

    @abc.abstractmethod
    def unpause(self, host: str, server_id: str) -> None:
        """Thaw a paused server. Idempotent."""

    def suspend(self, host: str, server_id: str) -> None:
        """Suspend the server; without a way to save memory to disk, a freeze."""
        self.pause(host, server_id)

    def resume(self, host: str, server_id: str) -> None:
        self.unpause(host, server_id)

    @abc.abstractmethod
    def get_power_state(self, host: str, server_id: str) -> int:
        """One of the power state constants above; NOSTATE if the server is unknown."""

    @abc.abstractmethod
    def console_output(self, host: str, server_id: str, length: int | None = None) -> str:
        """The server's console log (its last ``length`` lines if given)."""

    def diagnostics(self, host: str, server_id: str) -> InstanceDiagnostics:
        """What is known about the server's resource use. The default knows only the power
        state; drivers that can read counters (cgroups, QMP) fill in more."""
        return InstanceDiagnostics(power_state=self.get_power_state(host, server_id))

    @abc.abstractmethod
    def snapshot(self, host: str, server_id: str, target: Path) -> None:
        """Write the server's disk to ``target`` in the format its image came in
        (a rootfs tarball for containers). The server keeps running."""

    def rebuild(self, spec: InstanceSpec) -> None:
        """Replace the server's disk with a fresh one from ``spec.image_path`` and start it."""
        self.destroy(spec.host, spec.id)
        self.spawn(spec)

    @abc.abstractmethod
    def resize(self, spec: InstanceSpec) -> None:
        """Apply the new flavor (vcpus, memory, disk) in ``spec`` to the existing server."""

    # Rescue (nova rescue/unrescue): the server boots from another image with its own disk
    # attached beside it, untouched; unrescue boots its own disk again.
    def rescue(self, spec: InstanceSpec, rescue: InstanceSpec) -> None:
        """Stop the server and boot it from ``rescue`` (the rescue image's file, format
        and properties; same id, flavor, ports) with the server's own disk as its second
        disk (VM: the second virtio disk, /dev/vdb) or, for a container, its root file
        system read-write at /mnt/rescue-disk. The server's disk is not changed. If this
        fails, the server is left as it was (running its own disk if it was running)."""
        raise DriverError(f"the {self.name} compute driver cannot rescue servers")

    def unrescue(self, spec: InstanceSpec) -> None:
        """Drop the rescue boot (its scratch disk goes) and start the server from its own
        disk again. Idempotent."""
        raise DriverError(f"the {self.name} compute driver cannot unrescue servers")

    def purge(self) -> None:
        """Remove every server this driver made on this machine (``down --purge``)."""
        for res in self.list_hosts():
            for server_id in self.list_instances(res.host):
                self.destroy(res.host, server_id)

    def netns_pid(self, host: str, server_id: str) -> int | None:
        """A pid inside the server's network namespace, for plugging its ports; None if
        the server has no real network namespace."""
        return None

    def processes(self, host: str, server_id: str) -> list[int]:
        """Pids of the server's processes on this machine (empty if not real)."""
        return []

    # Volumes (os-volume_attachments): the volume service exports a volume as a block
    # device on this host; these make it appear inside the server, or go away.
    def attach_block_device(self, host: str, server_id: str, host_device: str,
                            guest_device: str) -> None:
        """Make ``host_device`` (e.g. /dev/loop7) appear in the server as ``guest_device``
        (e.g. /dev/vdb): a device node in a container's /dev, a virtio disk in a VM.
        Idempotent. Raises DriverError if this driver cannot. A container's unprivileged
        root can read and write the raw device but cannot mount a file system from it
        (mount needs CAP_SYS_ADMIN on the host); a VM mounts what it likes."""
        raise DriverError(f"the {self.name} compute driver cannot attach block devices")

    def detach_block_device(self, host: str, server_id: str, guest_device: str) -> None:
        """Remove ``guest_device`` from the server. Absent is success."""
        raise DriverError(f"the {self.name} compute driver cannot detach block devices")

    # Interfaces (os-interface): the network service plugs each of the server's ports into
    # its network namespace as the next free ethN carrying the port's MAC. A container's
    # processes see those links directly; a VM needs a NIC of its own for each.
    def attach_interface(self, host: str, server_id: str, mac: str) -> None:
        """A port with ``mac`` was just plugged into the running server's namespace: make
        it a guest NIC. Idempotent. Default: nothing (the guest sees the namespace)."""

    def detach_interface(self, host: str, server_id: str, mac: str) -> None:
        """Remove the guest NIC with ``mac`` (the port is unplugged next). Absent is
        success. Default: nothing."""

    # Remote consoles (os-remote-consoles): the API's WebSocket proxy splices a client to
    # the socket these name; the proxy never reaches into the driver otherwise.
    def console_socket(self, host: str, server_id: str, protocol: str) -> str:
        """Path of a unix stream socket on this host that speaks ``protocol`` for the running server:
        'vnc' (RFB 3.8, security type None offered), 'spice' (SPICE link protocol), 'serial' (raw bytes
        both ways: a VM's serial port, a container's pty). Each connect() is one client session. Never
        blocks long; raises ConsoleUnavailable with a human reason when unavailable."""
        raise ConsoleUnavailable(f"The {self.name} driver has no {protocol} console.")

    def console_resize(self, host: str, server_id: str, rows: int, cols: int) -> None:
        """Set the terminal size of the 'serial' console where that means something (a container's
        pty); a no-op elsewhere."""
