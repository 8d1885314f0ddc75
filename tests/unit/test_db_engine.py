"""db.write() on SQLite: writers queue behind one lock (BEGIN IMMEDIATE), never fail with
"database is locked"; readers are not blocked by a writer (WAL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Integer, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pocketstack.db import Database


class _Base(DeclarativeBase):
    pass


class Counter(_Base):
    __tablename__ = "counter"
    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    _Base.metadata.create_all(database.engine)
    with database.write() as s:
        s.add(Counter(name="c", value=0))
    yield database
    database.dispose()


def test_concurrent_read_modify_write_is_serialised(db):
    """24 threads x 25 increments, each a read then a write in one transaction: with
    deferred transactions some would fail ("database is locked") or lose updates."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(25):
                with db.write() as s:
                    row = s.get(Counter, "c")
                    row.value += 1
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as s:
        assert s.get(Counter, "c").value == 24 * 25


def test_second_process_style_connection_waits_instead_of_failing(tmp_path, db):
    """Another Database on the same file (another process, e.g. the CLI) also queues."""
    other = Database(db.url)
    try:
        done = threading.Event()
        with db.write() as s:
            s.get(Counter, "c").value = 100

            def writer() -> None:
                with other.write() as s2:
                    s2.get(Counter, "c").value += 1
                done.set()

            t = threading.Thread(target=writer)
            t.start()
            assert not done.wait(0.3)  # blocked behind our open write, not failed
        t.join(10)
        assert done.is_set()
        with db.read() as s:
            assert s.get(Counter, "c").value == 101
    finally:
        other.dispose()


def test_readers_are_not_blocked_by_a_writer(db):
    seen: list[int] = []
    with db.write() as s:
        s.get(Counter, "c").value = 42
        s.flush()

        def reader() -> None:
            with db.read() as r:
                seen.append(r.scalars(select(Counter.value)).one())

        t = threading.Thread(target=reader)
        t.start()
        t.join(5)
        assert not t.is_alive(), "a reader waited for the writer"
    assert seen == [0]  # it saw the last committed value
    with db.read() as s:
        assert s.get(Counter, "c").value == 42


def test_exception_rolls_back(db):
    with pytest.raises(KeyError):
        with db.write() as s:
            s.get(Counter, "c").value = 7
            raise KeyError("boom")
    with db.read() as s:
        assert s.get(Counter, "c").value == 0


def test_nested_write_in_one_thread_is_refused(db):
    with db.write():
        with pytest.raises(RuntimeError, match="nested"):
            with db.write():
                pass
    with db.write() as s:  # the lock was released
        s.get(Counter, "c").value = 1


def test_duplicate_insert_is_a_conflict_not_a_crash(db):
    from pocketstack.errors import Conflict

    with pytest.raises(Conflict) as info:
        with db.write() as s:
            s.add(Counter(name="c", value=5))
    assert info.value.status == 409 and "Duplicate" in str(info.value)
    with db.write() as s:  # the lock and the connection are usable afterwards
        s.get(Counter, "c").value = 3
    with db.read() as s:
        assert s.get(Counter, "c").value == 3
