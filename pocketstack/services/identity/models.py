"""Keystone's data, as SQLAlchemy models.

As in Keystone, a domain is a row of ``project`` with ``is_domain`` set; a top-level
project's ``parent_id`` is its domain's id.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import (Base, JSONText, UTCDateTime, created_at_column, id_column,
                                 utcnow)

ROOT_DOMAIN = "<<keystone.domain.root>>"


class Project(Base):
    __tablename__ = "project"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class ProjectTag(Base):
    __tablename__ = "project_tag"

    project_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)


class User(Base):
    __tablename__ = "user"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    password_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    default_project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()
    # Tokens issued before this instant (microseconds since the epoch) are invalid:
    # password change, disable. One column instead of an ever-growing revocation list;
    # sub-second so a token issued just after a password change stays valid.
    tokens_valid_after: Mapped[int] = mapped_column(BigInteger, default=0)
    # Keystone's [security_compliance] lockout bookkeeping.
    failed_auth_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_auth_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PasswordHistory(Base):
    """Previous password hashes, newest last, for unique_last_password_count."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[dt.datetime] = created_at_column()


class Group(Base):
    __tablename__ = "group"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class UserGroupMembership(Base):
    __tablename__ = "user_group_membership"

    user_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("user.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("group.id", ondelete="CASCADE"), primary_key=True, index=True)


class Role(Base):
    __tablename__ = "role"
    # domain_id is "" (not NULL) for global roles so the unique constraint holds everywhere.
    __table_args__ = (UniqueConstraint("name", "domain_id"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    domain_id: Mapped[str] = mapped_column(String(64), default="", nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class ImpliedRole(Base):
    __tablename__ = "implied_role"

    prior_role_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)
    implied_role_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("role.id", ondelete="CASCADE"), primary_key=True)


class Assignment(Base):
    """Role assignments. type: UserProject, GroupProject, UserDomain, GroupDomain,
    UserSystem, GroupSystem (target_id "system" for the latter two)."""

    __tablename__ = "assignment"
    __table_args__ = (Index("ix_assignment_target", "target_id"),)

    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    actor_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    inherited: Mapped[bool] = mapped_column(Boolean, primary_key=True, default=False)


class Region(Base):
    __tablename__ = "region"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    parent_region_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class Service(Base):
    __tablename__ = "service"

    id: Mapped[str] = id_column()
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)  # name, description


class Endpoint(Base):
    __tablename__ = "endpoint"

    id: Mapped[str] = id_column()
    interface: Mapped[str] = mapped_column(String(8), nullable=False)
    service_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("service.id", ondelete="CASCADE"), nullable=False, index=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    region_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class Credential(Base):
    """Credentials API rows; EC2 credentials are type "ec2" with id sha256(access)."""

    __tablename__ = "credential"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    blob: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class ApplicationCredential(Base):
    __tablename__ = "application_credential"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    unrestricted: Mapped[bool] = mapped_column(Boolean, default=False)
    roles: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    access_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONText, default=list)


class RevokedToken(Base):
    """One row per revoked token (by audit id). Looked up by primary key, so validation
    cost does not grow with the number of revocations; rows are pruned after expiry."""

    __tablename__ = "revoked_token"

    audit_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Policy(Base):
    """Keystone's legacy /v3/policies blobs (stored, not enforced; Keystone does the same)."""

    __tablename__ = "policy"

    id: Mapped[str] = id_column()
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    blob: Mapped[str] = mapped_column(Text, nullable=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class DomainConfig(Base):
    """Domain-specific configuration (/v3/domains/{id}/config): {group: {option: value}}."""

    __tablename__ = "domain_config"

    domain_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("project.id", ondelete="CASCADE"), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class AccessRule(Base):
    """Application credential access rules; shared by a user's credentials."""

    __tablename__ = "access_rule"

    id: Mapped[str] = id_column()
    user_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    service: Mapped[str] = mapped_column(String(64), nullable=False)
    path: Mapped[str] = mapped_column(String(128), nullable=False)
    method: Mapped[str] = mapped_column(String(16), nullable=False)


class Consumer(Base):
    """OS-OAUTH1 consumers (the consumer registry; OAuth1 delegation itself is not served)."""

    __tablename__ = "oauth_consumer"

    id: Mapped[str] = id_column()
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class EndpointGroup(Base):
    """OS-EP-FILTER endpoint groups: a name and filters over endpoint attributes."""

    __tablename__ = "endpoint_group"

    id: Mapped[str] = id_column()
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class ProjectEndpoint(Base):
    """OS-EP-FILTER: an endpoint associated with a project."""

    __tablename__ = "project_endpoint"

    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ProjectEndpointGroup(Base):
    """OS-EP-FILTER: an endpoint group associated with a project."""

    __tablename__ = "project_endpoint_group"

    endpoint_group_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class IdentityProvider(Base):
    """OS-FEDERATION identity providers (the registry; no federated login is served)."""

    __tablename__ = "identity_provider"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    authorization_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)


class IdpRemoteId(Base):
    """A remote id names one identity provider only (Keystone's idp_remote_ids)."""

    __tablename__ = "idp_remote_ids"

    remote_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    idp_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_provider.id", ondelete="CASCADE"), index=True)


class FederationMapping(Base):
    __tablename__ = "mapping"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[list[Any]] = mapped_column(JSONText, default=list)
    schema_version: Mapped[str] = mapped_column(String(5), default="1.0")


class FederationProtocol(Base):
    __tablename__ = "federation_protocol"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idp_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("identity_provider.id", ondelete="CASCADE"), primary_key=True)
    mapping_id: Mapped[str] = mapped_column(String(64), nullable=False)
    remote_id_attribute: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ServiceProvider(Base):
    __tablename__ = "service_provider"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    auth_url: Mapped[str] = mapped_column(String(256), nullable=False)
    sp_url: Mapped[str] = mapped_column(String(256), nullable=False)
    relay_state_prefix: Mapped[str] = mapped_column(String(256), nullable=False)


class Trust(Base):
    """OS-TRUST delegation: trustor lends roles on a project to trustee."""

    __tablename__ = "trust"

    id: Mapped[str] = id_column()
    trustor_user_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    trustee_user_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    impersonation: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    remaining_uses: Mapped[int | None] = mapped_column(Integer, nullable=True)
    roles: Mapped[list[dict[str, str]]] = mapped_column(JSONText, default=list)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class RegisteredLimit(Base):
    """Unified limits: a service's default for one resource (optionally per region)."""

    __tablename__ = "registered_limit"

    id: Mapped[str] = id_column()
    service_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    region_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    default_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class Limit(Base):
    """Unified limits: a project's (or domain's) override of a registered limit."""

    __tablename__ = "project_limit"

    id: Mapped[str] = id_column()
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    service_id: Mapped[str] = mapped_column(String(64), nullable=False)
    region_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
