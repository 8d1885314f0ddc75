"""The start-up check "is the schema current?" reads revision files without Alembic; it
must agree with Alembic about the heads, and about a new vs an upgraded database."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from pocketstack.db import Database, migrate


def test_heads_without_alembic_match_alembic():
    alembic_heads = set(ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_heads())
    assert alembic_heads and migrate.script_heads() == alembic_heads


def test_pending_on_new_then_current_after_upgrade(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    assert migrate.current_heads(db) is None and migrate.pending(db)
    migrate.upgrade(db)
    assert migrate.current_heads(db) == migrate.script_heads()
    assert not migrate.pending(db)
