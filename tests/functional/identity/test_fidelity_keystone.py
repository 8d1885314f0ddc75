"""Keystone OS-EP-FILTER associations and the OS-FEDERATION registry (issue 22) through
openstacksdk and the `openstack` CLI."""

from __future__ import annotations

import json

import pytest
from identity_helpers import unique
from openstack import exceptions


@pytest.fixture(scope="module")
def conn(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def project(conn):
    p = conn.identity.create_project(name=unique("epf"), domain_id="default")
    yield p
    conn.identity.delete_project(p.id, ignore_missing=True)


def test_endpoint_group_update_with_empty_filters(conn, cloud, tmp_path):
    g = conn.identity.create_endpoint_group(name=unique("epg"),
                                            filters={"interface": "public"})
    try:
        f = tmp_path / "filters.json"
        f.write_text("{}")
        cloud.openstack("endpoint", "group", "set", "--filters", str(f), g.id, parse=False)
        assert conn.identity.get_endpoint_group(g.id).filters == {}
        # create still needs filters, and unknown filter keys stay refused
        r = conn.identity.post("/OS-EP-FILTER/endpoint_groups",
                               json={"endpoint_group": {"name": "x", "filters": {}}})
        assert r.status_code == 400
        r = conn.identity.patch(f"/OS-EP-FILTER/endpoint_groups/{g.id}",
                                json={"endpoint_group": {"filters": {"url": "x"}}})
        assert r.status_code == 400
    finally:
        conn.identity.delete_endpoint_group(g.id)


def test_project_endpoint_associations(conn, cloud, project):
    ep = next(e for e in conn.identity.endpoints() if e.interface == "public")
    cloud.openstack("endpoint", "add", "project", ep.id, project.id)
    assert [p.id for p in conn.identity.endpoint_projects(ep.id)] == [project.id]
    assert [e.id for e in conn.identity.project_endpoints(project.id)] == [ep.id]
    r = conn.identity.get(f"/OS-EP-FILTER/projects/{project.id}/endpoints/{ep.id}")
    assert r.status_code == 204
    r = conn.identity.put(f"/OS-EP-FILTER/projects/{project.id}/endpoints/{ep.id}")
    assert r.status_code == 409
    listed = cloud.openstack("endpoint", "list", "--project", project.id)
    assert [e["ID"] for e in listed] == [ep.id]
    cloud.openstack("endpoint", "remove", "project", ep.id, project.id)
    assert list(conn.identity.project_endpoints(project.id)) == []
    r = conn.identity.get(f"/OS-EP-FILTER/projects/{project.id}/endpoints/{ep.id}")
    assert r.status_code == 404
    r = conn.identity.put(f"/OS-EP-FILTER/projects/{project.id}/endpoints/no-such-ep")
    assert r.status_code == 404


def test_project_endpoint_group_associations(conn, cloud, project):
    ep = next(e for e in conn.identity.endpoints() if e.interface == "internal")
    g = conn.identity.create_endpoint_group(
        name=unique("epg"), filters={"service_id": ep.service_id, "interface": "internal"})
    try:
        cloud.openstack("endpoint", "group", "add", "project", g.id, project.id)
        assert [x.id for x in conn.identity.endpoint_group_projects(g.id)] == [project.id]
        assert [x.id for x in conn.identity.project_endpoint_groups(project.id)] == [g.id]
        selected = [e.id for e in conn.identity.endpoint_group_endpoints(g.id)]
        assert ep.id in selected
        assert {e.interface for e in conn.identity.endpoint_group_endpoints(g.id)} == {
            "internal"}
        # the project's endpoints include those its groups select
        assert ep.id in [e.id for e in conn.identity.project_endpoints(project.id)]
        r = conn.identity.get(f"/OS-EP-FILTER/endpoint_groups/{g.id}/projects/{project.id}")
        assert r.status_code == 200
        assert r.json()["project_endpoint_group"]["project_id"] == project.id
        cloud.openstack("endpoint", "group", "remove", "project", g.id, project.id)
        assert list(conn.identity.endpoint_group_projects(g.id)) == []
        # deleting the group forgets its associations
        cloud.openstack("endpoint", "group", "add", "project", g.id, project.id)
    finally:
        conn.identity.delete_endpoint_group(g.id)
    assert list(conn.identity.project_endpoint_groups(project.id)) == []
    demo = cloud.sdk("demo")
    r = demo.identity.get(f"/OS-EP-FILTER/projects/{project.id}/endpoint_groups")
    assert r.status_code == 403


def test_identity_provider_mapping_protocol(conn, cloud, tmp_path):
    idp_id, mapping_id = unique("idp"), unique("map")
    idp = cloud.openstack("identity", "provider", "create", "--remote-id", "https://a.example",
                          "--description", "acme", "--enable", idp_id)
    try:
        assert idp["id"] == idp_id and idp["enabled"] is True
        assert idp["remote_ids"] in (["https://a.example"], "https://a.example")
        domain = conn.identity.get_domain(idp["domain_id"])  # one made for it
        assert idp_id in domain.description
        # a remote id names one provider only
        r = conn.identity.put(f"/OS-FEDERATION/identity_providers/{unique('idp')}",
                              json={"identity_provider": {"remote_ids": ["https://a.example"]}})
        assert r.status_code == 409, r.text
        rules = [{"local": [{"user": {"name": "{0}"}}], "remote": [{"type": "REMOTE_USER"}]}]
        f = tmp_path / "rules.json"
        f.write_text(json.dumps(rules))
        m = cloud.openstack("mapping", "create", "--rules", str(f), mapping_id)
        assert m["id"] == mapping_id and m["rules"] == rules and m["schema_version"] == "1.0"
        p = conn.identity.create_federation_protocol(idp_id, id="saml2",
                                                     mapping_id=mapping_id)
        assert p.mapping_id == mapping_id
        assert [x["id"] for x in cloud.openstack("federation", "protocol", "list",
                                                 "--identity-provider", idp_id)] == ["saml2"]
        r = conn.identity.put(f"/OS-FEDERATION/identity_providers/{idp_id}/protocols/oidc",
                              json={"protocol": {"mapping_id": "no-such-mapping"}})
        assert r.status_code == 400
        updated = conn.identity.update_identity_provider(idp_id, enabled=False)
        assert updated.is_enabled is False
        r = conn.identity.put(f"/OS-FEDERATION/mappings/{unique('m')}",
                              json={"mapping": {"rules": [{"local": []}]}})
        assert r.status_code == 400
        cloud.openstack("federation", "protocol", "delete", "--identity-provider", idp_id,
                        "saml2")
        r = conn.identity.get(f"/OS-FEDERATION/identity_providers/{idp_id}/protocols/saml2")
        assert r.status_code == 404
    finally:
        cloud.openstack("identity", "provider", "delete", idp_id, check=False)
        cloud.openstack("mapping", "delete", mapping_id, check=False)
    with pytest.raises(exceptions.NotFoundException):
        conn.identity.get_identity_provider(idp_id)


def test_service_providers(conn, cloud):
    sp_id = unique("sp")
    sp = cloud.openstack("service", "provider", "create", "--auth-url",
                         "https://sp.example/v3/OS-FEDERATION/identity_providers/x/protocols/"
                         "saml2/auth", "--service-provider-url",
                         "https://sp.example/Shibboleth.sso/SAML2/ECP", sp_id)
    try:
        assert sp["id"] == sp_id and sp["relay_state_prefix"] == "ss:mem:"
        assert sp_id in [x.id for x in conn.identity.service_providers()]
        # an enabled service provider is listed in tokens that carry a catalog
        cloud.openstack("service", "provider", "set", "--enable", sp_id, parse=False)
        auth = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": cloud.password()}}},
            "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
        token = conn.identity.post("/auth/tokens", json=auth).json()["token"]
        assert sp_id in [x["id"] for x in token.get("service_providers", [])]
        cloud.openstack("service", "provider", "set", "--description", "remote", sp_id)
        assert conn.identity.get_service_provider(sp_id).description == "remote"
        r = conn.identity.put(f"/OS-FEDERATION/service_providers/{unique('sp')}",
                              json={"service_provider": {"auth_url": "not a url",
                                                         "sp_url": "https://x.example"}})
        assert r.status_code == 400
        demo = cloud.sdk("demo")
        r = demo.identity.get("/OS-FEDERATION/service_providers")
        assert r.status_code == 403
    finally:
        cloud.openstack("service", "provider", "delete", sp_id)
    assert conn.identity.find_service_provider(sp_id) is None
