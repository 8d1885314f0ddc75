#!/usr/bin/env python3
"""scripts/tempest prepare hook for the network service: tempest's [network] and
[network-feature-enabled] options describing this cloud's Neutron.

The external network is the ``public`` network pocketstack creates at first start (found
through the API with the admin password). ``api_extensions`` is exactly what
``/v2.0/extensions`` lists, so tempest skips what is not implemented.
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
    base = args.url + "/network/v2.0"
    nets, _ = _call(base + "/networks?router:external=True&name=public", token)
    exts, _ = _call(base + "/extensions", token)
    conf: dict[str, dict[str, str]] = {
        "network": {"project_network_cidr": "10.100.0.0/16", "project_network_mask_bits": "28",
                    "project_network_v6_cidr": "2001:db8::/48",
                    "project_network_v6_mask_bits": "64",
                    "project_networks_reachable": "false", "shared_physical_network": "false",
                    "floating_network_name": "public"},
        "network-feature-enabled": {
            "ipv6": "true", "ipv6_subnet_attributes": "true", "port_security": "true",
            "port_admin_state_change": "true", "floating_ips": "true",
            "api_extensions": ",".join(e["alias"] for e in exts["extensions"])},
    }
    if nets.get("networks"):
        conf["network"]["public_network_id"] = nets["networks"][0]["id"]
    print(json.dumps(conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
