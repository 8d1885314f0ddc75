"""Servers keep their timestamps at second precision, as Nova does (issue 22): a client that
asks for changes-before/changes-since at a server's own ``updated`` finds it."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from pocketstack.services.compute.models import SecondsDateTime


def test_bind_truncates_to_seconds_and_keeps_utc():
    t = SecondsDateTime()
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert t.process_bind_param(aware, None) == dt.datetime(2026, 1, 2, 1, 4, 5)
    assert t.process_bind_param(None, None) is None


def test_comparison_at_the_shown_second_matches():
    engine = sa.create_engine("sqlite://")
    meta = sa.MetaData()
    table = sa.Table("t", meta, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("updated_at", SecondsDateTime))
    meta.create_all(engine)
    stored = dt.datetime(2026, 1, 2, 3, 4, 5, 999999)
    shown = stored.replace(microsecond=0)  # what the API shows as "updated"
    with engine.begin() as c:
        c.execute(table.insert().values(id=1, updated_at=stored))
        assert c.execute(sa.select(table.c.id).where(table.c.updated_at <= shown)).all() == [(1,)]
        assert c.execute(sa.select(table.c.id).where(table.c.updated_at >= shown)).all() == [(1,)]
        earlier = shown - dt.timedelta(seconds=1)
        assert c.execute(sa.select(table.c.id).where(table.c.updated_at <= earlier)).all() == []
