from pocketstack.scheduler.filters.base import BaseHostFilter

# Image property values Nova canonicalises (nova/objects/fields.py).
_HV_ALIASES = {"xapi": "xen", "lxc": "lxc", "container": "lxc"}
_ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "i386": "i686", "arm64": "aarch64"}


class ImagePropertiesFilter(BaseHostFilter):
    """Keep hosts that support the image's architecture, hypervisor type and vm mode."""

    def _wants(self, spec):
        p = spec.image_properties or {}
        arch = p.get("hw_architecture") or p.get("architecture")
        hv = p.get("img_hv_type") or p.get("hypervisor_type")
        mode = p.get("hw_vm_mode") or p.get("vm_mode")
        return (_ARCH_ALIASES.get(str(arch).lower(), str(arch).lower()) if arch else None,
                _HV_ALIASES.get(str(hv).lower(), str(hv).lower()) if hv else None,
                str(mode).lower() if mode else None)

    def applies(self, spec):
        return any(self._wants(spec))

    def host_passes(self, host_state, spec):
        arch, hv, mode = self._wants(spec)
        for s_arch, s_hv, s_mode in host_state.supported_instances:
            if (arch is None or arch == s_arch) and (hv is None or hv == s_hv) and (
                    mode is None or mode == s_mode):
                return True
        return False

    def describe(self, spec):
        arch, hv, mode = self._wants(spec)
        return f"support the image (architecture={arch}, hypervisor_type={hv}, vm_mode={mode})"
