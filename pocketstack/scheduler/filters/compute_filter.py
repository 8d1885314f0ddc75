from pocketstack.scheduler.filters.base import BaseHostFilter


class ComputeFilter(BaseHostFilter):
    """Keep hosts whose compute service is enabled and up."""

    def host_passes(self, host_state, spec):
        return host_state.enabled and host_state.up

    def describe(self, spec):
        return "have an enabled and up compute service"
