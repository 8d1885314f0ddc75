"""ReadCache: a cached read is never served after a write committed in this process, nor
after its TTL; a value computed while a write landed is not stored."""

from __future__ import annotations

import time

from sqlalchemy import text

from pocketstack.api.readcache import MISS, ReadCache
from pocketstack.db import Database


def make_db(tmp_path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with db.write() as s:
        s.execute(text("CREATE TABLE t (x INTEGER)"))
    return db


def test_hit_until_a_write_commits(tmp_path):
    db = make_db(tmp_path)
    cache = ReadCache(db, ttl=60)
    gen = cache.generation()
    cache.put("k", gen, ["a"])
    assert cache.get("k") == ["a"]
    with db.write() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
    assert cache.get("k") is MISS


def test_failed_write_also_invalidates(tmp_path):
    db = make_db(tmp_path)
    cache = ReadCache(db, ttl=60)
    cache.put("k", cache.generation(), 1)
    try:
        with db.write() as s:
            s.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert cache.get("k") is MISS


def test_value_computed_across_a_write_is_not_stored(tmp_path):
    db = make_db(tmp_path)
    cache = ReadCache(db, ttl=60)
    gen = cache.generation()  # read starts
    with db.write() as s:  # a write lands meanwhile
        s.execute(text("INSERT INTO t VALUES (3)"))
    cache.put("k", gen, "maybe stale")
    assert cache.get("k") is MISS


def test_ttl_bounds_what_other_processes_wrote(tmp_path):
    db = make_db(tmp_path)
    cache = ReadCache(db, ttl=0.05)
    cache.put("k", cache.generation(), 1)
    assert cache.get("k") == 1
    time.sleep(0.08)
    assert cache.get("k") is MISS


def test_disabled_with_zero_ttl_and_bounded_size(tmp_path):
    db = make_db(tmp_path)
    off = ReadCache(db, ttl=0)
    off.put("k", off.generation(), 1)
    assert off.get("k") is MISS
    small = ReadCache(db, ttl=60, size=3)
    for i in range(5):
        small.put(i, small.generation(), i)
    assert [small.get(i) for i in range(5)] == [MISS, MISS, 2, 3, 4]
