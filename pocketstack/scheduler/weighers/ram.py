class RAMWeigher:
    """More free RAM weighs more (spread); a negative multiplier stacks."""

    setting = "ram_weight_multiplier"

    def weigh(self, host_state, spec):
        return host_state.free_ram_mb
