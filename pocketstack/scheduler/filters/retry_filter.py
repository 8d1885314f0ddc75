from pocketstack.scheduler.filters.base import BaseHostFilter


class RetryFilter(BaseHostFilter):
    """Skip hosts where this build already failed (rescheduling)."""

    def applies(self, spec):
        return bool(spec.ignore_hosts)

    def host_passes(self, host_state, spec):
        return host_state.host not in spec.ignore_hosts

    def describe(self, spec):
        return "were not already tried for this build"
