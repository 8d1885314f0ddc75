"""Admin pages through the dashboard (httpx, live cloud): projects with usage and the quota
form (Nova's quota code: the new limit is what the API shows), refused to a member."""

from __future__ import annotations

import uuid

from tests.functional.dashboard.conftest import csrf_of


def test_admin_sets_a_projects_instance_quota(cloud, admin_web, demo_web):
    admin = cloud.sdk()
    project = admin.identity.create_project(name=f"ps-dash-q-{uuid.uuid4().hex[:6]}",
                                            domain_id="default")
    try:
        page = admin_web.get("/dashboard/admin/projects")
        assert page.status_code == 200 and f'data-name="{project.name}"' in page.text
        r = admin_web.post(f"/dashboard/admin/projects/{project.id}/quota", data={
            "csrf_token": csrf_of(page.text), "instances": "7", "cores": "", "ram": ""})
        assert r.status_code == 303
        assert admin.compute.get_quota_set(project.id).instances == 7
        row = admin_web.get("/dashboard/admin/projects").text.split(
            f'data-name="{project.name}"', 1)[1].split("</tr>", 1)[0]
        assert "0/7" in row
        r = admin_web.post(f"/dashboard/admin/projects/{project.id}/quota", data={
            "csrf_token": csrf_of(page.text), "instances": "seven"})
        assert r.status_code == 400 and 'id="quota-error"' in r.text
        # a member can neither see the page nor post the form
        assert demo_web.get("/dashboard/admin/projects").status_code == 403
        csrf = csrf_of(demo_web.get("/dashboard/").text)
        r = demo_web.post(f"/dashboard/admin/projects/{project.id}/quota",
                          data={"csrf_token": csrf, "instances": "1000"})
        assert r.status_code == 403
        assert admin.compute.get_quota_set(project.id).instances == 7
    finally:
        admin.identity.delete_project(project)


def test_port_with_fixed_ip_and_mac_as_seed_003(cloud, demo_web):
    demo = cloud.sdk("demo")
    net = demo.network.find_network("private", ignore_missing=False)
    subnet = next(demo.network.subnets(network_id=net.id))
    import ipaddress

    ip = str(list(ipaddress.ip_network(subnet.cidr).hosts())[-3])
    mac = "fa:16:3e:12:34:56"
    name = f"ps-dash-port-{uuid.uuid4().hex[:6]}"
    csrf = csrf_of(demo_web.get("/dashboard/ports").text)
    r = demo_web.post("/dashboard/ports/create", data={
        "csrf_token": csrf, "name": name, "network_id": net.id, "ip_address": ip,
        "mac_address": mac})
    assert r.status_code == 303, r.text[:2000]
    port = demo.network.find_port(name, ignore_missing=False)
    try:
        assert port.mac_address == mac and port.fixed_ips[0]["ip_address"] == ip
        # the same address again: Neutron's refusal, shown on the page
        r = demo_web.post("/dashboard/ports/create", data={
            "csrf_token": csrf, "name": name + "-2", "network_id": net.id, "ip_address": ip})
        assert r.status_code == 409 and 'id="port-error"' in r.text
        assert ip in r.text
    finally:
        demo.network.delete_port(port.id)


def test_security_group_and_rule_from_the_form(cloud, demo_web):
    demo = cloud.sdk("demo")
    name = f"ps-dash-sg-{uuid.uuid4().hex[:6]}"
    csrf = csrf_of(demo_web.get("/dashboard/networks").text)
    r = demo_web.post("/dashboard/networks/create", data={
        "csrf_token": csrf, "kind": "security_group", "name": name})
    assert r.status_code == 303, r.text[:2000]
    group = demo.network.find_security_group(name, ignore_missing=False)
    try:
        r = demo_web.post("/dashboard/networks/create", data={
            "csrf_token": csrf, "kind": "rule", "security_group_id": group.id,
            "direction": "ingress", "protocol": "tcp", "port_min": "22", "port_max": "",
            "remote_ip_prefix": "10.0.0.0/8"})
        assert r.status_code == 303, r.text[:2000]
        rules = [x for x in demo.network.security_group_rules(security_group_id=group.id)
                 if x.protocol == "tcp"]
        assert [(x.port_range_min, x.port_range_max, x.remote_ip_prefix) for x in rules] == [
            (22, 22, "10.0.0.0/8")]
        r = demo_web.post("/dashboard/networks/create", data={
            "csrf_token": csrf, "kind": "rule", "security_group_id": group.id,
            "direction": "ingress", "protocol": "tcp", "port_min": "abc",
            "remote_ip_prefix": ""})
        assert r.status_code == 400 and 'id="network-error"' in r.text
    finally:
        demo.network.delete_security_group(group.id)
