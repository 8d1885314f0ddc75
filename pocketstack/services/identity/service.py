"""Keystone's logic: authentication, tokens and the catalog.

Resource CRUD (projects, users, roles, ...) lives in the sibling modules, one per
resource, as functions taking a session; this class holds what they share (database,
hasher, token codec and cache) and the authentication flow.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack.api.readcache import ReadCache
from pocketstack.config import Settings
from pocketstack.context import RequestContext
from pocketstack.db import Database
from pocketstack.db.base import utcnow
from pocketstack.errors import BadRequest, Forbidden, NotFound, Unauthorized
from pocketstack.services.identity import assignments
from pocketstack.services.identity.keys import KeyRepository
from pocketstack.services.identity.models import (ApplicationCredential, Endpoint, Project,
                                                  Region, RevokedToken, Service, User)
from pocketstack.services.identity.passwords import Hasher
from pocketstack.services.identity.tokens import (TokenCache, TokenCodec, TokenInfo,
                                                  TokenPayload, check_not_expired,
                                                  new_audit_id)

AUTH_FAILED = "The request you have made requires authentication."


class IdentityService:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.hasher = Hasher(settings.identity)
        self.token_keys = KeyRepository(settings.data_dir / "fernet-keys",
                                        settings.identity.max_active_keys)
        self.credential_keys = KeyRepository(settings.data_dir / "credential-keys",
                                             settings.identity.max_active_keys)
        self.token_keys.setup()
        self.credential_keys.setup()
        self.codec = TokenCodec(self.token_keys)
        self.cache = TokenCache(settings.identity.token_cache_seconds)
        # Hot reads (project/user/role lists and shows) answered without a thread or a query
        # while nothing was written; see api/readcache.py.
        self.read_cache = ReadCache(db, settings.identity.token_cache_seconds)
        self._catalog: list[dict[str, Any]] | None = None
        self._service_providers: list[dict[str, Any]] | None = None
        self.catalog_version = 0  # bumped by catalog_changed(); keys rendered token bodies
        self._catalog_lock = threading.Lock()
        self.base = settings.base_url + "/identity"  # links in every body
        self.max_project_depth = 5  # keystone [DEFAULT] max_project_tree_depth

    # -- cache invalidation -------------------------------------------------------------
    def changed(self) -> None:
        """Call after any identity write that can change what a token means."""
        self.cache.clear()

    def catalog_changed(self) -> None:
        with self._catalog_lock:
            self._catalog = None
            self._service_providers = None
            self.catalog_version += 1

    def service_providers(self) -> list[dict[str, Any]]:
        """Enabled OS-FEDERATION service providers, as Keystone lists them in tokens that
        carry a catalog (id, auth_url, sp_url); their writes call catalog_changed()."""
        with self._catalog_lock:
            cached = self._service_providers
        if cached is None:
            from pocketstack.services.identity.models import ServiceProvider

            with self.db.read() as s:
                cached = [{"id": x.id, "auth_url": x.auth_url, "sp_url": x.sp_url}
                          for x in s.scalars(select(ServiceProvider).where(
                              ServiceProvider.enabled.is_(True)).order_by(ServiceProvider.id))]
            with self._catalog_lock:
                self._service_providers = cached
        return cached

    # -- authentication -----------------------------------------------------------------
    def authenticate(self, auth: dict[str, Any]) -> TokenInfo:
        """Run ``POST /v3/auth/tokens``: check the identity, resolve the scope, issue."""
        identity = auth.get("identity")
        if not isinstance(identity, dict):
            raise BadRequest("Invalid input for field 'auth.identity': is a required property")
        methods = identity.get("methods")
        if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
            raise BadRequest("Invalid input for field 'identity.methods': a non-empty list of "
                             "strings is required")
        for m in methods:
            if m not in ("password", "token", "application_credential"):
                raise Unauthorized(f"Attempted to authenticate with an unsupported method: {m}")
        scope = auth.get("scope")
        if scope is not None and scope != "unscoped" and not isinstance(scope, dict):
            raise BadRequest("Invalid input for field 'auth.scope': must be an object")
        with self.db.read() as s:
            user_id, expires_at, parent_audit, app_cred = None, None, None, None
            trust = None
            inherited_methods: tuple[str, ...] = ()
            for method in methods:
                body = identity.get(method)
                if not isinstance(body, dict):
                    raise BadRequest(f"Invalid input for field 'identity.{method}': "
                                     "is a required property")
                if method == "password":
                    uid = self._password_user(s, body)
                elif method == "token":
                    uid, expires_at, parent_audit, inherited_methods = self._token_user(body)
                else:
                    app_cred = self._app_cred(s, body)
                    uid = app_cred.user_id
                if user_id is not None and uid != user_id:
                    raise Unauthorized("Authentication methods name different users.")
                user_id = uid
            assert user_id is not None
            user = s.get(User, user_id)
            if user is None or not user.enabled:
                raise Unauthorized(AUTH_FAILED)
            domain = s.get(Project, user.domain_id)
            if domain is None or not domain.enabled:
                raise Unauthorized(AUTH_FAILED)
            if app_cred is not None:
                if scope not in (None, "unscoped") and not (
                        isinstance(scope, dict) and "project" in scope):
                    raise Unauthorized("Application credentials can only be scoped to their project.")
                kind, scope_id = "project", app_cred.project_id
                if isinstance(scope, dict):
                    pid = self._resolve_project(s, scope["project"]).id
                    if pid != app_cred.project_id:
                        raise Unauthorized("Application credentials can only be scoped "
                                           "to their project.")
            elif isinstance(scope, dict) and "OS-TRUST:trust" in scope and len(scope) == 1:
                trust = self._trust_for(s, scope["OS-TRUST:trust"], user.id)
                kind, scope_id = "project", trust.project_id
                if trust.impersonation:
                    user_id = trust.trustor_user_id  # the token acts as the trustor
            else:
                kind, scope_id = self._resolve_scope(s, scope, user)
        now = time.time()
        if trust is not None:
            self._consume_trust(trust.id)
            if trust.expires_at is not None:
                trust_end = trust.expires_at.replace(tzinfo=dt.timezone.utc).timestamp()
                expires_at = min(expires_at or trust_end, trust_end)
        if expires_at is None:
            expires_at = now + self.settings.identity.token_expiration
        if app_cred is not None and app_cred.expires_at is not None:
            expires_at = min(expires_at, app_cred.expires_at.replace(
                tzinfo=dt.timezone.utc).timestamp())
        audit_ids = (new_audit_id(),) + ((parent_audit,) if parent_audit else ())
        # A rescoped token remembers how its user first proved who they are.
        all_methods = tuple(dict.fromkeys([*inherited_methods, *methods]))
        payload = TokenPayload(user_id=user_id, methods=all_methods, scope_kind=kind,
                               scope_id=scope_id, issued_at=now, expires_at=expires_at,
                               audit_ids=audit_ids,
                               app_cred_id=app_cred.id if app_cred is not None else None,
                               trust_id=trust.id if trust is not None else None)
        token = self.codec.encode(payload)
        try:
            info = self._resolve(token, payload)
        except NotFound:
            raise Unauthorized(f"User {user_id} has no access to {kind} {scope_id}") from None
        if kind != "unscoped" and not info.roles:
            raise Unauthorized(f"User {user_id} has no access to {kind} {scope_id}")
        return info

    def _lookup_domain(self, s: Session, ref: Any) -> Project:
        if not isinstance(ref, dict) or not ({"id", "name"} & ref.keys()):
            raise BadRequest("A domain must be given by id or name.")
        if "id" in ref:
            dom = s.get(Project, ref["id"])
        else:
            dom = s.scalars(select(Project).where(Project.is_domain.is_(True),
                                                  Project.name == ref["name"])).first()
        if dom is None or not dom.is_domain:
            raise Unauthorized(AUTH_FAILED)
        return dom

    def _password_user(self, s: Session, body: dict[str, Any]) -> str:
        ref = body.get("user")
        if not isinstance(ref, dict):
            raise BadRequest("Invalid input for field 'password.user': is a required property")
        password = ref.get("password")
        if not isinstance(password, str):
            raise BadRequest("Invalid input for field 'password.user.password': "
                             "a string is required")
        user = None
        if isinstance(ref.get("id"), str):
            user = s.get(User, ref["id"])
        elif isinstance(ref.get("name"), str):
            if "domain" not in ref:
                raise BadRequest("A user given by name also needs its domain (id or name).")
            try:
                dom = self._lookup_domain(s, ref["domain"])
            except Unauthorized:
                dom = None
            if dom is not None:
                user = s.scalars(select(User).where(User.domain_id == dom.id,
                                                    User.name == ref["name"])).first()
        else:
            raise BadRequest("A user must be given by id or by name and domain.")
        # Always verify (against a dummy hash when there is no user): same time, same answer.
        ok = self.hasher.verify(user.password_hash if user else None, password)
        if user is not None and self._locked_out(user):
            # A locked account answers exactly like a wrong password (no account probing).
            raise Unauthorized(AUTH_FAILED)
        if user is not None and (not ok or user.failed_auth_count):
            self._record_auth(user.id, ok)
        if not ok or user is None:
            raise Unauthorized(AUTH_FAILED)
        if user.password_expires_at is not None and user.password_expires_at <= utcnow():
            raise Unauthorized("The password is expired and needs to be changed for user: "
                               f"{user.id}.")
        return user.id

    def _locked_out(self, user: User) -> bool:
        cfg = self.settings.identity
        if cfg.lockout_failure_attempts <= 0 or (user.options or {}).get(
                "ignore_lockout_failure_attempts"):
            return False
        if user.failed_auth_count < cfg.lockout_failure_attempts:
            return False
        if cfg.lockout_duration <= 0 or user.failed_auth_at is None:
            return True  # locked until an administrator re-enables the user
        return utcnow() < user.failed_auth_at + dt.timedelta(seconds=cfg.lockout_duration)

    def _record_auth(self, user_id: str, ok: bool) -> None:
        """Count failed password logins for lockout; a success resets the count."""
        cfg = self.settings.identity
        if cfg.lockout_failure_attempts <= 0:
            return
        with self.db.write() as s:
            user = s.get(User, user_id)
            if user is None:
                return
            if ok:
                user.failed_auth_count = 0
                return
            now = utcnow()
            expired = (cfg.lockout_duration > 0 and user.failed_auth_at is not None and
                       now >= user.failed_auth_at + dt.timedelta(seconds=cfg.lockout_duration))
            user.failed_auth_count = 1 if expired else user.failed_auth_count + 1
            user.failed_auth_at = now

    # -- what a token may be scoped to ----------------------------------------------------------
    def auth_projects(self, ctx: RequestContext) -> list[dict[str, Any]]:
        from pocketstack.services.identity.projects import _tags, project_view

        if ctx.user_id is None:
            return []
        with self.db.read() as s:
            enabled_domains = set(s.scalars(select(Project.id).where(
                Project.is_domain.is_(True), Project.enabled.is_(True))))
            return [project_view(self, p, _tags(s, p.id))
                    for p in assignments.user_projects(s, ctx.user_id)
                    if p.enabled and p.domain_id in enabled_domains]

    def auth_domains(self, ctx: RequestContext) -> list[dict[str, Any]]:
        from pocketstack.services.identity.projects import _tags, domain_view

        if ctx.user_id is None:
            return []
        with self.db.read() as s:
            return [domain_view(self, d, _tags(s, d.id))
                    for d in assignments.user_domains(s, ctx.user_id) if d.enabled]

    def auth_system(self, ctx: RequestContext) -> list[dict[str, Any]]:
        if ctx.user_id is None:
            return []
        with self.db.read() as s:
            return [{"all": True}] if assignments.has_system_role(s, ctx.user_id) else []

    # -- for other slices ---------------------------------------------------------------------
    def ec2_credential(self, access: str) -> dict[str, Any] | None:
        """The EC2/S3 credential for an access key: {user_id, project_id, secret, access,
        roles}, or None (unknown key, or its user/project disabled or without a role).
        The S3 API verifies request signatures with the secret."""
        from pocketstack.services.identity.credentials import ec2_lookup

        return ec2_lookup(self, access)

    def limit_for(self, project_id: str, service_type: str, resource_name: str) -> int | None:
        """Keystone unified limits: the project's limit for ``resource_name`` of the service
        of ``service_type`` (its own, else the registered default), or None if unregistered."""
        from pocketstack.services.identity.limits import limit_for

        return limit_for(self, project_id, service_type, resource_name)

    def project_exists(self, project_id: str) -> bool:
        """True if ``project_id`` names a project (not a domain)."""
        with self.db.read() as s:
            row = s.get(Project, project_id) if isinstance(project_id, str) else None
            return row is not None and not row.is_domain

    def _trust_for(self, s: Session, ref: Any, user_id: str) -> Any:
        """The trust a trustee asks to be scoped by (must be theirs and alive)."""
        from pocketstack.services.identity.trusts import live_trust

        if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
            raise BadRequest("scope.OS-TRUST:trust needs an id.")
        try:
            trust = live_trust(s, ref["id"], issuing=True)
        except NotFound:
            raise Unauthorized(AUTH_FAILED) from None
        if trust.trustee_user_id != user_id:
            raise Forbidden("The user is not the trustee of this trust.")
        if trust.project_id is None:
            raise Forbidden("This trust names no project to scope a token to.")
        trustor = s.get(User, trust.trustor_user_id)
        if trustor is None or not trustor.enabled:
            raise Forbidden("The trustor is disabled.")
        return trust

    def _consume_trust(self, trust_id: str) -> None:
        """Count one use of a trust with remaining_uses."""
        from pocketstack.services.identity.models import Trust

        with self.db.write() as s:
            trust = s.get(Trust, trust_id)
            if trust is None or trust.remaining_uses is None:
                return
            if trust.remaining_uses <= 0:
                raise Unauthorized(AUTH_FAILED)
            trust.remaining_uses -= 1

    def _token_user(self, body: dict[str, Any]) -> tuple[str, float, str, tuple[str, ...]]:
        token = body.get("id")
        if not isinstance(token, str):
            raise BadRequest("Invalid input for field 'token.id': a string is required")
        # An unknown, expired or revoked token answers 404, as Keystone's token method does.
        info = self.validate(token)
        if info.payload.app_cred_id is not None:
            raise Forbidden("A token created with an application credential cannot be rescoped.")
        if info.payload.trust_id is not None:
            raise Forbidden("A trust-scoped token cannot be rescoped.")
        return (info.payload.user_id, info.payload.expires_at, info.payload.audit_ids[0],
                info.payload.methods)

    def _app_cred(self, s: Session, body: dict[str, Any]) -> ApplicationCredential:
        secret = body.get("secret")
        if not isinstance(secret, str):
            raise BadRequest("Invalid input for field 'application_credential.secret'.")
        cred = None
        if isinstance(body.get("id"), str):
            cred = s.get(ApplicationCredential, body["id"])
        elif isinstance(body.get("name"), str) and isinstance(body.get("user"), dict):
            uref = body["user"]
            user = None
            if "id" in uref:
                user = s.get(User, uref["id"])
            elif "name" in uref and "domain" in uref:
                dom = self._lookup_domain(s, uref["domain"])
                user = s.scalars(select(User).where(User.domain_id == dom.id,
                                                    User.name == uref["name"])).first()
            if user is not None:
                cred = s.scalars(select(ApplicationCredential).where(
                    ApplicationCredential.user_id == user.id,
                    ApplicationCredential.name == body["name"])).first()
        else:
            raise BadRequest("An application credential needs an id, or a name and a user.")
        ok = self.hasher.verify(cred.secret_hash if cred else None, secret)
        if cred is None or not ok:
            raise Unauthorized(AUTH_FAILED)
        if cred.expires_at is not None and cred.expires_at <= utcnow():
            raise Unauthorized("The application credential has expired.")
        return cred

    def _resolve_project(self, s: Session, ref: Any) -> Project:
        if not isinstance(ref, dict):
            raise BadRequest("scope.project must be an object.")
        if "id" in ref:
            project = s.get(Project, ref["id"])
        elif "name" in ref and "domain" in ref:
            dom = self._lookup_domain(s, ref["domain"])
            project = s.scalars(select(Project).where(Project.domain_id == dom.id,
                                                      Project.name == ref["name"],
                                                      Project.is_domain.is_(False))).first()
        else:
            raise BadRequest("A project scope needs an id, or a name and a domain.")
        if project is None or project.is_domain:
            raise Unauthorized(AUTH_FAILED)
        if not project.enabled:
            raise Unauthorized(f"Project {project.id} is disabled.")
        return project

    def _resolve_scope(self, s: Session, scope: Any, user: User) -> tuple[str, str | None]:
        if scope is None:
            if user.default_project_id:
                project = s.get(Project, user.default_project_id)
                if project is not None and project.enabled and assignments.effective_roles(
                        s, user.id, "project", project.id, project):
                    return "project", project.id
            return "unscoped", None
        if scope == "unscoped":
            return "unscoped", None
        keys = set(scope) & {"project", "domain", "system", "OS-TRUST:trust"}
        if len(keys) != 1:
            raise BadRequest("Specify exactly one of project, domain or system as the scope.")
        if "project" in scope:
            return "project", self._resolve_project(s, scope["project"]).id
        if "domain" in scope:
            dom = self._lookup_domain(s, scope["domain"])
            if not dom.enabled:
                raise Unauthorized(f"Domain {dom.id} is disabled.")
            return "domain", dom.id
        if "system" in scope:
            if scope["system"] != {"all": True}:
                raise BadRequest("The only system scope is {\"all\": true}.")
            return "system", "all"
        raise Forbidden("Trusts are not enabled on this cloud.")

    # -- validation -----------------------------------------------------------------------
    def validate(self, token: str, *, allow_expired: bool = False) -> TokenInfo:
        cached = None if allow_expired else self.cache.get(token)
        if cached is not None:
            return cached
        payload = self.codec.decode(token)
        check_not_expired(payload, allow_expired)
        generation = self.cache.generation
        info = self._resolve(token, payload)
        if not allow_expired:
            self.cache.put(token, info, generation)
        return info

    def _resolve(self, token: str, payload: TokenPayload) -> TokenInfo:
        with self.db.read() as s:
            if payload.audit_ids and s.get(RevokedToken, payload.audit_ids[0]) is not None:
                raise NotFound("The token has been revoked.")
            user = s.get(User, payload.user_id)
            if user is None or not user.enabled:
                raise NotFound("The token's user is gone or disabled.")
            if int(payload.issued_at * 1_000_000) < user.tokens_valid_after:
                raise NotFound("The token was revoked (the user's credentials changed).")
            udom = s.get(Project, user.domain_id)
            if udom is None or not udom.enabled:
                raise NotFound("The token's user domain is gone or disabled.")
            info = TokenInfo(token=token, payload=payload, user={
                "id": user.id, "name": user.name,
                "domain": {"id": udom.id, "name": udom.name},
                "password_expires_at": user.password_expires_at})
            project = None
            if payload.scope_kind == "project":
                project = s.get(Project, payload.scope_id)
                if project is None or not project.enabled:
                    raise NotFound("The token's project is gone or disabled.")
                pdom = s.get(Project, project.domain_id)
                if pdom is None or not pdom.enabled:
                    raise NotFound("The token's project domain is gone or disabled.")
                info.project = {"id": project.id, "name": project.name,
                                "domain": {"id": pdom.id, "name": pdom.name}}
                # Keystone's [resource] admin_project_name/_domain_name as DevStack sets
                # them: the bootstrap "admin" project of the default domain.
                info.is_admin_project = project.name == "admin" and pdom.id == "default"
            elif payload.scope_kind == "domain":
                dom = s.get(Project, payload.scope_id)
                if dom is None or not dom.enabled:
                    raise NotFound("The token's domain is gone or disabled.")
                info.domain = {"id": dom.id, "name": dom.name}
            if payload.trust_id is not None:
                from pocketstack.services.identity.trusts import live_trust, trust_roles

                trust = live_trust(s, payload.trust_id)  # deleted/expired: the token dies
                for uid in (trust.trustor_user_id, trust.trustee_user_id):
                    party = s.get(User, uid)
                    if party is None or not party.enabled:
                        raise NotFound("A party to the token's trust is gone or disabled.")
                info.trust = {"id": trust.id, "impersonation": trust.impersonation,
                              "trustor_user": {"id": trust.trustor_user_id},
                              "trustee_user": {"id": trust.trustee_user_id}}
                roles = trust_roles(s, trust)
                if not roles:
                    raise NotFound("The trustor no longer holds the trust's roles.")
                info.roles = [{"id": r.id, "name": r.name} for r in roles]
            elif payload.scope_kind != "unscoped":
                roles = assignments.effective_roles(s, user.id, payload.scope_kind,
                                                    payload.scope_id or "", project)
                if payload.app_cred_id is not None:
                    cred = s.get(ApplicationCredential, payload.app_cred_id)
                    if cred is None:
                        raise NotFound("The token's application credential is gone.")
                    allowed = {r["id"] for r in cred.roles}
                    roles = [r for r in roles if r.id in allowed]
                    info.app_cred = {"id": cred.id, "name": cred.name,
                                     "restricted": not cred.unrestricted}
                if not roles:
                    raise NotFound("The token's user no longer has a role on its scope.")
                info.roles = [{"id": r.id, "name": r.name} for r in roles]
        return info

    def context_for(self, info: TokenInfo, request_id: str | None = None) -> RequestContext:
        p = info.project or {}
        extra = {"request_id": request_id} if request_id else {}
        return RequestContext(
            user_id=info.user["id"], user_name=info.user["name"],
            user_domain_id=info.user["domain"]["id"],
            project_id=p.get("id"), project_name=p.get("name"),
            project_domain_id=(p.get("domain") or {}).get("id"),
            domain_id=(info.domain or {}).get("id"), domain_name=(info.domain or {}).get("name"),
            system_scope="all" if info.payload.scope_kind == "system" else None,
            roles=frozenset(r["name"] for r in info.roles), auth_token=info.token,
            audit_ids=info.payload.audit_ids, app_cred_id=info.payload.app_cred_id, **extra)

    def revoke(self, info: TokenInfo) -> None:
        with self.db.write() as s:
            for audit in info.payload.audit_ids[:1]:
                if s.get(RevokedToken, audit) is None:
                    s.add(RevokedToken(audit_id=audit, expires_at=info.payload.expires))
            # Prune what can no longer matter, a few rows at a time.
            old = s.scalars(select(RevokedToken).where(RevokedToken.expires_at < utcnow())
                            .limit(100)).all()
            for row in old:
                s.delete(row)
        self.changed()

    # -- catalog ----------------------------------------------------------------------------
    def catalog(self, project_id: str | None) -> list[dict[str, Any]]:
        with self._catalog_lock:
            raw = self._catalog
        if raw is None:
            with self.db.read() as s:
                services = s.scalars(select(Service).where(Service.enabled.is_(True))).all()
                endpoints = s.scalars(select(Endpoint).where(Endpoint.enabled.is_(True))).all()
                regions = {r.id for r in s.scalars(select(Region)).all()}
            by_service: dict[str, list[Endpoint]] = {}
            for ep in endpoints:
                by_service.setdefault(ep.service_id, []).append(ep)
            raw = []
            for svc in services:
                raw.append({
                    "id": svc.id, "type": svc.type, "name": svc.extra.get("name", ""),
                    "endpoints": [{"id": ep.id, "interface": ep.interface,
                                   "region_id": ep.region_id,
                                   "region": ep.region_id if ep.region_id in regions else ep.region_id,
                                   "url": ep.url} for ep in by_service.get(svc.id, [])]})
            with self._catalog_lock:
                self._catalog = raw
        out = []
        for svc in raw:
            eps = []
            for ep in svc["endpoints"]:
                url = ep["url"]
                if "$(" in url:
                    if not project_id:
                        continue
                    url = url.replace("$(project_id)s", project_id).replace(
                        "$(tenant_id)s", project_id)
                eps.append({**ep, "url": url})
            out.append({**svc, "endpoints": eps})
        return out
