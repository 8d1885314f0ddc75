"""Volume service logic on the fake driver: state machine, quotas under concurrency, crash
recovery, isolation between projects, snapshot contents."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pocketstack.config import load_settings
from pocketstack.context import RequestContext
from pocketstack.db import Database
from pocketstack.db import migrate
from pocketstack.drivers.volume.fake import FakeVolumeDriver
from pocketstack.errors import BadRequest, NotFound, OverQuota
from pocketstack.services.volume import (attachments, quotas, snapshots, volume_actions,
                                         volumes)
from pocketstack.services.volume.models import Volume, VolumeAttachment
from pocketstack.services.volume.service import VolumeService


class FakeCloud:
    def __init__(self, settings, db):  # noqa: ANN001
        self.settings = settings
        self.db = db
        self.services: dict = {}
        self.degraded: list[str] = []


@pytest.fixture
def svc(tmp_path: Path):
    settings = load_settings(tmp_path, env={})
    db = Database(settings.database_url)
    migrate.upgrade(db)
    service = VolumeService(FakeCloud(settings, db), driver=FakeVolumeDriver())
    service.bootstrap()
    yield service
    service.drain()
    if service._executor is not None:
        service._executor.shutdown(wait=True)
    db.dispose()


def member(project: str = "p1", user: str = "u1") -> RequestContext:
    return RequestContext(user_id=user, project_id=project, roles=frozenset({"member", "reader"}))


ADMIN = RequestContext(user_id="admin", project_id="adminp",
                       roles=frozenset({"admin", "member", "reader"}))


def make(svc, ctx, size=1, **body):  # noqa: ANN001, ANN201
    vol = volumes.create(svc, ctx, {"size": size, **body})
    svc.drain()
    return volumes.get(svc, ctx, vol.id)


def test_create_then_delete(svc):
    vol = make(svc, member(), name="v")
    assert vol.status == "available"
    assert svc.driver.volume_exists(vol.id)
    volumes.delete(svc, member(), vol.id)
    svc.drain()
    assert not svc.driver.volume_exists(vol.id)
    with pytest.raises(NotFound):
        volumes.get(svc, member(), vol.id)


@pytest.mark.parametrize("size", [0, -1, "#$%", None, True, "1.5"])
def test_bad_sizes_are_400_and_create_nothing(svc, size):
    with pytest.raises(BadRequest):
        volumes.create(svc, member(), {"size": size})
    with svc.db.read() as s:
        assert s.query(Volume).count() == 0


def test_other_project_cannot_see_or_delete(svc):
    vol = make(svc, member("p1"))
    with pytest.raises(NotFound):
        volumes.get(svc, member("p2", "u2"), vol.id)
    with pytest.raises(NotFound):
        volumes.delete(svc, member("p2", "u2"), vol.id)
    assert volumes.get(svc, ADMIN, vol.id).id == vol.id


def test_quota_holds_under_20_concurrent_creates(svc):
    with svc.db.write() as s:
        quotas.update(s, "p1", {"gigabytes": 5, "volumes": 100})
    ok, over, errors = [], [], []

    def create() -> None:
        try:
            ok.append(volumes.create(svc, member(), {"size": 1}).id)
        except OverQuota as exc:
            over.append(exc)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(ok) == 5 and len(over) == 15
    assert all(e.status == 413 for e in over)
    svc.drain()
    with svc.db.read() as s:
        assert quotas.usage(s, "p1")["gigabytes"] == 5


def test_snapshot_gigabytes_count_and_volume_limit_message(svc):
    with svc.db.write() as s:
        quotas.update(s, "p1", {"volumes": 1})
    vol = make(svc, member())
    with pytest.raises(OverQuota, match="Maximum number of volumes allowed"):
        volumes.create(svc, member(), {"size": 1})
    snapshots.create(svc, member(), {"volume_id": vol.id})
    svc.drain()
    with svc.db.read() as s:
        used = quotas.usage(s, "p1")
    assert used["gigabytes"] == 2 and used["snapshots"] == 1


def test_snapshot_holds_the_bytes_and_new_volume_gets_them(svc):
    vol = make(svc, member())
    svc.driver.write_bytes(vol.id, 0, b"hello-snapshot")
    snap = snapshots.create(svc, member(), {"volume_id": vol.id})
    svc.drain()
    svc.driver.write_bytes(vol.id, 0, b"overwritten!!!")
    new = make(svc, member(), size=2, snapshot_id=snap.id)
    assert new.status == "available" and new.size == 2
    assert svc.driver.read_bytes(new.id, 0, 14) == b"hello-snapshot"


def test_volume_with_snapshots_needs_cascade(svc):
    vol = make(svc, member())
    snapshots.create(svc, member(), {"volume_id": vol.id})
    svc.drain()
    with pytest.raises(BadRequest):
        volumes.delete(svc, member(), vol.id)
    volumes.delete(svc, member(), vol.id, cascade=True)
    svc.drain()
    assert not svc.driver.volume_exists(vol.id)


def test_attach_detach_and_delete_attached_is_400(svc):
    vol = make(svc, member())
    result = svc.attach(member(), vol.id, "11111111-1111-1111-1111-111111111111", "/dev/vdb")
    assert result["device_path"].startswith("/dev/fake")
    assert volumes.get(svc, member(), vol.id).status == "in-use"
    with pytest.raises(BadRequest):
        volumes.delete(svc, member(), vol.id)
    svc.detach(member(), vol.id, result["attachment_id"])
    assert volumes.get(svc, member(), vol.id).status == "available"
    assert vol.id not in svc.driver.exports()


def test_recovery_leaves_nothing_in_flight(svc):
    creating = make(svc, member())
    attaching = make(svc, member())
    deleting = make(svc, member())
    with svc.db.write() as s:
        v = s.get(Volume, creating.id)
        v.status, v.task = "creating", {"kind": "empty"}
        svc.driver.delete_volume(creating.id)  # the crash came before the driver ran
        a = s.get(Volume, attaching.id)
        a.status = "attaching"
        a.attachments.append(VolumeAttachment(instance_uuid="s1", attach_status="attaching"))
        d = s.get(Volume, deleting.id)
        d.status, d.task = "deleting", {"kind": "delete"}
    svc.driver.export(attaching.id)  # the export made just before the crash
    svc.recover()
    svc.drain()
    assert volumes.get(svc, member(), creating.id).status == "available"
    assert svc.driver.volume_exists(creating.id)
    assert volumes.get(svc, member(), attaching.id).status == "available"
    assert attaching.id not in svc.driver.exports()
    with pytest.raises(NotFound):
        volumes.get(svc, member(), deleting.id)


def test_attachments_api_flow(svc):
    vol = make(svc, member())
    att = attachments.create(svc, member(), vol.id, "22222222-2222-2222-2222-222222222222")
    assert att.attach_status == "reserved"
    assert volumes.get(svc, member(), vol.id).status == "reserved"
    att = attachments.update(svc, member(), att.id, {"host": "h", "mountpoint": "/dev/vdc"})
    assert att.device_path
    attachments.complete(svc, member(), att.id)
    assert volumes.get(svc, member(), vol.id).status == "in-use"
    assert attachments.delete(svc, member(), att.id) == "available"
    assert vol.id not in svc.driver.exports()


def test_extend_and_readonly(svc):
    vol = make(svc, member())
    volume_actions.extend(svc, member(), vol.id, 3)
    svc.drain()
    assert volumes.get(svc, member(), vol.id).size == 3
    with pytest.raises(BadRequest):
        volume_actions.extend(svc, member(), vol.id, 2)
    volume_actions.update_readonly(svc, member(), vol.id, True)
    assert volumes.get(svc, member(), vol.id).readonly is True


def test_type_whose_extra_specs_no_backend_satisfies_gives_error_and_message(svc):
    from pocketstack.services.volume import scheduling, types
    from pocketstack.services.volume.models import Message

    with svc.db.write() as s:
        bad = types.create(s, ADMIN, {"name": "bad", "extra_specs": {
            "storage_protocol": "iSCSI-nope", "hw:cpu_policy": "ignored-scope"}})
        good = types.create(s, ADMIN, {"name": "good", "extra_specs": {
            "volume_backend_name": "fake", "capabilities:thin_provisioning_support": "<is> True",
            "free_capacity_gb": ">= 1"}})
    vol = make(svc, member(), volume_type=bad.id)
    assert vol.status == "error" and not svc.driver.volume_exists(vol.id)
    with svc.db.read() as s:
        msgs = [m for m in s.query(Message) if m.resource_uuid == vol.id]
    assert msgs and msgs[0].user_message == scheduling.NO_VALID_BACKEND
    assert make(svc, member(), volume_type=good.id).status == "available"
    assert scheduling.match("10", ">= 2") and not scheduling.match("x", "<in> y")
