"""Rendering: Nova's response bodies, switched by microversion through ``ver.has``."""

from __future__ import annotations

import hashlib
from typing import Any

from pocketstack.context import RequestContext
from pocketstack.db.base import isotime
from pocketstack.services.compute.microversions import APIVersion

# (vm_state, task_state) -> status, nova/api/openstack/common.py _STATE_MAP
_STATUS = {
    "active": {None: "ACTIVE", "rebooting": "REBOOT", "reboot_pending": "REBOOT",
               "reboot_started": "REBOOT", "rebooting_hard": "HARD_REBOOT",
               "reboot_pending_hard": "HARD_REBOOT", "reboot_started_hard": "HARD_REBOOT",
               "rebuilding": "REBUILD", "rebuild_spawning": "REBUILD",
               "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
               "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
               "resize_reverting": "REVERT_RESIZE"},
    "building": {None: "BUILD"},
    "stopped": {None: "SHUTOFF", "resize_prep": "RESIZE", "resize_migrating": "RESIZE",
                "resize_migrated": "RESIZE", "resize_finish": "RESIZE",
                "rebuilding": "REBUILD"},
    "resized": {None: "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "paused": {None: "PAUSED"},
    "suspended": {None: "SUSPENDED"},
    "rescued": {None: "RESCUE"},
    "error": {None: "ERROR", "rebuilding": "REBUILD"},
    "deleted": {None: "DELETED"},
    "soft-delete": {None: "SOFT_DELETED"},
    "shelved": {None: "SHELVED"},
    "shelved_offloaded": {None: "SHELVED_OFFLOADED"},
}
STATUS_TO_STATES: dict[str, list[tuple[str, str | None]]] = {}
for _vm, _tasks in _STATUS.items():
    for _task, _st in _tasks.items():
        STATUS_TO_STATES.setdefault(_st, []).append((_vm, _task))


def status(vm_state: str, task_state: str | None) -> str:
    states = _STATUS.get(vm_state, {})
    return states.get(task_state) or states.get(None) or "UNKNOWN"


def link(base: str, kind: str, ident: str) -> list[dict[str, str]]:
    return [{"rel": "self", "href": f"{base}/v2.1/{kind}/{ident}"},
            {"rel": "bookmark", "href": f"{base}/{kind}/{ident}"}]


def flavor(base: str, f: Any, ver: APIVersion, detail: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f.id, "name": f.name, "links": link(base, "flavors", f.id)}
    if ver.has("flavor_description"):
        body["description"] = f.description
    if not detail:
        return body
    body.update({
        "ram": f.memory_mb, "disk": f.root_gb, "vcpus": f.vcpus,
        "swap": f.swap if (f.swap or ver.has("rebuild_returns_full")) else "",
        "OS-FLV-EXT-DATA:ephemeral": f.ephemeral_gb, "OS-FLV-DISABLED:disabled": f.disabled,
        "os-flavor-access:is_public": f.is_public, "rxtx_factor": f.rxtx_factor,
    })
    if ver.has("flavor_extra_specs"):
        body["extra_specs"] = dict(f.extra_specs or {})
    return body


def keypair(k: Any, ver: APIVersion, *, detail: bool = False,
            private_key: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": k.name, "public_key": k.public_key,
                            "fingerprint": k.fingerprint}
    if ver.has("keypair_type"):
        body["type"] = k.type
    if detail or private_key is not None:
        body["user_id"] = k.user_id
    if private_key is not None:
        body["private_key"] = private_key
    if detail:
        body.update({"created_at": isotime(k.created_at, micro=True, z=False),
                     "deleted": False, "deleted_at": None, "updated_at": None, "id": k.id})
    return body


def host_id(project_id: str, host: str | None) -> str:
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode()).hexdigest()


def server_brief(base: str, srv: Any) -> dict[str, Any]:
    return {"id": srv.id, "name": srv.name, "links": link(base, "servers", srv.id)}


def server(base: str, srv: Any, ver: APIVersion, ctx: RequestContext, *,
           addresses: dict[str, Any] | None = None, host_states: dict[str, str] | None = None,
           groups: list[str] | None = None, show: bool = False,
           minimal: bool = False) -> dict[str, Any]:
    """The server body. ``minimal`` is the update/rebuild response before 2.75: the core
    attributes only, without the extension attributes (OS-EXT-*, OS-SRV-USG, ...)."""
    st = status(srv.vm_state, srv.task_state)
    fl = srv.flavor or {}
    if ver.has("flavor_embedded"):
        flavor_body: dict[str, Any] = {
            "vcpus": fl.get("vcpus"), "ram": fl.get("ram"), "disk": fl.get("disk"),
            "ephemeral": fl.get("ephemeral", 0), "swap": fl.get("swap", 0),
            "original_name": fl.get("name")}
        flavor_body["extra_specs"] = dict(fl.get("extra_specs") or {})
    else:
        flavor_body = {"id": srv.flavor_id, "links": [
            {"rel": "bookmark", "href": f"{base}/flavors/{srv.flavor_id}"}]}
    image_body: Any = ""
    if srv.image_id and not (srv.image or {}).get("volume_backed"):
        image_body = {"id": srv.image_id, "links": [
            {"rel": "bookmark", "href": f"{base}/images/{srv.image_id}"}]}
        if ver.has("image_properties"):
            # Nova shows the standard image properties it kept at boot, as strings
            props = (srv.image or {}).get("properties") or {}
            image_body["properties"] = {k: str(v) for k, v in props.items()
                                        if k in IMAGE_META_PROPS and v is not None}
    body: dict[str, Any] = {
        "id": srv.id, "name": srv.name, "status": st, "tenant_id": srv.project_id,
        "user_id": srv.user_id, "metadata": dict(srv.metadata_ or {}),
        "hostId": host_id(srv.project_id, srv.host), "image": image_body, "flavor": flavor_body,
        "created": isotime(srv.created_at), "updated": isotime(srv.updated_at),
        "addresses": addresses or {}, "accessIPv4": srv.access_ipv4 or "",
        "accessIPv6": srv.access_ipv6 or "", "links": link(base, "servers", srv.id),
        "OS-DCF:diskConfig": srv.disk_config or "MANUAL",
        "OS-EXT-AZ:availability_zone": srv.availability_zone or "",
        "config_drive": srv.config_drive or "", "key_name": srv.key_name,
        "OS-SRV-USG:launched_at": isotime(srv.launched_at, micro=True, z=False),
        "OS-SRV-USG:terminated_at": isotime(srv.terminated_at, micro=True, z=False),
        "OS-EXT-STS:task_state": srv.task_state, "OS-EXT-STS:vm_state": srv.vm_state,
        "OS-EXT-STS:power_state": srv.power_state,
        "os-extended-volumes:volumes_attached": [],
    }
    if st in ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING"):
        body["progress"] = 100 if st == "ACTIVE" else (srv.progress or 0)
    if minimal:
        body["addresses"] = {net: [{"version": a.get("version"), "addr": a.get("addr")}
                                   for a in items] for net, items in (addresses or {}).items()}
        for key in ("OS-EXT-AZ:availability_zone", "config_drive", "key_name",
                    "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at",
                    "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state", "OS-EXT-STS:power_state",
                    "os-extended-volumes:volumes_attached"):
            body.pop(key, None)
    if srv.security_groups and not srv.deleted and not minimal:
        body["security_groups"] = [{"name": n} for n in srv.security_groups]
    if srv.fault and st in ("ERROR", "DELETED"):
        fault = dict(srv.fault)
        if not ctx.is_admin and fault.get("code") == 500:
            fault.pop("details", None)
        body["fault"] = fault
    if ctx.is_admin and not minimal:
        body["OS-EXT-SRV-ATTR:host"] = srv.host
        body["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{srv.seq:08x}"
        body["OS-EXT-SRV-ATTR:hypervisor_hostname"] = srv.node
        if ver.has("extended_attributes"):
            body.update({
                "OS-EXT-SRV-ATTR:reservation_id": srv.reservation_id,
                "OS-EXT-SRV-ATTR:launch_index": srv.launch_index,
                "OS-EXT-SRV-ATTR:hostname": srv.hostname,
                "OS-EXT-SRV-ATTR:kernel_id": "", "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                "OS-EXT-SRV-ATTR:user_data": srv.user_data,
            })
    if ver.has("server_locked"):
        body["locked"] = bool(srv.locked)
    if ver.has("host_status") and ctx.is_admin and not minimal:
        body["host_status"] = (host_states or {}).get(srv.host or "", "") if srv.host else ""
    if ver.has("server_description"):
        body["description"] = srv.description
    if ver.has("server_tags"):
        body["tags"] = list(srv.tags or [])
    if ver.has("server_groups_in_show") and show:
        body["server_groups"] = groups or []
    if ver.at_least(2, 63) and not minimal:
        # Image signature certificates are not verified by this cloud's drivers, so no
        # server has trusted certificates.
        body["trusted_image_certificates"] = None
    if ver.has("locked_reason"):
        body["locked_reason"] = srv.locked_reason
    if ver.has("server_hostname") and not minimal:  # 2.90: shown to everyone
        body["OS-EXT-SRV-ATTR:hostname"] = srv.hostname
    if ver.has("scheduler_hints_shown") and not minimal:
        body["scheduler_hints"] = scheduler_hints(srv.scheduler_hints)
    if ver.has("pinned_az") and not minimal:
        # the zone the server is held to: the one asked for at create (or at unshelve)
        body["pinned_availability_zone"] = srv.requested_az
    return body


def scheduler_hints(hints: dict[str, Any] | None) -> dict[str, list[str]]:
    """The hints given at create as Nova's request spec keeps them (each a list of
    strings), without what this cloud keeps there for itself."""
    out: dict[str, list[str]] = {}
    for key, value in (hints or {}).items():
        if key.startswith("pocketstack:") or key == "force_host":
            continue
        out[key] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return out


# ImageMetaProps' fields and legacy names (nova/objects/image_meta.py): what 2.98 shows
IMAGE_META_PROPS = frozenset((
    'architecture', 'auto_disk_config', 'bdm_v2', 'bittorrent', 'block_device_mapping',
    'cache_in_nova', 'hw_architecture', 'hw_auto_disk_config', 'hw_boot_menu',
    'hw_cdrom_bus', 'hw_cpu_cores', 'hw_cpu_max_cores', 'hw_cpu_max_sockets',
    'hw_cpu_max_threads', 'hw_cpu_policy', 'hw_cpu_realtime_mask', 'hw_cpu_sockets',
    'hw_cpu_thread_policy', 'hw_cpu_threads', 'hw_device_id', 'hw_disk_bus',
    'hw_disk_type', 'hw_emulation_architecture', 'hw_ephemeral_encryption',
    'hw_ephemeral_encryption_format', 'hw_ephemeral_encryption_secret_uuid',
    'hw_firmware_stateless', 'hw_firmware_type', 'hw_floppy_bus', 'hw_input_bus',
    'hw_ipxe_boot', 'hw_locked_memory', 'hw_machine_type', 'hw_maxphysaddr_bits',
    'hw_maxphysaddr_mode', 'hw_mem_encryption', 'hw_mem_encryption_model',
    'hw_mem_page_size', 'hw_numa_cpus', 'hw_numa_mem', 'hw_numa_nodes',
    'hw_pci_numa_affinity_policy', 'hw_pmu', 'hw_pointer_model', 'hw_qemu_guest_agent',
    'hw_redirected_usb_ports', 'hw_rescue_bus', 'hw_rescue_device', 'hw_rng_model',
    'hw_scsi_model', 'hw_serial_port_count', 'hw_sound_model', 'hw_time_hpet',
    'hw_tpm_model', 'hw_tpm_version', 'hw_usb_model', 'hw_video_model', 'hw_video_ram',
    'hw_vif_model', 'hw_vif_multiqueue_enabled', 'hw_viommu_model',
    'hw_virtio_packed_ring', 'hw_vm_mode', 'hw_watchdog_action', 'hypervisor_type',
    'hypervisor_version_requires', 'img_bdm_v2', 'img_bittorrent',
    'img_block_device_mapping', 'img_cache_in_nova', 'img_compression_level',
    'img_config_drive', 'img_hide_hypervisor_id', 'img_hv_requested_version',
    'img_hv_type', 'img_linked_clone', 'img_mappings', 'img_owner_id',
    'img_root_device_name', 'img_signature', 'img_signature_certificate_uuid',
    'img_signature_hash_method', 'img_signature_key_type', 'img_use_agent',
    'img_version', 'ipxe_boot', 'mappings', 'os_admin_user', 'os_command_line',
    'os_distro', 'os_require_quiesce', 'os_secure_boot',
    'os_skip_agent_inject_files_at_boot', 'os_skip_agent_inject_ssh', 'os_type',
    'owner_id', 'root_device_name', 'traits_required', 'vm_mode', 'vmware_disktype',
    'vmware_image_version', 'vmware_linked_clone', 'vmware_ostype', 'xenapi_device_id',
    'xenapi_image_compression_level', 'xenapi_skip_agent_inject_files_at_boot',
    'xenapi_skip_agent_inject_ssh', 'xenapi_use_agent'
))


def action(a: Any, ver: APIVersion) -> dict[str, Any]:
    body = {"action": a.action, "instance_uuid": a.server_id, "message": a.message,
            "project_id": a.project_id, "request_id": a.request_id,
            "start_time": isotime(a.start_time, micro=True, z=False), "user_id": a.user_id}
    if ver.has("actions_paging"):
        body["updated_at"] = isotime(a.updated_at or a.start_time, micro=True, z=False)
    return body


def event(e: Any, ver: APIVersion, ctx: RequestContext, project_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {"event": e.event, "start_time": isotime(e.start_time, micro=True, z=False),
                            "finish_time": isotime(e.finish_time, micro=True, z=False),
                            "result": e.result}
    if ctx.is_admin:
        body["traceback"] = e.traceback
    if ver.has("events_host"):
        if ctx.is_admin:
            body["host"] = e.host
        body["hostId"] = host_id(project_id, e.host)
    if ver.has("events_details"):
        body["details"] = e.details
    return body
