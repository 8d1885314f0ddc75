from pocketstack.scheduler.filters.base import BaseHostFilter


class RamFilter(BaseHostFilter):
    """Keep hosts with enough free RAM (total less reserved, times ram_allocation_ratio)."""

    def host_passes(self, host_state, spec):
        return host_state.free_ram_mb >= spec.memory_mb

    def describe(self, spec):
        return f"have {spec.memory_mb} MB of free RAM"
