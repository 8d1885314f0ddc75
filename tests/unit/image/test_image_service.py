"""The image service on an in-memory store and a scratch SQLite database: status
transitions of uploads, patches, visibility. Fast: no HTTP, no server."""

from __future__ import annotations

import asyncio
import hashlib
import struct
from types import SimpleNamespace

import pytest

from pocketstack.config import load_settings
from pocketstack.context import RequestContext
from pocketstack.db import Database, migrate
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound, OverQuota
from pocketstack.services.image import data, images, imports, members
from pocketstack.services.image.formats import InvalidImageData
from pocketstack.services.image.service import ImageService

A = RequestContext(user_id="ua", project_id="pa", roles=frozenset({"member", "reader"}))
B = RequestContext(user_id="ub", project_id="pb", roles=frozenset({"member", "reader"}))
ADMIN = RequestContext(user_id="ad", project_id="padmin", roles=frozenset({"admin"}))


@pytest.fixture
def svc(tmp_path):
    settings = load_settings(tmp_path, env={})
    settings.image.store = "fake"
    settings.image.seed_default_image = False
    db = Database(settings.database_url)
    migrate.upgrade(db)
    cloud = SimpleNamespace(settings=settings, db=db, services={}, degraded=[])
    service = ImageService(cloud)
    cloud.services["image"] = service
    yield service
    db.dispose()


async def _chunks(*parts: bytes):
    for p in parts:
        yield p


def upload(svc, ctx, image_id, *parts, md5=None, length=None):
    session = data.begin_upload(svc, ctx, image_id, content_length=length, content_md5=md5)
    return asyncio.run(data.pump(_chunks(*parts), session))


def new(svc, ctx=A, **body):
    body.setdefault("disk_format", "raw")
    body.setdefault("container_format", "bare")
    return images.create(svc, ctx, body)


def test_upload_hashes_and_activates(svc):
    img = new(svc)
    blob = b"a" * 5_000_000
    out = upload(svc, A, img["id"], blob[:3_000_000], blob[3_000_000:])
    assert out["status"] == "active" and out["size"] == len(blob)
    assert out["checksum"] == hashlib.md5(blob).hexdigest()
    assert out["os_hash_value"] == hashlib.sha512(blob).hexdigest()
    assert b"".join(svc.store.read(img["id"])) == blob
    with pytest.raises(Conflict):
        upload(svc, A, img["id"], b"again")


def test_unsafe_data_kills_the_image_and_stores_nothing(svc):
    img = new(svc, disk_format="qcow2")
    hdr = bytearray(512)
    hdr[0:4] = b"QFI\xfb"
    struct.pack_into(">IQI", hdr, 4, 2, 300, 5)
    struct.pack_into(">I", hdr, 20, 16)
    with pytest.raises(InvalidImageData):
        upload(svc, A, img["id"], bytes(hdr))
    assert images.show(svc, A, img["id"])["status"] == "killed"
    assert svc.store.blobs == {}


def test_bad_md5_and_quota_restore_queued(svc):
    img = new(svc)
    with pytest.raises(BadRequest):
        upload(svc, A, img["id"], b"xyz", md5="0" * 32)
    assert images.show(svc, A, img["id"])["status"] == "queued"
    svc.settings.image.image_size_total = 1  # MiB
    with pytest.raises(OverQuota) as exc:
        upload(svc, A, img["id"], b"q" * (1 << 20), b"q")
    assert exc.value.status == 413
    assert images.show(svc, A, img["id"])["status"] == "queued"
    assert svc.store.blobs == {}


def test_other_projects_cannot_see_or_write_private_images(svc):
    img = new(svc, visibility="private")
    with pytest.raises(NotFound):
        images.show(svc, B, img["id"])
    with pytest.raises(NotFound):
        data.begin_upload(svc, B, img["id"])
    with pytest.raises(NotFound):
        images.remove(svc, B, img["id"])
    assert images.show(svc, ADMIN, img["id"])["id"] == img["id"]


def test_members_see_but_do_not_write(svc):
    img = new(svc, visibility="shared")
    members.add(svc, A, img["id"], {"member": "pb"})
    assert images.show(svc, B, img["id"])["id"] == img["id"]
    with pytest.raises(Forbidden):
        data.begin_upload(svc, B, img["id"])
    with pytest.raises(Forbidden):
        members.update(svc, A, img["id"], "pb", {"status": "accepted"})
    assert members.update(svc, B, img["id"], "pb", {"status": "accepted"})["status"] == \
        "accepted"
    assert images.show(svc, A, img["id"])["status"] == "queued"


def test_non_admin_cannot_publicize(svc):
    with pytest.raises(Forbidden):
        new(svc, visibility="public")
    assert new(svc, ADMIN, visibility="public")["visibility"] == "public"


@pytest.mark.parametrize("ctype, body, exc", [
    ("application/json", [], "UnsupportedMediaType"),
    ("application/openstack-images-v2.1-json-patch", {}, "BadRequest"),
    ("application/openstack-images-v2.1-json-patch", [{"op": "test", "path": "/a"}],
     "BadRequest"),
    ("application/openstack-images-v2.1-json-patch", [{"op": "add", "path": "/size",
                                                        "value": 1}], "Forbidden"),
    ("application/openstack-images-v2.0-json-patch", [{"add": "/a", "remove": "/b"}],
     "BadRequest"),
    ("application/openstack-images-v2.1-json-patch", [{"op": "add", "path": "/a~2",
                                                        "value": "1"}], "BadRequest"),
])
def test_parse_patch_rejects(ctype, body, exc):
    with pytest.raises(Exception) as err:
        images.parse_patch(ctype, body)
    assert type(err.value).__name__ == exc


def test_patch_applies_atomically(svc):
    img = new(svc, os_distro="debian")
    changes = images.parse_patch("application/openstack-images-v2.1-json-patch", [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "remove", "path": "/missing"}])
    with pytest.raises(Conflict):
        images.update(svc, A, img["id"], changes)
    assert images.show(svc, A, img["id"])["name"] is None
    changes = images.parse_patch("application/openstack-images-v2.0-json-patch", [
        {"replace": "/name", "value": "renamed"}, {"add": "/hw_video_model", "value": "qxl"},
        {"remove": "/os_distro"}, {"replace": "/tags", "value": ["a", "b"]}])
    out = images.update(svc, A, img["id"], changes)
    assert out["name"] == "renamed" and out["hw_video_model"] == "qxl"
    assert "os_distro" not in out and out["tags"] == ["a", "b"]


def test_get_image_for_other_slices_separates_properties(svc):
    img = new(svc, kernel_id="00000000-1111-2222-3333-444455556666", hw_video_model="qxl")
    got = svc.get_image(A, img["id"])
    assert got["hw_video_model"] == "qxl"  # as the API shows it
    assert got["properties"] == {"kernel_id": "00000000-1111-2222-3333-444455556666",
                                 "hw_video_model": "qxl"}
    with pytest.raises(NotFound):  # shared, but B is no member
        svc.get_image(B, img["id"])


def test_filesystem_store_keeps_zero_blocks_sparse(tmp_path):
    from pocketstack.drivers.images.filesystem import FilesystemImageStore

    store = FilesystemImageStore(tmp_path)
    w = store.writer("11111111-2222-3333-4444-555555555555")
    w.write(b"head" + bytes((4 << 20) - 4))
    w.write(bytes(8 << 20))  # all zeros: holes
    w.write(b"tail")
    assert w.read_at(0, 4) == b"head" and w.read_at((12 << 20), 4) == b"tail"
    w.commit()
    path = store.path("11111111-2222-3333-4444-555555555555")
    assert path.stat().st_size == (12 << 20) + 4
    assert path.stat().st_blocks * 512 < (4 << 20)  # the zero blocks take no space
    data = b"".join(store.read("11111111-2222-3333-4444-555555555555"))
    assert data[:4] == b"head" and data[-4:] == b"tail" and data.count(0) == len(data) - 8
    # a trailing hole is kept in the size
    w = store.writer("11111111-2222-3333-4444-666666666666")
    w.write(b"x" + bytes((2 << 20) - 1) + bytes(1 << 20))
    w.commit()
    assert store.size("11111111-2222-3333-4444-666666666666") == 3 << 20
    assert store.sweep() == 0 and not list((tmp_path / "tmp").iterdir())


def test_recover_after_a_crash(svc):
    saving = new(svc)
    data.begin_upload(svc, A, saving["id"])  # the process "dies" while streaming
    staged = new(svc)
    session = data.begin_upload(svc, A, staged["id"], area="staging")
    asyncio.run(data.pump(_chunks(b"s" * 1000), session))
    importing = imports.start_import(svc, A, staged["id"], {"method": {"name": "glance-direct"}})
    w = svc.store.writer("99999999-9999-9999-9999-999999999999")
    w.write(b"orphan")
    w.commit()  # data whose record is gone
    svc.recover()
    assert images.show(svc, A, saving["id"])["status"] == "queued"
    assert images.show(svc, A, staged["id"])["status"] == "uploading"  # staged data kept
    assert svc.show_task(ADMIN, importing)["status"] == "failure"
    assert svc.store.list_ids("images") == []
    assert svc.store.list_ids("staging") == [staged["id"]]
    imports.run_import(svc, imports.start_import(svc, A, staged["id"],
                                                 {"method": {"name": "glance-direct"}}))
    assert images.show(svc, A, staged["id"])["status"] == "active"
