"""Cinder's default-types (3.62) and resource_filters (3.33) APIs through openstacksdk and the
`openstack` CLI (issue 22: advertised by 3.70, missing before)."""

from __future__ import annotations

import uuid

import pytest


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def admin(cloud):
    return cloud.sdk()


@pytest.fixture(scope="module")
def demo_project(admin):
    return admin.identity.find_project("demo", ignore_missing=False)


def test_default_type_set_show_list_used_and_unset(cloud, admin, demo_project):
    vt = admin.block_storage.create_type(name=uniq("dt"))
    try:
        d = admin.block_storage.set_default_type(demo_project.id, vt.name)  # by name
        assert (d.project_id, d.volume_type_id) == (demo_project.id, vt.id)
        shown = admin.block_storage.show_default_type(demo_project.id)
        assert shown.volume_type_id == vt.id
        listed = {(x.project_id, x.volume_type_id) for x in admin.block_storage.default_types()}
        assert (demo_project.id, vt.id) in listed
        # demo's volumes without a type get demo's default; admin's still get the cloud's
        vol = cloud.openstack("volume", "create", "--size", "1", uniq("v"), user="demo")
        try:
            assert vol["type"] == vt.name
        finally:
            cloud.openstack("volume", "delete", vol["id"], user="demo")
        # a type that is a project's default cannot be deleted
        r = admin.block_storage.delete(f"/types/{vt.id}")
        assert r.status_code == 400 and "default volume type" in r.text, r.text
        admin.block_storage.unset_default_type(demo_project.id)
        r = admin.block_storage.get(f"/default-types/{demo_project.id}", microversion="3.62")
        assert r.status_code == 404
    finally:
        admin.block_storage.unset_default_type(demo_project.id)
        admin.block_storage.delete_type(vt.id, ignore_missing=True)


def test_default_type_bad_input_and_rules(cloud, admin, demo_project):
    bs = admin.block_storage
    body = {"default_type": {"volume_type": "no-such-type"}}
    r = bs.put(f"/default-types/{demo_project.id}", json=body, microversion="3.62")
    assert r.status_code == 400, r.text
    r = bs.put(f"/default-types/{uuid.uuid4().hex}",
               json={"default_type": {"volume_type": "__DEFAULT__"}}, microversion="3.62")
    assert r.status_code == 404, r.text  # unknown project
    r = bs.put(f"/default-types/{demo_project.id}", json={"default_type": {}},
               microversion="3.62")
    assert r.status_code == 400
    r = bs.get("/default-types", microversion="3.61")  # before 3.62 it does not exist
    assert r.status_code == 404
    demo = cloud.sdk("demo")
    r = demo.block_storage.get("/default-types", microversion="3.62")
    assert r.status_code == 403
    assert demo_project.id not in {x.project_id for x in bs.default_types()}


def test_resource_filters(cloud, admin):
    filters = {f.resource: f.filters for f in admin.block_storage.resource_filters()}
    assert "name" in filters["volume"] and "volume_id" in filters["snapshot"]
    only = list(admin.block_storage.resource_filters(resource="backup"))
    assert [(f.resource, f.filters) for f in only] == [("backup",
                                                        ["name", "status", "volume_id"])]
    shown = cloud.openstack("--os-volume-api-version", "3.33", "block", "storage",
                            "resource", "filter", "list", "-f", "json", parse=False)
    assert "snapshot" in shown
    r = admin.block_storage.get("/resource_filters", microversion="3.32")
    assert r.status_code == 404
