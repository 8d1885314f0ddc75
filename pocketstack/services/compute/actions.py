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
