from pocketstack.scheduler.filters.base import BaseHostFilter


class DiskFilter(BaseHostFilter):
    """Keep hosts with enough free local disk (times disk_allocation_ratio)."""

    def host_passes(self, host_state, spec):
        return host_state.free_disk_gb >= spec.disk_gb

    def describe(self, spec):
        return f"have {spec.disk_gb} GB of free disk"
