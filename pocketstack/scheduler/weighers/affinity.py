class ServerGroupSoftAffinityWeigher:
    """soft-affinity groups: hosts with more members of the group weigh more."""

    setting = None
    always = True  # added whatever weight_classes says, as soft policies need it

    def weigh(self, host_state, spec):
        if spec.group_policy != "soft-affinity":
            return 0.0
        return float(spec.group_hosts.count(host_state.host))


class ServerGroupSoftAntiAffinityWeigher:
    """soft-anti-affinity groups: hosts with fewer members of the group weigh more."""

    setting = None
    always = True

    def weigh(self, host_state, spec):
        if spec.group_policy != "soft-anti-affinity":
            return 0.0
        return -float(spec.group_hosts.count(host_state.host))
