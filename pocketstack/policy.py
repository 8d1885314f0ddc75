"""Every authorization rule, in one table.

A rule is a predicate ``(ctx, target) -> bool`` built from the small combinators below.
``target`` is a dict describing the object acted on (``project_id``, ``user_id``,
``domain_id``...). Services call ``enforce(ctx, "service:action", target)`` after loading
what the target describes; the HTTP layer turns ``Forbidden`` into a 403 fault.

The defaults follow the OpenStack "secure RBAC" personas that Keystone bootstrap creates
(admin implies member implies reader), with the legacy behaviour the clients and Tempest
still expect: an ``admin`` role on a project-scoped token acts as cloud admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pocketstack.context import RequestContext
from pocketstack.errors import Forbidden

Target = Mapping[str, Any]


class Rule:
    def __init__(self, fn: Callable[[RequestContext, Target], bool], text: str) -> None:
        self.fn = fn
        self.text = text

    def __call__(self, ctx: RequestContext, target: Target) -> bool:
        return self.fn(ctx, target)

    def __or__(self, other: "Rule") -> "Rule":
        return Rule(lambda c, t: self(c, t) or other(c, t), f"({self.text} or {other.text})")

    def __and__(self, other: "Rule") -> "Rule":
        return Rule(lambda c, t: self(c, t) and other(c, t), f"({self.text} and {other.text})")

    def __repr__(self) -> str:
        return f"Rule({self.text})"


def role(name: str) -> Rule:
    return Rule(lambda c, t: name in c.roles, f"role:{name}")


ANYONE = Rule(lambda c, t: True, "@")
NOBODY = Rule(lambda c, t: False, "!")
ADMIN = Rule(lambda c, t: c.is_admin, "role:admin")
SYSTEM = Rule(lambda c, t: c.is_system or c.is_internal, "system_scope:all")
SYSTEM_ADMIN = ADMIN & SYSTEM
READER = role("reader") | role("member") | role("admin")
MEMBER = role("member") | role("admin")
MANAGER = role("manager") | role("admin")
OWNER = Rule(lambda c, t: c.project_id is not None and c.project_id == t.get("project_id"),
             "project_id:%(project_id)s")
SELF = Rule(lambda c, t: c.user_id is not None and c.user_id == t.get("user_id"),
            "user_id:%(user_id)s")
DOMAIN = Rule(lambda c, t: c.domain_id is not None and c.domain_id == t.get("domain_id"),
              "domain_id:%(domain_id)s")

PROJECT_READER = READER & OWNER
SYSTEM_READER = READER & SYSTEM  # a system-scoped reader (or member, admin) reads everything
PROJECT_MEMBER = MEMBER & OWNER
ADMIN_OR_READER = ADMIN | PROJECT_READER
ADMIN_OR_MEMBER = ADMIN | PROJECT_MEMBER
ADMIN_OR_OWNER = ADMIN | OWNER

# ---------------------------------------------------------------------------------------
# The table. Keys are "<service>:<action>" as in each project's policy-in-code.
# ---------------------------------------------------------------------------------------
RULES: dict[str, Rule] = {
    # identity (keystone) ----------------------------------------------------------------
    "identity:get_region": ANYONE,
    "identity:list_regions": ANYONE,
    "identity:create_region": ADMIN,
    "identity:update_region": ADMIN,
    "identity:delete_region": ADMIN,
    "identity:get_service": ADMIN | READER & SYSTEM,
    "identity:list_services": ADMIN | READER & SYSTEM,
    "identity:create_service": ADMIN,
    "identity:update_service": ADMIN,
    "identity:delete_service": ADMIN,
    "identity:get_endpoint": ADMIN | READER & SYSTEM,
    "identity:list_endpoints": ADMIN | READER & SYSTEM,
    "identity:create_endpoint": ADMIN,
    "identity:update_endpoint": ADMIN,
    "identity:delete_endpoint": ADMIN,
    "identity:get_domain": SYSTEM_READER | ADMIN | DOMAIN | Rule(
        lambda c, t: c.project_domain_id is not None and c.project_domain_id == t.get("domain_id"),
        "token.project.domain.id:%(domain_id)s"),
    "identity:list_domains": ADMIN | SYSTEM_READER,
    "identity:create_domain": ADMIN,
    "identity:update_domain": ADMIN,
    "identity:delete_domain": ADMIN,
    "identity:get_project": ADMIN | OWNER | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_projects": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_user_projects": ADMIN | SELF | SYSTEM_READER,
    "identity:create_project": ADMIN | (MANAGER & DOMAIN),
    "identity:update_project": ADMIN | (MANAGER & DOMAIN),
    "identity:delete_project": ADMIN | (MANAGER & DOMAIN),
    "identity:project_tags": ADMIN | OWNER,
    "identity:get_user": ADMIN | SELF | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_users": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:create_user": ADMIN | (MANAGER & DOMAIN),
    "identity:update_user": ADMIN | (MANAGER & DOMAIN),
    "identity:delete_user": ADMIN | (MANAGER & DOMAIN),
    "identity:change_password": SELF,
    "identity:get_group": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_groups": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_groups_for_user": ADMIN | SELF | (READER & DOMAIN) | SYSTEM_READER,
    "identity:create_group": ADMIN | (MANAGER & DOMAIN),
    "identity:update_group": ADMIN | (MANAGER & DOMAIN),
    "identity:delete_group": ADMIN | (MANAGER & DOMAIN),
    "identity:list_users_in_group": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:add_user_to_group": ADMIN | (MANAGER & DOMAIN),
    "identity:remove_user_from_group": ADMIN | (MANAGER & DOMAIN),
    "identity:check_user_in_group": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:get_role": ADMIN | READER,
    "identity:list_roles": ADMIN | READER,
    "identity:create_role": ADMIN,
    "identity:update_role": ADMIN,
    "identity:delete_role": ADMIN,
    "identity:implied_roles": ADMIN,
    "identity:list_role_inference_rules": ADMIN | READER & SYSTEM,
    "identity:role_assignments": ADMIN,
    "identity:create_grant": ADMIN | (MANAGER & DOMAIN),
    "identity:revoke_grant": ADMIN | (MANAGER & DOMAIN),
    "identity:check_grant": ADMIN | (READER & DOMAIN) | SELF | SYSTEM_READER,
    "identity:list_grants": ADMIN | (READER & DOMAIN) | SELF | SYSTEM_READER,
    "identity:create_system_grant": ADMIN,
    "identity:revoke_system_grant": ADMIN,
    "identity:get_domain_config": ADMIN | SYSTEM_READER,
    "identity:manage_domain_config": ADMIN,
    "identity:manage_endpoint_groups": ADMIN,
    "identity:manage_federation": ADMIN,  # OS-FEDERATION registry (Keystone: admin)
    "identity:manage_consumers": ADMIN,
    "identity:create_trust": SELF,  # target user_id: the trustor
    "identity:list_role_assignments": ADMIN | (READER & DOMAIN) | SYSTEM_READER,
    "identity:list_own_role_assignments": ADMIN | SELF,
    "identity:get_credential": ADMIN | SELF,
    "identity:list_credentials": ANYONE,  # filtered to the caller's own unless admin
    "identity:create_credential": ADMIN | SELF,
    "identity:update_credential": ADMIN | SELF,
    "identity:delete_credential": ADMIN | SELF,
    "identity:ec2_credentials": ADMIN | SELF,
    "identity:application_credentials": SELF | ADMIN,
    "identity:revocation_list": ADMIN,
    "identity:validate_token": ANYONE,  # a token may validate itself; others need admin/service
    "identity:revoke_token": ANYONE,
    "identity:get_policy": ADMIN | SYSTEM_READER,
    "identity:manage_policy": ADMIN,
    "identity:get_limits": ANYONE,
    "identity:manage_limits": ADMIN,
    # object-store (swift, and S3 on the same data) -------------------------------------
    # keystoneauth semantics: a user with an operator role on the account's project owns
    # the account; ResellerAdmin (or a system admin) may act on every account and is the
    # only one who may set account quotas. Others get in only through container ACLs,
    # TempURL or FormPost signatures (services/object_store/auth.py).
    "object-store:reseller_admin": Rule(
        lambda c, t: "reselleradmin" in {r.lower() for r in c.roles}, "role:ResellerAdmin")
        | SYSTEM_ADMIN,
    "object-store:account_owner": Rule(
        lambda c, t: "reselleradmin" in {r.lower() for r in c.roles}, "role:ResellerAdmin")
        | SYSTEM_ADMIN | (Rule(lambda c, t: bool({r.lower() for r in c.roles}
                                               & {"admin", "member", "swiftoperator"}),
                               "role:admin or role:member or role:SwiftOperator") & OWNER),
    # image (glance) -----------------------------------------------------------------------
    # Glance's secure-RBAC defaults without enforce_scope: who may *see* an image
    # (visibility, membership) is decided by the image service's queries; these rules say
    # what a caller who sees it may do. Targets carry project_id = the image owner (or,
    # for member status changes, the member's project).
    "image:get_images": ADMIN | READER,
    "image:get_image": ADMIN | READER,
    "image:add_image": ADMIN | MEMBER,
    "image:modify_image": ADMIN_OR_MEMBER,
    "image:delete_image": ADMIN_OR_MEMBER,
    "image:upload_image": ADMIN_OR_MEMBER,
    "image:download_image": ADMIN | READER,
    "image:download_deactivated": ADMIN,
    "image:set_owner": ADMIN,
    "image:publicize_image": ADMIN,
    "image:communitize_image": ADMIN_OR_MEMBER,
    "image:deactivate": ADMIN_OR_MEMBER,
    "image:reactivate": ADMIN_OR_MEMBER,
    "image:import_image": ADMIN_OR_MEMBER,
    "image:add_member": ADMIN_OR_MEMBER,
    "image:delete_member": ADMIN_OR_MEMBER,
    "image:get_member": ADMIN | READER,
    "image:get_members": ADMIN | READER,
    "image:modify_member": ADMIN | PROJECT_MEMBER,
    "image:get_task": ADMIN,
    "image:get_tasks": ADMIN,
    "image:add_task": ADMIN,
    "image:get_metadef": ANYONE,
    "image:modify_metadef": ADMIN,
    "image:stores_info_detail": ADMIN,
    # glance's defaults: copying data between stores and deleting it from one are admin's
    "image:copy_image": ADMIN,
    "image:delete_image_location": ADMIN,
    "image:add_image_location": ADMIN_OR_MEMBER,
    "image:cache_list": ADMIN,
    "image:cache_image": ADMIN,
    "image:cache_delete": ADMIN,
    # volume (cinder) --------------------------------------------------------------------
    # Cinder's defaults: project readers read, members write, admins reset/force/manage.
    **{f"volume:{a}": ADMIN_OR_READER for a in (
        "get", "get_all", "get_volume_metadata", "get_snapshot", "get_all_snapshots",
        "attachment_get", "attachment_get_all", "get_all_transfers", "get_all_messages")},
    **{f"volume:{a}": ADMIN_OR_MEMBER for a in (
        "create", "update", "delete", "extend", "update_readonly_flag",
        "update_volume_metadata", "delete_volume_metadata", "revert_to_snapshot", "retype",
        "copy_volume_to_image", "attachment_create", "attachment_update",
        "attachment_complete", "attachment_delete", "reserve_volume", "unreserve_volume",
        "initialize_connection", "terminate_connection", "attach", "detach",
        "begin_detaching", "roll_detaching", "create_snapshot", "update_snapshot",
        "delete_snapshot", "create_transfer", "delete_transfer", "delete_message")},
    "volume:accept_transfer": MEMBER | ADMIN,
    **{f"volume:{a}": ADMIN for a in (
        "force_delete", "reset_status", "force_detach", "reset_snapshot",
        "force_delete_snapshot", "get_pools", "list_services", "update_service",
        "update_quota", "delete_quota", "show_quota_class", "update_quota_class",
        "manage_qos")},
    "volume:show_quota": ADMIN | (READER & OWNER),
    **{f"backup:{a}": ADMIN_OR_READER for a in ("get", "get_all")},
    **{f"backup:{a}": ADMIN_OR_MEMBER for a in ("create", "update", "delete", "restore")},
    **{f"backup:{a}": ADMIN for a in (
        "force_delete", "reset_status", "export", "backup-import")},
    **{f"group:{a}": ADMIN_OR_READER for a in (
        "get", "get_all", "get_group_snapshot", "get_all_group_snapshots", "group_types_get")},
    **{f"group:{a}": ADMIN_OR_MEMBER for a in (
        "create", "update", "delete", "create_group_snapshot", "delete_group_snapshot")},
    **{f"group:{a}": ADMIN for a in (
        "reset_status", "reset_group_snapshot_status", "group_types_manage",
        "group_types_specs")},
    # 3.62 default-types: project admins in Cinder; the list is the system admin's
    **{f"volume:default_type_{a}": ADMIN for a in ("set", "get", "get_all", "delete")},
    "volume_type:get_all": ANYONE,
    "volume_type:get": ANYONE,
    "volume_type:extra_specs_get": ANYONE,
    **{f"volume_type:{a}": ADMIN for a in (
        "create", "update", "delete", "extra_specs_update", "extra_specs_delete",
        "access_list", "access_manage", "encryption")},
    # network (neutron) ------------------------------------------------------------------
    # Reads are filtered by visibility in the service (own, shared, external, RBAC); these
    # rules decide who may act at all and which attributes need the admin.
    **{f"network:get_{r}": ANYONE for r in (
        "network", "subnet", "port", "router", "floatingip", "security_group",
        "security_group_rule", "rbac_policy", "subnetpool")},
    "network:get_metering_label": ADMIN,
    "network:get_metering_label_rule": ADMIN,
    **{f"network:{a}_{r}": ADMIN_OR_MEMBER for a in ("create", "update", "delete") for r in (
        "network", "subnet", "port", "router", "floatingip", "security_group",
        "security_group_rule", "rbac_policy", "subnetpool")},
    **{f"network:{a}_{r}": ADMIN for a in ("create", "update", "delete")
       for r in ("metering_label", "metering_label_rule")},
    **{f"network:{a}_network:{attr}": ADMIN for a in ("create", "update") for attr in (
        "shared", "router:external", "is_default", "provider:network_type",
        "provider:physical_network", "provider:segmentation_id")},
    "network:create_subnet_on_network": ADMIN_OR_MEMBER,  # target: the network's owner
    "network:create_port:binding": ADMIN,
    "network:update_port:binding": ADMIN,
    "network:create_port:mac_address": ADMIN_OR_MEMBER,  # target: the network's owner
    "network:update_port:mac_address": ADMIN,
    "network:create_port:device_owner": ADMIN_OR_MEMBER,
    "network:update_port:device_owner": ADMIN_OR_MEMBER,
    "network:create_port:fixed_ips:ip_address": ADMIN_OR_MEMBER,
    "network:update_port:fixed_ips:ip_address": ADMIN_OR_MEMBER,
    "network:create_for_other_project": ADMIN,
    "network:update_tags": ADMIN_OR_MEMBER,
    "network:create_router:distributed": ADMIN,
    "network:create_router:ha": ADMIN,
    "network:update_router:distributed": ADMIN,
    "network:update_router:ha": ADMIN,
    "network:update_router:external_gateway_info:enable_snat": ADMIN,
    "network:update_router:external_gateway_info:external_fixed_ips": ADMIN,
    "network:add_router_interface": ADMIN_OR_MEMBER,
    "network:remove_router_interface": ADMIN_OR_MEMBER,
    "network:create_floatingip:floating_ip_address": ADMIN,
    "network:get_quota": ADMIN | PROJECT_READER,
    "network:update_quota": ADMIN,
    "network:create_rbac_policy:target_tenant": ADMIN,
    "network:create_rbac_policy:access_as_external": ADMIN,
    "network:create_subnetpool:shared": ADMIN,
    # neutron extensions: address scopes, trunks, QoS, flavors, IP availability
    **{f"network:get_{r}": ANYONE for r in (
        "address_scope", "trunk", "policy", "flavor", "rule_type", "service_provider",
        *(f"policy_{t}_rule" for t in ("bandwidth_limit", "dscp_marking",
                                       "minimum_bandwidth", "packet_rate_limit",
                                       "minimum_packet_rate")))},
    **{f"network:{a}_{r}": ADMIN_OR_MEMBER for a in ("create", "update", "delete")
       for r in ("address_scope", "trunk")},
    "network:create_address_scope:shared": ADMIN,
    "network:update_address_scope:shared": ADMIN,
    "network:add_subports": ADMIN_OR_MEMBER,
    "network:remove_subports": ADMIN_OR_MEMBER,
    **{f"network:{a}_{r}": ADMIN | (MANAGER & OWNER) for a in ("create", "update", "delete")
       for r in ("policy", *(f"policy_{t}_rule" for t in (
           "bandwidth_limit", "dscp_marking", "minimum_bandwidth", "packet_rate_limit",
           "minimum_packet_rate")))},
    **{f"network:{a}_{r}": ADMIN for a in ("create", "update", "delete")
       for r in ("flavor", "service_profile", "flavor_service_profile")},
    "network:get_service_profile": ADMIN,
    "network:get_rule_type_details": ADMIN,
    "network:get_network_ip_availability": ADMIN,
    # compute (nova) ------------------------------------------------------------------
    "compute:flavor_manage": ADMIN,
    "compute:flavor_extra_specs_manage": ADMIN,
    "compute:flavor_access_list": ADMIN,
    "compute:flavor_access_manage": ADMIN,
    "compute:keypair_create": ADMIN | SELF,
    "compute:keypair_other_user": ADMIN,
    "compute:server_create": MEMBER | ADMIN,
    "compute:server_create_forced_host": ADMIN,
    "compute:server_list": ANYONE,  # scoped to the caller's project in the query
    "compute:server_list_all_tenants": ADMIN,
    "compute:server_show": ADMIN_OR_READER,
    "compute:server_update": ADMIN_OR_MEMBER,
    "compute:server_delete": ADMIN_OR_MEMBER,
    "compute:server_action": ADMIN_OR_MEMBER,
    "compute:server_lock": ADMIN_OR_MEMBER,
    "compute:server_metadata": ADMIN_OR_MEMBER,
    "compute:server_tags": ADMIN_OR_MEMBER,
    "compute:server_console": ADMIN_OR_MEMBER,
    "compute:server_remote_console": ADMIN_OR_MEMBER,  # os-remote-consoles, os-get*Console
    "compute:console_auth_tokens": ADMIN,  # os-console-auth-tokens (connection details)
    "compute:server_interfaces": ADMIN_OR_MEMBER,  # os-interface attach / detach
    "compute:server_create_image": ADMIN_OR_MEMBER,
    "compute:server_shelve": ADMIN_OR_MEMBER,
    "compute:server_shelve_offload": ADMIN,  # Nova: os-shelve:shelve_offload is admin's
    "compute:server_unshelve": ADMIN_OR_MEMBER,
    "compute:server_unshelve_to_host": ADMIN,  # 2.91 unshelve with "host"
    "compute:server_rescue": ADMIN_OR_MEMBER,
    "compute:server_unrescue": ADMIN_OR_MEMBER,
    "compute:server_reset_state": ADMIN,
    "compute:server_migrate": ADMIN,
    "compute:server_evacuate": ADMIN,  # Nova: os-evacuate
    "compute:server_inject_network_info": ADMIN,
    "compute:server_create_backup": ADMIN_OR_MEMBER,
    "compute:server_diagnostics": ADMIN,
    "compute:server_topology": ADMIN_OR_READER,  # Nova: compute:server:topology:index
    "compute:server_volume_swap": ADMIN,  # Nova: os-volumes-attachments:swap
    "compute:server_volume_update": ADMIN_OR_MEMBER,  # 2.85; Nova: os-volumes-attachments:update
    "compute:migrations_index": ADMIN,
    "compute:instance_usage_audit_log": ADMIN,
    "compute:server_external_events": ADMIN,
    "compute:server_group_create": MEMBER | ADMIN,
    "compute:server_group_show": ADMIN_OR_READER,
    "compute:server_group_delete": ADMIN_OR_MEMBER,
    "compute:server_group_list_all": ADMIN,
    "compute:availability_zone_detail": ADMIN,
    "compute:aggregates": ADMIN,
    "compute:hypervisors": ADMIN,
    "compute:services": ADMIN,
    "compute:services_update": ADMIN,
    "compute:quota_show": ADMIN_OR_READER,
    "compute:quota_update": ADMIN,
    "compute:quota_delete": ADMIN,
    "compute:quota_class": ADMIN,
    "compute:limits_other_project": ADMIN,
    "compute:usage": ADMIN,
    "compute:hosts": ADMIN,
    "compute:usage_show": ADMIN_OR_READER,
    # orchestration (heat) ---------------------------------------------------------------
    # Heat's defaults: project members act on their project's stacks, readers read.
    "orchestration:stacks:index": ADMIN_OR_READER,
    "orchestration:stacks:global_index": ADMIN,
    "orchestration:stacks:show": ADMIN_OR_READER,
    "orchestration:stacks:create": ADMIN_OR_MEMBER,
    "orchestration:stacks:preview": ADMIN_OR_MEMBER,
    "orchestration:stacks:update": ADMIN_OR_MEMBER,
    "orchestration:stacks:preview_update": ADMIN_OR_MEMBER,
    "orchestration:stacks:delete": ADMIN_OR_MEMBER,
    "orchestration:stacks:validate_template": ADMIN_OR_MEMBER,
    "orchestration:actions:suspend": ADMIN_OR_MEMBER,
    "orchestration:actions:resume": ADMIN_OR_MEMBER,
    "orchestration:actions:check": ADMIN_OR_READER,
    "orchestration:actions:cancel_update": ADMIN_OR_MEMBER,
    "orchestration:actions:cancel_without_rollback": ADMIN_OR_MEMBER,
    "orchestration:resource:index": ADMIN_OR_READER,
    "orchestration:resource:show": ADMIN_OR_READER,
    "orchestration:resource:mark_unhealthy": ADMIN_OR_MEMBER,
    "orchestration:resource:signal": ADMIN_OR_MEMBER,
    "orchestration:events:index": ADMIN_OR_READER,
    "orchestration:events:show": ADMIN_OR_READER,
    "orchestration:services:index": ADMIN,
    "orchestration:resource_types:index": ANYONE,
    "orchestration:resource_types:show": ANYONE,
    "orchestration:resource_types:template": ANYONE,
    "orchestration:software_configs:index": ADMIN_OR_READER,
    "orchestration:software_configs:show": ADMIN_OR_READER,
    "orchestration:software_configs:create": ADMIN_OR_MEMBER,
    "orchestration:software_configs:delete": ADMIN_OR_MEMBER,
    "orchestration:software_deployments:index": ADMIN_OR_READER,
    "orchestration:software_deployments:show": ADMIN_OR_READER,
}


def check(ctx: RequestContext, action: str, target: Target | None = None) -> bool:
    if ctx.is_internal:
        return True
    try:
        rule = RULES[action]
    except KeyError:
        raise KeyError(f"no policy rule named {action!r}") from None
    return rule(ctx, target or {})


def enforce(ctx: RequestContext, action: str, target: Target | None = None) -> None:
    if not check(ctx, action, target):
        raise Forbidden(f"Policy doesn't allow {action} to be performed.")
