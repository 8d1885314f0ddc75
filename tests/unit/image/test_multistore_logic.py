"""Multi-store logic and web-download URL filtering, on in-memory stores (no HTTP)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from pocketstack.config import ImageSettings, load_settings
from pocketstack.context import RequestContext
from pocketstack.db import Database, migrate
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.image import data, images, imports, remote
from pocketstack.services.image.service import ImageService
from pocketstack.services.image.webfetch import validate_uri

A = RequestContext(user_id="ua", project_id="pa", roles=frozenset({"member", "reader"}))
ADMIN = RequestContext(user_id="ad", project_id="padmin", roles=frozenset({"admin"}))


@pytest.fixture
def svc(tmp_path):
    settings = load_settings(tmp_path, env={})
    settings.image.seed_default_image = False
    # "low" is configured first and is the default; "high" weighs more.
    settings.image.stores = {"low": {"driver": "fake", "weight": 1},
                             "high": {"driver": "fake", "weight": 5, "description": "H"}}
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


def staged(svc, blob=b"x" * 5000):
    img = images.create(svc, A, {"disk_format": "raw", "container_format": "bare"})
    session = data.begin_upload(svc, A, img["id"], area="staging")
    asyncio.run(data.pump(_chunks(blob), session))
    return img["id"]


def run(svc, image_id, body, ctx=A):
    task = imports.start_import(svc, ctx, image_id, body)
    if task:
        imports.run_import(svc, task)
    return images.show(svc, ctx, image_id)


def test_info_stores_and_weight_order(svc):
    info = svc.info_stores()["stores"]
    assert [(s["id"], s.get("default")) for s in info] == [("low", "true"), ("high", None)]
    assert info[1]["description"] == "H"
    detail = {s["id"]: s["weight"] for s in svc.info_stores(detail=True)["stores"]}
    assert detail == {"low": 1, "high": 5}
    assert svc.order_stores(["low", "high", "nope", "low"]) == ["high", "low"]
    assert "copy-image" in svc.import_methods()


def test_one_store_by_default_offers_no_copy(tmp_path):
    settings = load_settings(tmp_path, env={})
    settings.image.store = "fake"
    assert ImageSettings().stores == {}
    cloud = SimpleNamespace(settings=settings, db=None, services={}, degraded=[])
    one = ImageService(cloud)
    assert list(one.stores) == ["fake"] and one.import_methods() == ["glance-direct"]


def test_import_to_all_stores_orders_by_weight_and_clears_staging(svc):
    iid = staged(svc)
    img = run(svc, iid, {"method": {"name": "glance-direct"}, "all_stores": True})
    assert img["status"] == "active" and img["stores"] == "high,low"
    assert img["os_glance_importing_to_stores"] == "" and img["os_glance_failed_import"] == ""
    assert svc.stores["high"].size(iid) == svc.stores["low"].size(iid) == 5000
    assert svc.store.list_ids("staging") == []
    images.remove(svc, A, iid)
    assert svc.stores["high"].list_ids() == [] and svc.stores["low"].list_ids() == []


def test_import_target_checks(svc):
    iid = staged(svc)
    with pytest.raises(Conflict):
        imports.start_import(svc, A, iid, {"method": {"name": "glance-direct"},
                                           "stores": ["nope"]})
    with pytest.raises(BadRequest):
        imports.start_import(svc, A, iid, {"method": {"name": "glance-direct"},
                                           "stores": ["low"], "all_stores": True})
    with pytest.raises(BadRequest):
        imports.start_import(svc, A, iid, {"method": {"name": "glance-direct"},
                                           "stores": "low"})
    assert images.show(svc, A, iid)["status"] == "uploading"  # nothing changed


def test_failed_store_with_and_without_must_succeed(svc, monkeypatch):
    def broken_writer(image_id, area="images"):
        raise OSError("disk on fire")

    iid = staged(svc)
    monkeypatch.setattr(svc.stores["high"], "writer", broken_writer)
    img = run(svc, iid, {"method": {"name": "glance-direct"}, "all_stores": True,
                         "all_stores_must_succeed": False})
    assert img["status"] == "active" and img["stores"] == "low"
    assert img["os_glance_failed_import"] == "high"
    # must succeed (the default): the copy already made is removed, back to queued
    iid2 = staged(svc)
    img = run(svc, iid2, {"method": {"name": "glance-direct"}, "all_stores": True})
    assert img["status"] == "queued" and "stores" not in img
    assert "high" in img["os_glance_failed_import"]
    assert iid2 not in svc.stores["low"].list_ids()


def test_copy_image_and_delete_from_store(svc):
    img = images.create(svc, A, {"disk_format": "raw", "container_format": "bare"})
    session = data.begin_upload(svc, A, img["id"], store_id="low")
    asyncio.run(data.pump(_chunks(b"y" * 3000), session))
    iid = img["id"]
    assert images.show(svc, A, iid)["stores"] == "low"
    with pytest.raises(Forbidden):  # copy-image is admin's
        imports.start_import(svc, A, iid, {"method": {"name": "copy-image"},
                                           "all_stores": True})
    with pytest.raises(BadRequest):
        imports.start_import(svc, ADMIN, iid, {"method": {"name": "copy-image"},
                                               "stores": ["low"]})
    img = run(svc, iid, {"method": {"name": "copy-image"}, "all_stores": True}, ADMIN)
    assert img["stores"] == "high,low" and img["os_glance_importing_to_stores"] == ""
    # already everywhere: nothing to do, no task
    assert imports.start_import(svc, ADMIN, iid, {"method": {"name": "copy-image"},
                                                  "all_stores": True}) is None
    with pytest.raises(Forbidden):
        imports.delete_from_store(svc, A, "high", iid)
    imports.delete_from_store(svc, ADMIN, "high", iid)
    assert images.show(svc, A, iid)["stores"] == "low"
    assert iid not in svc.stores["high"].list_ids()
    with pytest.raises(NotFound):
        imports.delete_from_store(svc, ADMIN, "high", iid)
    with pytest.raises(Forbidden):
        imports.delete_from_store(svc, ADMIN, "low", iid)
    with pytest.raises(Conflict):
        imports.delete_from_store(svc, ADMIN, "nope", iid)


def test_recover_drops_copies_the_record_does_not_list(svc):
    iid = staged(svc)
    run(svc, iid, {"method": {"name": "glance-direct"}, "stores": ["low"]})
    w = svc.stores["high"].writer(iid)  # a copy-image cut short before its record
    w.write(b"partial")
    w.commit()
    svc.recover()
    assert iid not in svc.stores["high"].list_ids() and iid in svc.stores["low"].list_ids()


@pytest.mark.parametrize("uri,ok", [
    ("http://example.com/a.img", True),
    ("https://example.com:443/a.img", True),
    ("http://example.com:8080/a.img", False),  # Glance's default ports: 80, 443
    ("ftp://example.com/a.img", False),
    ("file:///etc/passwd", False),
    ("http:///nohost", False),
    ("http://example.com:notaport/", False),
    ("", False),
    (None, False),
])
def test_web_download_default_filtering(uri, ok):
    assert validate_uri(ImageSettings(), uri) is ok


def test_web_download_host_lists_normalise_addresses():
    cfg = ImageSettings(web_download_disallowed_hosts="127.0.0.1")
    for spelled in ("127.0.0.1", "127.1", "0x7f.0.0.1", "[::ffff:127.0.0.1]"):
        assert not validate_uri(cfg, f"http://{spelled}/x"), spelled
    assert validate_uri(cfg, "http://10.0.0.1/x")
    only = ImageSettings(web_download_allowed_hosts="127.0.0.1",
                         web_download_disallowed_hosts="10.0.0.1",
                         web_download_allowed_ports="8000")
    assert validate_uri(only, "http://127.0.0.1:8000/x")
    assert not validate_uri(only, "http://127.0.0.1/x")  # port 80 is not in the list
    assert not validate_uri(only, "http://10.0.0.2:8000/x")


def test_glance_download_request_checks():
    with pytest.raises(BadRequest, match="glance_region"):
        remote.check_request({"glance_image_id": "x"})
    with pytest.raises(BadRequest, match="does not look like a UUID"):
        remote.check_request({"glance_image_id": "foo", "glance_region": "R"})
    method = {"glance_image_id": "36d4b546-64a2-4bb9-bdd0-ba676aa48f2c", "glance_region": "R"}
    remote.check_request(method)
    assert method["glance_service_interface"] == "public"


def test_v217_validation_data_checks():
    from pocketstack.services.image.locations import _check_hashes

    assert _check_hashes(None) == {}
    good = {"os_hash_algo": "sha256", "os_hash_value": "ab" * 32}
    assert _check_hashes(good) == good
    for bad in ({"os_hash_value": "ab" * 64}, {"os_hash_algo": "sha123", "os_hash_value": "a"},
                {"os_hash_algo": "sha512", "os_hash_value": "ab" * 32},
                {"os_hash_algo": "sha512", "os_hash_value": "zz" * 64},
                {"checksum": "1" * 32}, "nope"):
        with pytest.raises(BadRequest):
            _check_hashes(bad)


def test_legacy_validation_data_rules():
    from pocketstack.services.image.locations import _legacy_hashes
    from pocketstack.services.image.models import Image

    queued = Image(id="i", status="queued", checksum=None, os_hash_algo=None,
                   os_hash_value=None)
    vd = {"checksum": "1" * 32, "os_hash_algo": "sha512", "os_hash_value": "de" * 64}
    assert _legacy_hashes(None, queued, vd) == vd
    with pytest.raises(Conflict):  # only the configured algorithm
        _legacy_hashes(None, queued, {**vd, "os_hash_algo": "sha256"})
    active = Image(id="i", status="active", **vd)
    assert _legacy_hashes(None, active, vd) == {}  # the same values: fine, nothing new
    for key, other in (("checksum", "2" * 32), ("os_hash_algo", "sha256"),
                       ("os_hash_value", "be" * 64)):
        with pytest.raises(Conflict):
            _legacy_hashes(None, active, {**vd, key: other})


def test_compute_gets_a_cached_copy_of_an_http_backed_image(tmp_path):
    """image_path() of an image whose data is only at an http location: the image cache
    fetches it once, then serves the local copy; deleting the image drops it."""
    import http.server
    import threading

    from pocketstack.services.image import locations

    blob = b"remote image data " * 1000
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "img.raw").write_bytes(blob)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path / "www"), **kw)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.RequestHandlerClass.log_message = lambda *a, **kw: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (tmp_path / "data").mkdir()
        settings = load_settings(tmp_path / "data", env={})
        settings.image.seed_default_image = False
        settings.image.image_cache = True
        settings.image.web_download_allowed_hosts = "127.0.0.1"
        settings.image.web_download_allowed_ports = str(server.server_address[1])
        settings.image.stores = {"local": {"driver": "fake"}, "web": {"driver": "http"}}
        db = Database(settings.database_url)
        migrate.upgrade(db)
        cloud = SimpleNamespace(settings=settings, db=db, services={}, degraded=[])
        svc = ImageService(cloud)
        img = images.create(svc, A, {"disk_format": "raw", "container_format": "bare"})
        url = f"http://127.0.0.1:{server.server_address[1]}/img.raw"
        locations.run_location_import(svc, locations.add_location(svc, A, img["id"],
                                                                  {"url": url}))
        shown = images.show(svc, A, img["id"])
        assert shown["status"] == "active" and shown["stores"] == "web"
        path = svc.image_path(img["id"])
        assert path.read_bytes() == blob and "image-cache" in str(path)
        assert svc.image_path(img["id"]) == path  # served from the cache now
        images.remove(svc, A, img["id"])
        assert not path.exists()
        db.dispose()
    finally:
        server.shutdown()
        server.server_close()
