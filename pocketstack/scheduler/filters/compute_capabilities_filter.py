from pocketstack.scheduler.filters import extra_specs_ops
from pocketstack.scheduler.filters.base import BaseHostFilter


def _lookup(host_state, path):
    """Resolve "cpu_info:arch" or "hypervisor_type" against the host's attributes."""
    cur = host_state
    for part in path:
        if isinstance(cur, dict):
            if part not in cur:
                return None
            cur = cur[part]
        else:
            cur = getattr(cur, part, None)
        if cur is None:
            return None
    return cur


class ComputeCapabilitiesFilter(BaseHostFilter):
    """Keep hosts whose capabilities satisfy the flavor's capabilities: extra specs."""

    run_filter_once_per_request = True

    @staticmethod
    def _wanted(spec):
        for key, req in spec.extra_specs.items():
            scope = key.split(":")
            if len(scope) > 1:
                if scope[0] != "capabilities":
                    continue
                scope = scope[1:]
            yield scope, key, req

    def applies(self, spec):
        return any(True for _ in self._wanted(spec))

    def host_passes(self, host_state, spec):
        for scope, _key, req in self._wanted(spec):
            value = _lookup(host_state, scope)
            if value is None or not extra_specs_ops.match(value, req):
                return False
        return True

    def describe(self, spec):
        return "match the flavor's capabilities (" + ", ".join(
            f"{k}={v}" for _s, k, v in self._wanted(spec)) + ")"
