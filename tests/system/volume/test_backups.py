"""Backups on the real file driver (root): the restored volume holds exactly the source's
bytes (full and incremental, to a new and to an existing volume), and kill -9 while a
backup and a restore are running leaves nothing in ``creating``/``restoring`` after the
restart: the work is resumed and the bytes still match."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import LiveCloud

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup")
                                or not shutil.which("qemu-img"),
                                reason="needs root, losetup and qemu-img")

MiB = 1 << 20


def sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def scribble(path: Path, offset: int, size: int) -> None:
    """Random bytes into the volume file, as a guest would write them."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(os.urandom(size))
        fh.flush()
        os.fsync(fh.fileno())


def wait(conn, kind: str, rid: str, want: set[str], timeout: float = 120) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        body = conn.block_storage.get(f"/{kind}s/{rid}",
                                      headers={"OpenStack-API-Version": "volume 3.60"}).json()
        status = body[kind]["status"]
        if status in want:
            return body[kind]
        assert time.monotonic() < deadline, f"{kind} {rid} stuck in {status}"
        time.sleep(0.2)


def cli(cloud: LiveCloud, *args: str) -> dict:
    res = subprocess.run(["openstack", *args, "-f", "json"], env=cloud.env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_backup_restore_bytes_and_kill9(tmp_path_factory):
    root = Path(f"/tmp/ps-volume-backup-{uuid.uuid4().hex[:8]}")
    cloud = LiveCloud(root / "data", extra_env={"POCKETSTACK_VOLUME__DRIVER": "file"})
    voldir = root / "data" / "volumes"
    try:
        cloud.start()
        conn = cloud.sdk()
        src = cli(cloud, "volume", "create", "--size", "4", "ps-bk-src")
        wait(conn, "volume", src["id"], {"available"})
        src_file = voldir / f"volume-{src['id']}.raw"
        scribble(src_file, 0, 48 * MiB)
        scribble(src_file, 1536 * MiB + 12345, 3 * MiB)

        # a full backup, killed while it copies; the restart resumes it
        full = cli(cloud, "volume", "backup", "create", "--name", "ps-bk-full", src["id"])
        before = conn.block_storage.get(f"/backups/{full['id']}").json()["backup"]["status"]
        cloud.stop(kill=True)
        assert before == "creating"  # the kill really interrupted the copy
        cloud.start()
        conn = cloud.sdk()
        shown = wait(conn, "backup", full["id"], {"available", "error"})
        assert shown["status"] == "available", shown
        assert wait(conn, "volume", src["id"], {"available"})["status"] == "available"
        full_sha = sha(src_file)

        # change 1 MiB and take an incremental backup: it stores only what changed
        scribble(src_file, 700 * MiB, MiB)
        inc = cli(cloud, "volume", "backup", "create", "--incremental", "--name", "ps-bk-inc",
                  src["id"])
        inc_shown = wait(conn, "backup", inc["id"], {"available"})
        assert inc_shown["is_incremental"] is True
        assert inc_shown["object_count"] == 2  # one changed chunk and the metadata
        inc_sha = sha(src_file)

        # restore the incremental to a new volume, killed mid-restore: resumed
        res = conn.block_storage.post(f"/backups/{inc['id']}/restore",
                                      json={"restore": {"name": "ps-bk-restored"}})
        assert res.status_code == 202, res.text
        new_id = res.json()["restore"]["volume_id"]
        before = wait(conn, "volume", new_id, {"restoring-backup", "error_restoring"})["status"]
        cloud.stop(kill=True)
        assert before == "restoring-backup"  # the kill really interrupted the restore
        cloud.start()
        conn = cloud.sdk()
        assert wait(conn, "backup", inc["id"], {"available"})["fail_reason"] is None
        assert wait(conn, "volume", new_id, {"available"})["bootable"] == "false"
        assert sha(voldir / f"volume-{new_id}.raw") == inc_sha

        # restore the full backup over that (existing) volume: back to the older bytes
        res = conn.block_storage.post(f"/backups/{full['id']}/restore",
                                      json={"restore": {"volume_id": new_id}})
        assert res.status_code == 202, res.text
        wait(conn, "backup", full["id"], {"available"})
        wait(conn, "volume", new_id, {"available"})
        assert sha(voldir / f"volume-{new_id}.raw") == full_sha

        # nothing is left in a transitional status
        backups = conn.block_storage.get("/backups/detail").json()["backups"]
        assert {b["status"] for b in backups} == {"available"}
        for bid in (inc["id"], full["id"]):
            assert conn.block_storage.delete(f"/backups/{bid}").status_code == 202
            deadline = time.monotonic() + 60
            while conn.block_storage.get(f"/backups/{bid}").status_code != 404:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        objects = cloud.sdk().object_store.objects("volumebackups")
        assert [o.name for o in objects] == []
        for vid in (new_id, src["id"]):
            conn.block_storage.delete(f"/volumes/{vid}")
    finally:
        cloud.stop()
        subprocess.run([sys.executable, "-m", "pocketstack", "down", "--purge",
                        "--data-dir", str(root / "data")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
