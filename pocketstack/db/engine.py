"""Engine and sessions.

Services open short transactions with ``db.read()`` / ``db.write()`` and never hold one
across an ``await``: service code is synchronous and the HTTP layer runs it in a worker
thread. On SQLite (WAL) readers never block; writers take ``BEGIN IMMEDIATE`` under a
process-wide lock, so concurrent writers queue instead of failing with "database is locked"
(a deferred transaction that upgrades to a write can fail immediately, whatever the
busy_timeout). PostgreSQL and MariaDB use ordinary transactions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pocketstack.errors import Conflict


class Database:
    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url, echo=echo, connect_args={"check_same_thread": False, "timeout": 60},
                pool_size=pool_size, max_overflow=20)
            self._install_sqlite_hooks(self.engine)
        else:
            self.engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=20,
                                        pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = threading.RLock() if self.is_sqlite else None
        self._local = threading.local()
        # Bumped after every committed db.write() in this process: read caches keyed on it
        # (api/readcache.py) never serve what a later write in this process changed.
        self.generation = 0
        self._generation_lock = threading.Lock()

    @staticmethod
    def _install_sqlite_hooks(engine: Engine) -> None:
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record):  # noqa: ANN001
            # Take over transaction control from pysqlite so BEGIN can be IMMEDIATE.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # noqa: ANN001
            mode = conn.get_execution_options().get("sqlite_begin", "BEGIN")
            conn.exec_driver_sql(mode)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (committed/rolled back on exit, never blocks writers)."""
        with self._sessions() as session:
            with session.begin():
                yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A read-write unit of work; commits on normal exit, rolls back on exception.

        A unique or foreign-key violation (two requests racing to create the same name,
        or to delete what the other references) becomes a 409 Conflict, on every backend.
        """
        try:
            with self._write_session() as session:
                yield session
        except IntegrityError as exc:
            raise Conflict(_conflict_message(exc)) from exc
        finally:
            # Also after a failure: a partial flush may have been visible to nobody, but
            # bumping is always safe (it only costs a cache miss).
            self._bump()

    @contextlib.contextmanager
    def _write_session(self) -> Iterator[Session]:
        if self._write_lock is None:
            with self._sessions() as session:
                with session.begin():
                    yield session
            return
        with self._exclusive(), self._sessions() as session:
            session.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """This process's SQLite write lock, refusing a nested write in one thread (it
        would wait for itself)."""
        with self._write_lock:
            if getattr(self._local, "depth", 0):
                raise RuntimeError("nested db.write() in one thread")
            self._local.depth = 1
            try:
                yield
            finally:
                self._local.depth = 0

    def _bump(self) -> None:
        with self._generation_lock:
            self.generation += 1

    def fetch_one(self, sql: str, params: dict[str, Any]) -> tuple | None:
        """One row of a single read query (``:name`` parameters), as a tuple, or None.

        On SQLite the statement runs on the DBAPI cursor in autocommit (one statement is
        its own consistent snapshot), for the same reason as ``statements()``."""
        if not self.is_sqlite:
            with self.read() as session:
                return _SessionStatements(session).first(sql, params)
        raw = self.engine.raw_connection()
        try:
            return raw.driver_connection.execute(sql, params).fetchone()
        finally:
            raw.close()

    @contextlib.contextmanager
    def statements(self) -> Iterator["Statements"]:
        """A write transaction for a hot path written as plain SQL (``:name`` parameters).

        On SQLite it drives the DBAPI cursor directly, under the same write lock and
        ``BEGIN IMMEDIATE`` as ``write()``: SQLAlchemy's own cost per statement was ~15x
        the statement's (a small-object PUT's 3-statement commit: 145 us through Core,
        205 us through a Session, 9 us on the cursor). Elsewhere it runs through a Session.
        """
        if not self.is_sqlite:
            with self.write() as session:
                yield _SessionStatements(session)
            return
        import sqlite3

        try:
            with self._exclusive():
                raw = self.engine.raw_connection()
                try:
                    cur = raw.driver_connection.cursor()
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        yield _CursorStatements(cur)
                        cur.execute("COMMIT")
                    except BaseException:
                        if raw.driver_connection.in_transaction:
                            cur.execute("ROLLBACK")
                        raise
                finally:
                    raw.close()
        except sqlite3.IntegrityError as exc:
            raise Conflict(_conflict_message(exc)) from exc
        finally:
            self._bump()

    def dispose(self) -> None:
        self.engine.dispose()


class Statements:
    """Plain SQL inside one transaction (``Database.statements()``).

    ``batch`` is a scratch dict shared by the jobs of one group-commit batch (db/group.py)
    for work they leave to the end of it; None outside group commit."""

    batch: dict[str, Any] | None = None

    def first(self, sql: str, params: dict[str, Any]) -> tuple | None:
        """The first row of a query, as a tuple, or None."""
        raise NotImplementedError

    def run(self, sql: str, params: dict[str, Any]) -> None:
        raise NotImplementedError


class _CursorStatements(Statements):
    def __init__(self, cur: Any) -> None:
        self.cur = cur

    def first(self, sql: str, params: dict[str, Any]) -> tuple | None:
        return self.cur.execute(sql, params).fetchone()

    def run(self, sql: str, params: dict[str, Any]) -> None:
        self.cur.execute(sql, params)


class _SessionStatements(Statements):
    _texts: dict[str, Any] = {}

    def __init__(self, session: Session) -> None:
        self.session = session

    def _text(self, sql: str) -> Any:
        stmt = self._texts.get(sql)
        if stmt is None:
            stmt = self._texts[sql] = text(sql)
        return stmt

    def first(self, sql: str, params: dict[str, Any]) -> tuple | None:
        row = self.session.execute(self._text(sql), params).first()
        return None if row is None else tuple(row)

    def run(self, sql: str, params: dict[str, Any]) -> None:
        self.session.execute(self._text(sql), params)


def _conflict_message(exc: Exception) -> str:
    text = str(getattr(exc, "orig", exc)).lower()
    if "foreign key" in text:
        return ("Conflict occurred attempting to store the resource: it references, or is "
                "referenced by, something that changed meanwhile.")
    return "Conflict occurred attempting to store the resource - Duplicate entry."
