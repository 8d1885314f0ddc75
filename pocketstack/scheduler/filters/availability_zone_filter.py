from pocketstack.scheduler.filters.base import BaseHostFilter


class AvailabilityZoneFilter(BaseHostFilter):
    """Keep hosts in the requested availability zone (from their aggregates' metadata)."""

    def applies(self, spec):
        return bool(spec.availability_zone)

    def host_passes(self, host_state, spec):
        return host_state.availability_zone == spec.availability_zone

    def describe(self, spec):
        return f"are in availability zone '{spec.availability_zone}'"
