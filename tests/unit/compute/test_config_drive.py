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


def test_vm_gets_the_drive_as_a_read_only_cdrom_by_fd():
    from pocketstack.drivers.compute.qemu_process import BootFds, qemu_argv

    cfg = {"id": "0a9a8fe7-57a6-4a95-9a57-eae5c4807c67", "vcpus": 1, "memory_mb": 256,
           "base_format": "raw", "macs": []}
    plain = qemu_argv(cfg, BootFds(disk=20, base=21, console=22, qmp=23), accel="tcg")
    assert "config-drive" not in " ".join(plain)
    fds = BootFds(disk=20, base=21, console=22, qmp=23, config_drive=33)
    assert 33 in fds.all()
    argv = qemu_argv(cfg, fds, accel="tcg")
    assert "fd=33,set=4,opaque=config-drive" in argv
    node = next(json.loads(a) for a in argv if a.startswith("{") and "config-drive" in a)
    assert node == {"driver": "raw", "node-name": "config-drive", "read-only": True,
                    "file": {"driver": "file", "read-only": True, "filename": "/dev/fdset/4"}}
    assert "ide-cd,drive=config-drive,id=config-drive" in argv
    assert not any("/config-drives/" in a for a in argv)  # no host path, only the fd


def test_container_mount_is_read_only_and_follows_the_iso(tmp_path):
    from types import SimpleNamespace

    from pocketstack.drivers.compute.config_drive import container_mounts

    server_dir = tmp_path / "srv"
    server_dir.mkdir()
    assert container_mounts(server_dir, SimpleNamespace(config_drive=None)) == []
    iso = tmp_path / "x.iso"
    build_iso(TREE, iso)
    (mount,) = container_mounts(server_dir, SimpleNamespace(config_drive=iso))
    assert mount == {"destination": "/config-drive", "type": "bind",
                     "source": str(server_dir / "config-drive"),
                     "options": ["bind", "ro", "nosuid", "nodev", "noexec"]}
    assert (server_dir / "config-drive/openstack/latest/user_data").read_bytes() == \
        TREE["openstack/latest/user_data"]
    # a rebuilt drive (new content) is extracted again; no drive any more: the tree goes
    build_iso({"openstack/latest/meta_data.json": b'{"v": 2}'}, iso)
    os.utime(iso, ns=(1, 2))
    container_mounts(server_dir, SimpleNamespace(config_drive=iso))
    assert sorted(p.name for p in (server_dir / "config-drive/openstack/latest").iterdir()) \
        == ["meta_data.json"]
    container_mounts(server_dir, SimpleNamespace(config_drive=None))
    assert not (server_dir / "config-drive").exists()
