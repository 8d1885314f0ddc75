"""The filter protocol."""

from __future__ import annotations

from pocketstack.scheduler.host_state import HostState, RequestSpec


class BaseHostFilter:
    # Filters whose answer cannot change between instances of one request run once.
    run_filter_once_per_request = False

    def host_passes(self, host_state: HostState, spec: RequestSpec) -> bool:
        raise NotImplementedError

    def applies(self, spec: RequestSpec) -> bool:
        """False when the request does not ask for what this filter checks (skip it)."""
        return True

    def describe(self, spec: RequestSpec) -> str:
        return f"passed {type(self).__name__}"
