#!/usr/bin/env python3
"""scripts/tempest prepare hook for the compute service: tempest's [compute] and
[compute-feature-enabled] options describing this cloud's Nova.

image_ref / image_ref_alt: the seeded ``busybox`` image (a rootfs tarball that boots as a
container server, and is accepted by the fake driver); flavor_ref / flavor_ref_alt: DevStack's
m1.tiny and m1.small if they exist, else the two smallest flavors; on a cloud whose
hypervisors are all QEMU, ``busybox-vm`` (kernel + initramfs) and the VNC and SPICE
consoles on. The microversion range is read from the compute version document. Features the
compute service does not implement (migrations, change password, stable rescue) are off, so
tempest skips those tests instead of failing them.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path


def _call(url: str, token: str | None = None, body: dict | None = None) -> tuple[dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json",
                                          **({"X-Auth-Token": token} if token else {})})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}"), dict(resp.headers)


def _alt_image(url: str, token: str, base: dict) -> str:
    """A second bootable image (a copy of the base image, with its kernel and ramdisk if it
    has them), so the image filter tests have two."""
    name = f"{base['name']}-alt"
    found, _ = _call(url + f"/image/v2/images?name={name}", token)
    if found.get("images"):
        return found["images"][0]["id"]
    req = urllib.request.Request(f"{url}/image/v2/images/{base['id']}/file",
                                 headers={"X-Auth-Token": token})
    with urllib.request.urlopen(req, timeout=120) as resp:
        data = resp.read()
    img, _ = _call(url + "/image/v2/images", token, {
        "name": name, "disk_format": base["disk_format"],
        "container_format": base["container_format"], "visibility": "public",
        **{k: base[k] for k in ("kernel_id", "ramdisk_id") if base.get(k)}})
    put = urllib.request.Request(f"{url}/image/v2/images/{img['id']}/file", data=data,
                                 method="PUT", headers={"X-Auth-Token": token,
                                                        "Content-Type": "application/octet-stream"})
    with urllib.request.urlopen(put, timeout=120):
        pass
    return img["id"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--data-dir", required=True)
    args = parser.parse_args()
    password = json.loads((Path(args.data_dir) / "passwords.json").read_text())["admin"]
    _, headers = _call(args.url + "/identity/v3/auth/tokens", body={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}})
    token = headers.get("X-Subject-Token") or headers.get("x-subject-token")
    try:
        version, _ = _call(args.url + "/compute/v2.1/", token)
    except OSError:
        return 0  # no compute service in this cloud
    images, _ = _call(args.url + "/image/v2/images?name=busybox", token)
    flavors, _ = _call(args.url + "/compute/v2.1/flavors/detail?is_public=None", token)
    by_name = {f["name"]: f for f in flavors["flavors"]}
    small = sorted(flavors["flavors"], key=lambda f: (f["ram"], f["vcpus"], f["disk"]))
    flavor = by_name.get("m1.tiny") or small[0]
    alt = by_name.get("m1.small") or (small[1] if len(small) > 1 else small[0])
    conf: dict[str, dict[str, str]] = {
        "compute": {"flavor_ref": flavor["id"], "flavor_ref_alt": alt["id"],
                    "min_microversion": version["version"]["min_version"],
                    "max_microversion": version["version"]["version"],
                    "build_timeout": "120", "fixed_network_name": "private"},
        "compute-feature-enabled": {
            "resize": "true", "pause": "true", "suspend": "true", "console_output": "true",
            "snapshot": "true", "metadata_service": "false", "config_drive": "true",
            "change_password": "false", "rescue": "true", "shelve": "true",
            "shelve_migrate": "false", "live_migration": "false", "cold_migration": "false",
            "vnc_console": "false", "spice_console": "false", "serial_console": "false",
            "interface_attach": "true", "personality": "false", "block_migration_for_live_migration": "false",
            "attach_encrypted_volume": "false", "scheduler_enabled_filters": (
                "RetryFilter,AvailabilityZoneFilter,RamFilter,DiskFilter,ComputeFilter,"
                "ComputeCapabilitiesFilter,ImagePropertiesFilter,ServerGroupAntiAffinityFilter,"
                "ServerGroupAffinityFilter,SameHostFilter,DifferentHostFilter,PciPassthroughFilter"),
            "hostname_fqdn_sanitization": "false", "stable_rescue": "false",
            "swap_volume": "false", "volume_multiattach": "false",
        },
    }
    hypervisors, _ = _call(args.url + "/compute/v2.1/os-hypervisors/detail", token)
    kinds = {h.get("hypervisor_type") for h in hypervisors.get("hypervisors", [])}
    if kinds == {"QEMU"}:
        # VMs: the remote consoles are there (noVNC and SPICE through the API port's
        # proxy), and the bootable image is the kernel + initramfs one.
        conf["compute-feature-enabled"].update(vnc_console="true", spice_console="true")
        images, _ = _call(args.url + "/image/v2/images?name=busybox-vm", token)
    if images.get("images"):
        base = images["images"][0]
        conf["compute"]["image_ref"] = base["id"]
        conf["compute"]["image_ref_alt"] = _alt_image(args.url, token, base)
    print(json.dumps(conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
