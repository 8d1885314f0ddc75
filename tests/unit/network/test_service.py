"""The network service in-process (fake driver): the compute interface, IPAM under
contention, quotas, reconciliation into the driver."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest

from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Conflict


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    from pocketstack.app import prepare
    from pocketstack.config import load_settings

    settings = load_settings(tmp_path_factory.mktemp("net") / "data", env={})
    settings.network.driver = "fake"
    cloud = prepare(settings)
    service = cloud.services["network"]
    asyncio.run(service.start())
    yield service
    asyncio.run(service.stop())


def ctx(project: str) -> RequestContext:
    return RequestContext(user_id="u", project_id=project, roles=frozenset({"member"}))


def mknet(svc, c, cidr):
    n = svc.networks.create(c, {"name": "n-" + uuid.uuid4().hex[:6]})
    s = svc.subnets.create(c, {"network_id": n["id"], "ip_version": 4, "cidr": cidr})
    return n, s


def test_bootstrap_made_devstack_topology(svc):
    admin = RequestContext.internal()
    from pocketstack.services.network import models as m
    with svc.db.read() as s:
        names = {n.name: n for n in s.query(m.Network)}
    assert names["public"].external and names["public"].network_type == "flat"
    assert "private" in names


def test_allocate_auto_plug_addresses_and_deallocate(svc):
    c = ctx("p-" + uuid.uuid4().hex[:6])
    with pytest.raises(BadRequest):  # no network yet: cannot auto-allocate
        svc.allocate_for_server(c, "s0", "auto", [], "h")
    n, sub = mknet(svc, c, "10.9.0.0/24")
    ports = svc.allocate_for_server(c, "s1", "auto", [], "h")
    assert ports[0]["network_id"] == n["id"] and ports[0]["network_name"] == n["name"]
    ip = ports[0]["fixed_ips"][0]["ip_address"]
    svc.plug_vif(ports[0]["id"], 1)
    veth = svc.topology.port_spec(ports[0]["id"]).veth
    assert svc.driver.state.vifs[veth][1] == 1
    assert svc.driver.state.rules[veth]  # default group rules applied
    addrs = svc.server_addresses(["s1"])["s1"][n["name"]]
    assert addrs[0]["addr"] == ip and addrs[0]["OS-EXT-IPS:type"] == "fixed"
    mknet(svc, c, "10.9.1.0/24")  # now two networks: auto is ambiguous
    with pytest.raises(Conflict):
        svc.allocate_for_server(c, "s2", "auto", [], "h")
    svc.deallocate_for_server(c, "s1")
    assert svc.server_addresses(["s1"])["s1"] == {}
    assert veth not in svc.driver.state.vifs


def test_allocate_is_all_or_nothing(svc):
    c = ctx("p-" + uuid.uuid4().hex[:6])
    n, sub = mknet(svc, c, "10.8.0.0/24")
    with pytest.raises(BadRequest):
        svc.allocate_for_server(c, "s9", [{"uuid": n["id"]}, {"uuid": str(uuid.uuid4())}],
                                [], "h")
    from pocketstack.services.network import models as m
    with svc.db.read() as s:
        assert s.query(m.Port).filter(m.Port.device_id == "s9").count() == 0


def test_concurrent_port_creates_never_share_an_address(svc):
    c = ctx("p-" + uuid.uuid4().hex[:6])
    n, sub = mknet(svc, c, "10.7.0.0/26")
    got, errors = [], []

    def worker():
        for _ in range(10):
            try:
                got.append(svc.ports.create(c, {"network_id": n["id"]})["fixed_ips"][0]
                           ["ip_address"])
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(got) == 40 and len(set(got)) == 40


def test_reconciler_converges_fake_driver(svc):
    c = ctx("p-" + uuid.uuid4().hex[:6])
    n, sub = mknet(svc, c, "10.6.0.0/24")
    svc.reconcile_now()
    bridges = {b.bridge: b for b in svc.driver.state.bridges.values()}
    assert any(b.id == n["id"] for b in bridges.values())
    assert n["id"] in svc.driver.state.dhcp
    svc.subnets.delete(c, sub["id"])
    svc.networks.delete(c, n["id"])
    svc.reconcile_now()
    assert not any(b.id == n["id"] for b in svc.driver.state.bridges.values())


def test_quota_is_enforced(svc):
    admin = RequestContext.internal()
    p = "p-" + uuid.uuid4().hex[:6]
    svc.quotas.update(admin, p, {"quota": {"network": 1}})
    svc.networks.create(ctx(p), {"name": "one"})
    with pytest.raises(Conflict, match="Quota exceeded"):
        svc.networks.create(ctx(p), {"name": "two"})
