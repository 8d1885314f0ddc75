"""The Neutron service object: resource managers, the reconciler, and the in-process
interface other slices (compute, metadata) use.

Every API change records desired state in the database and calls ``changed()``; a single
reconciler thread then rebuilds the host topology from the database and hands it to the
driver (coalescing bursts of changes into one sync). At start the same sync rebuilds what
is missing and removes what the database no longer wants.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import threading
import time
from typing import Any

from sqlalchemy import select

from pocketstack.context import RequestContext
from pocketstack.drivers.network.base import NetworkDriver
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.network import models as m
from pocketstack.services.network.address_scopes import AddressScopes
from pocketstack.services.network.flavors import Flavors, ServiceProfiles
from pocketstack.services.network.ip_availability import IPAvailabilities
from pocketstack.services.network.extras import (
    MeteringLabelRules, MeteringLabels, Quotas, RBACPolicies, SubnetPools)
from pocketstack.services.network.networks import Networks, Subnets
from pocketstack.services.network.ports import Ports
from pocketstack.services.network.qos import RULE_COLLECTIONS, QosPolicies, QosRules, RuleTypes
from pocketstack.services.network.routers import FloatingIPs, Routers
from pocketstack.services.network.secgroups import SecurityGroupRules, SecurityGroups
from pocketstack.services.network.topology import TopologyBuilder
from pocketstack.services.network.trunks import Trunks

log = logging.getLogger("pocketstack.network")


def linux_available() -> str | None:
    """None when the linux driver can run here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("ip", "nft", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def cloud_prefix(data_dir: Any) -> str:
    """'ps' + 4 hex of the data dir: unique per cloud, short enough for IFNAMSIZ names."""
    return "ps" + hashlib.sha1(str(data_dir).encode()).hexdigest()[:4]


def make_driver(settings: Any, degraded: list[str]) -> NetworkDriver:
    from pocketstack.drivers.network import DRIVERS

    name = settings.network.driver
    if not name:
        reason = linux_available()
        name = "linux" if reason is None else "fake"
        if reason:
            degraded.append(f"network: fake data plane ({reason})")
    elif name == "linux" and (reason := linux_available()):
        degraded.append(f"network: fake data plane (linux driver asked for, but {reason})")
        name = "fake"
    if name not in DRIVERS:
        raise ValueError(f"unknown network driver {name!r}; choose from {sorted(DRIVERS)}")
    driver = DRIVERS[name](prefix=cloud_prefix(settings.data_dir), settings=settings)
    if hasattr(driver, "degraded"):  # notes the data plane finds later (e.g. address taken)
        driver.degraded = degraded
    return driver


class NetworkService:
    def __init__(self, cloud: Any) -> None:
        self.cloud = cloud
        self.settings = cloud.settings
        self.settings_net = cloud.settings.network
        self.db = cloud.db
        self.host = self.settings_net.host or socket.gethostname()
        self.prefix = cloud_prefix(self.settings.data_dir)
        self._driver: NetworkDriver | None = None
        self.quotas = Quotas(self)
        self.networks = Networks(self)
        self.subnets = Subnets(self)
        self.ports = Ports(self)
        self.routers = Routers(self)
        self.floatingips = FloatingIPs(self)
        self.security_groups = SecurityGroups(self)
        self.security_group_rules = SecurityGroupRules(self)
        self.rbac_policies = RBACPolicies(self)
        self.metering_labels = MeteringLabels(self)
        self.metering_label_rules = MeteringLabelRules(self)
        self.subnetpools = SubnetPools(self)
        self.address_scopes = AddressScopes(self)
        self.trunks = Trunks(self)
        self.qos_policies = QosPolicies(self)
        self.qos_rules = {seg: QosRules(self.qos_policies, t)
                          for seg, t in RULE_COLLECTIONS.items()}
        self.qos_rule_types = RuleTypes()
        self.flavors = Flavors(self)
        self.service_profiles = ServiceProfiles(self)
        self.ip_availabilities = IPAvailabilities(self)
        self.resources = {r.plural: r for r in (
            self.networks, self.subnets, self.ports, self.routers, self.floatingips,
            self.security_groups, self.security_group_rules, self.rbac_policies,
            self.metering_labels, self.metering_label_rules, self.subnetpools,
            self.address_scopes, self.trunks, self.qos_policies, self.flavors,
            self.service_profiles)}
        self.topology = TopologyBuilder(self)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sync_lock = threading.Lock()
        self.sync_errors: list[str] = []
        self._last_sync_s = 0.0
        self._driver = make_driver(self.settings, cloud.degraded)  # early: the ready line

    # -- driver and reconciler ------------------------------------------------------------
    @property
    def driver(self) -> NetworkDriver:
        if self._driver is None:
            self._driver = make_driver(self.settings, self.cloud.degraded)
        return self._driver

    def changed(self) -> None:
        """Desired state changed: let the reconciler converge (coalesced, asynchronous)."""
        self._wake.set()

    def reconcile_now(self) -> list[str]:
        with self._sync_lock:
            topo = self.topology.build()
            errors = self.driver.sync(topo)
            self.sync_errors = errors
            for err in errors:
                log.warning("network sync: %s", err)
            return errors

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            # Coalesce a burst of API changes into one sync, and never spend more than about
            # a third of the time syncing (a full sync costs more as the cloud grows).
            self._stop.wait(max(0.05, min(2 * self._last_sync_s, 0.25)))
            self._wake.clear()
            try:
                started = time.monotonic()
                self.reconcile_now()
                self._last_sync_s = min(time.monotonic() - started, 0.5)
            except Exception:  # noqa: BLE001 - keep the reconciler alive; retry on next change
                log.exception("network reconcile failed")
                self._stop.wait(2)
                self._wake.set()

    async def start(self) -> None:
        if hasattr(self.driver, "metadata_handler"):
            from pocketstack.services.network.metadata import Metadata

            self.driver.metadata_handler = Metadata(self).handle
        self.driver.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="network-reconciler",
                                        daemon=True)
        self._thread.start()
        self._wake.set()  # rebuild what is missing, remove what is no longer wanted

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._driver is not None:
            self._driver.stop()

    def purge(self) -> None:
        """Remove every host object this cloud created (``down --purge``)."""
        self.driver.purge()

    # -- first start ----------------------------------------------------------------------
    def bootstrap(self) -> None:
        """DevStack's topology once: public external network, demo private net + router."""
        from pocketstack.services.network.bootstrap import create_defaults

        create_defaults(self)

    # -- the interface compute uses -------------------------------------------------------
    def allocate_for_server(self, ctx: RequestContext, server_id: str,
                            requested_networks: list[dict] | str, security_groups: list[str],
                            host: str) -> list[dict]:
        """Create (or bind) the server's ports; all or nothing.

        ``requested_networks``: "none" (no ports), "auto" (the project's only network, else
        the only shared one — nova's get-me-a-network rule), or a list of
        ``{"uuid": net_id, "fixed_ip": ip?}`` / ``{"port": port_id}``. ``security_groups``
        are names or ids (default: the project's default group). Raises a 4xx domain error
        (BadRequest / Conflict / NotFound) with a clear message when it cannot.
        Returns port dicts: id, network_id, network_name, mac_address, status,
        fixed_ips [{ip_address, subnet_id}].
        """
        if requested_networks == "none" or requested_networks == []:
            return []
        with self.db.write() as s:
            if requested_networks == "auto":
                requested = [{"uuid": self._auto_network(s, ctx)}]
            elif isinstance(requested_networks, list):
                requested = requested_networks
            else:
                raise BadRequest(f"Invalid networks request {requested_networks!r}.")
            sg_ids = self._resolve_groups(s, ctx, security_groups)
            port_ids = []
            for req in requested:
                if req.get("port"):
                    port = s.get(m.Port, req["port"])
                    if port is None or not self.ports.visible(s, ctx, port):
                        raise NotFound(f"Port {req['port']} could not be found.",
                                       kind="PortNotFound")
                    if port.device_id and port.device_id != server_id:
                        raise Conflict(f"Port {port.id} is still in use.", kind="PortInUse")
                    port.device_id, port.device_owner = server_id, "compute:nova"
                    port.binding_host_id, port.binding_vif_type = host, "bridge"
                    port_ids.append(port.id)
                    continue
                net_id = req.get("uuid")
                net = s.get(m.Network, net_id) if net_id else None
                if net is None or not self.networks.visible(s, ctx, net):
                    raise BadRequest(f"Network {net_id} could not be found.",
                                     kind="NetworkNotFound")
                attrs: dict[str, Any] = {"network_id": net.id, "device_id": server_id,
                                         "device_owner": "compute:nova",
                                         "binding:host_id": host}
                if req.get("fixed_ip"):
                    attrs["fixed_ips"] = [{"ip_address": str(ipaddress.ip_address(
                        req["fixed_ip"]))}]
                if sg_ids is not None and net.port_security_enabled:
                    attrs["security_groups"] = sg_ids
                port = self.ports.create_in(s, ctx, attrs, internal=True)
                if not s.scalar(select(m.IPAllocation.ip_address).where(
                        m.IPAllocation.port_id == port.id)):
                    raise BadRequest(f"Network {net.id} requires a subnet in order to boot "
                                     "instances on.", kind="NetworkRequiresSubnet")
                port.created_for_server = True
                port_ids.append(port.id)
            s.flush()
            result = self._port_infos(s, port_ids)
        self.changed()
        return result

    def auto_network(self, ctx: RequestContext) -> str:
        """The network a server asking for none gets (compute checks it at create time, as
        Nova's API does): 400 when there is none, 409 when it cannot choose."""
        with self.db.read() as s:
            return self._auto_network(s, ctx)

    def _auto_network(self, s: Any, ctx: RequestContext) -> str:
        own = s.scalars(select(m.Network).where(m.Network.project_id == ctx.project_id,
                                                m.Network.external.is_(False))).all()
        candidates = own or s.scalars(select(m.Network).where(
            m.Network.shared.is_(True), m.Network.external.is_(False))).all()
        if len(candidates) == 1:
            return candidates[0].id
        if not candidates:
            raise BadRequest(f"Unable to automatically allocate a network for project "
                             f"{ctx.project_id}: it has no network and no shared network "
                             "exists.", kind="AutoAllocationFailed")
        raise Conflict("Multiple possible networks found, use a Network ID to be more "
                       "specific.", kind="NetworkAmbiguous")

    def _resolve_groups(self, s: Any, ctx: RequestContext, names: list[str]) -> list[str] | None:
        if not names:
            return None
        out = []
        for name in names:
            q = select(m.SecurityGroup).where(m.SecurityGroup.project_id == ctx.project_id)
            rows = [g for g in s.scalars(q) if name in (g.id, g.name)]
            if not rows and name == "default":
                out.append(self.security_groups.default_id(s, ctx.project_id))
                continue
            if not rows:
                raise BadRequest(f"Security group {name} not found.",
                                 kind="SecurityGroupNotFound")
            if len(rows) > 1:
                raise Conflict(f"Multiple security groups named {name}; use an id.",
                               kind="NoUniqueMatch")
            out.append(rows[0].id)
        return out

    def _port_infos(self, s: Any, port_ids: list[str]) -> list[dict]:
        ports = {p.id: p for p in s.scalars(select(m.Port).where(m.Port.id.in_(port_ids)))}
        ips = self.ports.fixed_ips(s, port_ids)
        nets = {n.id: n for n in s.scalars(select(m.Network).where(
            m.Network.id.in_({p.network_id for p in ports.values()})))}
        return [{"id": pid, "network_id": ports[pid].network_id,
                 "network_name": nets[ports[pid].network_id].name,
                 "mac_address": ports[pid].mac_address, "status": ports[pid].status,
                 "fixed_ips": ips[pid]} for pid in port_ids]

    def deallocate_for_server(self, ctx: RequestContext, server_id: str) -> None:
        """Delete the ports allocate_for_server created; unbind pre-existing ones."""
        with self.db.read() as s:
            port_ids = list(s.scalars(select(m.Port.id).where(m.Port.device_id == server_id)))
        for port_id in port_ids:
            self.release_port(server_id, port_id)

    def release_port(self, server_id: str, port_id: str) -> None:
        """Unplug one of the server's ports; delete it if it was made for the server
        (boot or interface attach with a network), else unbind it so it can be reused."""
        self.unplug_vif(port_id)
        with self.db.write() as s:
            port = s.get(m.Port, port_id)
            if port is not None and port.device_id == server_id and \
                    port.device_owner.startswith("compute:"):
                if port.created_for_server:
                    self.ports.delete_row(s, port)
                else:
                    port.device_id = port.device_owner = port.binding_host_id = ""
                    port.binding_vif_type, port.status = "unbound", "DOWN"
        self.changed()

    def server_ports(self, server_id: str) -> list[dict]:
        """The server's ports in the order they were attached: id, network_id,
        network_name, mac_address, status, fixed_ips [{ip_address, subnet_id}]."""
        with self.db.read() as s:
            port_ids = list(s.scalars(select(m.Port.id).where(
                m.Port.device_id == server_id, m.Port.device_owner.like("compute:%"))
                .order_by(m.Port.created_at, m.Port.id)))
            return self._port_infos(s, port_ids)

    def plug_vif(self, port_id: str, netns_pid: int) -> str:
        """Plug the port into the server's network namespace (of process ``netns_pid``);
        returns the interface's name there (eth0 for the first port, then eth1, ...)."""
        spec = self.topology.port_spec(port_id)
        if spec is None:
            raise NotFound(f"Port {port_id} could not be found.", kind="PortNotFound")
        if not self.driver.has_network(spec.bridge):
            self.reconcile_now()  # the bridge (and DHCP, router) must exist first
        else:
            self.changed()  # DHCP host entry, remote-group members: converge soon
        name = self.driver.plug_vif(spec, netns_pid)
        with self.db.write() as s:
            port = s.get(m.Port, port_id)
            if port is not None:
                port.status = "ACTIVE"
                if port.binding_vif_type == "unbound":
                    port.binding_vif_type = "bridge"
                    port.binding_host_id = port.binding_host_id or self.host
        return name

    def unplug_vif(self, port_id: str) -> None:
        spec = self.topology.port_spec(port_id)
        if spec is None:
            return
        self.driver.unplug_vif(spec)
        with self.db.write() as s:
            port = s.get(m.Port, port_id)
            if port is not None:
                port.status = "DOWN"

    def server_addresses(self, server_ids: list[str]) -> dict[str, dict[str, list[dict]]]:
        """{server_id: {network_name: [{version, addr, OS-EXT-IPS:type, ...mac_addr}]}}."""
        out: dict[str, dict[str, list[dict]]] = {sid: {} for sid in server_ids}
        if not server_ids:
            return out
        with self.db.read() as s:
            ports = s.scalars(select(m.Port).where(m.Port.device_id.in_(server_ids))
                              .order_by(m.Port.created_at)).all()
            ips = self.ports.fixed_ips(s, [p.id for p in ports])
            nets = {n.id: n.name for n in s.scalars(select(m.Network).where(
                m.Network.id.in_({p.network_id for p in ports})))}
            fips = s.scalars(select(m.FloatingIP).where(
                m.FloatingIP.port_id.in_([p.id for p in ports]))).all()
        by_fixed = {(f.port_id, f.fixed_ip_address): f.floating_ip_address for f in fips}
        for p in ports:
            entries = out[p.device_id].setdefault(nets.get(p.network_id, p.network_id), [])
            for ip in ips[p.id]:
                addr = ip["ip_address"]
                entries.append({"version": ipaddress.ip_address(addr).version, "addr": addr,
                                "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": p.mac_address})
                if (p.id, addr) in by_fixed:
                    entries.append({"version": 4, "addr": by_fixed[(p.id, addr)],
                                    "OS-EXT-IPS:type": "floating",
                                    "OS-EXT-IPS-MAC:mac_addr": p.mac_address})
        return out

    # -- metadata (called by the driver's metadata proxy) ---------------------------------
    def metadata_for(self, network_id: str, ip: str) -> dict | None:
        """The server behind (network, fixed IP), as compute describes it, or None."""
        with self.db.read() as s:
            row = s.execute(select(m.Port.device_id, m.Port.device_owner).join(
                m.IPAllocation, m.IPAllocation.port_id == m.Port.id).where(
                m.IPAllocation.network_id == network_id,
                m.IPAllocation.ip_address == ip)).first()
        if row is None or not row[1].startswith("compute:"):
            return None
        if "compute" not in self.cloud.services:
            return None
        return self.cloud.services["compute"].metadata_for_server(row[0])
