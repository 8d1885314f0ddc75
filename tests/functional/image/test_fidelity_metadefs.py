"""Glance metadefs (issue 22): a resource type named in an association is created, and
X-Openstack-Append on POST .../tags adds tags instead of replacing them; through
openstacksdk and the `openstack` CLI."""

from __future__ import annotations

import json
import uuid

import pytest


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def conn(cloud):
    return cloud.sdk()


@pytest.fixture
def namespace(conn):
    ns = conn.image.create_metadef_namespace(namespace=uniq("ns"))
    yield ns
    conn.image.delete_metadef_namespace(ns.namespace, ignore_missing=True)


def test_association_creates_a_new_resource_type(conn, cloud, namespace):
    rt = f"OS::Pocket::{uuid.uuid4().hex[:8]}"
    assert rt not in {t.name for t in conn.image.metadef_resource_types()}
    cloud.openstack("image", "metadef", "resource", "type", "association", "create",
                    namespace.namespace, rt, parse=False)
    assert rt in {t.name for t in conn.image.metadef_resource_types()}
    listed = json.loads(cloud.openstack("image", "metadef", "resource", "type", "list",
                                        "-f", "json", parse=False))
    assert rt in {t["Name"] for t in listed}
    assocs = [a.name for a in conn.image.metadef_resource_type_associations(namespace)]
    assert assocs == [rt]
    # a namespace created with an association of a new type creates it too
    rt2 = f"OS::Pocket::{uuid.uuid4().hex[:8]}"
    ns2 = conn.image.create_metadef_namespace(namespace=uniq("ns"),
                                              resource_type_associations=[{"name": rt2}])
    try:
        assert rt2 in {t.name for t in conn.image.metadef_resource_types()}
    finally:
        conn.image.delete_metadef_namespace(ns2.namespace)
    # the type stays after the association goes, as in glance
    conn.image.delete_metadef_resource_type_association(rt, namespace)
    assert rt in {t.name for t in conn.image.metadef_resource_types()}
    r = conn.image.post(f"/metadefs/namespaces/{namespace.namespace}/resource_types",
                        json={"name": "x" * 81})
    assert r.status_code == 400


def _tags(conn, namespace) -> set[str]:
    r = conn.image.get(f"/metadefs/namespaces/{namespace.namespace}")
    return {t["name"] for t in r.json().get("tags", [])}


def test_tags_append_header(conn, namespace):
    ns = conn.image.get_metadef_namespace(namespace.namespace)
    ns.set_tags(conn.image, ["a", "b"])
    ns.set_tags(conn.image, ["c"], append=True)
    tags = _tags(conn, namespace)
    assert tags == {"a", "b", "c"}
    ns.set_tags(conn.image, ["d"])  # without append: replaced
    tags = _tags(conn, namespace)
    assert tags == {"d"}
    r = conn.image.post(f"/metadefs/namespaces/{namespace.namespace}/tags",
                        headers={"X-Openstack-Append": "True"},
                        json={"tags": [{"name": "d"}]})
    assert r.status_code == 409
    tags = _tags(conn, namespace)
    assert tags == {"d"}
