"""First start: default domain, roles, admin/demo users and projects, region, catalog.

Idempotent; ``up`` runs it every time so a catalog grows when new services appear.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.config import Settings
from pocketstack.services.identity.assignments import (SYSTEM_TARGET, USER_PROJECT,
                                                       USER_SYSTEM)
from pocketstack.services.identity.models import (ROOT_DOMAIN, Assignment, Endpoint,
                                                  ImpliedRole, Project, Region, Role, Service,
                                                  User)
from pocketstack.services.identity.service import IdentityService

DEFAULT_DOMAIN = "default"
# admin > manager > member > reader, as Keystone's bootstrap makes them.
ROLE_CHAIN = ["admin", "manager", "member", "reader"]
ROLES = [*ROLE_CHAIN, "service"]


@dataclass(frozen=True)
class CatalogEntry:
    type: str
    name: str
    path: str  # appended to the public base URL, may hold $(project_id)s
    description: str = ""


def passwords(settings: Settings) -> dict[str, str]:
    """admin/demo passwords: from settings, else generated once into passwords.json (0600)."""
    path: Path = settings.data_dir / "passwords.json"
    stored: dict[str, str] = {}
    if path.exists():
        stored = json.loads(path.read_text())
    wanted = {"admin": settings.identity.admin_password, "demo": settings.identity.demo_password}
    changed = False
    for user, configured in wanted.items():
        if configured:
            if stored.get(user) != configured:
                stored[user] = configured
                changed = True
        elif user not in stored:
            stored[user] = secrets.token_urlsafe(12)
            changed = True
    if changed or not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(stored, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    return stored


def _get_or_add(session: Session, model, lookup: dict, **values):  # noqa: ANN001, ANN202
    row = session.scalars(select(model).filter_by(**lookup)).first()
    if row is None:
        row = model(**lookup, **values)
        session.add(row)
        session.flush()
    return row


def _grant(session: Session, type_: str, actor: str, target: str, role: Role) -> None:
    key = dict(type=type_, actor_id=actor, target_id=target, role_id=role.id, inherited=False)
    if session.get(Assignment, key) is None:
        session.add(Assignment(**key))


def bootstrap(identity: IdentityService, catalog: Iterable[CatalogEntry]) -> dict[str, str]:
    settings = identity.settings
    pw = passwords(settings)
    with identity.db.write() as s:
        domain = s.get(Project, DEFAULT_DOMAIN)
        if domain is None:
            domain = Project(id=DEFAULT_DOMAIN, name="Default", description="The default domain",
                             domain_id=ROOT_DOMAIN, parent_id=None, is_domain=True, enabled=True,
                             extra={}, options={})
            s.add(domain)
        roles = {name: _get_or_add(s, Role, {"name": name, "domain_id": ""}, extra={},
                                   options={}) for name in ROLES}
        for prior, implied in zip(ROLE_CHAIN, ROLE_CHAIN[1:]):
            if s.get(ImpliedRole, (roles[prior].id, roles[implied].id)) is None:
                s.add(ImpliedRole(prior_role_id=roles[prior].id, implied_role_id=roles[implied].id))
        projects = {}
        for name, desc in (("admin", "Bootstrap project for initializing the cloud."),
                           ("service", "Project for the cloud's services"),
                           ("demo", "The demo project, as DevStack makes it")):
            if name == "demo" and not settings.bootstrap_demo:
                continue
            projects[name] = _get_or_add(s, Project, {"name": name, "domain_id": DEFAULT_DOMAIN},
                                         parent_id=DEFAULT_DOMAIN, is_domain=False, enabled=True,
                                         description=desc, extra={}, options={})
        for name, role in (("admin", "admin"), ("demo", "member")):
            if name not in projects:
                continue
            user = s.scalars(select(User).filter_by(name=name, domain_id=DEFAULT_DOMAIN)).first()
            if user is None:
                user = User(name=name, domain_id=DEFAULT_DOMAIN, enabled=True,
                            default_project_id=projects[name].id, extra={}, options={})
                s.add(user)
            if user.password_hash is None or not identity.hasher.verify(user.password_hash,
                                                                        pw[name]):
                user.password_hash = identity.hasher.hash(pw[name])
            s.flush()
            _grant(s, USER_PROJECT, user.id, projects[name].id, roles[role])
            if name == "admin":
                _grant(s, USER_SYSTEM, user.id, SYSTEM_TARGET, roles["admin"])
        region = settings.identity.region
        if s.get(Region, region) is None:
            s.add(Region(id=region, description="", extra={}))
        base = settings.base_url
        for entry in catalog:
            svc = s.scalars(select(Service).where(Service.type == entry.type)).first()
            if svc is None:
                svc = Service(type=entry.type, enabled=True,
                              extra={"name": entry.name, "description": entry.description})
                s.add(svc)
                s.flush()
            url = base + entry.path
            existing = {ep.interface: ep for ep in s.scalars(
                select(Endpoint).where(Endpoint.service_id == svc.id))}
            for interface in ("public", "internal", "admin"):
                ep = existing.get(interface)
                if ep is None:
                    s.add(Endpoint(service_id=svc.id, interface=interface, url=url,
                                   region_id=region, enabled=True, extra={}))
                elif ep.url != url and ep.url.endswith(entry.path):
                    ep.url = url  # our endpoint, and the cloud moved (--port): follow it
    identity.changed()
    identity.catalog_changed()
    return pw
