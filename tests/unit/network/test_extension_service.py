"""The Neutron extensions in-process (fake driver): IP availability in a fixed number of
queries, and a server's port that became a trunk parent does not block the server's
delete."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from sqlalchemy import event
from starlette.datastructures import QueryParams

from pocketstack.context import RequestContext
from pocketstack.errors import Conflict


@pytest.fixture(scope="module")
def svc(tmp_path_factory):
    from pocketstack.app import prepare
    from pocketstack.config import load_settings

    settings = load_settings(tmp_path_factory.mktemp("netext") / "data", env={})
    settings.network.driver = "fake"
    cloud = prepare(settings)
    service = cloud.services["network"]
    asyncio.run(service.start())
    yield service
    asyncio.run(service.stop())


def member(project: str) -> RequestContext:
    return RequestContext(user_id="u", project_id=project, roles=frozenset({"member"}))


ADMIN = RequestContext(user_id="a", project_id="admin", roles=frozenset({"admin"}))


def test_ip_availability_queries_do_not_grow_with_networks(svc):
    c = member("p-" + uuid.uuid4().hex[:6])
    for i in range(12):
        n = svc.networks.create(c, {"name": f"n{i}"})
        svc.subnets.create(c, {"network_id": n["id"], "ip_version": 4,
                               "cidr": f"10.60.{i}.0/24"})
        svc.ports.create(c, {"network_id": n["id"]})
    statements: list[str] = []
    me = threading.get_ident()

    # only this thread's: the started service's reconciler reads ports in the background
    # (the port creations above woke it), and its reads are not the listing's
    def count(conn, cursor, statement, *args):  # noqa: ANN001
        if threading.get_ident() == me and statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    engine = svc.db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        body = svc.ip_availabilities.list(ADMIN, QueryParams({"project_id": c.project_id}),
                                          "http://x")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    nets = body["network_ip_availabilities"]
    assert len(nets) == 12
    assert all(n["total_ips"] == 253 and n["used_ips"] >= 1 for n in nets)
    assert len(statements) == 2, statements
    # not an admin: nothing listed
    assert svc.ip_availabilities.list(c, QueryParams(), "http://x") == {
        "network_ip_availabilities": []}


def test_server_port_that_is_a_trunk_parent_goes_with_the_server(svc):
    c = member("p-" + uuid.uuid4().hex[:6])
    n = svc.networks.create(c, {"name": "trunked"})
    svc.subnets.create(c, {"network_id": n["id"], "ip_version": 4, "cidr": "10.61.0.0/24"})
    (port,) = svc.allocate_for_server(c, "srv-trunk", [{"uuid": n["id"]}], [], "h")
    sub = svc.ports.create(c, {"network_id": n["id"]})
    trunk = svc.trunks.create(c, {"port_id": port["id"], "sub_ports": [
        {"port_id": sub["id"], "segmentation_type": "vlan", "segmentation_id": 7}]})
    with pytest.raises(Conflict):  # through the API: refused while the trunk holds it
        svc.ports.delete(c, port["id"])
    svc.deallocate_for_server(c, "srv-trunk")
    with pytest.raises(Exception):
        svc.trunks.get(c, trunk["id"])
    freed = svc.ports.get(c, sub["id"])
    assert freed["device_owner"] == "" and "trunk_details" not in freed
    svc.ports.delete(c, sub["id"])
