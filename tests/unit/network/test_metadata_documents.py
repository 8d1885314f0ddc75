"""The metadata service's OpenStack documents, which the config drive shares: key types,
tagged devices, injected files under openstack/content/, user data (no database: a server
dict and no ports)."""

from __future__ import annotations

import base64
import json

from pocketstack.services.network.metadata import Metadata

SERVER = {"uuid": "u-1", "name": "web", "hostname": "web", "availability_zone": "nova",
          "project_id": "p", "key_name": "k", "public_key": "-----BEGIN CERTIFICATE-----",
          "key_type": "x509", "metadata": {"a": "b"},
          "devices": [{"type": "nic", "bus": "pci", "mac": "fa:16:3e:00:00:01",
                       "tags": ["t"]}],
          "files": [{"path": "/etc/motd", "contents": base64.b64encode(b"hi").decode()}],
          "user_data": base64.b64encode(b"#!/bin/sh\n").decode()}


def test_meta_data_and_content_as_served():
    md = Metadata(None)
    st, ctype, body = md._openstack(["latest", "meta_data.json"], SERVER, [])
    meta = json.loads(body)
    assert st == 200 and ctype == "application/json"
    assert meta["keys"] == [{"name": "k", "type": "x509", "data": SERVER["public_key"]}]
    assert meta["devices"] == SERVER["devices"]
    assert meta["files"] == [{"path": "/etc/motd", "content_path": "/content/0000"}]
    assert md._openstack(["content", "0000"], SERVER, []) == (
        200, "application/octet-stream", b"hi")
    assert md._openstack(["content", "0001"], SERVER, [])[0] == 404
    assert md._openstack(["latest", "user_data"], SERVER, [])[2] == b"#!/bin/sh\n"
    listing = md._openstack(["latest"], SERVER, [])[2].decode().split("\n")
    assert listing == ["meta_data.json", "network_data.json", "vendor_data.json",
                       "vendor_data2.json", "user_data"]


def test_no_files_no_files_key_and_no_user_data_document():
    plain = {k: v for k, v in SERVER.items() if k not in ("files", "user_data")}
    md = Metadata(None)
    meta = json.loads(md._openstack(["latest", "meta_data.json"], plain, [])[2])
    assert "files" not in meta
    assert md._openstack(["latest", "user_data"], plain, [])[0] == 404
