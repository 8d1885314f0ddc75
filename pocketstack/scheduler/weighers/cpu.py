class CPUWeigher:
    """More free vCPUs weighs more (spread); a negative multiplier stacks."""

    setting = "cpu_weight_multiplier"

    def weigh(self, host_state, spec):
        return host_state.free_vcpus
