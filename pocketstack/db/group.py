"""Group commit: many threads' small write transactions, one transaction per batch.

On SQLite every writer takes the process's write lock (db/engine.py). For small writes
that lock, not the work under it, is the cost: each hand-over wakes another thread, which
must then win the GIL back from the event loop before it can run its three statements.
Measured on the small-object PUT path (8 worker threads, 4 KiB objects): 53% of a PUT's
time in a worker was spent waiting for that lock.

A ``GroupCommitter`` owns one thread. Callers ``submit(job)`` and block until their job
has run inside a ``db.statements()`` transaction shared with whatever other jobs were
queued meanwhile; the lock changes hands once per batch. A job is a function of the
``Statements``; what it returns or raises is what its caller gets.

The contract that keeps this atomic per job: a job may raise a domain error (PocketError:
"no such container") only before it writes anything or touches ``st.batch``; the batch
goes on without it. Any other exception (a statement failing) rolls the whole batch back, and every job of it is
then run again in a transaction of its own, so one bad job never half-commits and never
takes the others down with it. (Savepoints per job would also do, but each statement drops
and retakes the GIL, and they were 2 of a job's 5.)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pocketstack.db.engine import Database, Statements, _conflict_message
from pocketstack.errors import Conflict, PocketError

log = logging.getLogger("pocketstack.db")

Job = Callable[[Statements], Any]
MAX_BATCH = 256


class GroupCommitter:
    def __init__(self, db: Database, name: str,
                 finish: Callable[[Statements, dict[str, Any]], None] | None = None) -> None:
        """``finish(st, batch)`` runs last in each transaction, with the scratch dict the
        jobs filled (``st.batch``): work they share, such as one counter update per
        container instead of one per job."""
        self.db = db
        self.name = name
        self.finish = finish
        self._cond = threading.Condition()
        self._queue: list[tuple[Job, Future]] = []
        self._thread: threading.Thread | None = None

    def submit(self, job: Job) -> Any:
        """Run ``job`` in a (shared) write transaction; its result once committed."""
        fut: Future = Future()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                 name=f"ps-group-{self.name}")
                self._thread.start()
            self._queue.append((job, fut))
            self._cond.notify()
        return fut.result()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                self._run_batch(batch)
            except BaseException:  # noqa: BLE001 - the committer thread must survive
                log.exception("group commit %s: a batch failed outside any job", self.name)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(RuntimeError("group commit failed"))

    def _run_batch(self, batch: list[tuple[Job, Future]]) -> None:
        results: list[tuple[Future, bool, Any]] = []
        try:
            with self.db.statements() as st:
                st.batch = {}
                for job, fut in batch:
                    try:
                        value = job(st)
                    except PocketError as exc:  # raised before any write: the contract
                        results.append((fut, False, exc))
                    else:
                        results.append((fut, True, value))
                if self.finish is not None:
                    self.finish(st, st.batch)
        except Exception as exc:  # noqa: BLE001 - a statement failed: each job alone
            if len(batch) == 1:
                batch[0][1].set_exception(_domain(exc))
                return
            log.warning("group commit %s: batch of %d rolled back; retrying one by one",
                        self.name, len(batch), exc_info=True)
            for job, fut in batch:
                self._run_alone(job, fut)
            return
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _run_alone(self, job: Job, fut: Future) -> None:
        try:
            with self.db.statements() as st:
                st.batch = {}
                value = job(st)
                if self.finish is not None:
                    self.finish(st, st.batch)
        except Exception as exc:  # noqa: BLE001 - handed to its caller
            fut.set_exception(_domain(exc))
        else:
            fut.set_result(value)


def _domain(exc: Exception) -> Exception:
    """A constraint violation inside a job is a 409, as from ``db.write()``."""
    import sqlite3

    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(_conflict_message(exc))
    return exc
