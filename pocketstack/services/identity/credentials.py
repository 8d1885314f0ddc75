"""Credentials API (blobs encrypted with the credential key repository), EC2 credentials,
application credentials with access rules, and OS-OAUTH1 consumers.

EC2 credentials are credentials of type ``ec2`` whose id is sha256(access), as in
Keystone, so the S3 API finds one by its access key with a primary-key lookup
(``IdentityService.ec2_credential``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import uuid
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import isotime, utcnow
from pocketstack.errors import BadRequest, Conflict, Forbidden, NotFound
from pocketstack.services.identity import assignments
from pocketstack.services.identity.common import (body_object, collection, get_project, get_row,
                                                  get_user, links, merge_extra, opt_str,
                                                  split_extra)
from pocketstack.services.identity.models import (AccessRule, ApplicationCredential, Consumer,
                                                  Credential, Project, Role, User)


# -- encryption -----------------------------------------------------------------------------
def encrypt(svc: Any, blob: str) -> str:
    return svc.credential_keys.fernet().encrypt(blob.encode()).decode()


def decrypt(svc: Any, stored: str) -> str:
    try:
        return svc.credential_keys.fernet().decrypt(stored.encode()).decode()
    except (InvalidToken, ValueError):
        # The key that encrypted it was rotated away: the blob is unrecoverable.
        return ""


# -- credentials API ----------------------------------------------------------------------------
def credential_view(svc: Any, c: Credential) -> dict[str, Any]:
    return {**(c.extra or {}), "id": c.id, "user_id": c.user_id, "project_id": c.project_id,
            "type": c.type, "blob": decrypt(svc, c.blob),
            "links": links(svc.base, f"credentials/{c.id}")}


def _ec2_id(blob: str) -> str:
    try:
        access = json.loads(blob).get("access")
    except (ValueError, AttributeError):
        access = None
    if not isinstance(access, str) or not access:
        raise BadRequest("The blob of an ec2 credential must be a JSON object with an "
                         "'access' key.")
    return hashlib.sha256(access.encode()).hexdigest()


def create_credential(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "credential")
    blob, type_, user_id = data.get("blob"), data.get("type"), data.get("user_id")
    if not isinstance(blob, str) or not isinstance(type_, str) or not type_ or \
            not isinstance(user_id, str):
        raise BadRequest("Invalid input for field 'credential': 'blob', 'type' and 'user_id' "
                         "are required strings")
    if len(type_) > 255 or len(blob) > 65536:
        raise BadRequest("Invalid input for field 'credential': type or blob is too long")
    project_id = opt_str(data, "project_id", prefix="credential")
    policy.enforce(ctx, "identity:create_credential", {"user_id": user_id})
    cred_id = _ec2_id(blob) if type_ == "ec2" else uuid.uuid4().hex
    if type_ == "ec2" and not project_id:
        raise BadRequest("An ec2 credential needs a project_id.")
    with svc.db.write() as s:
        get_user(s, user_id)
        if project_id:
            get_project(s, project_id)
        if s.get(Credential, cred_id) is not None:
            raise Conflict(f"Conflict occurred attempting to store credential - Duplicate ID, "
                           f"{cred_id}.")
        row = Credential(id=cred_id, user_id=user_id, project_id=project_id, type=type_,
                         blob=encrypt(svc, blob),
                         extra=split_extra(data, {"blob", "type", "user_id", "project_id"}))
        s.add(row)
        s.flush()
        return {"credential": credential_view(svc, row)}


def list_credentials(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:list_credentials", {})
    with svc.db.read() as s:
        stmt = select(Credential)
        if not ctx.is_admin:
            stmt = stmt.where(Credential.user_id == ctx.user_id)
        if "user_id" in q:
            stmt = stmt.where(Credential.user_id == q["user_id"])
        if "type" in q:
            stmt = stmt.where(Credential.type == q["type"])
        items = [credential_view(svc, c) for c in s.scalars(stmt).all()]
    return collection(svc.base, "credentials", "credentials", items)


def _get_credential(s: Session, ctx: RequestContext, cred_id: str, action: str) -> Credential:
    row = s.get(Credential, cred_id)
    # Someone else's credential is as invisible as a missing one.
    if row is None or not policy.check(ctx, action, {"user_id": row.user_id}):
        raise NotFound(f"Could not find credential: {cred_id}.")
    return row


def show_credential(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    with svc.db.read() as s:
        row = _get_credential(s, ctx, p["credential_id"], "identity:get_credential")
        return {"credential": credential_view(svc, row)}


def update_credential(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "credential")
    with svc.db.write() as s:
        row = _get_credential(s, ctx, p["credential_id"], "identity:update_credential")
        if "user_id" in data and data["user_id"] != row.user_id:
            policy.enforce(ctx, "identity:create_credential", {"user_id": data["user_id"]})
            get_user(s, data["user_id"])
            row.user_id = data["user_id"]
        if "project_id" in data:
            if data["project_id"] is not None:
                get_project(s, data["project_id"])
            row.project_id = data["project_id"]
        if "type" in data:
            if not isinstance(data["type"], str) or not data["type"]:
                raise BadRequest("Invalid input for field 'credential.type'.")
            if data["type"] == "ec2" and row.type != "ec2":
                raise BadRequest("A credential cannot become an ec2 credential; create one.")
            row.type = data["type"]
        if "blob" in data:
            if not isinstance(data["blob"], str):
                raise BadRequest("Invalid input for field 'credential.blob': must be a string")
            if row.type == "ec2":
                _ec2_id(data["blob"])  # still needs an access key; the id stays, as in Keystone
            row.blob = encrypt(svc, data["blob"])
        merge_extra(row, data, {"blob", "type", "user_id", "project_id"})
        s.flush()
        return {"credential": credential_view(svc, row)}


def delete_credential(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    with svc.db.write() as s:
        s.delete(_get_credential(s, ctx, p["credential_id"], "identity:delete_credential"))


# -- EC2 ----------------------------------------------------------------------------------------
def ec2_view(svc: Any, c: Credential, blob: dict[str, Any]) -> dict[str, Any]:
    return {"user_id": c.user_id, "tenant_id": c.project_id, "access": blob.get("access"),
            "secret": blob.get("secret"), "trust_id": blob.get("trust_id"),
            "links": {"self": f"{svc.base}/v3/users/{c.user_id}/credentials/OS-EC2/"
                              f"{blob.get('access')}"}}


def _ec2_blob(svc: Any, c: Credential) -> dict[str, Any]:
    try:
        value = json.loads(decrypt(svc, c.blob) or "{}")
    except ValueError:
        value = {}
    return value if isinstance(value, dict) else {}


def create_ec2(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    if not isinstance(body, dict) or not isinstance(body.get("tenant_id"), str):
        raise BadRequest("Invalid input for field 'tenant_id': is a required property")
    policy.enforce(ctx, "identity:ec2_credentials", {"user_id": p["user_id"]})
    with svc.db.write() as s:
        user = get_user(s, p["user_id"])
        project = get_project(s, body["tenant_id"])
        if not assignments.effective_roles(s, user.id, "project", project.id, project):
            raise Forbidden(f"User {user.id} has no role on project {project.id}.")
        blob = {"access": uuid.uuid4().hex, "secret": uuid.uuid4().hex, "trust_id": None,
                "app_cred_id": ctx.app_cred_id, "access_token_id": None}
        row = Credential(id=hashlib.sha256(blob["access"].encode()).hexdigest(),
                         user_id=user.id, project_id=project.id, type="ec2",
                         blob=encrypt(svc, json.dumps(blob)), extra={})
        s.add(row)
        s.flush()
        return {"credential": ec2_view(svc, row, blob)}


def list_ec2(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:ec2_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        get_user(s, p["user_id"])
        rows = s.scalars(select(Credential).where(Credential.user_id == p["user_id"],
                                                  Credential.type == "ec2")).all()
        items = [ec2_view(svc, c, _ec2_blob(svc, c)) for c in rows]
    return collection(svc.base, f"users/{p['user_id']}/credentials/OS-EC2", "credentials",
                      items)


def _get_ec2(s: Session, user_id: str, access: str) -> Credential:
    row = s.get(Credential, hashlib.sha256(access.encode()).hexdigest())
    if row is None or row.type != "ec2" or row.user_id != user_id:
        raise NotFound("Could not find credential.")
    return row


def show_ec2(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:ec2_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        row = _get_ec2(s, p["user_id"], p["access"])
        return {"credential": ec2_view(svc, row, _ec2_blob(svc, row))}


def delete_ec2(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:ec2_credentials", {"user_id": p["user_id"]})
    with svc.db.write() as s:
        s.delete(_get_ec2(s, p["user_id"], p["access"]))


def ec2_lookup(svc: Any, access: str) -> dict[str, Any] | None:
    """{user_id, project_id, secret, access, roles} for an EC2/S3 access key, or None.

    Like Keystone's ec2tokens, a key only works while its user is enabled and still has a
    role on the key's project (both enabled).
    """
    if not isinstance(access, str) or not access:
        return None
    with svc.db.read() as s:
        row = s.get(Credential, hashlib.sha256(access.encode()).hexdigest())
        if row is None or row.type != "ec2" or not row.project_id:
            return None
        blob = _ec2_blob(svc, row)
        if blob.get("access") != access or not blob.get("secret"):
            return None
        user = s.get(User, row.user_id)
        project = s.get(Project, row.project_id)
        if user is None or not user.enabled or project is None or not project.enabled:
            return None
        domain = s.get(Project, project.domain_id)
        if domain is None or not domain.enabled:
            return None
        roles = assignments.effective_roles(s, user.id, "project", project.id, project)
        if not roles:
            return None
        return {"user_id": row.user_id, "project_id": row.project_id,
                "secret": blob["secret"], "access": access, "roles": [r.name for r in roles]}


# -- application credentials -----------------------------------------------------------------
def access_rule_view(svc: Any, r: AccessRule) -> dict[str, Any]:
    return {"id": r.id, "service": r.service, "path": r.path, "method": r.method,
            "links": links(svc.base, f"users/{r.user_id}/access_rules/{r.id}")}


def app_cred_view(svc: Any, s: Session, c: ApplicationCredential,
                  secret: str | None = None) -> dict[str, Any]:
    rules = []
    if c.access_rules:
        rows = {r.id: r for r in s.scalars(select(AccessRule).where(
            AccessRule.id.in_(c.access_rules))).all()}
        rules = [{"id": r.id, "service": r.service, "path": r.path, "method": r.method}
                 for rid in c.access_rules if (r := rows.get(rid)) is not None]
    out = {"id": c.id, "name": c.name, "description": c.description, "user_id": c.user_id,
           "project_id": c.project_id, "expires_at": isotime(c.expires_at, micro=True, z=False),
           "unrestricted": c.unrestricted, "system": None, "roles": c.roles,
           "access_rules": rules,
           "links": links(svc.base, f"users/{c.user_id}/application_credentials/{c.id}")}
    if secret is not None:
        out["secret"] = secret
    return out


def _parse_expiry(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest("Invalid input for field 'application_credential.expires_at': must "
                         "be an ISO 8601 time")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid input for field 'application_credential.expires_at': "
                         f"{value!r} is not an ISO 8601 time") from None
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if when <= utcnow():
        raise BadRequest("The application credential would already be expired.")
    return when


def _app_cred_roles(s: Session, ctx: RequestContext, requested: Any) -> list[dict[str, Any]]:
    """The roles the credential delegates: a subset of the caller's roles on the project."""
    token_roles = {r.id: r for r in s.scalars(select(Role).where(
        Role.name.in_(sorted(ctx.roles)), Role.domain_id == "")).all()}
    if requested is None:
        chosen = list(token_roles.values())
    else:
        if not isinstance(requested, list):
            raise BadRequest("Invalid input for field 'application_credential.roles': must be "
                             "a list")
        chosen = []
        for ref in requested:
            if not isinstance(ref, dict) or not ({"id", "name"} & set(ref)):
                raise BadRequest("Each role needs an id or a name.")
            match = [r for r in token_roles.values()
                     if r.id == ref.get("id") or ("id" not in ref and r.name == ref.get("name"))]
            if not match:
                raise Forbidden(f"You cannot delegate a role you do not have on this "
                                f"project: {ref.get('id') or ref.get('name')}.")
            chosen.append(match[0])
    return [{"id": r.id, "name": r.name, "domain_id": None} for r in chosen]


def create_app_cred(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "application_credential")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest("Invalid input for field 'application_credential.name': a non-empty "
                         "string of at most 255 characters")
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    if ctx.user_id != p["user_id"]:
        raise Forbidden("Application credentials are created by their own user.")
    if ctx.project_id is None:
        raise Forbidden("Creating an application credential needs a project-scoped token.")
    if ctx.app_cred_id is not None and not _caller_unrestricted(svc, ctx):
        raise Forbidden("A restricted application credential cannot create another one.")
    secret = data.get("secret")
    if secret is None:
        secret = secrets.token_urlsafe(64)
    elif not isinstance(secret, str) or not secret:
        raise BadRequest("Invalid input for field 'application_credential.secret'.")
    unrestricted = data.get("unrestricted", False)
    if not isinstance(unrestricted, bool):
        raise BadRequest("Invalid input for field 'application_credential.unrestricted': "
                         "must be a boolean")
    expires = _parse_expiry(data.get("expires_at"))
    rules_in = data.get("access_rules")
    if rules_in is not None and not isinstance(rules_in, list):
        raise BadRequest("Invalid input for field 'application_credential.access_rules'.")
    with svc.db.write() as s:
        if s.scalars(select(ApplicationCredential.id).where(
                ApplicationCredential.user_id == ctx.user_id,
                ApplicationCredential.name == name)).first():
            raise Conflict(f"Conflict occurred attempting to store application_credential - "
                           f"Duplicate entry found with name {name}.")
        roles = _app_cred_roles(s, ctx, data.get("roles"))
        rule_ids = [_access_rule(s, ctx.user_id, ref) for ref in (rules_in or [])]
        cred = ApplicationCredential(
            name=name, secret_hash=svc.hasher.hash(secret), user_id=ctx.user_id,
            project_id=ctx.project_id, expires_at=expires, unrestricted=unrestricted,
            description=opt_str(data, "description", prefix="application_credential"),
            roles=roles, access_rules=rule_ids)
        s.add(cred)
        s.flush()
        return {"application_credential": app_cred_view(svc, s, cred, secret)}


def _caller_unrestricted(svc: Any, ctx: RequestContext) -> bool:
    with svc.db.read() as s:
        cred = s.get(ApplicationCredential, ctx.app_cred_id)
        return bool(cred and cred.unrestricted)


def _access_rule(s: Session, user_id: str, ref: Any) -> str:
    if not isinstance(ref, dict):
        raise BadRequest("Each access rule must be an object.")
    if "id" in ref:
        row = s.get(AccessRule, ref["id"])
        if row is None or row.user_id != user_id:
            raise NotFound(f"Could not find access rule: {ref['id']}.")
        return row.id
    service, path, method = ref.get("service"), ref.get("path"), ref.get("method")
    if not all(isinstance(x, str) and x for x in (service, path, method)) or \
            method.upper() not in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") or \
            not path.startswith("/") or len(path) > 128 or len(service) > 64:
        raise BadRequest("An access rule needs a service, an absolute path and an HTTP method.")
    row = s.scalars(select(AccessRule).where(AccessRule.user_id == user_id,
                                             AccessRule.service == service,
                                             AccessRule.path == path,
                                             AccessRule.method == method)).first()
    if row is None:
        row = AccessRule(user_id=user_id, service=service, path=path, method=method)
        s.add(row)
        s.flush()
    return row.id


def list_app_creds(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        get_user(s, p["user_id"])
        stmt = select(ApplicationCredential).where(ApplicationCredential.user_id == p["user_id"])
        if "name" in q:
            stmt = stmt.where(ApplicationCredential.name == q["name"])
        items = [app_cred_view(svc, s, c) for c in s.scalars(stmt).all()]
    return collection(svc.base, f"users/{p['user_id']}/application_credentials",
                      "application_credentials", items)


def _get_app_cred(s: Session, user_id: str, cred_id: str) -> ApplicationCredential:
    cred = s.get(ApplicationCredential, cred_id)
    if cred is None or cred.user_id != user_id:
        raise NotFound(f"Could not find Application Credential: {cred_id}.")
    return cred


def show_app_cred(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        return {"application_credential": app_cred_view(
            svc, s, _get_app_cred(s, p["user_id"], p["cred_id"]))}


def delete_app_cred(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    if ctx.app_cred_id is not None and not _caller_unrestricted(svc, ctx):
        raise Forbidden("A restricted application credential cannot delete one.")
    with svc.db.write() as s:
        s.delete(_get_app_cred(s, p["user_id"], p["cred_id"]))
    svc.changed()


def list_access_rules(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        stmt = select(AccessRule).where(AccessRule.user_id == p["user_id"])
        for key in ("service", "path", "method"):
            if key in q:
                stmt = stmt.where(getattr(AccessRule, key) == q[key])
        items = [access_rule_view(svc, r) for r in s.scalars(stmt).all()]
    return collection(svc.base, f"users/{p['user_id']}/access_rules", "access_rules", items)


def _get_rule(s: Session, user_id: str, rule_id: str) -> AccessRule:
    row = s.get(AccessRule, rule_id)
    if row is None or row.user_id != user_id:
        raise NotFound(f"Could not find access rule: {rule_id}.")
    return row


def show_access_rule(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    with svc.db.read() as s:
        return {"access_rule": access_rule_view(svc, _get_rule(s, p["user_id"], p["rule_id"]))}


def delete_access_rule(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:application_credentials", {"user_id": p["user_id"]})
    with svc.db.write() as s:
        row = _get_rule(s, p["user_id"], p["rule_id"])
        for cred in s.scalars(select(ApplicationCredential).where(
                ApplicationCredential.user_id == p["user_id"])).all():
            if row.id in (cred.access_rules or []):
                raise Forbidden(f"Access rule {row.id} is still used by application "
                                f"credential {cred.id}.")
        s.delete(row)


# -- OS-OAUTH1 consumers --------------------------------------------------------------------------
def consumer_view(svc: Any, c: Consumer, secret: str | None = None) -> dict[str, Any]:
    out = {**(c.extra or {}), "id": c.id, "description": c.description,
           "links": {"self": f"{svc.base}/v3/OS-OAUTH1/consumers/{c.id}"}}
    if secret is not None:
        out["secret"] = secret
    return out


def create_consumer(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "consumer")
    policy.enforce(ctx, "identity:manage_consumers", {})
    desc = opt_str(data, "description", prefix="consumer")
    if "secret" in data:
        raise BadRequest("A consumer's secret is generated, not given.")
    secret = secrets.token_urlsafe(32)
    with svc.db.write() as s:
        row = Consumer(description=desc, secret_hash=svc.hasher.hash(secret),
                       extra=split_extra(data, {"description"}))
        s.add(row)
        s.flush()
        return {"consumer": consumer_view(svc, row, secret)}


def list_consumers(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_consumers", {})
    with svc.db.read() as s:
        items = [consumer_view(svc, c) for c in s.scalars(select(Consumer)).all()]
    return {"consumers": items, "links": {"self": f"{svc.base}/v3/OS-OAUTH1/consumers",
                                          "previous": None, "next": None}}


def show_consumer(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_consumers", {})
    with svc.db.read() as s:
        return {"consumer": consumer_view(svc, get_row(s, Consumer, p["consumer_id"], "consumer"))}


def update_consumer(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    data = body_object(body, "consumer")
    policy.enforce(ctx, "identity:manage_consumers", {})
    if "secret" in data:
        raise BadRequest("A consumer's secret cannot be changed.")
    with svc.db.write() as s:
        row = get_row(s, Consumer, p["consumer_id"], "consumer")
        if "id" in data and data["id"] != row.id:
            raise BadRequest("A consumer's id cannot be changed.")
        if "description" in data:
            row.description = opt_str(data, "description", prefix="consumer")
        merge_extra(row, data, {"description"})
        s.flush()
        return {"consumer": consumer_view(svc, row)}


def delete_consumer(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_consumers", {})
    with svc.db.write() as s:
        s.delete(get_row(s, Consumer, p["consumer_id"], "consumer"))
