"""The filter scheduler: each filter, the resource prefilter's reasons, weighers, claims."""

from __future__ import annotations

import pytest

from pocketstack.config import ComputeSettings
from pocketstack.scheduler import filters
from pocketstack.scheduler.host_state import HostState, PciRequest, RequestSpec
from pocketstack.scheduler.manager import NoValidHost, Scheduler


def host(i: int, **kw) -> HostState:
    base = dict(id=str(i), host=f"h{i}", nodename=f"h{i}", vcpus=4, memory_mb=8192,
                local_gb=100, cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                supported_instances=[("x86_64", "fake", "hvm")])
    base.update(kw)
    return HostState(**base)


def sched(hosts, **conf) -> Scheduler:
    s = Scheduler(ComputeSettings(**conf), lambda: hosts)
    s.refresh()
    return s


def test_every_seed_filter_is_registered_one_file_each():
    names = ComputeSettings().enabled_filters.split(",")
    assert set(names) <= set(filters.REGISTRY)
    modules = {cls.__module__ for cls in filters.REGISTRY.values()}
    assert len(modules) >= 11  # one module per filter (the host filters pair up)


def test_no_valid_host_names_the_resource():
    s = sched([host(1), host(2), host(3)])
    with pytest.raises(NoValidHost) as err:
        s.select_destinations(RequestSpec(vcpus=8, memory_mb=512, disk_gb=1))
    assert str(err.value) == "No valid host was found. 0 of 3 hosts have 8 free vCPUs."


def test_resources_are_consumed_between_selections():
    s = sched([host(1, vcpus=2)])
    spec = RequestSpec(vcpus=1, memory_mb=1024, disk_gb=10)
    s.select_destinations(spec, 2, ["a", "b"])
    with pytest.raises(NoValidHost):
        s.select_destinations(spec, 1, ["c"])
    s.release_server("h1", "a", 1, 1024, 10)
    (h, _), = s.select_destinations(spec, 1, ["c"])
    assert h.host == "h1"


def test_compute_filter_skips_disabled_and_down_hosts():
    s = sched([host(1, enabled=False), host(2, up=False), host(3)])
    picks = {s.select_destinations(RequestSpec(1, 512, 1), 1, [f"s{i}"])[0][0].host
             for i in range(3)}
    assert picks == {"h3"}


def test_availability_zone_and_retry_filters():
    s = sched([host(1, availability_zone="az1"), host(2, availability_zone="az2")])
    spec = RequestSpec(1, 512, 1, availability_zone="az2")
    assert s.select_destinations(spec)[0][0].host == "h2"
    spec = RequestSpec(1, 512, 1, availability_zone="az2", ignore_hosts={"h2"})
    with pytest.raises(NoValidHost, match="RetryFilter|AvailabilityZoneFilter"):
        s.select_destinations(spec)


def test_anti_affinity_and_affinity():
    s = sched([host(1), host(2)])
    spec = RequestSpec(1, 512, 1, group_policy="anti-affinity", group_hosts=[])
    got = [h.host for h, _ in s.select_destinations(spec, 2, ["a", "b"])]
    assert sorted(got) == ["h1", "h2"]
    with pytest.raises(NoValidHost, match="anti-affinity"):
        s.select_destinations(spec, 1, ["c"])
    aff = RequestSpec(1, 512, 1, group_policy="affinity", group_hosts=["h2"])
    assert s.select_destinations(aff)[0][0].host == "h2"


def test_same_and_different_host_hints():
    s = sched([host(1, instances={"x"}), host(2)])
    assert s.select_destinations(RequestSpec(1, 512, 1, same_host=["x"]))[0][0].host == "h1"
    assert s.select_destinations(RequestSpec(1, 512, 1, different_host=["x"]))[0][0].host == "h2"


def test_pci_passthrough_claims_devices():
    k20 = ("10de", "1028")
    s = sched([host(1, pci_free={k20: 2}), host(2)])
    spec = RequestSpec(1, 512, 1, pci_requests=[PciRequest("K20m", 2, [k20])])
    (h, take), = s.select_destinations(spec, 1, ["g"])
    assert h.host == "h1" and take == {k20: 2}
    with pytest.raises(NoValidHost, match="PCI devices for K20m:2"):
        s.select_destinations(spec, 1, ["g2"])


def test_capabilities_and_image_properties():
    s = sched([host(1, hypervisor_type="fake"), host(2, hypervisor_type="lxc",
                                                       supported_instances=[("x86_64", "lxc", "exe")])])
    spec = RequestSpec(1, 512, 1, extra_specs={"capabilities:hypervisor_type": "s== lxc"})
    assert s.select_destinations(spec)[0][0].host == "h2"
    spec = RequestSpec(1, 512, 1, image_properties={"hypervisor_type": "lxc"})
    assert s.select_destinations(spec)[0][0].host == "h2"
    spec = RequestSpec(1, 512, 1, image_properties={"hw_architecture": "aarch64"})
    with pytest.raises(NoValidHost, match="ImagePropertiesFilter"):
        s.select_destinations(spec)


def test_ram_weigher_spreads_and_negative_multiplier_stacks():
    hosts = [host(1, memory_mb_used=4096), host(2)]
    assert sched(hosts).select_destinations(RequestSpec(1, 512, 1))[0][0].host == "h2"
    hosts = [host(1, memory_mb_used=4096), host(2)]
    stacked = sched(hosts, ram_weight_multiplier=-1.0, cpu_weight_multiplier=0.0)
    assert stacked.select_destinations(RequestSpec(1, 512, 1))[0][0].host == "h1"


def test_unknown_filter_name_is_a_config_error():
    with pytest.raises(ValueError, match="unknown scheduler filters"):
        Scheduler(ComputeSettings(enabled_filters="RamFilter,NoSuchFilter"), lambda: [])
