"""Seed 000's identity commands through the real `openstack` CLI."""

from __future__ import annotations


def test_token_issue_and_catalog(cloud):
    token = cloud.openstack("token", "issue")
    assert token["id"] and token["project_id"] and token["user_id"]
    catalog = cloud.openstack("catalog", "list")
    types = {entry["Type"] for entry in catalog}
    assert "identity" in types
