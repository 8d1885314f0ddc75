"""Nova's validation of known flavor extra specs (2.86): a key that a validator names must
have a valid value; a key in a namespace Nova knows (hw:, quota:, capabilities:, ...) that
no validator names is refused; keys outside those namespaces are free (custom scheduler
filters use them).

The table is generated from nova/api/validation/extra_specs/*.py (Apache-2.0): each entry is
(name regex, value type, constraints). Nova expands ``trait:`` and ``resources:`` into one
validator per standard name of os-traits and os-resource-classes; here any upper-case name
stands for those (CUSTOM_ names are checked as Nova checks them).
"""

from __future__ import annotations

import re

from pocketstack.errors import BadRequest

# fmt: off
VALIDATORS: list[tuple[str, str, dict]] = [
    ('accel:device_profile', 'str', {}),
    ('aggregate_instance_extra_specs:(?P<key>.+)', 'str', {}),
    ('capabilities:id', 'str', {}),
    ('capabilities:uuid', 'str', {}),
    ('capabilities:service_id', 'str', {}),
    ('capabilities:host', 'str', {}),
    ('capabilities:vcpus', 'str', {}),
    ('capabilities:memory_mb', 'str', {}),
    ('capabilities:local_gb', 'str', {}),
    ('capabilities:vcpus_used', 'str', {}),
    ('capabilities:memory_mb_used', 'str', {}),
    ('capabilities:local_gb_used', 'str', {}),
    ('capabilities:hypervisor_type', 'str', {}),
    ('capabilities:hypervisor_version', 'str', {}),
    ('capabilities:hypervisor_hostname', 'str', {}),
    ('capabilities:free_ram_mb', 'str', {}),
    ('capabilities:free_disk_gb', 'str', {}),
    ('capabilities:current_workload', 'str', {}),
    ('capabilities:running_vms', 'str', {}),
    ('capabilities:disk_available_least', 'str', {}),
    ('capabilities:host_ip', 'str', {}),
    ('capabilities:mapped', 'str', {}),
    ('capabilities:cpu_allocation_ratio', 'str', {}),
    ('capabilities:ram_allocation_ratio', 'str', {}),
    ('capabilities:disk_allocation_ratio', 'str', {}),
    ('capabilities:total_usable_ram_mb', 'str', {}),
    ('capabilities:total_usable_disk_gb', 'str', {}),
    ('capabilities:disk_mb_used', 'str', {}),
    ('capabilities:free_disk_mb', 'str', {}),
    ('capabilities:vcpus_total', 'str', {}),
    ('capabilities:vcpus_used', 'str', {}),
    ('capabilities:num_instances', 'str', {}),
    ('capabilities:num_io_ops', 'str', {}),
    ('capabilities:failed_builds', 'str', {}),
    ('capabilities:aggregates', 'str', {}),
    ('capabilities:cell_uuid', 'str', {}),
    ('capabilities:updated', 'str', {}),
    ('capabilities:cpu_info(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:metrics(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:stats(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:numa_topology(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:supported_hv_specs(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:pci_device_pools(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:nodename(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:pci_stats(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:supported_instances(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:limits(?P<filter>(:\\w+)*)', 'str', {}),
    ('capabilities:instances(?P<filter>(:\\w+)*)', 'str', {}),
    ('hw:cpu_realtime', 'bool', {}),
    ('hw:cpu_realtime_mask', 'str', {'pattern': '(\\^)?\\d+((-\\d+)?(,\\^?\\d+(-\\d+)?)?)*'}),
    ('hw:hide_hypervisor_id', 'bool', {}),
    ('hw:cpu_policy', 'str', {'enum': ['dedicated', 'shared', 'mixed']}),
    ('hw:cpu_thread_policy', 'str', {'enum': ['prefer', 'isolate', 'require']}),
    ('hw:emulator_threads_policy', 'str', {'enum': ['isolate', 'share']}),
    ('hw:cpu_dedicated_mask', 'str', {'pattern': '\\^?\\d+((-\\d+)?(,\\^?\\d+(-\\d+)?)?)*'}),
    ('hw:mem_page_size', 'str', {'pattern': '(large|small|any|\\d+([kKMGT]i?)?(b|bit|B)?)'}),
    ('hw:locked_memory', 'bool', {}),
    ('hw:numa_nodes', 'int', {'min': 1}),
    ('hw:numa_cpus.(?P<num>\\d+)', 'str', {'pattern': '\\^?\\d+((-\\d+)?(,\\^?\\d+(-\\d+)?)?)*'}),
    ('hw:numa_mem.(?P<num>\\d+)', 'int', {'min': 1}),
    ('hw:pci_numa_affinity_policy', 'str', {'enum': ['required', 'preferred', 'legacy', 'socket']}),
    ('hw:cpu_sockets', 'int', {'min': 1}),
    ('hw:cpu_cores', 'int', {'min': 1}),
    ('hw:cpu_threads', 'int', {'min': 1}),
    ('hw:cpu_max_sockets', 'int', {'min': 1}),
    ('hw:cpu_max_cores', 'int', {'min': 1}),
    ('hw:cpu_max_threads', 'int', {'min': 1}),
    ('hw:boot_menu', 'bool', {}),
    ('hw:vif_multiqueue_enabled', 'bool', {}),
    ('hw:mem_encryption', 'bool', {}),
    ('hw:mem_encryption_model', 'str', {'enum': ['amd-sev', 'amd-sev-es', 'amd-sev-snp']}),
    ('hw:pmem', 'str', {'pattern': '([a-zA-Z0-9_]+(,)?)+'}),
    ('hw:pmu', 'bool', {}),
    ('hw:serial_port_count', 'int', {'min': 0}),
    ('hw:tpm_model', 'str', {'enum': ['tpm-tis', 'tpm-crb']}),
    ('hw:tpm_version', 'str', {'enum': ['1.2', '2.0']}),
    ('hw:tpm_secret_security', 'str', {'enum': ['user', 'host', 'deployment']}),
    ('hw:watchdog_action', 'str', {'enum': ['none', 'pause', 'poweroff', 'reset', 'disabled']}),
    ('hw:viommu_model', 'str', {'enum': ['intel', 'smmuv3', 'virtio', 'auto']}),
    ('hw:virtio_packed_ring', 'bool', {}),
    ('hw:sound_model', 'str', {'enum': ['sb16', 'es1370', 'pcspk', 'ac97', 'ich6', 'ich9', 'usb', 'virtio']}),
    ('hw:usb_model', 'str', {'enum': ['none', 'nec-xhci', 'qemu-xhci']}),
    ('hw:redirected_usb_ports', 'int', {'min': 0, 'max': 15}),
    ('hw:ephemeral_encryption', 'bool', {}),
    ('hw:ephemeral_encryption_format', 'str', {'enum': ['plain', 'luks', 'luksv2']}),
    ('hw_rng:allowed', 'bool', {}),
    ('hw_rng:rate_bytes', 'int', {'min': 0}),
    ('hw_rng:rate_period', 'int', {'min': 0}),
    ('hw_video:ram_max_mb', 'int', {'min': 0}),
    ('hide_hypervisor_id', 'bool', {}),
    ('group_policy', 'str', {'enum': ['isolate', 'none']}),
    ('os:secure_boot', 'str', {'enum': ['disabled', 'required']}),
    ('pci_passthrough:alias', 'str', {'pattern': '[^:]+:\\d+(?:\\s*,\\s*[^:]+:\\d+)*'}),
    ('quota:cpu_limit', 'int', {'min': 0}),
    ('quota:cpu_reservation', 'int', {}),
    ('quota:cpu_shares_level', 'str', {'enum': ['custom', 'high', 'normal', 'low']}),
    ('quota:cpu_shares_share', 'int', {'min': 0}),
    ('quota:memory_limit', 'int', {'min': 0}),
    ('quota:memory_reservation', 'int', {}),
    ('quota:memory_shares_level', 'str', {'enum': ['custom', 'high', 'normal', 'low']}),
    ('quota:memory_shares_share', 'int', {'min': 0}),
    ('quota:disk_io_limit', 'int', {'min': 0}),
    ('quota:disk_io_reservation', 'int', {}),
    ('quota:disk_io_shares_level', 'str', {'enum': ['custom', 'high', 'normal', 'low']}),
    ('quota:disk_io_shares_share', 'int', {'min': 0}),
    ('quota:vif_limit', 'int', {'min': 0}),
    ('quota:vif_reservation', 'int', {}),
    ('quota:vif_shares_level', 'str', {'enum': ['custom', 'high', 'normal', 'low']}),
    ('quota:vif_shares_share', 'int', {'min': 0}),
    ('quota:cpu_shares', 'int', {'min': 0}),
    ('quota:cpu_period', 'int', {'min': 0}),
    ('quota:cpu_quota', 'int', {}),
    ('quota:disk_read_bytes_sec', 'int', {'min': 0}),
    ('quota:disk_read_iops_sec', 'int', {'min': 0}),
    ('quota:disk_write_bytes_sec', 'int', {'min': 0}),
    ('quota:disk_write_iops_sec', 'int', {'min': 0}),
    ('quota:disk_total_bytes_sec', 'int', {'min': 0}),
    ('quota:disk_total_iops_sec', 'int', {'min': 0}),
    ('quota:vif_inbound_average', 'int', {'min': 0}),
    ('quota:vif_inbound_peak', 'int', {'min': 0}),
    ('quota:vif_inbound_burst', 'int', {'min': 0}),
    ('quota:vif_outbound_average', 'int', {'min': 0}),
    ('quota:vif_outbound_peak', 'int', {'min': 0}),
    ('quota:vif_outbound_burst', 'int', {'min': 0}),
    ('resources(?P<group>([a-zA-Z0-9_-]{1,64})?):CUSTOM_(?P<resource>[A-Z0-9_]+)', 'int', {}),
    ('trait(?P<group>([a-zA-Z0-9_-]{1,64})?):CUSTOM_(?P<trait>[A-Z0-9_]+)', 'str', {'enum': ['required', 'forbidden']}),
    ('vmware:hw_version', 'str', {}),
    ('vmware:storage_policy', 'str', {}),
    # standing for os-traits / os-resource-classes' standard names (see the docstring)
    ('trait(?P<group>([a-zA-Z0-9_-]{1,64})?):(?P<trait>[A-Z][A-Z0-9_]*)', 'str',
     {'enum': ['required', 'forbidden']}),
    ('resources(?P<group>([a-zA-Z0-9_-]{1,64})?):(?P<resource>[A-Z][A-Z0-9_]*)', 'int',
     {'min': 0}),
]
# fmt: on

_COMPILED = [(re.compile(rx), kind, spec) for rx, kind, spec in VALIDATORS]
_BY_NAME = {rx: (kind, spec) for rx, kind, spec in VALIDATORS if re.escape(rx) == rx}
_NAMESPACES = [re.compile(rx.split(":", 1)[0]) for rx, _, _ in VALIDATORS if ":" in rx]
_TRUE = {"1", "t", "true", "on", "y", "yes"}
_FALSE = {"0", "f", "false", "off", "n", "no"}


def _check_value(kind: str, spec: dict, value: str) -> None:
    if kind == "int":
        try:
            n = int(value)
        except ValueError:
            raise BadRequest(f"Validation failed; '{value}' is not a valid integer value.") \
                from None
        if "max" in spec and spec["max"] < n:
            raise BadRequest(f"Validation failed; '{value}' is greater than the max value "
                             f"of '{spec['max']}'.")
        if "min" in spec and spec["min"] > n:
            raise BadRequest(f"Validation failed; '{value}' is less than the min value of "
                             f"'{spec['min']}'.")
    elif kind == "bool":
        if value.strip().lower() not in _TRUE | _FALSE:
            raise BadRequest(f"Validation failed; '{value}' is not a valid boolean-like "
                             "value.")
    elif "pattern" in spec:
        if not re.fullmatch(spec["pattern"], value):
            raise BadRequest(f"Validation failed; '{value}' is not of the format "
                             f"'{spec['pattern']}'.")
    elif "enum" in spec and value not in spec["enum"]:
        raise BadRequest(f"Validation failed; '{value}' is not one of: "
                         f"{', '.join(str(x) for x in spec['enum'])}.")


def validate(name: str, value: str) -> None:
    """Raise BadRequest (400) as Nova's extra_specs validators do (2.86 and later)."""
    hit = _BY_NAME.get(name)
    if hit is not None:
        _check_value(hit[0], hit[1], value)
        return
    for rx, kind, spec in _COMPILED:
        if rx.fullmatch(name):
            _check_value(kind, spec, value)
            return
    if ":" not in name:
        return
    if any(ns.fullmatch(name.split(":", 1)[0]) for ns in _NAMESPACES):
        raise BadRequest(f"Validation failed; extra spec '{name}' does not appear to be a "
                         "valid extra spec.")
