"""The store's listing semantics (Swift's prefix/delimiter/marker/end_marker/reverse),
counters, versioning and expiry, on a real SQLite database and filesystem driver."""

from __future__ import annotations

import time

import pytest

from pocketstack.db import Database
from pocketstack.db.models import metadata
from pocketstack.drivers.objects.filesystem import FilesystemObjectDriver
from pocketstack.errors import Conflict, NotFound
from pocketstack.services.object_store.store import ObjectStore, OverQuota

ACCOUNT = "AUTH_p1"


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    metadata.create_all(db.engine)
    s = ObjectStore(db, FilesystemObjectDriver(tmp_path / "objects", fsync=False))
    s.put_container(ACCOUNT, "c", {})
    yield s
    db.dispose()


def put(store: ObjectStore, name: str, data: bytes = b"x", container: str = "c", **kw):
    w = store.driver.writer()
    w.write(data)
    return store.commit(ACCOUNT, container, name, w.commit(), content_type="text/plain",
                        meta={}, **kw)


def names(items):
    return [i if isinstance(i, str) else i.name for i in items]


def test_listing_prefix_delimiter_markers(store):
    for n in ["a", "b/1", "b/2", "b/c/3", "c", "d/1", "\u00e9t\u00e9"]:
        put(store, n)
    ls = lambda **kw: names(store.list_objects(ACCOUNT, "c", **kw))  # noqa: E731
    assert ls() == ["a", "b/1", "b/2", "b/c/3", "c", "d/1", "\u00e9t\u00e9"]
    assert ls(delimiter="/") == ["a", "b/", "c", "d/", "\u00e9t\u00e9"]
    assert ls(prefix="b/", delimiter="/") == ["b/1", "b/2", "b/c/"]
    assert ls(marker="b/2") == ["b/c/3", "c", "d/1", "\u00e9t\u00e9"]
    assert ls(end_marker="b/2") == ["a", "b/1"]
    assert ls(marker="a", end_marker="c") == ["b/1", "b/2", "b/c/3"]
    assert ls(limit=2, delimiter="/") == ["a", "b/"]
    assert ls(marker="b/", delimiter="/", limit=2) == ["c", "d/"]
    assert ls(reverse=True) == ["\u00e9t\u00e9", "d/1", "c", "b/c/3", "b/2", "b/1", "a"]
    assert ls(reverse=True, delimiter="/") == ["\u00e9t\u00e9", "d/", "c", "b/", "a"]
    assert ls(reverse=True, marker="c", limit=2) == ["b/c/3", "b/2"]


def test_delimiter_pages_continue_after_subdir(store):
    for n in ["x/1", "x/2", "y"]:
        put(store, n)
    first = names(store.list_objects(ACCOUNT, "c", delimiter="/", limit=1))
    assert first == ["x/"]
    rest = names(store.list_objects(ACCOUNT, "c", delimiter="/", marker=first[-1]))
    # paging with the subdir as marker must not return it again (swiftclient loops)
    assert rest == ["y"]


def test_counters_and_overwrite(store):
    put(store, "o", b"12345")
    put(store, "o", b"12")
    c = store.container(ACCOUNT, "c")
    assert (c.object_count, c.bytes_used) == (1, 2)
    assert store.account(ACCOUNT).bytes_used == 2
    store.delete(ACCOUNT, "c", "o")
    c = store.container(ACCOUNT, "c")
    assert (c.object_count, c.bytes_used) == (0, 0)
    with pytest.raises(NotFound):
        store.delete(ACCOUNT, "c", "o")


def test_overwrite_deletes_old_blob(store):
    """The replaced blob is unlinked by the store's background reaper, soon after."""
    first = put(store, "o", b"old")
    second = put(store, "o", b"new")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            store.driver.size(first.file_id)
        except FileNotFoundError:
            break
        time.sleep(0.01)
    with pytest.raises(FileNotFoundError):
        store.driver.size(first.file_id)
    assert store.driver.size(second.file_id) == 3


def test_container_delete_conflict_and_expired_objects(store):
    put(store, "o")
    with pytest.raises(Conflict):
        store.delete_container(ACCOUNT, "c")
    put(store, "o", delete_at=int(time.time()) - 1)
    store.delete_container(ACCOUNT, "c")  # only an expired object is left


def test_versions_location_restores_previous(store):
    store.put_container(ACCOUNT, "v", {})
    store.update_container_meta(ACCOUNT, "c", {"X-Versions-Location": "v"})
    put(store, "o", b"one")
    put(store, "o", b"two!")
    assert store.container(ACCOUNT, "v").object_count == 1
    store.delete(ACCOUNT, "c", "o")
    back = store.get(ACCOUNT, "c", "o")
    assert b"".join(store.read(back)) == b"one"
    assert store.container(ACCOUNT, "v").object_count == 0
    store.delete(ACCOUNT, "c", "o")
    assert store.container(ACCOUNT, "c").object_count == 0


def test_quota(store):
    store.update_container_meta(ACCOUNT, "c", {"X-Container-Meta-Quota-Bytes": "4"})
    put(store, "a", b"1234")
    with pytest.raises(OverQuota):
        put(store, "b", b"1")
    assert store.container(ACCOUNT, "c").object_count == 1


def test_expired_objects_are_hidden_and_reaped(store):
    obj = put(store, "gone", delete_at=int(time.time()) - 1)
    with pytest.raises(NotFound):
        store.get(ACCOUNT, "c", "gone")
    assert names(store.list_objects(ACCOUNT, "c")) == []
    assert store.reap_expired() == 1
    with pytest.raises(FileNotFoundError):
        store.driver.size(obj.file_id)
    assert store.container(ACCOUNT, "c").object_count == 0


def test_sweep_removes_only_unreferenced_blobs(store):
    kept = put(store, "kept")
    w = store.driver.writer()
    w.write(b"orphan")
    orphan = w.commit()  # a crash between blob and commit leaves this
    half = store.driver.writer()
    half.write(b"torn")  # and a crash mid-write leaves a temp file
    assert store.sweep_orphans(older_than=time.time() + 1) == 2
    assert store.driver.size(kept.file_id) == 1
    with pytest.raises(FileNotFoundError):
        store.driver.size(orphan.file_id)


def test_concurrent_puts_keep_container_counters_exact(store):
    """Group commit batches the counter updates per container: many threads writing new
    and replaced objects still leave object_count/bytes_used equal to the rows."""
    import threading

    store.put_container(ACCOUNT, "d", {})

    def writer(i: int) -> None:
        for j in range(20):
            put(store, f"k{(i * 7 + j) % 30}", b"y" * (i + j), container="c")
            put(store, f"n{i}-{j}", b"z" * j, container="d")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name in ("c", "d"):
        rec = store.container(ACCOUNT, name)
        listed = store.list_objects(ACCOUNT, name, limit=10000)
        assert rec.object_count == len(listed)
        assert rec.bytes_used == sum(o.size for o in listed)
