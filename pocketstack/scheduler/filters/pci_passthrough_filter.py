from pocketstack.scheduler.filters.base import BaseHostFilter


def fit(pci_free, requests):
    """Devices to take per (vendor, product) for every request, or None if they don't fit."""
    free = dict(pci_free)
    take: dict = {}
    for req in requests:
        need = req.count
        for key in req.specs:
            n = min(free.get(key, 0), need)
            if n:
                free[key] -= n
                take[key] = take.get(key, 0) + n
                need -= n
            if not need:
                break
        if need:
            return None
    return take


class PciPassthroughFilter(BaseHostFilter):
    """Keep hosts with free PCI devices for every alias the flavor asks for."""

    def applies(self, spec):
        return bool(spec.pci_requests)

    def host_passes(self, host_state, spec):
        return fit(host_state.pci_free, spec.pci_requests) is not None

    def describe(self, spec):
        return "have free PCI devices for " + ", ".join(
            f"{r.alias}:{r.count}" for r in spec.pci_requests)
