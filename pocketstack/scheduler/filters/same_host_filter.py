from pocketstack.scheduler.filters.base import BaseHostFilter


class SameHostFilter(BaseHostFilter):
    """Keep hosts running one of the servers named in the same_host hint."""

    def applies(self, spec):
        return bool(spec.same_host)

    def host_passes(self, host_state, spec):
        return any(s in host_state.instances for s in spec.same_host)

    def describe(self, spec):
        return "run a server named in the same_host hint"


class DifferentHostFilter(BaseHostFilter):
    """Keep hosts running none of the servers named in the different_host hint."""

    def applies(self, spec):
        return bool(spec.different_host)

    def host_passes(self, host_state, spec):
        return not any(s in host_state.instances for s in spec.different_host)

    def describe(self, spec):
        return "run none of the servers named in the different_host hint"
