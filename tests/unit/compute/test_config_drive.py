"""The config drive ISO builder: Nova's layout, read back with pycdlib (and blkid when
this machine has it), and the read-only tree containers get."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pycdlib
import pytest

from pocketstack.drivers.compute.config_drive import build_iso, extract_iso, read_iso

TREE = {
    "openstack/latest/meta_data.json": json.dumps({"uuid": "u-1", "name": "web"}).encode(),
    "openstack/2012-08-10/meta_data.json": json.dumps({"uuid": "u-1"}).encode(),
    "openstack/latest/network_data.json": json.dumps({"links": [], "networks": []}).encode(),
    "openstack/latest/user_data": b"#!/bin/sh\necho '$(rm -rf /)' > /dev/null\n\0\xff",
    "openstack/latest/vendor_data2.json": b"{}",
    "ec2/2009-04-04/meta-data.json": json.dumps({"hostname": "web"}).encode(),
    "ec2/latest/user-data": b"data",
}


def test_iso_has_nova_label_rock_ridge_joliet_and_every_file(tmp_path):
    iso_path = tmp_path / "disk.config"
    build_iso(TREE, iso_path)
    assert oct(iso_path.stat().st_mode & 0o777) == "0o600"
    label, files = read_iso(iso_path)
    assert label == "config-2"
    assert files == TREE
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.has_rock_ridge() and iso.has_joliet()
        # the Joliet names are the same paths (Windows guests read those)
        joliet = {f"{d.rstrip('/')}/{f}".lstrip("/")
                  for d, _, fs in iso.walk(joliet_path="/") for f in fs}
        assert joliet == set(TREE)
    finally:
        iso.close()
    if shutil.which("blkid"):
        out = subprocess.run(["blkid", "-o", "export", str(iso_path)], capture_output=True,
                             text=True).stdout
        assert "LABEL=config-2" in out and "TYPE=iso9660" in out


def test_paths_that_are_not_ours_are_refused(tmp_path):
    for bad in ("../etc/passwd", "/abs/path", "openstack/../../x", "a//b", "a/.hidden",
                "openstack/latest/na me", "x" * 70):
        with pytest.raises(ValueError):
            build_iso({bad: b""}, tmp_path / "bad.iso")
    assert not (tmp_path / "bad.iso").exists()


def test_rebuild_replaces_atomically(tmp_path):
    iso_path = tmp_path / "disk.config"
    build_iso(TREE, iso_path)
    build_iso({"openstack/latest/meta_data.json": b"{}"}, iso_path)
    assert read_iso(iso_path)[1] == {"openstack/latest/meta_data.json": b"{}"}
    assert sorted(os.listdir(tmp_path)) == ["disk.config"]  # no temporary left


def test_extracted_tree_is_read_only_and_complete(tmp_path):
    iso_path = tmp_path / "disk.config"
    build_iso(TREE, iso_path)
    dest = tmp_path / "config-drive"
    extract_iso(iso_path, dest)
    got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == TREE
    for p in [dest, *dest.rglob("*")]:
        mode = p.stat().st_mode & 0o777
        assert mode == (0o555 if p.is_dir() else 0o444), (p, oct(mode))
        assert not p.is_symlink()
    # again (a rebuilt drive): replaced, nothing left beside it
    extract_iso(iso_path, dest)
    assert sorted(os.listdir(tmp_path)) == ["config-drive", "disk.config"]
