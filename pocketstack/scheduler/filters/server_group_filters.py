from pocketstack.scheduler.filters.base import BaseHostFilter


class ServerGroupAntiAffinityFilter(BaseHostFilter):
    """Keep hosts with fewer than max_server_per_host (1) members of the server's group."""

    def applies(self, spec):
        return spec.group_policy == "anti-affinity"

    def host_passes(self, host_state, spec):
        limit = int((spec.group_rules or {}).get("max_server_per_host", 1))
        return spec.group_hosts.count(host_state.host) < limit

    def describe(self, spec):
        return "hold no other member of the anti-affinity server group"


class ServerGroupAffinityFilter(BaseHostFilter):
    """Keep the host the server's affinity group already uses (any host for the first)."""

    def applies(self, spec):
        return spec.group_policy == "affinity" and bool(spec.group_hosts)

    def host_passes(self, host_state, spec):
        return host_state.host in spec.group_hosts

    def describe(self, spec):
        return f"are the affinity group's host ({', '.join(sorted(set(spec.group_hosts)))})"
