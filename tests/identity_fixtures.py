"""An in-process identity service on a fresh SQLite database (no HTTP, no other slices).

Shared by tests/unit/identity and tests/regressions/identity: pytest's default (prepend)
import mode puts tests/, the folder of tests/conftest.py, on sys.path."""

from __future__ import annotations

from pathlib import Path

from pocketstack.config import load_settings
from pocketstack.context import RequestContext
from pocketstack.db import Database, migrate
from pocketstack.services.identity.bootstrap import CatalogEntry, bootstrap
from pocketstack.services.identity.service import IdentityService


def make_identity(tmp: Path, **identity: object) -> IdentityService:
    settings = load_settings(tmp, env={}, bootstrap_demo=True)
    for key, value in identity.items():
        setattr(settings.identity, key, value)
    # cheap hashes: these tests are about logic, not password cost
    settings.identity.argon2_time_cost = 1
    settings.identity.argon2_memory_cost = 1024
    db = Database(settings.database_url)
    migrate.upgrade(db)
    svc = IdentityService(settings, db)
    bootstrap(svc, [CatalogEntry("identity", "keystone", "/identity")])
    return svc


def admin_ctx(svc: IdentityService) -> RequestContext:
    pw = (svc.settings.data_dir / "passwords.json").read_text()
    import json

    info = svc.authenticate({"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": json.loads(pw)["admin"]}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}})
    return svc.context_for(info)
