"""Domain-specific configuration (/v3/domains/{domain_id}/config and the defaults):
the groups and options Keystone accepts, stored as one DomainConfig row per domain."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pocketstack import policy
from pocketstack.context import RequestContext
from pocketstack.errors import BadRequest, Forbidden, NotFound
from pocketstack.services.identity.common import get_domain
from pocketstack.services.identity.models import DomainConfig


# The groups and options Keystone accepts in a domain-specific configuration.
CONFIG_OPTIONS = {
    "identity": ["driver", "list_limit"],
    "ldap": ["url", "user", "password", "suffix", "user_tree_dn", "user_filter",
             "user_objectclass", "user_id_attribute", "user_name_attribute",
             "user_mail_attribute", "user_description_attribute", "user_pass_attribute",
             "user_enabled_attribute", "user_enabled_mask", "user_enabled_default",
             "group_tree_dn", "group_filter", "group_objectclass", "group_id_attribute",
             "group_name_attribute", "group_member_attribute", "group_desc_attribute",
             "use_tls", "tls_cacertfile", "query_scope", "page_size", "chase_referrals"],
}
CONFIG_DEFAULTS = {
    "identity": {"driver": "sql", "list_limit": None},
    "ldap": {"url": "ldap://localhost", "user": None, "suffix": "cn=example,cn=com",
             "user_tree_dn": None, "user_filter": None, "user_objectclass": "inetOrgPerson",
             "user_id_attribute": "cn", "user_name_attribute": "sn",
             "user_mail_attribute": "mail", "user_description_attribute": "description",
             "user_pass_attribute": "userPassword", "user_enabled_attribute": "enabled",
             "user_enabled_mask": 0, "user_enabled_default": "True", "group_tree_dn": None,
             "group_filter": None, "group_objectclass": "groupOfNames",
             "group_id_attribute": "cn", "group_name_attribute": "ou",
             "group_member_attribute": "member", "group_desc_attribute": "description",
             "use_tls": False, "tls_cacertfile": None, "query_scope": "one", "page_size": 0,
             "chase_referrals": None},
}


def _check_config(config: Any, group: str | None = None) -> dict[str, dict[str, Any]]:
    if not isinstance(config, dict) or not config:
        raise BadRequest("Invalid input for field 'config': must be a non-empty object")
    for gname, opts in config.items():
        if gname not in CONFIG_OPTIONS:
            raise Forbidden(f"Invalid domain specific configuration: group {gname} is not "
                            "supported.")
        if group is not None and gname != group:
            raise BadRequest(f"Trying to update group {group}, so the config can only "
                             f"specify that group, not {gname}.")
        if not isinstance(opts, dict) or not opts:
            raise BadRequest(f"Invalid domain specific configuration: group {gname} must be "
                             "a non-empty object.")
        for opt in opts:
            if opt not in CONFIG_OPTIONS[gname]:
                raise Forbidden(f"Invalid domain specific configuration: option {opt} in "
                                f"group {gname} is not supported.")
    return config


def _load_config(s: Session, domain_id: str) -> DomainConfig:
    get_domain(s, domain_id)
    row = s.get(DomainConfig, domain_id)
    if row is None or not row.config:
        raise NotFound(f"Could not find domain config for domain {domain_id}.")
    return row


def config_default(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_domain_config", {})
    group, option = p.get("group"), p.get("option")
    if group is None:
        return {"config": CONFIG_DEFAULTS}
    if group not in CONFIG_DEFAULTS:
        raise NotFound(f"Group {group} is not supported for domain specific configurations.")
    if option is None:
        return {"config": {group: CONFIG_DEFAULTS[group]}}
    if option not in CONFIG_DEFAULTS[group]:
        raise NotFound(f"Option {option} in group {group} is not supported.")
    return {"config": {option: CONFIG_DEFAULTS[group][option]}}


def config_put(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> tuple[dict, int]:
    policy.enforce(ctx, "identity:manage_domain_config", {})
    config = _check_config((body or {}).get("config") if isinstance(body, dict) else None)
    with svc.db.write() as s:
        get_domain(s, p["domain_id"])
        row = s.get(DomainConfig, p["domain_id"])
        created = row is None or not row.config
        if row is None:
            row = DomainConfig(domain_id=p["domain_id"], config=config)
            s.add(row)
        else:
            row.config = config
    return {"config": config}, 201 if created else 200


def config_show(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:get_domain_config", {})
    with svc.db.read() as s:
        config = _load_config(s, p["domain_id"]).config
    group, option = p.get("group"), p.get("option")
    if group is None:
        return {"config": config}
    if group not in config:
        raise NotFound(f"Could not find group {group} in the domain's configuration.")
    if option is None:
        return {"config": {group: config[group]}}
    if option not in config[group]:
        raise NotFound(f"Could not find option {option} in group {group}.")
    return {"config": {option: config[group][option]}}


def config_update(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> dict:
    policy.enforce(ctx, "identity:manage_domain_config", {})
    group, option = p.get("group"), p.get("option")
    raw = body.get("config") if isinstance(body, dict) else None
    if option is not None:
        if not isinstance(raw, dict) or set(raw) != {option}:
            raise BadRequest(f"The config must hold exactly the option {option}.")
        raw = {group: raw}
    config = _check_config(raw, group)
    with svc.db.write() as s:
        row = _load_config(s, p["domain_id"])
        current = {g: dict(o) for g, o in row.config.items()}
        if group is not None and group not in current:
            raise NotFound(f"Could not find group {group} in the domain's configuration.")
        if option is not None and option not in current[group]:
            raise NotFound(f"Could not find option {option} in group {group}.")
        for gname, opts in config.items():
            current.setdefault(gname, {}).update(opts)
        row.config = current
    if group is None:
        return {"config": current}
    return {"config": {group: current[group]}}


def config_delete(svc: Any, ctx: RequestContext, p: dict, q: Any, body: Any) -> None:
    policy.enforce(ctx, "identity:manage_domain_config", {})
    group, option = p.get("group"), p.get("option")
    with svc.db.write() as s:
        row = _load_config(s, p["domain_id"])
        current = {g: dict(o) for g, o in row.config.items()}
        if group is None:
            s.delete(row)
            return
        if group not in current:
            raise NotFound(f"Could not find group {group} in the domain's configuration.")
        if option is None:
            del current[group]
        else:
            if option not in current[group]:
                raise NotFound(f"Could not find option {option} in group {group}.")
            del current[group][option]
            if not current[group]:
                del current[group]
        row.config = current
