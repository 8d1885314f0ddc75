"""Cinder backups through the real CLI: `openstack volume backup create/list/show/restore/
delete`, incremental chains, quota, bad input and isolation. The backup's objects are
checked in the owner's Swift container; the restored bytes are compared when the shared
cloud runs the file driver (tests/system/volume/test_backups.py always does)."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path

from tests.functional.volume.test_volume_cli import wait_gone, wait_status


def uniq(prefix: str) -> str:
    return f"ps-{prefix}-{uuid.uuid4().hex[:8]}"


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def test_backup_restore_roundtrip_from_busybox_volume(cloud):
    vol, bk, restored = uniq("bk-src"), uniq("bk"), uniq("bk-restored")
    image = cloud.openstack("image", "show", "busybox")["id"]
    cloud.openstack("volume", "create", "--size", "1", "--image", image,
                    "--property", "tier=gold", vol)
    src = wait_status(cloud, "volume", vol, "available")
    container = uniq("bkc")
    created = cloud.openstack("volume", "backup", "create", "--name", bk,
                              "--container", container, vol)
    assert created["name"] == bk
    shown = wait_status(cloud, "volume backup", bk, "available")
    assert shown["container"] == container and shown["size"] == 1
    assert shown["is_incremental"] is False and shown["volume_id"] == src["id"]
    assert shown["object_count"] >= 2  # at least one data chunk and the metadata
    assert wait_status(cloud, "volume", vol, "available")["status"] == "available"
    listed = cloud.openstack("volume", "backup", "list")
    assert any(b["Name"] == bk and b["Status"] == "available" for b in listed)
    objects = [o["Name"] for o in cloud.openstack("object", "list", container)]
    assert any(n.endswith(f"backup_{shown['id']}_metadata") for n in objects)
    assert any(n.endswith(f"backup_{shown['id']}-00001") for n in objects)

    out = json.loads(cloud.openstack("volume", "backup", "restore", bk, restored, "-f",
                                     "json"))
    assert out["volume_name"] == restored
    new = wait_status(cloud, "volume", restored, "available")
    wait_status(cloud, "volume backup", bk, "available")
    assert new["bootable"] in (True, "true")
    assert new["properties"]["tier"] == "gold"  # the source's metadata comes back
    voldir = cloud.data_dir / "volumes"
    a, b = voldir / f"volume-{src['id']}.raw", voldir / f"volume-{new['id']}.raw"
    if a.exists() and b.exists():  # file driver: the restored bytes are the source's
        assert file_sha(a) == file_sha(b)

    cloud.openstack("volume", "backup", "delete", bk, parse=False)
    wait_gone(cloud, "volume backup", bk)
    assert not [o for o in cloud.openstack("object", "list", container)
                if shown["id"] in o["Name"]]
    cloud.openstack("volume", "delete", restored, vol, parse=False)


def test_incremental_chain_quota_and_bad_input(cloud):
    vol, full, inc = uniq("bk-vol"), uniq("bk-full"), uniq("bk-inc")
    cloud.openstack("volume", "create", "--size", "1", vol)
    wait_status(cloud, "volume", vol, "available")
    # no full backup yet: an incremental one is refused
    bad = cloud.openstack("volume", "backup", "create", "--incremental", vol, check=False)
    assert bad.returncode != 0 and "No backups available" in bad.stderr
    cloud.openstack("volume", "backup", "create", "--name", full, vol)
    wait_status(cloud, "volume backup", full, "available")
    cloud.openstack("volume", "backup", "create", "--incremental", "--name", inc, vol)
    shown = wait_status(cloud, "volume backup", inc, "available")
    assert shown["is_incremental"] is True
    assert cloud.openstack("volume", "backup", "show", full)["has_dependent_backups"] is True
    refused = cloud.openstack("volume", "backup", "delete", full, check=False)
    assert refused.returncode != 0 and "Incremental backups exist" in refused.stderr
    # usage is counted: 2 backups of 1 GiB
    quota = cloud.sdk().block_storage.get_quota_set(
        cloud.sdk().current_project_id, usage=True)
    assert quota.usage["backups"] >= 2 and quota.usage["backup_gigabytes"] >= 2
    # a missing volume is a clean 404
    missing = cloud.openstack("volume", "backup", "create", str(uuid.uuid4()), check=False)
    assert missing.returncode != 0
    cloud.openstack("volume", "backup", "delete", inc, parse=False)
    wait_gone(cloud, "volume backup", inc)
    cloud.openstack("volume", "backup", "delete", full, parse=False)
    wait_gone(cloud, "volume backup", full)
    cloud.openstack("volume", "delete", vol, parse=False)


def test_backup_quota_and_isolation(cloud):
    vol, bk = uniq("bk-demo"), uniq("bk-demo")
    cloud.openstack("volume", "create", "--size", "1", vol, user="demo")
    vid = wait_status(cloud, "volume", vol, "available", user="demo")["id"]
    cloud.openstack("quota", "set", "--backups", "0", "demo", parse=False)
    try:
        over = cloud.openstack("volume", "backup", "create", vid, user="demo", check=False)
        assert over.returncode != 0 and "413" in over.stderr
    finally:
        cloud.openstack("quota", "set", "--backups", "10", "demo", parse=False)
    cloud.openstack("volume", "backup", "create", "--name", bk, vid, user="demo")
    bid = wait_status(cloud, "volume backup", bk, "available", user="demo")["id"]
    # admin's backups are not demo's to see, and demo's are invisible to other members
    mine = uniq("bk-admin")
    avol = uniq("bk-admin-vol")
    cloud.openstack("volume", "create", "--size", "1", avol)
    wait_status(cloud, "volume", avol, "available")
    cloud.openstack("volume", "backup", "create", "--name", mine, avol)
    aid = wait_status(cloud, "volume backup", mine, "available")["id"]
    assert not any(b["ID"] == aid for b in
                   cloud.openstack("volume", "backup", "list", user="demo"))
    assert cloud.openstack("volume", "backup", "show", aid, user="demo",
                           check=False).returncode != 0
    assert cloud.openstack("volume", "backup", "delete", aid, user="demo",
                           check=False).returncode != 0
    # demo may not restore into admin's volume either
    avid = cloud.openstack("volume", "show", avol)["id"]
    resp = cloud.sdk(user="demo").block_storage.post(
        f"/backups/{bid}/restore", json={"restore": {"volume_id": avid}})
    assert resp.status_code == 404, resp.text
    # the demo backup's objects sit in demo's own account
    demo_objects = [o["Name"] for o in cloud.openstack("object", "list", "volumebackups",
                                                         user="demo")]
    assert any(bid in n for n in demo_objects)
    for name, user in ((bk, "demo"), (mine, "admin")):
        cloud.openstack("volume", "backup", "delete", name, user=user, parse=False)
        wait_gone(cloud, "volume backup", name)
    cloud.openstack("volume", "delete", vol, user="demo", parse=False)
    cloud.openstack("volume", "delete", avol, parse=False)
