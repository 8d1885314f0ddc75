"""Keystone v3 resource routes as data: (method, path, function, success status).

Each function is ``fn(svc, ctx, path_params, query, body)`` from a resource module; it
runs in a worker thread and returns the body (or ``(body, status)``), or None for an
empty answer. Reading the body and rendering are the only HTTP work done here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from starlette.responses import Response

from pocketstack.api.http import Req, Routes, empty, json, run
from pocketstack.api.readcache import MISS
from pocketstack.services.identity import (catalog_admin, credentials, domain_configs,
                                           ep_filter, federation, limits, projects, roles,
                                           trusts, users)
from pocketstack.services.identity.common import reject_nul

Fn = Callable[..., Any]


def _grant_routes() -> list[tuple[str, str, Fn, int]]:
    """Project/domain/system grants for users and groups, plus OS-INHERIT."""
    out: list[tuple[str, str, Fn, int]] = []
    for actor in ("users", "groups"):
        aid = "{user_id}" if actor == "users" else "{group_id}"
        for kind, prefix in (("project", "/v3/projects/{project_id}"),
                             ("domain", "/v3/domains/{domain_id}"),
                             ("system", "/v3/system")):
            base = f"{prefix}/{actor}/{aid}/roles"
            out += [
                ("GET", base, partial(roles.list_grants, target_kind=kind), 200),
                ("PUT", base + "/{role_id}", partial(roles.grant, target_kind=kind), 204),
                ("HEAD", base + "/{role_id}", partial(roles.check_grant, target_kind=kind), 204),
                ("GET", base + "/{role_id}", partial(roles.check_grant, target_kind=kind), 204),
                ("DELETE", base + "/{role_id}", partial(roles.revoke, target_kind=kind), 204),
            ]
        for kind, prefix in (("domain", "/v3/OS-INHERIT/domains/{domain_id}"),
                             ("project", "/v3/OS-INHERIT/projects/{project_id}")):
            base = f"{prefix}/{actor}/{aid}/roles"
            one = base + "/{role_id}/inherited_to_projects"
            kw = {"target_kind": kind, "inherited": True}
            out += [
                ("GET", base + "/inherited_to_projects", partial(roles.list_grants, **kw), 200),
                ("PUT", one, partial(roles.grant, **kw), 204),
                ("HEAD", one, partial(roles.check_grant, **kw), 204),
                ("GET", one, partial(roles.check_grant, **kw), 204),
                ("DELETE", one, partial(roles.revoke, **kw), 204),
            ]
    return out


def _crud(path: str, one: str, mod: Any, create: str, lst: str, show: str, update: str,
          delete: str) -> list[tuple[str, str, Fn, int]]:
    return [("POST", path, getattr(mod, create), 201), ("GET", path, getattr(mod, lst), 200),
            ("GET", one, getattr(mod, show), 200), ("PATCH", one, getattr(mod, update), 200),
            ("DELETE", one, getattr(mod, delete), 204)]


ROUTES: list[tuple[str, str, Fn, int]] = [
    # domains (the /config paths before /{domain_id} matching is fine: distinct depth)
    *_crud("/v3/domains", "/v3/domains/{domain_id}", projects, "create_domain",
           "list_domains", "show_domain", "update_domain", "delete_domain"),
    ("GET", "/v3/domains/config/default", domain_configs.config_default, 200),
    ("GET", "/v3/domains/config/{group}/default", domain_configs.config_default, 200),
    ("GET", "/v3/domains/config/{group}/{option}/default", domain_configs.config_default, 200),
    ("PUT", "/v3/domains/{domain_id}/config", domain_configs.config_put, 201),
    ("GET", "/v3/domains/{domain_id}/config", domain_configs.config_show, 200),
    ("PATCH", "/v3/domains/{domain_id}/config", domain_configs.config_update, 200),
    ("DELETE", "/v3/domains/{domain_id}/config", domain_configs.config_delete, 204),
    ("GET", "/v3/domains/{domain_id}/config/{group}", domain_configs.config_show, 200),
    ("PATCH", "/v3/domains/{domain_id}/config/{group}", domain_configs.config_update, 200),
    ("DELETE", "/v3/domains/{domain_id}/config/{group}", domain_configs.config_delete, 204),
    ("GET", "/v3/domains/{domain_id}/config/{group}/{option}", domain_configs.config_show, 200),
    ("PATCH", "/v3/domains/{domain_id}/config/{group}/{option}", domain_configs.config_update, 200),
    ("DELETE", "/v3/domains/{domain_id}/config/{group}/{option}", domain_configs.config_delete, 204),
    # projects and tags
    *_crud("/v3/projects", "/v3/projects/{project_id}", projects, "create_project",
           "list_projects", "show_project", "update_project", "delete_project"),
    ("GET", "/v3/projects/{project_id}/tags", projects.list_tags, 200),
    ("PUT", "/v3/projects/{project_id}/tags", projects.replace_tags, 200),
    ("DELETE", "/v3/projects/{project_id}/tags", projects.delete_tags, 204),
    ("GET", "/v3/projects/{project_id}/tags/{tag}", projects.check_tag, 204),
    ("HEAD", "/v3/projects/{project_id}/tags/{tag}", projects.check_tag, 204),
    ("PUT", "/v3/projects/{project_id}/tags/{tag}", projects.add_tag, 201),
    ("DELETE", "/v3/projects/{project_id}/tags/{tag}", projects.delete_tag, 204),
    # users and groups
    *_crud("/v3/users", "/v3/users/{user_id}", users, "create_user", "list_users",
           "show_user", "update_user", "delete_user"),
    ("POST", "/v3/users/{user_id}/password", users.change_password, 204),
    ("GET", "/v3/users/{user_id}/projects", users.user_projects, 200),
    ("GET", "/v3/users/{user_id}/groups", users.user_groups, 200),
    *_crud("/v3/groups", "/v3/groups/{group_id}", users, "create_group", "list_groups",
           "show_group", "update_group", "delete_group"),
    ("GET", "/v3/groups/{group_id}/users", users.group_users, 200),
    ("PUT", "/v3/groups/{group_id}/users/{user_id}", users.add_user_to_group, 204),
    ("HEAD", "/v3/groups/{group_id}/users/{user_id}", users.check_user_in_group, 204),
    ("GET", "/v3/groups/{group_id}/users/{user_id}", users.check_user_in_group, 204),
    ("DELETE", "/v3/groups/{group_id}/users/{user_id}", users.remove_user_from_group, 204),
    # roles, inferences, grants, assignments
    *_crud("/v3/roles", "/v3/roles/{role_id}", roles, "create_role", "list_roles",
           "show_role", "update_role", "delete_role"),
    ("GET", "/v3/roles/{prior_role_id}/implies", roles.list_implied, 200),
    ("PUT", "/v3/roles/{prior_role_id}/implies/{implied_role_id}", roles.create_implied, 201),
    ("GET", "/v3/roles/{prior_role_id}/implies/{implied_role_id}", roles.show_implied, 200),
    ("HEAD", "/v3/roles/{prior_role_id}/implies/{implied_role_id}", roles.show_implied, 204),
    ("DELETE", "/v3/roles/{prior_role_id}/implies/{implied_role_id}", roles.delete_implied,
     204),
    ("GET", "/v3/role_inferences", roles.list_inferences, 200),
    ("GET", "/v3/role_assignments", roles.list_assignments, 200),
    *_grant_routes(),
    # catalog
    *_crud("/v3/regions", "/v3/regions/{region_id}", catalog_admin, "create_region",
           "list_regions", "show_region", "update_region", "delete_region"),
    ("PUT", "/v3/regions/{region_id}", catalog_admin.create_region, 201),
    *_crud("/v3/services", "/v3/services/{service_id}", catalog_admin, "create_service",
           "list_services", "show_service", "update_service", "delete_service"),
    *_crud("/v3/endpoints", "/v3/endpoints/{endpoint_id}", catalog_admin, "create_endpoint",
           "list_endpoints", "show_endpoint", "update_endpoint", "delete_endpoint"),
    *_crud("/v3/OS-EP-FILTER/endpoint_groups", "/v3/OS-EP-FILTER/endpoint_groups/{group_id}",
           catalog_admin, "create_epg", "list_epgs", "show_epg", "update_epg", "delete_epg"),
    ("HEAD", "/v3/OS-EP-FILTER/endpoint_groups/{group_id}", catalog_admin.show_epg, 200),
    *ep_filter.ROUTES,
    *federation.ROUTES,
    *_crud("/v3/policies", "/v3/policies/{policy_id}", catalog_admin, "create_policy",
           "list_policies", "show_policy", "update_policy", "delete_policy"),
    # credentials
    *_crud("/v3/credentials", "/v3/credentials/{credential_id}", credentials,
           "create_credential", "list_credentials", "show_credential", "update_credential",
           "delete_credential"),
    ("POST", "/v3/users/{user_id}/credentials/OS-EC2", credentials.create_ec2, 201),
    ("GET", "/v3/users/{user_id}/credentials/OS-EC2", credentials.list_ec2, 200),
    ("GET", "/v3/users/{user_id}/credentials/OS-EC2/{access}", credentials.show_ec2, 200),
    ("DELETE", "/v3/users/{user_id}/credentials/OS-EC2/{access}", credentials.delete_ec2, 204),
    ("POST", "/v3/users/{user_id}/application_credentials", credentials.create_app_cred, 201),
    ("GET", "/v3/users/{user_id}/application_credentials", credentials.list_app_creds, 200),
    ("GET", "/v3/users/{user_id}/application_credentials/{cred_id}", credentials.show_app_cred,
     200),
    ("DELETE", "/v3/users/{user_id}/application_credentials/{cred_id}",
     credentials.delete_app_cred, 204),
    ("GET", "/v3/users/{user_id}/access_rules", credentials.list_access_rules, 200),
    ("GET", "/v3/users/{user_id}/access_rules/{rule_id}", credentials.show_access_rule, 200),
    ("DELETE", "/v3/users/{user_id}/access_rules/{rule_id}", credentials.delete_access_rule,
     204),
    # OS-TRUST (trusts cannot be updated)
    ("POST", "/v3/OS-TRUST/trusts", trusts.create_trust, 201),
    ("GET", "/v3/OS-TRUST/trusts", trusts.list_trusts, 200),
    ("GET", "/v3/OS-TRUST/trusts/{trust_id}", trusts.show_trust, 200),
    ("DELETE", "/v3/OS-TRUST/trusts/{trust_id}", trusts.delete_trust, 204),
    ("GET", "/v3/OS-TRUST/trusts/{trust_id}/roles", trusts.list_trust_roles, 200),
    ("HEAD", "/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", trusts.show_trust_role, 200),
    ("GET", "/v3/OS-TRUST/trusts/{trust_id}/roles/{role_id}", trusts.show_trust_role, 200),
    # unified limits
    ("GET", "/v3/limits/model", limits.model, 200),
    *_crud("/v3/registered_limits", "/v3/registered_limits/{limit_id}", limits,
           "create_registered", "list_registered", "show_registered", "update_registered",
           "delete_registered"),
    *_crud("/v3/limits", "/v3/limits/{limit_id}", limits, "create_limits", "list_limits",
           "show_limit", "update_limit", "delete_limit"),
    *_crud("/v3/OS-OAUTH1/consumers", "/v3/OS-OAUTH1/consumers/{consumer_id}", credentials,
           "create_consumer", "list_consumers", "show_consumer", "update_consumer",
           "delete_consumer"),
]

BODY_METHODS = {"POST", "PUT", "PATCH"}
# PUT grants/tags/membership take no body; everything else that writes needs one.
NO_BODY = {roles.grant, projects.add_tag, users.add_user_to_group, roles.create_implied,
           ep_filter.add_endpoint, ep_filter.add_group}


# Pure reads whose results svc.read_cache may keep (keyed by token, route and query).
CACHED_READS = {projects.list_projects, projects.show_project, projects.list_domains,
                projects.show_domain, users.list_users, users.show_user, roles.list_roles,
                roles.show_role}


def _handler(svc: Any, method: str, fn: Fn, status: int) -> Callable[[Req], Any]:
    base_fn = fn.func if isinstance(fn, partial) else fn
    wants_body = method in BODY_METHODS and base_fn not in NO_BODY
    cached = method == "GET" and base_fn in CACHED_READS and fn is base_fn

    async def handler(req: Req) -> Response:
        reject_nul(req.params, "URL")
        reject_nul([x for pair in req.query.multi_items() for x in pair], "query")
        if cached:
            key = (req.ctx.auth_token, base_fn, req.request.url.path,
                   req.request.url.query)
            result = svc.read_cache.get(key)
            if result is MISS:
                generation = svc.read_cache.generation()
                result = await run(fn, svc, req.ctx, dict(req.params), req.query, None)
                svc.read_cache.put(key, generation, result)
        else:
            body = await req.json() if wants_body else None
            reject_nul(body, "body")
            result = await run(fn, svc, req.ctx, dict(req.params), req.query, body)
        code = status
        if isinstance(result, tuple):
            result, code = result
        if result is None:
            return empty(code)
        if req.request.method == "HEAD":
            return Response(status_code=code, headers={"Content-Type": "application/json"})
        return json(result, code)

    handler.__name__ = getattr(base_fn, "__name__", "identity")
    return handler


# The one Keystone call that needs no token: the original password is the proof.
NO_AUTH = {users.change_password}


def register(svc: Any, r: Routes) -> None:
    # explicit HEAD routes first: a GET route answers HEAD too, with the GET's status
    ordered = sorted(ROUTES, key=lambda route: route[0] != "HEAD")
    for method, path, fn, status in ordered:
        r.add(path, [method] if method != "GET" else ["GET", "HEAD"],
              _handler(svc, method, fn, status), auth=fn not in NO_AUTH)
