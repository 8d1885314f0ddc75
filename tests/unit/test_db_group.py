"""Group commit (db/group.py): many threads' jobs share transactions; a job's domain error
only fails that job; a failing statement never half-commits a job nor fails the others."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from pocketstack.db.engine import Database
from pocketstack.db.group import GroupCommitter
from pocketstack.errors import Conflict, NotFound


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'g.db'}")
    with db.write() as s:
        s.execute(text("CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)"))
        s.execute(text("CREATE TABLE log (n INTEGER)"))
    yield db
    db.dispose()


def rows(db: Database, table: str) -> list[tuple]:
    with db.read() as s:
        return [tuple(r) for r in s.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


def test_many_threads_all_commit_in_shared_batches(db):
    group = GroupCommitter(db, "t")
    batches: list[int] = []
    real = db.statements

    def counting():  # count transactions: fewer than jobs means batches were shared
        batches.append(1)
        return real()

    db.statements = counting  # type: ignore[method-assign]
    results: dict[int, int] = {}

    def worker(i: int) -> None:
        def job(st):
            st.run("INSERT INTO kv (k, v) VALUES (:k, :v)", {"k": f"k{i}", "v": i})
            return i * 2
        results[i] = group.submit(job)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: i * 2 for i in range(64)}
    assert len(rows(db, "kv")) == 64
    assert len(batches) < 64


def test_domain_error_fails_only_its_job(db):
    group = GroupCommitter(db, "t")

    def missing(st):
        raise NotFound("no such container")

    with pytest.raises(NotFound):
        group.submit(missing)
    assert group.submit(lambda st: st.run("INSERT INTO kv VALUES ('a', 1)", {})) is None
    assert rows(db, "kv") == [("a", 1)]


def test_failing_statement_never_half_commits(db):
    """A job that writes, then hits a constraint, leaves nothing; jobs batched with it
    still commit (the batch is retried job by job)."""
    group = GroupCommitter(db, "t")
    db_lock_held = threading.Event()
    release = threading.Event()

    # Hold the committer on a first job so the next ones queue up into one batch.
    def blocker(st):
        db_lock_held.set()
        release.wait(5)
        st.run("INSERT INTO log VALUES (0)", {})

    def good(n):
        return lambda st: st.run("INSERT INTO log VALUES (:n)", {"n": n})

    def half(st):
        st.run("INSERT INTO log VALUES (99)", {})  # written, then...
        st.run("INSERT INTO kv (k, v) VALUES ('x', NULL)", {})  # ...NOT NULL fails

    outcomes: dict[str, object] = {}

    def run(name, job):
        try:
            outcomes[name] = group.submit(job)
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = exc

    first = threading.Thread(target=run, args=("blocker", blocker))
    first.start()
    assert db_lock_held.wait(5)
    others = [threading.Thread(target=run, args=(name, job)) for name, job in
              (("g1", good(1)), ("half", half), ("g2", good(2)))]
    for t in others:
        t.start()
    import time

    time.sleep(0.3)  # all three queued behind the blocker
    release.set()
    for t in [first, *others]:
        t.join(10)
    assert isinstance(outcomes["half"], Exception)
    assert outcomes["g1"] is None and outcomes["g2"] is None
    assert sorted(r[0] for r in rows(db, "log")) == [0, 1, 2]  # no 99
    assert rows(db, "kv") == []


def test_constraint_violation_is_conflict(db):
    group = GroupCommitter(db, "t")
    group.submit(lambda st: st.run("INSERT INTO kv VALUES ('a', 1)", {}))
    with pytest.raises(Conflict):
        group.submit(lambda st: st.run("INSERT INTO kv VALUES ('a', 2)", {}))
    assert rows(db, "kv") == [("a", 1)]
