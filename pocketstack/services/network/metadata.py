"""The metadata service (169.254.169.254): OpenStack and EC2 formats.

The driver carries requests here from each DHCP namespace with the caller's address and
network; we find the port with that fixed IP, its server (``device_id``), and ask compute
(``cloud.services["compute"].metadata_for_server``) what the server is. Only the server
that owns the address gets its data: the address is anti-spoofed on the host.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

from sqlalchemy import select

from pocketstack.services.network import models as m

OPENSTACK_VERSIONS = ["2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
                      "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest"]
EC2_VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15",
                "2008-02-01", "2008-09-01", "2009-04-04", "latest"]


def _text(body: str, status: int = 200) -> tuple[int, str, bytes]:
    return status, "text/plain; charset=UTF-8", body.encode()


def _json(body: Any) -> tuple[int, str, bytes]:
    return 200, "application/json", json.dumps(body).encode()


NOT_FOUND = (404, "text/plain; charset=UTF-8", b"404 Not Found\n")


def user_data_bytes(value: Any) -> bytes | None:
    if value in (None, ""):
        return None
    if isinstance(value, bytes):
        return value
    try:  # nova keeps user_data base64-encoded, as the API received it
        return base64.b64decode(value, validate=True)
    except (ValueError, TypeError):
        return str(value).encode()


class Metadata:
    def __init__(self, svc: Any) -> None:
        self.svc = svc

    def _lookup(self, network_id: str, ip: str
                ) -> tuple[dict, list[dict], list[tuple[m.Port, list[dict]]]] | None:
        """(server, the calling port's addresses, every port of the server with its
        addresses in attach order) for the caller at ``ip`` on ``network_id``."""
        with self.svc.db.read() as s:
            port = s.scalars(select(m.Port).join(
                m.IPAllocation, m.IPAllocation.port_id == m.Port.id).where(
                m.IPAllocation.network_id == network_id,
                m.IPAllocation.ip_address == ip)).first()
            if port is None or not port.device_owner.startswith("compute:"):
                return None
            all_ports = self._server_ports(s, port.device_id)
        nets = next((n for p, n in all_ports if p.id == port.id), [])
        server = self._server(port.device_id)
        if server is None:
            return None
        return server, nets, all_ports

    def _server_ports(self, s: Any, server_id: str) -> list[tuple[m.Port, list[dict]]]:
        siblings = s.scalars(select(m.Port).where(
            m.Port.device_id == server_id, m.Port.device_owner.like("compute:%"))
            .order_by(m.Port.created_at, m.Port.id)).all()
        return [(p, self._addresses(s, p)) for p in siblings]

    def _server(self, server_id: str) -> dict | None:
        if "compute" not in self.svc.cloud.services:
            return None
        from pocketstack.errors import NotFound

        try:
            server = self.svc.cloud.services["compute"].metadata_for_server(server_id)
        except NotFound:
            return None
        if not server:
            return None
        server = dict(server)
        # compute gives {key_name: public key} as public_keys (or key_data / public_key)
        if server.get("key_name") and not server.get("public_key"):
            keys = server.get("public_keys") or {}
            server["public_key"] = keys.get(server["key_name"]) or server.get("key_data") or ""
        return server

    def _addresses(self, s: Any, port: m.Port) -> list[dict]:
        ips = self.svc.ports.fixed_ips(s, [port.id])[port.id]
        subnets = {x.id: x for x in s.scalars(select(m.Subnet).where(
            m.Subnet.network_id == port.network_id))}
        net = s.get(m.Network, port.network_id)
        fip = s.scalar(select(m.FloatingIP.floating_ip_address).where(
            m.FloatingIP.port_id == port.id))
        return [{"ip": x["ip_address"], "subnet": subnets.get(x["subnet_id"]),
                 "mtu": net.mtu, "network_id": net.id, "floating_ip": fip} for x in ips]

    def handle(self, network_id: str, client_ip: str, path: str,
               data: bytes | None = None) -> tuple[int, str, bytes]:
        found = self._lookup(network_id, client_ip)
        if found is None:
            return 404, "text/plain; charset=UTF-8", b"No server for this address.\n"
        server, nets, all_ports = found
        path = path.split("?", 1)[0]
        parts = [x for x in path.split("/") if x]
        if len(parts) == 3 and parts[0] == "openstack" and parts[2] == "password" \
                and parts[1] in OPENSTACK_VERSIONS:
            return self._password(server["uuid"], data)
        if data is not None:  # nothing else takes a POST
            return 405, "text/plain; charset=UTF-8", b"Method not allowed.\n"
        if not parts:
            return _text("\n".join(EC2_VERSIONS + ["openstack"]))
        if parts[0] == "openstack":
            return self._openstack(parts[1:], server, all_ports)
        if parts[0] in EC2_VERSIONS:
            return self._ec2(parts[1:], server, nets, path.endswith("/"))
        return NOT_FOUND

    def _password(self, server_id: str, data: bytes | None) -> tuple[int, str, bytes]:
        """Nova's metadata password: the guest posts its (encrypted) password once, at most
        256 bytes; a GET reads it back. ``openstack server password show`` returns it."""
        compute = self.svc.cloud.services.get("compute")
        if compute is None:
            return NOT_FOUND
        if data is None:
            return _text(compute.server_password(server_id))
        if len(data) > 256:
            return 400, "text/plain; charset=UTF-8", b"Request is too large.\n"
        try:
            value = data.decode()
        except UnicodeDecodeError:
            return 400, "text/plain; charset=UTF-8", b"The password must be text.\n"
        if not compute.set_server_password(server_id, value):
            return 409, "text/plain; charset=UTF-8", b"Password already set.\n"
        return _text("")

    # -- OpenStack format -----------------------------------------------------------------
    def _openstack(self, parts: list[str], server: dict,
                   all_ports: list[tuple[m.Port, list[dict]]]) -> tuple[int, str, bytes]:
        if not parts:
            return _text("\n".join(OPENSTACK_VERSIONS))
        if parts[0] == "content" and len(parts) == 2:  # injected files (personality)
            body = self.contents(server).get(parts[1])
            return NOT_FOUND if body is None else (200, "application/octet-stream", body)
        if parts[0] not in OPENSTACK_VERSIONS:
            return NOT_FOUND
        docs = self.openstack_documents(server, all_ports)
        if len(parts) == 1:
            return _text("\n".join(docs))
        doc = docs.get(parts[1])
        if doc is None:
            return NOT_FOUND
        return 200, doc[0], doc[1]

    def openstack_documents(self, server: dict, all_ports: list[tuple[m.Port, list[dict]]]
                            ) -> dict[str, tuple[str, bytes]]:
        """name -> (content type, body) of openstack/<version>/: what the metadata service
        serves and what the config drive holds (the same documents, as in Nova)."""
        keys = []
        if server.get("key_name"):
            keys = [{"name": server["key_name"], "type": server.get("key_type") or "ssh",
                     "data": server.get("public_key") or ""}]
        meta = {
            "uuid": server.get("uuid"), "name": server.get("name"),
            "hostname": server.get("hostname") or server.get("name"),
            "launch_index": 0, "availability_zone": server.get("availability_zone"),
            "project_id": server.get("project_id"),
            "public_keys": {k["name"]: k["data"] for k in keys}, "keys": keys,
            "meta": server.get("metadata") or {}, "devices": server.get("devices") or [],
            "random_seed": base64.b64encode(b"\0" * 16).decode()}
        files = server.get("files") or []  # personality: openstack/content/NNNN
        if files:
            meta["files"] = [{"path": f["path"], "content_path": f"/content/{i:04d}"}
                             for i, f in enumerate(files)]
        docs = {"meta_data.json": ("application/json", json.dumps(meta).encode()),
                "network_data.json": ("application/json",
                                      json.dumps(self.network_data(all_ports)).encode()),
                "vendor_data.json": ("application/json", b"{}"),
                "vendor_data2.json": ("application/json", b"{}")}
        user_data = user_data_bytes(server.get("user_data"))
        if user_data is not None:
            docs["user_data"] = ("application/octet-stream", user_data)
        return docs

    @staticmethod
    def contents(server: dict) -> dict[str, bytes]:
        """The injected files' bodies by content name ("0000", "0001", ...)."""
        out = {}
        for i, f in enumerate(server.get("files") or []):
            try:
                out[f"{i:04d}"] = base64.b64decode(f.get("contents") or "")
            except ValueError:
                continue
        return out

    def server_tree(self, server_id: str) -> dict[str, bytes] | None:
        """Every file of the server's config drive, by path (Nova's ConfigDriveBuilder
        layout): openstack/<version>/{meta_data.json, network_data.json, vendor_data.json,
        vendor_data2.json, user_data}, ec2/<version>/{meta-data.json, user-data}.
        None if the server is unknown. Built from the same documents the metadata service
        serves, for the ports the server has now."""
        server = self._server(server_id)
        if server is None:
            return None
        with self.svc.db.read() as s:
            all_ports = self._server_ports(s, server_id)
        tree: dict[str, bytes] = {}
        for version in OPENSTACK_VERSIONS:
            for name, (_ctype, body) in self.openstack_documents(server, all_ports).items():
                tree[f"openstack/{version}/{name}"] = body
        for name, body in self.contents(server).items():
            tree[f"openstack/content/{name}"] = body
        nets = [n for _p, ns in all_ports for n in ns]
        meta = json.dumps(self.ec2_tree(server, nets)).encode()
        user_data = user_data_bytes(server.get("user_data"))
        for version in EC2_VERSIONS:
            tree[f"ec2/{version}/meta-data.json"] = meta
            if user_data is not None:
                tree[f"ec2/{version}/user-data"] = user_data
        return tree

    @staticmethod
    def network_data(ports: list[tuple[m.Port, list[dict]]]) -> dict:
        """Every NIC of the server (links, in attach order, so cloud-init configures a
        second port too) and every address on them (networks)."""
        links, networks, dns = [], [], []
        for port, nets in ports:
            link = f"tap{port.id[:11]}"
            links.append({"id": link, "vif_id": port.id, "type": "bridge",
                          "ethernet_mac_address": port.mac_address,
                          "mtu": nets[0]["mtu"] if nets else 1500})
            for n in nets:
                sub = n["subnet"]
                if sub is None:
                    continue
                cidr = ipaddress.ip_network(sub.cidr)
                entry: dict[str, Any] = {
                    "id": f"network{len(networks)}", "link": link,
                    "network_id": n["network_id"],
                    "type": "ipv4_dhcp" if cidr.version == 4 and sub.enable_dhcp else
                    f"ipv{cidr.version}", "ip_address": n["ip"],
                    "netmask": str(cidr.netmask), "routes": []}
                if sub.gateway_ip:
                    entry["routes"].append({
                        "network": "0.0.0.0" if cidr.version == 4 else "::",
                        "netmask": "0.0.0.0" if cidr.version == 4 else "::",
                        "gateway": sub.gateway_ip})
                for hr in sub.host_routes:
                    hnet = ipaddress.ip_network(hr["destination"])
                    entry["routes"].append({"network": str(hnet.network_address),
                                            "netmask": str(hnet.netmask),
                                            "gateway": hr["nexthop"]})
                entry["services"] = [{"type": "dns", "address": d} for d in sub.dns_nameservers]
                dns += sub.dns_nameservers
                networks.append(entry)
        return {"links": links, "networks": networks,
                "services": [{"type": "dns", "address": d} for d in dict.fromkeys(dns)]}

    # -- EC2 format -----------------------------------------------------------------------
    @staticmethod
    def ec2_tree(server: dict, nets: list[dict]) -> dict[str, Any]:
        """The EC2 meta-data tree (the metadata service's meta-data/ and the config
        drive's ec2/<version>/meta-data.json)."""
        v4 = next((n for n in nets if ipaddress.ip_address(n["ip"]).version == 4), None)
        hostname = server.get("hostname") or server.get("name") or ""
        uuid = server.get("uuid") or ""
        tree: dict[str, Any] = {
            "ami-id": "ami-00000001", "ami-launch-index": "0", "ami-manifest-path": "FIXME",
            "hostname": hostname, "instance-action": "none",
            "instance-id": f"i-{uuid.replace('-', '')[:8]}", "instance-type": "",
            "local-hostname": hostname, "local-ipv4": v4["ip"] if v4 else "",
            "public-hostname": hostname,
            "public-ipv4": (v4 or {}).get("floating_ip") or "",
            "placement": {"availability-zone": server.get("availability_zone") or ""},
            "reservation-id": "r-00000000", "security-groups": "default",
        }
        if server.get("key_name"):
            tree["public-keys"] = {f"0={server['key_name']}": {
                "openssh-key": server.get("public_key") or ""}}
        return tree

    def _ec2(self, parts: list[str], server: dict, nets: list[dict], slash: bool
             ) -> tuple[int, str, bytes]:
        if not parts:
            return _text("meta-data/\nuser-data" if server.get("user_data") else "meta-data/")
        if parts[0] == "user-data":
            data = user_data_bytes(server.get("user_data"))
            return NOT_FOUND if data is None else (200, "application/octet-stream", data)
        if parts[0] != "meta-data":
            return NOT_FOUND
        tree = self.ec2_tree(server, nets)
        node: Any = tree
        for part in parts[1:]:
            if not isinstance(node, dict):
                return NOT_FOUND
            if part in node:
                node = node[part]
            elif node is tree.get("public-keys") and part.isdigit():
                match = [v for k, v in node.items() if k.split("=")[0] == part]
                if not match:
                    return NOT_FOUND
                node = match[0]
            else:
                return NOT_FOUND
        if isinstance(node, dict):
            if node is tree.get("public-keys"):
                return _text("\n".join(node))
            return _text("\n".join(k + ("/" if isinstance(v, dict) else "")
                                   for k, v in node.items()))
        return _text(str(node))
