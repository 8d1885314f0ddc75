"""Instance actions and events (os-instance-actions): the history of every server."""

from __future__ import annotations

import traceback as tb
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select

from pocketstack.db.base import utcnow
from pocketstack.services.compute.models import InstanceAction, InstanceActionEvent


def record(s, server: Any, action: str, ctx: Any) -> InstanceAction:  # noqa: ANN001
    a = InstanceAction(server_id=server.id, request_id=ctx.request_id, action=action,
                       project_id=ctx.project_id or server.project_id,
                       user_id=ctx.user_id or server.user_id, start_time=utcnow(),
                       updated_at=utcnow())
    s.add(a)
    return a


def latest(s, server_id: str, action: str | None = None) -> InstanceAction | None:  # noqa: ANN001
    q = select(InstanceAction).where(InstanceAction.server_id == server_id)
    if action:
        q = q.where(InstanceAction.action == action)
    return s.execute(q.order_by(InstanceAction.id.desc()).limit(1)).scalar_one_or_none()


@contextmanager
def event(db, server_id: str, action: str, name: str, host: str | None):  # noqa: ANN001
    """Record one event of the server's latest ``action``: start, then Success or Error."""
    with db.write() as s:
        a = latest(s, server_id, action)
        if a is None:
            ev_id = None
        else:
            ev = InstanceActionEvent(action_id=a.id, event=name, host=host, start_time=utcnow())
            s.add(ev)
            s.flush()
            ev_id = ev.id
    try:
        yield
    except BaseException as exc:
        if ev_id is not None:
            with db.write() as s:
                ev = s.get(InstanceActionEvent, ev_id)
                ev.finish_time, ev.result = utcnow(), "Error"
                ev.traceback = "".join(tb.format_exception(exc))[-4000:]
                ev.details = str(exc)[:255]
                a = s.get(InstanceAction, ev.action_id)
                a.message, a.updated_at = "Error", utcnow()
        raise
    if ev_id is not None:
        with db.write() as s:
            ev = s.get(InstanceActionEvent, ev_id)
            ev.finish_time, ev.result = utcnow(), "Success"
            s.get(InstanceAction, ev.action_id).updated_at = utcnow()


def add_event(s, server_id: str, action: str, name: str, host: str | None, start,  # noqa: ANN001
              result: str | None = None, traceback: str | None = None,
              details: str | None = None) -> InstanceActionEvent | None:
    """Record an event inside the caller's transaction (the build path folds its events
    into the writes it makes anyway). ``result`` None means started, not finished."""
    a = latest(s, server_id, action)
    if a is None:
        return None
    ev = InstanceActionEvent(action_id=a.id, event=name, host=host, start_time=start,
                             finish_time=utcnow() if result else None, result=result,
                             traceback=traceback, details=details)
    s.add(ev)
    a.updated_at = utcnow()
    if result == "Error":
        a.message = "Error"
    return ev


def finish_event(s, server_id: str, action: str, name: str, result: str,  # noqa: ANN001
                 traceback: str | None = None, details: str | None = None) -> None:
    a = latest(s, server_id, action)
    if a is None:
        return
    ev = s.execute(select(InstanceActionEvent).where(
        InstanceActionEvent.action_id == a.id, InstanceActionEvent.event == name,
        InstanceActionEvent.finish_time.is_(None)).order_by(InstanceActionEvent.id.desc())
        .limit(1)).scalar_one_or_none()
    if ev is None:
        return
    ev.finish_time, ev.result, ev.traceback, ev.details = utcnow(), result, traceback, details
    a.updated_at = utcnow()
    if result == "Error":
        a.message = "Error"
