"""select_destinations: placement-like resource prefilter, then filters, then weighers.

Host states live in memory (loaded from the database, refreshed on a schedule and when a
claim finds one stale); selecting a host consumes its resources in memory at once so the
next request of a multi-create sees them. The authoritative claim is the compute service's
conditional UPDATE in the database: if it fails the caller refreshes the host and asks
again, so concurrent schedulers (threads or replicas) never overcommit.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections.abc import Callable
from typing import Any

from pocketstack.scheduler import filters as filter_registry
from pocketstack.scheduler import weighers as weigher_registry
from pocketstack.scheduler.host_state import HostState, RequestSpec


class NoValidHost(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"No valid host was found. {reason}")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


class Scheduler:
    def __init__(self, settings: Any, load_hosts: Callable[[], list[HostState]]) -> None:
        self.settings = settings
        self.load_hosts = load_hosts
        unknown = [n for n in _names(settings.enabled_filters) if n not in filter_registry.REGISTRY]
        if unknown:
            raise ValueError(f"unknown scheduler filters {unknown}; available: "
                             f"{sorted(filter_registry.REGISTRY)}")
        self.filters = [filter_registry.REGISTRY[n]() for n in _names(settings.enabled_filters)]
        weighers = []
        for name in _names(settings.weighers):
            if name not in weigher_registry.REGISTRY:
                raise ValueError(f"unknown scheduler weigher {name!r}; available: "
                                 f"{sorted(weigher_registry.REGISTRY)}")
            weighers.append(weigher_registry.REGISTRY[name]())
        for cls in weigher_registry.REGISTRY.values():
            if getattr(cls, "always", False) and not any(isinstance(w, cls) for w in weighers):
                weighers.append(cls())
        self.weighers = [(w, getattr(settings, w.setting) if w.setting else 1.0) for w in weighers]
        self.hosts: dict[str, HostState] = {}
        self._host_list: list[HostState] = []
        self.lock = threading.Lock()
        self._rng = random.Random()

    # -- host states ----------------------------------------------------------------------
    def refresh(self) -> None:
        states = self.load_hosts()
        with self.lock:
            self.hosts = {h.id: h for h in states}
            self._host_list = list(self.hosts.values())

    def host_by_name(self, name: str) -> HostState | None:
        with self.lock:
            for h in self.hosts.values():
                if h.host == name:
                    return h
        return None

    # -- selection ------------------------------------------------------------------------
    def select_destinations(self, spec: RequestSpec, num: int = 1,
                            server_ids: list[str] | None = None
                            ) -> list[tuple[HostState, dict | None]]:
        """Pick ``num`` hosts (one per instance), consuming their resources in memory.
        Returns (host, PCI devices to take per (vendor, product)) pairs."""
        chosen = []
        with self.lock:
            for i in range(num):
                host = self._select_one(spec)
                sid = server_ids[i] if server_ids else f"pending-{i}"
                take = self._pci_take(host, spec)
                host.consume(sid, spec.vcpus, spec.memory_mb, spec.disk_gb, take)
                if spec.group_policy:
                    spec.group_hosts.append(host.host)
                chosen.append((host, take))
        return chosen

    def release_server(self, host_name: str | None, server_id: str, vcpus: int, memory_mb: int,
                       disk_gb: int, pci: dict | None = None) -> None:
        """Give a deleted/failed server's resources back in the in-memory view."""
        if not host_name:
            return
        with self.lock:
            for h in self.hosts.values():
                if h.host == host_name:
                    if server_id in h.instances:
                        h.release(server_id, vcpus, memory_mb, disk_gb, pci)
                    return

    def refresh_host(self, host_id: str) -> None:
        """Reload one host after a failed claim (cheaper than a full refresh)."""
        fresh = {h.id: h for h in self.load_hosts()} if len(self.hosts) < 200 else None
        with self.lock:
            if fresh is not None:
                self.hosts = fresh
                self._host_list = list(fresh.values())
        if fresh is None:
            self.refresh()

    def unconsume(self, host_id: str, server_id: str, spec: RequestSpec,
                  pci: dict | None = None) -> None:
        with self.lock:
            h = self.hosts.get(host_id)
            if h is not None:
                h.release(server_id, spec.vcpus, spec.memory_mb, spec.disk_gb, pci)

    @staticmethod
    def _pci_take(host: HostState, spec: RequestSpec) -> dict | None:
        if not spec.pci_requests:
            return None
        from pocketstack.scheduler.filters.pci_passthrough_filter import fit

        return fit(host.pci_free, spec.pci_requests)

    def _select_one(self, spec: RequestSpec) -> HostState:
        hosts = self._host_list
        if spec.force_host:
            hosts = [h for h in hosts if h.host == spec.force_host]
            if not hosts:
                raise NoValidHost(f"Host {spec.force_host} is not a compute host.")
        total = len(hosts)
        if not total:
            raise NoValidHost("There are no compute hosts.")
        v, m, d = spec.vcpus, spec.memory_mb, spec.disk_gb
        # Placement's part: only hosts with the resources are candidates, at most
        # max_placement_results of them, taken from a random starting point (placement's
        # randomize_allocation_candidates) so the scan stops early on big clouds.
        limit = self.settings.max_placement_results
        start = self._rng.randrange(total)
        candidates = []
        for h in itertools.chain(itertools.islice(hosts, start, None),
                                 itertools.islice(hosts, 0, start)):
            if (h.vcpus * h.cpu_allocation_ratio - h.vcpus_used >= v and
                    (h.memory_mb - h.reserved_host_memory_mb) * h.ram_allocation_ratio
                    - h.memory_mb_used >= m and
                    h.local_gb * h.disk_allocation_ratio - h.local_gb_used >= d):
                candidates.append(h)
                if len(candidates) >= limit:
                    break
        if not candidates:
            raise NoValidHost(self._resource_reason(hosts, spec))
        for f in self.filters:
            if not f.applies(spec):
                continue
            before = len(candidates)
            candidates = [h for h in candidates if f.host_passes(h, spec)]
            if not candidates:
                raise NoValidHost(f"0 of {before} candidate hosts {f.describe(spec)} "
                                  f"({type(f).__name__}).")
        return self._best(candidates, spec)

    def _best(self, candidates: list[HostState], spec: RequestSpec) -> HostState:
        if len(candidates) == 1:
            return candidates[0]
        scores = [0.0] * len(candidates)
        for weigher, multiplier in self.weighers:
            if not multiplier:
                continue
            raw = [weigher.weigh(h, spec) for h in candidates]
            lo, hi = min(raw), max(raw)
            if hi == lo:
                continue
            span = hi - lo
            for i, r in enumerate(raw):
                scores[i] += multiplier * (r - lo) / span
        best = max(scores)
        # Ties go to a random host so equal hosts share the load.
        top = [h for h, s in zip(candidates, scores) if s >= best - 1e-9]
        return top[0] if len(top) == 1 else self._rng.choice(top)

    @staticmethod
    def _resource_reason(hosts: list[HostState], spec: RequestSpec) -> str:
        total = len(hosts)
        counts = [
            (sum(1 for h in hosts if h.free_vcpus >= spec.vcpus), f"{spec.vcpus} free vCPUs"),
            (sum(1 for h in hosts if h.free_ram_mb >= spec.memory_mb),
             f"{spec.memory_mb} MB of free RAM"),
            (sum(1 for h in hosts if h.free_disk_gb >= spec.disk_gb),
             f"{spec.disk_gb} GB of free disk"),
        ]
        n, what = min(counts, key=lambda c: c[0])
        if n:
            return (f"0 of {total} hosts have {spec.vcpus} free vCPUs, {spec.memory_mb} MB of "
                    f"free RAM and {spec.disk_gb} GB of free disk at once.")
        return f"0 of {total} hosts have {what}."
