"""OS-FEDERATION registry (api-ref v3-ext federation): identity providers with their remote
ids and protocols, mappings, service providers. API and storage only: no SAML/OIDC login
is served yet, so nothing here issues tokens. Validation and messages follow Keystone's
keystone/federation/schema.py and keystone/api/os_federation.py.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.db.base import new_id
from pocketstack.errors import BadRequest, Conflict, NotFound
from pocketstack.services.identity.common import body_object, collection
from pocketstack.services.identity.models import (ROOT_DOMAIN, FederationMapping,
                                                  FederationProtocol, IdentityProvider,
                                                  IdpRemoteId, Project, ServiceProvider)

RULE = "identity:manage_federation"
RELAY_STATE_PREFIX = "ss:mem:"  # Keystone's [saml] relay_state_prefix default
SCHEMA_VERSIONS = ("1.0", "2.0")
DEFAULT_SCHEMA_VERSION = "1.0"
URL = re.compile(r"^https?://[^\s/$.?#].[^\s]*$", re.I)
ID = re.compile(r"^[^\x00-\x1f/]{1,64}$")


def _check_id(value: str, noun: str) -> str:
    if not ID.match(value):
        raise BadRequest(f"Invalid input for field '{noun}': an id of 1 to 64 characters "
                         "without '/'")
    return value


def _only(data: dict[str, Any], allowed: set[str], key: str) -> None:
    extra = set(data) - allowed
    if extra:
        raise BadRequest(f"Invalid input for field '{key}': Additional properties are not "
                         f"allowed ({', '.join(sorted(map(repr, extra)))} were unexpected)")


def _bool(data: dict[str, Any], field: str, key: str) -> bool:
    value = data[field]
    if not isinstance(value, bool):
        raise BadRequest(f"Invalid input for field '{key}.{field}': {value!r} is not of type "
                         "'boolean'")
    return value


def _opt_str(data: dict[str, Any], field: str, key: str, max_len: int | None = None) -> Any:
    value = data[field]
    if value is not None and (not isinstance(value, str) or
                              (max_len is not None and len(value) > max_len)):
        raise BadRequest(f"Invalid input for field '{key}.{field}': a string"
                         f"{f' of at most {max_len} characters' if max_len else ''} or null")
    return value


# -- identity providers --------------------------------------------------------------------
def _idp_view(svc: Any, s: Session, idp: IdentityProvider) -> dict[str, Any]:
    remote = sorted(s.scalars(select(IdpRemoteId.remote_id).where(IdpRemoteId.idp_id == idp.id)))
    self_url = f"{svc.base}/v3/OS-FEDERATION/identity_providers/{idp.id}"
    return {"id": idp.id, "enabled": idp.enabled, "description": idp.description,
            "domain_id": idp.domain_id, "authorization_ttl": idp.authorization_ttl,
            "remote_ids": remote,
            "links": {"self": self_url, "protocols": self_url + "/protocols"}}


def _get_idp(s: Session, idp_id: str) -> IdentityProvider:
    row = s.get(IdentityProvider, idp_id)
    if row is None:
        raise NotFound(f"Could not find Identity Provider: {idp_id}.")
    return row


def _idp_fields(data: dict[str, Any], create: bool) -> dict[str, Any]:
    key = "identity_provider"
    allowed = {"enabled", "description", "authorization_ttl", "remote_ids"}
    _only(data, allowed | ({"domain_id"} if create else set()), key)
    if not create and not data:
        raise BadRequest(f"Invalid input for field '{key}': {{}} does not have enough "
                         "properties")
    out: dict[str, Any] = {}
    if "enabled" in data:
        out["enabled"] = _bool(data, "enabled", key)
    if "description" in data:
        out["description"] = _opt_str(data, "description", key)
    if "authorization_ttl" in data:
        ttl = data["authorization_ttl"]
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0):
            raise BadRequest(f"Invalid input for field '{key}.authorization_ttl': a "
                             "non-negative integer or null")
        out["authorization_ttl"] = ttl
    if "remote_ids" in data:
        ids = data["remote_ids"]
        if ids is not None and (not isinstance(ids, list) or not all(
                isinstance(x, str) and 0 < len(x) <= 64 for x in ids) or
                len(set(ids)) != len(ids)):
            raise BadRequest(f"Invalid input for field '{key}.remote_ids': a list of unique "
                             "strings of at most 64 characters, or null")
        out["remote_ids"] = list(ids or [])
    if "domain_id" in data:
        out["domain_id"] = _opt_str(data, "domain_id", key, 64)
    return out


def _set_remote_ids(s: Session, idp_id: str, ids: list[str]) -> None:
    for rid in ids:
        owner = s.get(IdpRemoteId, rid)
        if owner is not None and owner.idp_id != idp_id:
            raise Conflict(f"Conflict occurred attempting to store identity_provider - "
                           f"Duplicate remote ID: {rid}")
    s.execute(delete(IdpRemoteId).where(IdpRemoteId.idp_id == idp_id))
    s.flush()
    for rid in ids:
        s.add(IdpRemoteId(remote_id=rid, idp_id=idp_id))


def create_idp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    idp_id = _check_id(p["idp_id"], "idp_id")
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    data = body.get("identity_provider", {})
    if not isinstance(data, dict):
        raise BadRequest("Invalid input for field 'identity_provider': must be an object.")
    fields = _idp_fields(data, True)
    with svc.db.write() as s:
        if s.get(IdentityProvider, idp_id) is not None:
            raise Conflict(f"Conflict occurred attempting to store identity_provider - "
                           f"Duplicate entry: {idp_id}")
        domain_id = fields.get("domain_id")
        if domain_id:
            dom = s.get(Project, domain_id)
            if dom is None or not dom.is_domain:
                raise NotFound(f"Could not find domain: {domain_id}.")
        else:  # as Keystone: a domain of its own for the provider's users
            domain_id = new_id()
            s.add(Project(id=domain_id, name=domain_id, enabled=True,
                          description="Auto generated federated domain for Identity "
                                      f"Provider: {idp_id}",
                          domain_id=ROOT_DOMAIN, parent_id=None, is_domain=True))
        idp = IdentityProvider(id=idp_id, enabled=fields.get("enabled", False),
                               description=fields.get("description"), domain_id=domain_id,
                               authorization_ttl=fields.get("authorization_ttl"))
        s.add(idp)
        s.flush()
        _set_remote_ids(s, idp_id, fields.get("remote_ids", []))
        s.flush()
        out = _idp_view(svc, s, idp)
    svc.changed()
    return {"identity_provider": out}


def list_idps(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        stmt = select(IdentityProvider).order_by(IdentityProvider.id)
        if "id" in q:
            stmt = stmt.where(IdentityProvider.id == q["id"])
        if "enabled" in q:
            stmt = stmt.where(IdentityProvider.enabled.is_(
                q["enabled"].lower() not in ("0", "false", "no", "off")))
        items = [_idp_view(svc, s, r) for r in s.scalars(stmt)]
    return collection(svc.base, "OS-FEDERATION/identity_providers", "identity_providers",
                      items)


def show_idp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        return {"identity_provider": _idp_view(svc, s, _get_idp(s, p["idp_id"]))}


def update_idp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    fields = _idp_fields(body_object(body, "identity_provider"), False)
    with svc.db.write() as s:
        idp = _get_idp(s, p["idp_id"])
        for k in ("enabled", "description", "authorization_ttl"):
            if k in fields:
                setattr(idp, k, fields[k])
        if "remote_ids" in fields:
            _set_remote_ids(s, idp.id, fields["remote_ids"])
        s.flush()
        return {"identity_provider": _idp_view(svc, s, idp)}


def delete_idp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        idp = _get_idp(s, p["idp_id"])
        _forget_idp(s, idp.id)


def _forget_idp(s: Session, idp_id: str) -> None:
    s.execute(delete(FederationProtocol).where(FederationProtocol.idp_id == idp_id))
    s.execute(delete(IdpRemoteId).where(IdpRemoteId.idp_id == idp_id))
    s.execute(delete(IdentityProvider).where(IdentityProvider.id == idp_id))


def forget_domain(s: Session, domain_id: str) -> None:
    """A deleted domain takes its identity providers with it (as Keystone)."""
    for idp_id in list(s.scalars(select(IdentityProvider.id).where(
            IdentityProvider.domain_id == domain_id))):
        _forget_idp(s, idp_id)


# -- protocols -----------------------------------------------------------------------------
def _protocol_view(svc: Any, x: FederationProtocol, full: bool = False) -> dict[str, Any]:
    idp_url = f"{svc.base}/v3/OS-FEDERATION/identity_providers/{x.idp_id}"
    out: dict[str, Any] = {"id": x.id, "mapping_id": x.mapping_id,
                           "links": {"self": f"{idp_url}/protocols/{x.id}",
                                     "identity_provider": idp_url}}
    if full:
        out["idp_id"] = x.idp_id
    if full or x.remote_id_attribute is not None:
        out["remote_id_attribute"] = x.remote_id_attribute
    return out


def _get_protocol(s: Session, idp_id: str, protocol_id: str) -> FederationProtocol:
    row = s.get(FederationProtocol, (protocol_id, idp_id))
    if row is None:
        raise NotFound(f"Could not find federated protocol {protocol_id} for Identity "
                       f"Provider: {idp_id}.")
    return row


def _protocol_fields(s: Session, data: dict[str, Any], create: bool) -> dict[str, Any]:
    _only(data, {"mapping_id", "remote_id_attribute"}, "protocol")
    mapping_id = data.get("mapping_id")
    if not isinstance(mapping_id, str) or not 0 < len(mapping_id) <= 64:
        raise BadRequest("Invalid input for field 'protocol.mapping_id': is a required "
                         "property (1 to 64 characters)")
    if s.get(FederationMapping, mapping_id) is None:
        raise BadRequest(f"Invalid mapping id: {mapping_id}")
    out: dict[str, Any] = {"mapping_id": mapping_id}
    if "remote_id_attribute" in data:
        rid = data["remote_id_attribute"]
        if (rid is None and not create) or (rid is not None and (
                not isinstance(rid, str) or len(rid) > 64)):
            raise BadRequest("Invalid input for field 'protocol.remote_id_attribute': a "
                             "string of at most 64 characters")
        out["remote_id_attribute"] = rid
    return out


def create_protocol(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    protocol_id = _check_id(p["protocol_id"], "protocol_id")
    data = body_object(body, "protocol")
    with svc.db.write() as s:
        fields = _protocol_fields(s, data, True)
        _get_idp(s, p["idp_id"])
        if s.get(FederationProtocol, (protocol_id, p["idp_id"])) is not None:
            raise Conflict("Conflict occurred attempting to store federation_protocol - "
                           f"Duplicate entry: {protocol_id}")
        row = FederationProtocol(id=protocol_id, idp_id=p["idp_id"], **fields)
        s.add(row)
        s.flush()
        return {"protocol": _protocol_view(svc, row)}


def list_protocols(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        _get_idp(s, p["idp_id"])
        items = [_protocol_view(svc, x, full=True) for x in s.scalars(
            select(FederationProtocol).where(FederationProtocol.idp_id == p["idp_id"])
            .order_by(FederationProtocol.id))]
    return collection(svc.base, f"OS-FEDERATION/identity_providers/{p['idp_id']}/protocols",
                      "protocols", items)


def show_protocol(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        return {"protocol": _protocol_view(svc, _get_protocol(s, p["idp_id"],
                                                              p["protocol_id"]))}


def update_protocol(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    data = body_object(body, "protocol")
    with svc.db.write() as s:
        row = _get_protocol(s, p["idp_id"], p["protocol_id"])
        for k, v in _protocol_fields(s, data, False).items():
            setattr(row, k, v)
        s.flush()
        return {"protocol": _protocol_view(svc, row)}


def delete_protocol(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        s.delete(_get_protocol(s, p["idp_id"], p["protocol_id"]))


# -- mappings ------------------------------------------------------------------------------
def _mapping_view(svc: Any, m: FederationMapping) -> dict[str, Any]:
    return {"id": m.id, "rules": m.rules, "schema_version": m.schema_version,
            "links": {"self": f"{svc.base}/v3/OS-FEDERATION/mappings/{m.id}"}}


def _get_mapping(s: Session, mapping_id: str) -> FederationMapping:
    row = s.get(FederationMapping, mapping_id)
    if row is None:
        raise NotFound(f"Could not find mapping: {mapping_id}.")
    return row


def _mapping_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The structure Keystone's mapping schema requires: rules of local and remote parts."""
    # the `openstack mapping create` body carries the id as well (Keystone takes it)
    _only(data, {"rules", "schema_version", "id"}, "mapping")
    rules = data.get("rules")
    bad = BadRequest("Invalid input for field 'mapping.rules': a list of rules, each an "
                     "object with a non-empty 'local' list and a 'remote' list of objects "
                     "that name a 'type'")
    if not isinstance(rules, list):
        raise bad
    for rule in rules:
        if not isinstance(rule, dict) or set(rule) - {"local", "remote"}:
            raise bad
        local, remote = rule.get("local"), rule.get("remote")
        if not isinstance(local, list) or not local or not all(
                isinstance(x, dict) for x in local):
            raise bad
        if not isinstance(remote, list) or not remote or not all(
                isinstance(x, dict) and isinstance(x.get("type"), str) for x in remote):
            raise bad
        for r in remote:
            lists = {"any_one_of", "not_any_of", "blacklist", "whitelist"} & set(r)
            if len(lists) > 1 or any(not isinstance(r[k], list) for k in lists) or (
                    "regex" in r and not isinstance(r["regex"], bool)):
                raise bad
    version = data.get("schema_version") or DEFAULT_SCHEMA_VERSION
    if version not in SCHEMA_VERSIONS:
        raise BadRequest(f"Invalid input for field 'mapping.schema_version': one of "
                         f"{', '.join(SCHEMA_VERSIONS)}")
    return {"rules": rules, "schema_version": version}


def create_mapping(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    mapping_id = _check_id(p["mapping_id"], "mapping_id")
    fields = _mapping_fields(body_object(body, "mapping"))
    with svc.db.write() as s:
        if s.get(FederationMapping, mapping_id) is not None:
            raise Conflict("Conflict occurred attempting to store mapping - Duplicate "
                           f"entry: {mapping_id}")
        row = FederationMapping(id=mapping_id, **fields)
        s.add(row)
        s.flush()
        return {"mapping": _mapping_view(svc, row)}


def list_mappings(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        items = [_mapping_view(svc, m) for m in s.scalars(
            select(FederationMapping).order_by(FederationMapping.id))]
    return collection(svc.base, "OS-FEDERATION/mappings", "mappings", items)


def show_mapping(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        return {"mapping": _mapping_view(svc, _get_mapping(s, p["mapping_id"]))}


def update_mapping(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    fields = _mapping_fields(body_object(body, "mapping"))
    with svc.db.write() as s:
        row = _get_mapping(s, p["mapping_id"])
        row.rules, row.schema_version = fields["rules"], fields["schema_version"]
        s.flush()
        return {"mapping": _mapping_view(svc, row)}


def delete_mapping(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        s.delete(_get_mapping(s, p["mapping_id"]))


# -- service providers ---------------------------------------------------------------------
def _sp_view(svc: Any, x: ServiceProvider) -> dict[str, Any]:
    return {"id": x.id, "enabled": x.enabled, "description": x.description,
            "auth_url": x.auth_url, "sp_url": x.sp_url,
            "relay_state_prefix": x.relay_state_prefix,
            "links": {"self": f"{svc.base}/v3/OS-FEDERATION/service_providers/{x.id}"}}


def _get_sp(s: Session, sp_id: str) -> ServiceProvider:
    row = s.get(ServiceProvider, sp_id)
    if row is None:
        raise NotFound(f"Could not find Service Provider: {sp_id}.")
    return row


def _sp_fields(data: dict[str, Any], create: bool) -> dict[str, Any]:
    key = "service_provider"
    _only(data, {"auth_url", "sp_url", "description", "enabled", "relay_state_prefix"}, key)
    if not create and not data:
        raise BadRequest(f"Invalid input for field '{key}': {{}} does not have enough "
                         "properties")
    out: dict[str, Any] = {}
    for field in ("auth_url", "sp_url"):
        if field in data or create:
            value = data.get(field)
            if not isinstance(value, str) or len(value) > 225 or not URL.match(value):
                raise BadRequest(f"Invalid input for field '{key}.{field}': "
                                 f"{'is a required property' if field not in data else 'an http(s) URL'}")
            out[field] = value
    if "description" in data:
        out["description"] = _opt_str(data, "description", key)
    if "enabled" in data:
        out["enabled"] = _bool(data, "enabled", key)
    if "relay_state_prefix" in data:
        value = _opt_str(data, "relay_state_prefix", key, 256)
        out["relay_state_prefix"] = RELAY_STATE_PREFIX if value is None else value
    return out


def create_sp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    sp_id = _check_id(p["sp_id"], "sp_id")
    fields = _sp_fields(body_object(body, "service_provider"), True)
    fields.setdefault("enabled", False)
    fields.setdefault("relay_state_prefix", RELAY_STATE_PREFIX)
    with svc.db.write() as s:
        if s.get(ServiceProvider, sp_id) is not None:
            raise Conflict("Conflict occurred attempting to store service_provider - "
                           f"Duplicate entry: {sp_id}")
        row = ServiceProvider(id=sp_id, **fields)
        s.add(row)
        s.flush()
        out = _sp_view(svc, row)
    svc.catalog_changed()  # tokens with a catalog list the enabled service providers
    return {"service_provider": out}


def list_sps(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        stmt = select(ServiceProvider).order_by(ServiceProvider.id)
        if "id" in q:
            stmt = stmt.where(ServiceProvider.id == q["id"])
        if "enabled" in q:
            stmt = stmt.where(ServiceProvider.enabled.is_(
                q["enabled"].lower() not in ("0", "false", "no", "off")))
        items = [_sp_view(svc, x) for x in s.scalars(stmt)]
    return collection(svc.base, "OS-FEDERATION/service_providers", "service_providers", items)


def show_sp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    with svc.db.read() as s:
        return {"service_provider": _sp_view(svc, _get_sp(s, p["sp_id"]))}


def update_sp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, RULE, {})
    fields = _sp_fields(body_object(body, "service_provider"), False)
    with svc.db.write() as s:
        row = _get_sp(s, p["sp_id"])
        for k, v in fields.items():
            setattr(row, k, v)
        s.flush()
        out = _sp_view(svc, row)
    svc.catalog_changed()
    return {"service_provider": out}


def delete_sp(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, RULE, {})
    with svc.db.write() as s:
        s.delete(_get_sp(s, p["sp_id"]))
    svc.catalog_changed()


B = "/v3/OS-FEDERATION"
IDP = B + "/identity_providers/{idp_id}"


def _resource(collection_path: str, one: str, create, lst, show, update, remove) -> list:  # noqa: ANN001
    return [("GET", collection_path, lst, 200), ("PUT", one, create, 201),
            ("GET", one, show, 200), ("PATCH", one, update, 200), ("DELETE", one, remove, 204)]


ROUTES = [
    *_resource(B + "/identity_providers", IDP, create_idp, list_idps, show_idp, update_idp,
               delete_idp),
    *_resource(IDP + "/protocols", IDP + "/protocols/{protocol_id}", create_protocol,
               list_protocols, show_protocol, update_protocol, delete_protocol),
    *_resource(B + "/mappings", B + "/mappings/{mapping_id}", create_mapping, list_mappings,
               show_mapping, update_mapping, delete_mapping),
    *_resource(B + "/service_providers", B + "/service_providers/{sp_id}", create_sp,
               list_sps, show_sp, update_sp, delete_sp),
]
