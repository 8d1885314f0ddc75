"""The compute service object: what the routes, the workers and other slices call.

Resource logic lives in sibling modules (flavors, keypairs, quotas, servers, hosts,
server_groups, worker); this class holds what they share: the database, the driver, the
scheduler, the task queue, and the host bookkeeping (registration, claims, heartbeats).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import shutil
from typing import Any

from sqlalchemy import func, select, update

from pocketstack.context import RequestContext
from pocketstack.db.base import utcnow
from pocketstack.drivers import compute as compute_drivers
from pocketstack.drivers.compute.base import HostResources
from pocketstack.scheduler.host_state import HostState, PciRequest
from pocketstack.scheduler.manager import Scheduler
from pocketstack.services.compute import flavors
from pocketstack.services.compute.models import (Aggregate, Allocation, ComputeTask, Flavor, Host,
                                                 KeyPair, PciDevice, Server)
from pocketstack.services.compute.quotas import Quotas
from pocketstack.workers.queue import TaskQueue

log = logging.getLogger("pocketstack.compute")


def _parse_json_objects(text: str, what: str) -> list[dict[str, Any]]:
    text = text.strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"[compute] {what} is not valid JSON: {exc}") from None
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(i, dict) for i in items):
        raise ValueError(f"[compute] {what} must be a JSON object or a list of objects")
    return items


def local_memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 1024


class ComputeService:
    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.conf = cloud.settings.compute
        self.db = cloud.db
        self.base_url = cloud.settings.base_url + "/compute"
        self.driver, note = compute_drivers.load(cloud.settings)
        if note:
            cloud.degraded.append(note)
        self.pci_aliases: dict[str, list[tuple[str, str]]] = {}
        for alias in _parse_json_objects(self.conf.pci_alias, "pci_alias"):
            name = alias.get("name")
            if not name:
                raise ValueError("[compute] pci_alias entries need a name")
            self.pci_aliases.setdefault(name, []).append(
                (str(alias.get("vendor_id", "")).lower(), str(alias.get("product_id", "")).lower()))
        self.pci_whitelist = _parse_json_objects(self.conf.pci_passthrough_whitelist,
                                                 "pci_passthrough_whitelist")
        self.quotas = Quotas(self.db)
        self.scheduler = Scheduler(self.conf, self.load_host_states)
        from pocketstack.services.compute import worker

        self.worker = worker.Worker(self)
        self.queue = TaskQueue(self.db, ComputeTask, self.worker.handlers,
                               concurrency=self.conf.workers)
        self._background: list[asyncio.Task] = []
        self.local_hosts: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------
    def bootstrap(self) -> None:
        """Register this machine's hypervisors; on the very first start, DevStack's flavors."""
        with self.db.write() as s:
            first = s.execute(select(func.count()).select_from(Host)).scalar() == 0 and (
                s.execute(select(func.count()).select_from(Flavor)).scalar() == 0)
            if first:
                flavors.seed_defaults(s)
        self.register_hosts(self.driver.list_hosts())

    def register_hosts(self, hosts: list[HostResources]) -> None:
        c = self.conf
        with self.db.write() as s:
            existing = {h.host: h for h in s.execute(select(Host)).scalars()}
            seq = max((h.seq for h in existing.values()), default=0)
            now = utcnow()
            for res in hosts:
                row = existing.get(res.host)
                if row is None:
                    seq += 1
                    row = Host(host=res.host, seq=seq, driver=self.driver.name)
                    s.add(row)
                row.hypervisor_hostname = res.hypervisor_hostname
                row.hypervisor_type = res.hypervisor_type
                row.hypervisor_version = res.hypervisor_version
                row.host_ip = res.host_ip
                row.driver = self.driver.name
                row.vcpus, row.memory_mb, row.local_gb = res.vcpus, res.memory_mb, res.local_gb
                row.cpu_allocation_ratio = c.cpu_allocation_ratio
                row.ram_allocation_ratio = c.ram_allocation_ratio
                row.disk_allocation_ratio = c.disk_allocation_ratio
                row.reserved_host_memory_mb = c.reserved_host_memory_mb
                row.cpu_info = res.cpu_info
                row.heartbeat_at = now
                s.flush()
                have = {d.address: d for d in s.execute(
                    select(PciDevice).where(PciDevice.host_id == row.id)).scalars()}
                want = {d.address: d for d in res.pci_devices}
                for addr, dev in have.items():
                    if addr not in want and dev.server_id is None:
                        s.delete(dev)
                for addr, d in want.items():
                    if addr not in have:
                        s.add(PciDevice(host_id=row.id, address=addr, vendor_id=d.vendor_id,
                                        product_id=d.product_id))
            self.recount_hosts(s, [existing.get(h.host).id for h in hosts if h.host in existing])
        self.local_hosts = {h.host for h in hosts}

    def recount_hosts(self, s, host_ids: list[str] | None = None) -> None:  # noqa: ANN001
        """Recompute *_used from the allocations (repairs anything a crash left behind)."""
        sums = {hid: (v, m, d, n) for hid, v, m, d, n in s.execute(
            select(Allocation.host_id, func.sum(Allocation.vcpus), func.sum(Allocation.memory_mb),
                   func.sum(Allocation.disk_gb), func.count()).group_by(Allocation.host_id))}
        q = select(Host)
        if host_ids is not None:
            q = q.where(Host.id.in_(host_ids))
        for h in s.execute(q).scalars():
            v, m, d, n = sums.get(h.id, (0, 0, 0, 0))
            h.vcpus_used, h.memory_mb_used, h.local_gb_used, h.running_vms = (
                int(v or 0), int(m or 0), int(d or 0), int(n or 0))

    def purge(self) -> None:
        """``pocketstack down --purge``: every server process, disk and cgroup of this cloud."""
        self.driver.purge()
        compute_drivers.purge_others(self.settings, self.driver.name)

    async def start(self) -> None:
        await asyncio.to_thread(self.driver.init_host)
        self.cloud.degraded.extend(f"compute: {r}" for r in self.driver.degraded())
        requeued = await asyncio.to_thread(self.queue.recover)
        if requeued:
            log.warning("compute: %d task(s) interrupted by a restart are being resumed", requeued)
        await asyncio.to_thread(self.worker.reconcile)
        await asyncio.to_thread(self.scheduler.refresh)
        await self.queue.start()
        self._background.append(asyncio.create_task(self._periodic()))

    async def stop(self) -> None:
        for t in self._background:
            t.cancel()
        self._background.clear()
        await self.queue.stop()

    async def _periodic(self) -> None:
        """Heartbeat this machine's hosts and refresh the scheduler's view."""
        while True:
            await asyncio.sleep(10)
            try:
                await asyncio.to_thread(self._heartbeat)
                await asyncio.to_thread(self.scheduler.refresh)
                await asyncio.to_thread(self.worker.offload_due)  # shelved_offload_time > 0
            except Exception:  # noqa: BLE001
                log.exception("compute periodic task failed")

    def _heartbeat(self) -> None:
        if not self.local_hosts:
            return
        with self.db.write() as s:
            s.execute(update(Host).where(Host.host.in_(self.local_hosts))
                      .values(heartbeat_at=utcnow()))

    # -- host states for the scheduler ----------------------------------------------------
    def host_is_up(self, h: Host, now: dt.datetime | None = None) -> bool:
        now = now or utcnow()
        if h.forced_down:
            return False
        return (now - h.heartbeat_at).total_seconds() <= self.conf.service_down_time

    def host_azs(self, s) -> dict[str, str]:  # noqa: ANN001
        """host name -> availability zone, from aggregates' availability_zone metadata."""
        out = {}
        for agg in s.execute(select(Aggregate)).scalars():
            az = (agg.metadata_ or {}).get("availability_zone")
            if az:
                for host in agg.hosts or []:
                    out.setdefault(host, az)
        return out

    def load_host_states(self) -> list[HostState]:
        with self.db.read() as s:
            hosts = list(s.execute(select(Host)).scalars())
            aggs = list(s.execute(select(Aggregate)).scalars())
            pci = s.execute(select(PciDevice.host_id, PciDevice.vendor_id, PciDevice.product_id,
                                   func.count()).where(PciDevice.server_id.is_(None))
                            .group_by(PciDevice.host_id, PciDevice.vendor_id,
                                      PciDevice.product_id)).all()
            placed = s.execute(select(Server.host, Server.id).where(
                Server.deleted.is_(False), Server.host.is_not(None))).all()
        now = utcnow()
        host_aggs: dict[str, list[dict[str, str]]] = {}
        for agg in aggs:
            for name in agg.hosts or []:
                host_aggs.setdefault(name, []).append(dict(agg.metadata_ or {}))
        pci_free: dict[str, dict[tuple[str, str], int]] = {}
        for host_id, vendor, product, n in pci:
            pci_free.setdefault(host_id, {})[(vendor, product)] = n
        instances: dict[str, set[str]] = {}
        for host, sid in placed:
            instances.setdefault(host, set()).add(sid)
        states = []
        default_az = self.conf.default_availability_zone
        for h in hosts:
            metas = host_aggs.get(h.host, [])
            az = next((m["availability_zone"] for m in metas if m.get("availability_zone")),
                      default_az)
            hv = "lxc" if h.hypervisor_type == "container" else h.hypervisor_type
            mode = "exe" if hv == "lxc" else "hvm"
            states.append(HostState(
                id=h.id, host=h.host, nodename=h.hypervisor_hostname, vcpus=h.vcpus,
                memory_mb=h.memory_mb, local_gb=h.local_gb, vcpus_used=h.vcpus_used,
                memory_mb_used=h.memory_mb_used, local_gb_used=h.local_gb_used,
                cpu_allocation_ratio=h.cpu_allocation_ratio,
                ram_allocation_ratio=h.ram_allocation_ratio,
                disk_allocation_ratio=h.disk_allocation_ratio,
                reserved_host_memory_mb=h.reserved_host_memory_mb,
                enabled=h.status == "enabled", up=self.host_is_up(h, now),
                availability_zone=az, aggregates=metas, hypervisor_type=h.hypervisor_type,
                hypervisor_version=h.hypervisor_version, cpu_info=dict(h.cpu_info or {}),
                supported_instances=[((h.cpu_info or {}).get("arch", "x86_64"), hv, mode)],
                pci_free=pci_free.get(h.id, {}), instances=instances.get(h.host, set())))
        return states

    # -- PCI --------------------------------------------------------------------------------
    def pci_requests(self, extra_specs: dict[str, str]) -> list[PciRequest]:
        from pocketstack.errors import BadRequest

        value = (extra_specs or {}).get("pci_passthrough:alias")
        if not value:
            return []
        out = []
        for part in value.split(","):
            name, _, count = part.strip().partition(":")
            if name not in self.pci_aliases:
                raise BadRequest(f"PCI alias {name} is not defined")
            out.append(PciRequest(alias=name, count=int(count or 1), specs=self.pci_aliases[name]))
        return out

    # -- claims -----------------------------------------------------------------------------
    def claim(self, s, server: Server, host_id: str, pci_take: dict | None) -> bool:  # noqa: ANN001
        """Atomically take the server's resources on a host (inside the caller's transaction).
        False if the host no longer has them (the scheduler's view was stale)."""
        v, m, d = server.vcpus, server.memory_mb, server.root_gb
        res = s.execute(
            update(Host).where(
                Host.id == host_id, Host.status == "enabled",
                Host.vcpus_used + v <= Host.vcpus * Host.cpu_allocation_ratio,
                Host.memory_mb_used + m <= (Host.memory_mb - Host.reserved_host_memory_mb)
                * Host.ram_allocation_ratio,
                Host.local_gb_used + d <= Host.local_gb * Host.disk_allocation_ratio)
            .values(vcpus_used=Host.vcpus_used + v, memory_mb_used=Host.memory_mb_used + m,
                    local_gb_used=Host.local_gb_used + d, running_vms=Host.running_vms + 1))
        if not res.rowcount:
            return False
        addresses = []
        for (vendor, product), n in (pci_take or {}).items():
            free = s.execute(select(PciDevice).where(
                PciDevice.host_id == host_id, PciDevice.vendor_id == vendor,
                PciDevice.product_id == product, PciDevice.server_id.is_(None))
                .limit(n).with_for_update(skip_locked=True)).scalars().all()
            if len(free) < n:
                raise _ClaimRace()
            for dev in free:
                dev.server_id = server.id
                addresses.append(dev.address)
        s.add(Allocation(server_id=server.id, host_id=host_id, vcpus=v, memory_mb=m, disk_gb=d))
        return True

    def release(self, s, server_id: str) -> None:  # noqa: ANN001
        """Give back everything a server holds (idempotent)."""
        for alloc in s.execute(select(Allocation).where(Allocation.server_id == server_id)).scalars():
            s.execute(update(Host).where(Host.id == alloc.host_id).values(
                vcpus_used=Host.vcpus_used - alloc.vcpus,
                memory_mb_used=Host.memory_mb_used - alloc.memory_mb,
                local_gb_used=Host.local_gb_used - alloc.disk_gb,
                running_vms=Host.running_vms - 1))
            s.delete(alloc)
        s.execute(update(PciDevice).where(PciDevice.server_id == server_id)
                  .values(server_id=None))

    def adjust_allocation(self, s, server_id: str, vcpus: int, memory_mb: int, disk_gb: int,  # noqa: ANN001
                          check: bool) -> bool:
        """Change what a server holds on its host (resize); with ``check``, only if it fits."""
        alloc = s.execute(select(Allocation).where(Allocation.server_id == server_id)
                          ).scalar_one_or_none()
        if alloc is None:
            return False
        dv, dm, dd = vcpus - alloc.vcpus, memory_mb - alloc.memory_mb, disk_gb - alloc.disk_gb
        stmt = update(Host).where(Host.id == alloc.host_id)
        if check:
            stmt = stmt.where(
                Host.vcpus_used + dv <= Host.vcpus * Host.cpu_allocation_ratio,
                Host.memory_mb_used + dm <= (Host.memory_mb - Host.reserved_host_memory_mb)
                * Host.ram_allocation_ratio,
                Host.local_gb_used + dd <= Host.local_gb * Host.disk_allocation_ratio)
        res = s.execute(stmt.values(vcpus_used=Host.vcpus_used + dv,
                                    memory_mb_used=Host.memory_mb_used + dm,
                                    local_gb_used=Host.local_gb_used + dd))
        if not res.rowcount:
            return False
        alloc.vcpus, alloc.memory_mb, alloc.disk_gb = vcpus, memory_mb, disk_gb
        return True

    # -- for other slices -------------------------------------------------------------------
    def server_exists(self, server_id: str) -> bool:
        """Is there a (not deleted) server with this id? For the volume service's check
        that a user does not detach a volume a server still uses behind Nova's back."""
        with self.db.read() as s:
            srv = s.get(Server, server_id)
            return srv is not None and not srv.deleted

    def server_password(self, server_id: str) -> str:
        """The password the guest posted to the metadata service ("" if none)."""
        with self.db.read() as s:
            srv = s.get(Server, server_id)
            return "" if srv is None else str((srv.image or {}).get("password") or "")

    def set_server_password(self, server_id: str, value: str | None) -> bool:
        """Keep the guest's password (Nova's system metadata password_0..3; here in the
        server's bookkeeping). Set once: False if one is already there. ``None`` clears it
        (os-server-password DELETE)."""
        with self.db.write() as s:
            srv = s.get(Server, server_id)
            if srv is None or srv.deleted:
                return False
            image = dict(srv.image or {})
            if value is not None and image.get("password"):
                return False
            if value is None:
                image.pop("password", None)
            else:
                image["password"] = value
            srv.image = image
            return True

    def metadata_for_server(self, server_id: str) -> dict[str, Any]:
        """What the metadata service shows a server (meta_data.json's sources)."""
        from pocketstack.errors import NotFound
        from pocketstack.services.compute import device_metadata, injected_files

        with self.db.read() as s:
            srv = s.get(Server, server_id)
            if srv is None or srv.deleted:
                raise NotFound(f"Instance {server_id} could not be found.")
            keys = {}
            key_type = "ssh"
            if srv.key_name:
                kp = s.execute(select(KeyPair).where(KeyPair.user_id == srv.user_id,
                                                     KeyPair.name == srv.key_name)).scalar()
                keys[srv.key_name] = kp.public_key if kp else (srv.key_data or "")
                key_type = kp.type if kp else "ssh"
        return {"uuid": srv.id, "name": srv.name, "hostname": srv.hostname,
                "key_name": srv.key_name, "public_keys": keys,
                "key_data": srv.key_data, "key_type": key_type,
                "devices": device_metadata.devices(self, srv),
                "files": injected_files.of(srv),
                "user_data": srv.user_data, "project_id": srv.project_id,
                "availability_zone": srv.availability_zone or self.conf.default_availability_zone,
                "metadata": dict(srv.metadata_ or {}), "launch_index": srv.launch_index,
                "reservation_id": srv.reservation_id, "host": srv.host}

    def internal_context(self, project_id: str | None = None) -> RequestContext:
        return RequestContext.internal(project_id)


class _ClaimRace(Exception):
    """A PCI device we counted as free was taken concurrently; roll back and retry."""


def data_dir_free_gb(path: str) -> int:
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return 10
    return max(int(usage.total / 2**30), 1)


def cpu_count() -> int:
    return os.cpu_count() or 1
