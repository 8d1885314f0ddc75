"""Layer 2: one Linux bridge per network; VLAN and VXLAN segments; physnet trunks.

- flat: the network's bridge; if the config maps the physnet to a host interface, that
  interface is attached to the bridge (the only foreign interface we ever touch).
- vlan: a trunk bridge per physnet (``<p>x<hash>``, VLAN filtering on; a mapped host
  interface is attached to it, tagged). The network bridge connects to it through a veth
  pair ``<p>t<net>``/``<p>u<net>`` whose trunk end carries the VLAN id untagged (PVID) —
  802.1Q tagging done by the bridge, so no 8021q module is needed.
- vxlan: with ``[network] vxlan_local_ip`` set, a VXLAN device ``<p>t<net>`` (the VNI) on
  the bridge; on a single host (the default) the bridge alone is the segment.
- external networks not mapped to a host interface get the host's address on the bridge
  (the subnet gateway, DevStack's 172.24.4.1) so floating IPs are reachable from the host.
"""

from __future__ import annotations

import hashlib

from pocketstack.drivers.network.base import NetworkSpec
from pocketstack.drivers.network.linux.cmd import addresses, ip, ip_batch


def trunk_name(prefix: str, physnet: str) -> str:
    return f"{prefix}x{hashlib.sha1(physnet.encode()).hexdigest()[:6]}"


def ensure_network(prefix: str, spec: NetworkSpec, existing: dict[str, dict],
                   mappings: dict[str, str], vxlan_local_ip: str = "") -> str | None:
    """Create or repair the network's links; returns a degraded note, if any."""
    br = spec.bridge
    idx = br[len(prefix) + 1:]
    if br not in existing:
        ip_batch([f"link add name {br} type bridge stp_state 0 forward_delay 0",
                  f"link set {br} mtu {spec.mtu}", f"link set {br} up"])
    elif existing[br].get("operstate") == "DOWN" or "UP" not in existing[br].get("flags", []):
        ip("link", "set", br, "up")
    if spec.network_type == "flat" and spec.physical_network:
        iface = mappings.get(spec.physical_network)
        if iface and existing.get(iface, {}).get("master") != br:
            ip("link", "set", iface, "master", br)
            ip("link", "set", iface, "up")
    elif spec.network_type == "vlan" and spec.physical_network:
        trunk = trunk_name(prefix, spec.physical_network)
        if trunk not in existing:
            ip_batch([f"link add name {trunk} type bridge vlan_filtering 1 stp_state 0",
                      f"link set {trunk} up"])
            existing[trunk] = {"ifname": trunk}
        iface = mappings.get(spec.physical_network)
        if iface and existing.get(iface, {}).get("master") != trunk:
            ip("link", "set", iface, "master", trunk)
            ip("link", "set", iface, "up")
        if iface:
            from pocketstack.drivers.network.linux.cmd import run
            run(["bridge", "vlan", "add", "dev", iface, "vid", str(spec.segmentation_id)],
                check=False)
        a, b = f"{prefix}t{idx}", f"{prefix}u{idx}"
        if a not in existing:
            ip_batch([f"link add {a} mtu {spec.mtu} type veth peer name {b} mtu {spec.mtu}",
                      f"link set {a} master {br}", f"link set {b} master {trunk}",
                      f"link set {a} up", f"link set {b} up"])
            from pocketstack.drivers.network.linux.cmd import run
            run(["bridge", "vlan", "del", "dev", b, "vid", "1"], check=False)
            run(["bridge", "vlan", "add", "dev", b, "vid", str(spec.segmentation_id), "pvid",
                 "untagged"])
    elif spec.network_type == "vxlan" and spec.segmentation_id and vxlan_local_ip:
        vx = f"{prefix}t{idx}"
        if vx not in existing:
            ip_batch([f"link add {vx} type vxlan id {spec.segmentation_id} dstport 4789 "
                      f"local {vxlan_local_ip} nolearning", f"link set {vx} mtu {spec.mtu}",
                      f"link set {vx} master {br}", f"link set {vx} up"])
    if spec.host_address:
        have = addresses(br)
        if spec.host_address not in have:
            for stale in have:
                ip("addr", "del", stale, "dev", br, check=False)
            # Another cloud on this host (same default public CIDR) may already hold the
            # address: two bridges with one address and one subnet would split the routes.
            # Skip it; this cloud's floating IPs are then not reachable from the host.
            holder = held_by(spec.host_address.split("/")[0])
            if holder and holder != br:
                return (f"network: host address {spec.host_address} of external network "
                        f"{spec.id} not set on {br}: {holder} already holds it (set "
                        "[network] public_cidr to a free range)")
            ip("addr", "add", spec.host_address, "dev", br)
    return None


def held_by(address: str) -> str | None:
    """The host interface that has ``address``, if any."""
    import json

    out = ip("-j", "addr", "show", "to", address, check=False)
    try:
        data = json.loads(out or "[]")
    except ValueError:
        return None
    return data[0].get("ifname") if data else None


def delete_link(name: str) -> None:
    ip("link", "del", name, check=False)
