"""One file per filter, each with ``host_passes(host_state, spec) -> bool``.

``REGISTRY`` maps the names nova.conf's ``enabled_filters`` uses to the classes; a filter
may define ``describe(spec)`` to say what it asked for in the "No valid host" fault.
"""

from __future__ import annotations

from pocketstack.scheduler.filters.availability_zone_filter import AvailabilityZoneFilter
from pocketstack.scheduler.filters.compute_capabilities_filter import ComputeCapabilitiesFilter
from pocketstack.scheduler.filters.compute_filter import ComputeFilter
from pocketstack.scheduler.filters.core_filter import CoreFilter
from pocketstack.scheduler.filters.disk_filter import DiskFilter
from pocketstack.scheduler.filters.image_properties_filter import ImagePropertiesFilter
from pocketstack.scheduler.filters.pci_passthrough_filter import PciPassthroughFilter
from pocketstack.scheduler.filters.ram_filter import RamFilter
from pocketstack.scheduler.filters.retry_filter import RetryFilter
from pocketstack.scheduler.filters.same_host_filter import DifferentHostFilter, SameHostFilter
from pocketstack.scheduler.filters.server_group_filters import (ServerGroupAffinityFilter,
                                                               ServerGroupAntiAffinityFilter)

REGISTRY = {cls.__name__: cls for cls in (
    RetryFilter, AvailabilityZoneFilter, RamFilter, CoreFilter, DiskFilter, ComputeFilter,
    ComputeCapabilitiesFilter, ImagePropertiesFilter, ServerGroupAntiAffinityFilter,
    ServerGroupAffinityFilter, SameHostFilter, DifferentHostFilter, PciPassthroughFilter)}
