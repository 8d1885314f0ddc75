"""OS-FEDERATION registry and OS-EP-FILTER associations without HTTP (issue 22)."""

from __future__ import annotations

import pytest
from identity_fixtures import admin_ctx, make_identity

from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.identity import catalog_admin, ep_filter, federation, projects

RULES = [{"local": [{"user": {"name": "{0}"}}], "remote": [{"type": "REMOTE_USER"}]}]


@pytest.fixture
def svc(tmp_path):
    return make_identity(tmp_path)


@pytest.mark.parametrize("rules", [
    None, {}, [{"local": [], "remote": [{"type": "x"}]}], [{"local": [{}], "remote": []}],
    [{"local": [{}], "remote": [{"not_type": "x"}]}],
    [{"local": [{}], "remote": [{"type": "x", "any_one_of": ["a"], "not_any_of": ["b"]}]}],
    [{"local": [{}], "remote": [{"type": "x"}], "extra": 1}],
])
def test_bad_mapping_rules_are_400(rules):
    with pytest.raises(BadRequest):
        federation._mapping_fields({"rules": rules})


def test_mapping_default_schema_version_and_bad_version():
    assert federation._mapping_fields({"rules": RULES})["schema_version"] == "1.0"
    with pytest.raises(BadRequest):
        federation._mapping_fields({"rules": RULES, "schema_version": "9.9"})


def test_idp_remote_ids_unique_and_protocol_needs_a_mapping(svc):
    ctx = admin_ctx(svc)
    federation.create_idp(svc, ctx, {"idp_id": "a"}, {},
                          {"identity_provider": {"remote_ids": ["r1"]}})
    with pytest.raises(Conflict):
        federation.create_idp(svc, ctx, {"idp_id": "b"}, {},
                              {"identity_provider": {"remote_ids": ["r1"]}})
    with pytest.raises(Conflict):
        federation.create_idp(svc, ctx, {"idp_id": "a"}, {}, {"identity_provider": {}})
    with pytest.raises(NotFound):  # an unknown domain
        federation.create_idp(svc, ctx, {"idp_id": "c"}, {},
                              {"identity_provider": {"domain_id": "nope"}})
    with pytest.raises(BadRequest):
        federation.create_protocol(svc, ctx, {"idp_id": "a", "protocol_id": "saml2"}, {},
                                   {"protocol": {"mapping_id": "missing"}})
    federation.create_mapping(svc, ctx, {"mapping_id": "m"}, {}, {"mapping": {"rules": RULES}})
    federation.create_protocol(svc, ctx, {"idp_id": "a", "protocol_id": "saml2"}, {},
                               {"protocol": {"mapping_id": "m"}})
    # deleting the provider's domain deletes the provider and its protocols
    idp = federation.show_idp(svc, ctx, {"idp_id": "a"}, {}, None)["identity_provider"]
    with svc.db.write() as s:
        projects._delete_project_rows(s, idp["domain_id"])
    with pytest.raises(NotFound):
        federation.show_idp(svc, ctx, {"idp_id": "a"}, {}, None)
    with pytest.raises(NotFound):
        federation.show_protocol(svc, ctx, {"idp_id": "a", "protocol_id": "saml2"}, {}, None)


def test_endpoint_group_selects_by_filters_and_forgets_on_delete(svc):
    ctx = admin_ctx(svc)
    service = catalog_admin.create_service(svc, ctx, {}, {}, {"service": {"type": "x"}})
    sid = service["service"]["id"]
    eps = [catalog_admin.create_endpoint(svc, ctx, {}, {}, {"endpoint": {
        "service_id": sid, "interface": i, "url": f"http://{i}"}})["endpoint"]["id"]
        for i in ("public", "internal")]
    g = catalog_admin.create_epg(svc, ctx, {}, {}, {"endpoint_group": {
        "name": "g", "filters": {"service_id": sid, "interface": "internal"}}})
    gid = g["endpoint_group"]["id"]
    got = ep_filter.group_endpoints(svc, ctx, {"group_id": gid}, {}, None)["endpoints"]
    assert [e["id"] for e in got] == [eps[1]]
    proj = projects.create_project(svc, ctx, {}, {}, {"project": {"name": "p"}})["project"]
    ep_filter.add_group(svc, ctx, {"group_id": gid, "project_id": proj["id"]}, {}, None)
    ep_filter.add_endpoint(svc, ctx, {"endpoint_id": eps[0], "project_id": proj["id"]}, {},
                           None)
    listed = ep_filter.project_endpoints(svc, ctx, {"project_id": proj["id"]}, {}, None)
    assert {e["id"] for e in listed["endpoints"]} == set(eps)
    catalog_admin.delete_epg(svc, ctx, {"group_id": gid}, {}, None)
    catalog_admin.delete_endpoint(svc, ctx, {"endpoint_id": eps[0]}, {}, None)
    listed = ep_filter.project_endpoints(svc, ctx, {"project_id": proj["id"]}, {}, None)
    assert listed["endpoints"] == []
