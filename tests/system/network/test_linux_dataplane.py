"""The linux data plane with stand-in servers (namespaces) plugged through plug_vif."""

from __future__ import annotations

import ipaddress
import subprocess
import time
import uuid

import pytest

from pocketstack.context import RequestContext

pytestmark = pytest.mark.system


def uid(p: str) -> str:
    return f"{p}-{uuid.uuid4().hex[:6]}"


def project_ctx(project: str) -> RequestContext:
    return RequestContext(user_id="u-" + project, project_id=project,
                          roles=frozenset({"member", "reader"}))


def topology(svc, ctx, cidr: str, router: bool = True):
    net = svc.networks.create(ctx, {"name": uid("net")})
    sub = svc.subnets.create(ctx, {"network_id": net["id"], "ip_version": 4, "cidr": cidr,
                                   "name": uid("sub")})
    rtr = None
    if router:
        public = svc.networks.list(RequestContext.internal(), _Q({"name": ["public"]}),
                                   "")["networks"][0]
        rtr = svc.routers.create(ctx, {"name": uid("r"),
                                       "external_gateway_info": {"network_id": public["id"]}})
        svc.routers.add_interface(ctx, rtr["id"], {"subnet_id": sub["id"]})
    return net, sub, rtr


class _Q(dict):
    """Enough of starlette's QueryParams for in-process list calls."""

    def getlist(self, key):
        return list(self.get(key, []))

    def get(self, key, default=None):  # noqa: D401
        v = dict.get(self, key)
        if v is None:
            return default
        return v

    def multi_items(self):
        return [(k, x) for k, v in self.items() for x in v]


def boot(svc, ctx, make_server, net_id, sgs=None):
    server = make_server()
    server_id = str(uuid.uuid4())
    ports = svc.allocate_for_server(ctx, server_id, [{"uuid": net_id}], sgs or [], svc.host)
    svc.plug_vif(ports[0]["id"], server.pid)
    server.id, server.port = server_id, ports[0]
    got = server.dhcp(svc.udhcpc_script)
    server.ip = got
    return server


def test_dhcp_same_network_reachability_and_isolation(linux_cloud, make_server):
    svc = linux_cloud.services["network"]
    a_ctx, b_ctx = project_ctx(uid("pa")), project_ctx(uid("pb"))
    net_a, _, _ = topology(svc, a_ctx, "10.50.1.0/24", router=False)
    net_b, _, _ = topology(svc, b_ctx, "10.50.2.0/24", router=False)
    # both groups allow ICMP from anywhere so only the topology decides reachability
    for ctx in (a_ctx, b_ctx):
        sg = svc.security_groups.default_id_for_test(ctx.project_id) \
            if hasattr(svc.security_groups, "default_id_for_test") else None
        del sg
    s1 = boot(svc, a_ctx, make_server, net_a["id"])
    s2 = boot(svc, a_ctx, make_server, net_a["id"])
    s3 = boot(svc, b_ctx, make_server, net_b["id"])
    # DHCP gave each server exactly its port's fixed IP
    for s in (s1, s2, s3):
        assert s.ip == s.port["fixed_ips"][0]["ip_address"], s.ip
    # default group: ingress from members of the same group -> s1 <-> s2 reach each other
    assert s1.ping(s2.ip) and s2.ping(s1.ip)
    # another project's network is another bridge: no path at all
    assert not s3.ping(s1.ip)
    assert not s1.ping(s3.ip)
    for s in (s1, s2, s3):
        svc.deallocate_for_server(RequestContext.internal(), s.id)


def test_security_group_rule_changes_reachability_within_a_second(linux_cloud, make_server):
    svc = linux_cloud.services["network"]
    ctx = project_ctx(uid("pc"))
    net, _, _ = topology(svc, ctx, "10.50.3.0/24", router=False)
    sg = svc.security_groups.create(ctx, {"name": uid("web")})
    client = boot(svc, ctx, make_server, net["id"])
    target = boot(svc, ctx, make_server, net["id"], sgs=[sg["id"]])
    assert not client.ping(target.ip)  # the new group has no ingress rule
    t0 = time.monotonic()
    rule = svc.security_group_rules.create(ctx, {"security_group_id": sg["id"],
                                                 "direction": "ingress", "protocol": "icmp"})
    deadline = t0 + 1.0
    while not client.ping(target.ip, wait=1) and time.monotonic() < deadline + 1:
        pass
    assert client.ping(target.ip)
    added = time.monotonic() - t0
    t0 = time.monotonic()
    svc.security_group_rules.delete(ctx, rule["id"])
    while client.ping(target.ip, wait=1) and time.monotonic() < t0 + 2:
        pass
    removed = time.monotonic() - t0
    assert not client.ping(target.ip)
    assert added <= 2.0 and removed <= 2.5, (added, removed)  # includes ping's own 1 s wait
    for s in (client, target):
        svc.deallocate_for_server(RequestContext.internal(), s.id)


def test_floating_ip_from_host_and_snat_to_external(linux_cloud, make_server):
    svc = linux_cloud.services["network"]
    ctx = project_ctx(uid("pd"))
    net, _, rtr = topology(svc, ctx, "10.50.4.0/24")
    sg = svc.security_groups.create(ctx, {"name": uid("open")})
    svc.security_group_rules.create(ctx, {"security_group_id": sg["id"],
                                          "direction": "ingress", "protocol": "icmp"})
    server = boot(svc, ctx, make_server, net["id"], sgs=[sg["id"]])
    public = svc.networks.list(RequestContext.internal(), _Q({"name": ["public"]}),
                               "")["networks"][0]
    fip = svc.floatingips.create(ctx, {"floating_network_id": public["id"],
                                       "port_id": server.port["id"]})
    svc.reconcile_now()
    host_ip = str(next(ipaddress.ip_network(linux_cloud.settings.network.public_cidr).hosts()))
    ok = subprocess.run(["busybox", "ping", "-c", "1", "-W", "2", fip["floating_ip_address"]],
                        capture_output=True).returncode == 0
    assert ok, "floating IP not reachable from the host"
    # SNAT: the server reaches the external network (the host's address on it)
    assert server.ping(host_ip, wait=2)
    svc.floatingips.delete(ctx, fip["id"])
    svc.reconcile_now()
    assert subprocess.run(["busybox", "ping", "-c", "1", "-W", "1", fip["floating_ip_address"]],
                          capture_output=True).returncode != 0
    svc.deallocate_for_server(RequestContext.internal(), server.id)


def test_metadata_returns_key_and_user_data(linux_cloud, make_server, monkeypatch):
    import base64
    import json

    svc = linux_cloud.services["network"]
    ctx = project_ctx(uid("pe"))
    net, _, _ = topology(svc, ctx, "10.50.5.0/24", router=False)
    server = boot(svc, ctx, make_server, net["id"])
    info = {"uuid": server.id, "name": "vm1", "hostname": "vm1", "key_name": "k1",
            "public_key": "ssh-ed25519 AAAATEST k1", "project_id": ctx.project_id,
            "availability_zone": "nova", "metadata": {"role": "db"},
            "user_data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode()}

    class ComputeStandIn:  # until compute's container driver can boot real servers here
        def metadata_for_server(self, server_id):
            return info if server_id == server.id else None

    if "compute" not in linux_cloud.services or not hasattr(
            linux_cloud.services["compute"], "metadata_for_server"):
        monkeypatch.setitem(linux_cloud.services, "compute", ComputeStandIn())
    else:
        monkeypatch.setattr(linux_cloud.services["compute"], "metadata_for_server",
                            ComputeStandIn().metadata_for_server)
    base = "http://169.254.169.254"
    got = server.sh("busybox", "wget", "-q", "-O", "-", f"{base}/openstack/latest/meta_data.json")
    assert got.returncode == 0, (got.stderr, server.sh("ip", "route").stdout)
    meta = json.loads(server.sh("busybox", "wget", "-q", "-O", "-",
                                f"{base}/openstack/latest/meta_data.json").stdout)
    assert meta["uuid"] == server.id and meta["public_keys"] == {"k1": info["public_key"]}
    ud = server.sh("busybox", "wget", "-q", "-O", "-", f"{base}/openstack/latest/user_data")
    assert ud.stdout == "#!/bin/sh\necho hi\n"
    ec2 = server.sh("busybox", "wget", "-q", "-O", "-",
                    f"{base}/latest/meta-data/public-keys/0/openssh-key").stdout
    assert ec2 == info["public_key"]
    nd = json.loads(server.sh("busybox", "wget", "-q", "-O", "-",
                              f"{base}/openstack/latest/network_data.json").stdout)
    assert nd["links"][0]["ethernet_mac_address"] == server.port["mac_address"]
    svc.deallocate_for_server(RequestContext.internal(), server.id)


def test_restart_rebuilds_missing_and_removes_unwanted(linux_cloud):
    svc = linux_cloud.services["network"]
    ctx = project_ctx(uid("pf"))
    net, _, _ = topology(svc, ctx, "10.50.6.0/24", router=False)
    svc.reconcile_now()
    bridge = next(n.bridge for n in svc.topology.build().networks if n.id == net["id"])
    stray = f"{svc.prefix}n99999"
    subprocess.run(["ip", "link", "del", bridge], check=True)  # lost (e.g. a host reboot)
    subprocess.run(["ip", "link", "add", stray, "type", "bridge"], check=True)  # unwanted
    try:
        svc.driver._applied.clear()  # a fresh process knows nothing, like after a restart
        assert svc.reconcile_now() == []
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert f" {bridge}:" in links and f" {stray}:" not in links
    finally:
        subprocess.run(["ip", "link", "del", stray], capture_output=True)


def test_namespace_mode_security_groups(linux_cloud, make_server):
    """Hosts without br_netfilter keep the rules in each server's namespace (stateful)."""
    from pocketstack.drivers.network.linux import nftables

    svc = linux_cloud.services["network"]
    driver = svc.driver
    saved = driver.host_mode
    driver.host_mode = False
    nftables.delete_host_rules(driver.sg_table)
    driver._applied.clear()
    try:
        ctx = project_ctx(uid("pg"))
        net, _, _ = topology(svc, ctx, "10.50.7.0/24", router=False)
        sg = svc.security_groups.create(ctx, {"name": uid("ns")})
        client = boot(svc, ctx, make_server, net["id"])
        target = boot(svc, ctx, make_server, net["id"], sgs=[sg["id"]])
        assert client.ip == client.port["fixed_ips"][0]["ip_address"]
        assert not client.ping(target.ip)
        rule = svc.security_group_rules.create(ctx, {"security_group_id": sg["id"],
                                                     "direction": "ingress",
                                                     "protocol": "icmp"})
        svc.reconcile_now()
        assert client.ping(target.ip)
        # the client is in the default group: ingress only from its members
        assert not target.ping(client.ip)
        svc.security_group_rules.delete(ctx, rule["id"])
        svc.reconcile_now()
        assert not client.ping(target.ip)
        for s in (client, target):
            svc.deallocate_for_server(RequestContext.internal(), s.id)
    finally:
        driver.host_mode = saved
        driver._applied.clear()
        svc.reconcile_now()
