from pocketstack.scheduler.filters.base import BaseHostFilter


class CoreFilter(BaseHostFilter):
    """Keep hosts with enough free vCPUs (times cpu_allocation_ratio)."""

    def host_passes(self, host_state, spec):
        return host_state.free_vcpus >= spec.vcpus

    def describe(self, spec):
        return f"have {spec.vcpus} free vCPUs"
