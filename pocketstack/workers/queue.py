"""A durable task queue in the database, drained by an asyncio loop into worker threads.

Any slice can use it: declare a table with ``TaskMixin`` (``class VolumeTask(TaskMixin,
Base): __tablename__ = "volume_tasks"``), give ``TaskQueue`` that model and a dict of
handlers ``kind -> fn(task: Task) -> None`` (synchronous; they run in threads and may call
drivers), start it from the SPEC's start hook, and ``enqueue`` inside the same transaction
that records the intent, then ``kick()`` after commit.

Guarantees:
- a task survives kill -9: it is a row until its handler returns;
- tasks for one ``resource_id`` run one at a time, in creation order;
- at start, tasks left "running" by a dead process go back to "pending" with
  ``attempts`` incremented, so handlers must be idempotent (they see ``attempts`` and
  decide to resume or fail what was in flight);
- a handler that raises marks its task "failed" (kept for inspection); recording the
  user-visible fault is the handler's job;
- a handler may finish its task inside its own last transaction (``queue.complete(s,
  task)``) and return True, saving the queue a write per task.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, select, update
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import JSONText, UTCDateTime, utcnow

log = logging.getLogger("pocketstack.workers")


class TaskMixin:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(String(64), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True)
class Task:
    id: int
    kind: str
    resource_id: str
    payload: dict[str, Any]
    attempts: int  # > 0 means an earlier run was interrupted (crash/restart)


Handler = Callable[[Task], "bool | None"]


class TaskQueue:
    def __init__(self, db: Any, model: type, handlers: dict[str, Handler], *,
                 concurrency: int = 8, poll_interval: float = 2.0) -> None:
        self.db = db
        self.model = model
        self.handlers = handlers
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task | None = None
        self._busy: set[str] = set()
        self._inflight: set[asyncio.Task] = set()
        self._sem: asyncio.Semaphore | None = None
        self._stopping = False
        self._idle = threading.Event()

    # -- producer side ------------------------------------------------------------------
    def enqueue(self, session: Any, kind: str, resource_id: str,
                payload: dict[str, Any] | None = None) -> None:
        """Add a task inside the caller's transaction (so intent and task commit together)."""
        if kind not in self.handlers:
            raise KeyError(f"no handler for task kind {kind!r}")
        session.add(self.model(kind=kind, resource_id=resource_id, payload=payload or {}))

    def complete(self, session: Any, task: "Task") -> None:
        """Delete ``task`` inside the caller's transaction (its work and its end commit
        together); the handler then returns True."""
        session.execute(self.model.__table__.delete().where(self.model.id == task.id))

    def kick(self) -> None:
        """Wake the loop (thread-safe); call after the enqueueing transaction committed."""
        if self._loop is not None and self._event is not None:
            try:
                self._loop.call_soon_threadsafe(self._event.set)
            except RuntimeError:  # loop closed during shutdown
                pass

    # -- lifecycle ------------------------------------------------------------------------
    def recover(self) -> int:
        """Requeue what a dead process left running; returns how many."""
        m = self.model
        with self.db.write() as s:
            res = s.execute(update(m).where(m.state == "running").values(
                state="pending", owner=None, attempts=m.attempts + 1, updated_at=utcnow()))
            return res.rowcount or 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._sem = asyncio.Semaphore(self.concurrency)
        self._stopping = False
        self._runner = asyncio.create_task(self._run(), name=f"taskqueue-{self.model.__tablename__}")

    async def stop(self) -> None:
        self._stopping = True
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=30)

    async def drain(self, timeout: float = 60) -> bool:
        """Wait until no task is pending or running (tests, benchmarks)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if not self._inflight and not await asyncio.to_thread(self._pending_count):
                return True
            await asyncio.sleep(0.02)
        return False

    def _pending_count(self) -> int:
        m = self.model
        with self.db.read() as s:
            return len(s.execute(select(m.id).where(m.state.in_(("pending", "running")))
                                 .limit(1)).all())

    # -- consumer side ---------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._event is not None and self._sem is not None
        while not self._stopping:
            try:
                claimed = await asyncio.to_thread(self._claim_batch)
            except Exception:  # noqa: BLE001 - keep the loop alive on a DB hiccup
                log.exception("task queue: claiming tasks failed")
                claimed = []
            for task in claimed:
                await self._sem.acquire()
                t = asyncio.create_task(self._execute(task))
                self._inflight.add(t)
                t.add_done_callback(self._inflight.discard)
            if claimed:
                continue
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), self.poll_interval)
            except asyncio.TimeoutError:
                pass

    def _claim_batch(self) -> list[Task]:
        m = self.model
        free = max(self.concurrency * 2 - len(self._inflight), 0)
        if not free:
            return []
        with self.db.read() as s:
            rows = s.execute(select(m.id, m.resource_id).where(m.state == "pending")
                             .order_by(m.id).limit(free * 4)).all()
        wanted, seen = [], set()
        for task_id, resource_id in rows:
            # Only the oldest pending task of a resource, and none while one runs.
            if resource_id in seen or resource_id in self._busy:
                seen.add(resource_id)
                continue
            seen.add(resource_id)
            wanted.append(task_id)
            if len(wanted) >= free:
                break
        if not wanted:
            return []
        claimed = []
        with self.db.write() as s:
            for task_id in wanted:
                res = s.execute(update(m).where(m.id == task_id, m.state == "pending")
                                .values(state="running", owner=self.owner, updated_at=utcnow()))
                if res.rowcount:
                    row = s.get(m, task_id)
                    claimed.append(Task(row.id, row.kind, row.resource_id, dict(row.payload or {}),
                                        row.attempts))
        for task in claimed:
            self._busy.add(task.resource_id)
        return claimed

    async def _execute(self, task: Task) -> None:
        assert self._sem is not None
        try:
            await asyncio.to_thread(self._execute_sync, task)
        finally:
            self._busy.discard(task.resource_id)
            self._sem.release()
            if self._event is not None:
                self._event.set()  # the next task of this resource may now run

    def _execute_sync(self, task: Task) -> None:
        m = self.model
        try:
            done = self.handlers[task.kind](task)
        except Exception as exc:  # noqa: BLE001 - record and keep going
            log.exception("task %s %s(%s) failed", task.id, task.kind, task.resource_id)
            with self.db.write() as s:
                s.execute(update(m).where(m.id == task.id).values(
                    state="failed", error=f"{type(exc).__name__}: {exc}"[:1024],
                    updated_at=utcnow()))
            return
        if done is True:
            return
        with self.db.write() as s:
            s.execute(m.__table__.delete().where(m.id == task.id))
