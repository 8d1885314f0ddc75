"""The instance page's forms through the dashboard (httpx, live cloud, fake drivers):
floating IP associate/disassociate, snapshot, resize with confirm, and a refusal shown."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.functional.dashboard.conftest import csrf_of


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait(conn, sid, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        srv = conn.compute.get_server(sid)
        if srv.status in statuses:
            return srv
        assert time.monotonic() < deadline, f"{sid} stuck in {srv.status}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def server(cloud):
    demo = cloud.sdk("demo")
    image = demo.image.find_image("busybox", ignore_missing=False)
    flavor = demo.compute.find_flavor("m1.tiny", ignore_missing=False)
    net = demo.network.find_network("private", ignore_missing=False)
    srv = demo.compute.create_server(name=uniq("forms"), image_id=image.id,
                                     flavor_id=flavor.id, networks=[{"uuid": net.id}])
    wait(demo, srv.id, {"ACTIVE"})
    yield srv.id
    demo.compute.delete_server(srv.id)


def test_floating_ip_associate_and_disassociate(cloud, demo_web, server):
    demo = cloud.sdk("demo")
    page = demo_web.get(f"/dashboard/instances/{server}")
    assert page.status_code == 200 and 'id="fip-associate"' in page.text
    public = demo.network.find_network("public", ignore_missing=False)
    r = demo_web.post(f"/dashboard/instances/{server}/form/associate", data={
        "csrf_token": csrf_of(page.text), "floatingip_id": "", "network_id": public.id})
    assert r.status_code == 303, r.text[:2000]
    ports = [p.id for p in demo.network.ports(device_id=server)]
    fips = [f for f in demo.network.ips() if f.port_id in ports]
    assert len(fips) == 1
    page = demo_web.get(f"/dashboard/instances/{server}")
    assert fips[0].floating_ip_address in page.text
    r = demo_web.post(f"/dashboard/instances/{server}/form/disassociate", data={
        "csrf_token": csrf_of(page.text), "floatingip_id": fips[0].id})
    assert r.status_code == 303
    assert demo.network.get_ip(fips[0].id).port_id is None
    demo.network.delete_ip(fips[0].id)


def test_snapshot_and_resize_confirm(cloud, demo_web, server):
    demo = cloud.sdk("demo")
    csrf = csrf_of(demo_web.get(f"/dashboard/instances/{server}").text)
    name = uniq("snap")
    r = demo_web.post(f"/dashboard/instances/{server}/form/snapshot",
                      data={"csrf_token": csrf, "name": name})
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/images")
    snap = demo.image.find_image(name, ignore_missing=False)
    small = demo.compute.find_flavor("m1.small", ignore_missing=False)
    r = demo_web.post(f"/dashboard/instances/{server}/form/resize",
                      data={"csrf_token": csrf, "flavor": small.id})
    assert r.status_code == 303
    wait(demo, server, {"VERIFY_RESIZE"})
    page = demo_web.get(f"/dashboard/instances/{server}")
    assert 'id="resize-confirm"' in page.text
    r = demo_web.post(f"/dashboard/instances/{server}/form/confirm-resize",
                      data={"csrf_token": csrf})
    assert r.status_code == 303
    srv = wait(demo, server, {"ACTIVE"})
    assert srv.flavor["original_name"] == "m1.small"
    deadline = time.monotonic() + 30
    while demo.image.get_image(snap.id).status != "active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    demo.image.delete_image(snap.id)


def test_refused_action_shows_novas_message(cloud, demo_web, server):
    csrf = csrf_of(demo_web.get(f"/dashboard/instances/{server}").text)
    # resize to its own flavor: Nova refuses (400) with its own words
    flavor = cloud.sdk("demo").compute.get_server(server).flavor["original_name"]
    fid = cloud.sdk("demo").compute.find_flavor(flavor, ignore_missing=False).id
    r = demo_web.post(f"/dashboard/instances/{server}/form/resize",
                      data={"csrf_token": csrf, "flavor": fid})
    assert r.status_code == 400
    assert 'id="form-error"' in r.text


def test_console_button_gives_a_one_time_console_page(cloud, demo_web, server):
    csrf = csrf_of(demo_web.get(f"/dashboard/instances/{server}").text)
    r = demo_web.post(f"/dashboard/instances/{server}/form/console", data={"csrf_token": csrf})
    assert r.status_code == 303, r.text[:2000]
    url = r.headers["location"]
    assert "/compute/console/" in url and "token" in url
    import httpx

    page = httpx.get(url, timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
