"""meta_data.json's ``devices`` (Nova's device role tagging, 2.32 NICs / 2.42 block devices):
every tagged NIC and volume of the server, as the metadata service and the config drive show
them. Untagged devices are left out, as in Nova."""

from __future__ import annotations

from typing import Any

from pocketstack.context import RequestContext


def devices(svc: Any, srv: Any) -> list[dict[str, Any]]:
    from pocketstack.services.compute.interfaces import _tags

    out: list[dict[str, Any]] = []
    tags = _tags(srv)
    net = svc.cloud.services.get("network")
    if tags and net is not None:
        # NICs are PCI devices in attach order (the guest's eth0, eth1, ...)
        for i, port in enumerate(net.server_ports(srv.id)):
            tag = tags.get(port["id"])
            if tag:
                out.append({"type": "nic", "bus": "pci", "address": f"0000:00:{3 + i:02x}.0",
                            "mac": port["mac_address"], "tags": [tag]})
    vol = svc.cloud.services.get("volume")
    if vol is not None:
        for att in vol.server_attachments(RequestContext.internal(), srv.id):
            nova = (att.get("connector") or {}).get("nova") or {}
            if nova.get("tag") and att.get("status") in ("attached", "reserved", "attaching"):
                disk = {"type": "disk", "bus": "virtio", "serial": att["volume_id"],
                        "tags": [nova["tag"]]}
                # the guest device once attached (a boot's volumes are attached after the
                # config drive is written: then the requested name, if any)
                path = att.get("device") or nova.get("device_name")
                if path:
                    disk["path"] = path
                out.append(disk)
    return out
