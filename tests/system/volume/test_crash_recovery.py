"""kill -9 while volumes are being created, attached (exported) and deleted: after the
restart nothing stays in a transitional status, every volume file has its row, and no loop
device over this cloud's volume files is left behind. Real file driver (root)."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from pocketstack.drivers.volume import _host
from tests.conftest import LiveCloud

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("losetup")
                                or not shutil.which("qemu-img"),
                                reason="needs root, losetup and qemu-img")

TRANSITIONAL = {"creating", "downloading", "attaching", "reserved", "detaching", "deleting",
                "extending", "uploading"}


def action(conn, volume_id: str, body: dict) -> int:  # noqa: ANN001
    resp = conn.block_storage.post(f"/volumes/{volume_id}/action", json=body,
                                   headers={"OpenStack-API-Version": "volume 3.0"})
    return resp.status_code


def test_kill9_during_create_attach_delete(tmp_path_factory):
    root = Path(f"/tmp/ps-volume-crash-{uuid.uuid4().hex[:8]}")
    cloud = LiveCloud(root / "data", extra_env={"POCKETSTACK_VOLUME__DRIVER": "file"})
    voldir = root / "data" / "volumes"
    try:
        cloud.start()
        conn = cloud.sdk()
        keep = [conn.block_storage.create_volume(size=1, name=f"ps-crash-keep-{i}")
                for i in range(3)]
        for v in keep:
            conn.block_storage.wait_for_status(v, "available", wait=60)
        # in flight at the kill: an export with no attachment yet (initialize_connection),
        # a reservation, a delete, and a burst of creates
        assert action(conn, keep[0].id, {"os-initialize_connection": {
            "connector": {"host": "ps-crash-host"}}}) == 200
        assert _host.loops_for(voldir / f"volume-{keep[0].id}.raw")
        assert action(conn, keep[1].id, {"os-reserve": None}) == 202
        conn.block_storage.delete_volume(keep[2])
        for i in range(8):
            conn.block_storage.create_volume(size=1, name=f"ps-crash-new-{i}")
        cloud.stop(kill=True)

        cloud.start()
        conn = cloud.sdk()
        deadline = time.monotonic() + 60
        while True:
            vols = list(conn.block_storage.volumes(details=True))
            busy = [v for v in vols if v.status in TRANSITIONAL]
            if not busy:
                break
            assert time.monotonic() < deadline, [(v.name, v.status) for v in busy]
            time.sleep(0.3)
        by_name = {v.name: v for v in vols}
        assert "ps-crash-keep-2" not in by_name  # the delete finished
        assert by_name["ps-crash-keep-0"].status == "available"
        assert by_name["ps-crash-keep-1"].status == "available"
        assert {f"ps-crash-new-{i}" for i in range(8)} <= set(by_name)
        assert all(v.status == "available" for v in vols), [(v.name, v.status) for v in vols]
        files = {p.name for p in voldir.glob("volume-*.raw")}
        assert files == {f"volume-{v.id}.raw" for v in vols}
        assert not list(voldir.glob("*.part"))
        leaked = [dev for dev, back in _host.loop_devices() if back.startswith(str(voldir))]
        assert leaked == []
        for v in vols:
            conn.block_storage.delete_volume(v)
        for v in vols:
            conn.block_storage.wait_for_delete(v, wait=60)
        assert list(voldir.glob("volume-*")) == []
    finally:
        # what the cloud made on the host (cgroups, namespaces, bridges), by its names
        cloud.destroy()
        if voldir.exists():
            for f in voldir.glob("volume-*.raw"):
                _host.loop_detach(f)
        shutil.rmtree(root, ignore_errors=True)
