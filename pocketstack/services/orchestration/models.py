"""Heat's data: stacks, their resources and events, software configs.

A stack row keeps everything needed to rebuild its definition (template, files,
environment) so an update can diff against it and a restart can fail in-flight work
instead of leaving it IN_PROGRESS. A resource row keeps what its plugin needs to delete or
describe the real thing later (physical id, plugin ``data``, the properties it was built
with).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import Base, JSONText, UTCDateTime, new_uuid, utcnow


class Stack(Base):
    __tablename__ = "heat_stack"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    parent_resource: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(32), default="INIT")
    status: Mapped[str] = mapped_column(String(32), default="COMPLETE")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    files: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    environment: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    # The definition before the last update began, for rollback after a restart too.
    previous: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    tags: Mapped[list[str] | None] = mapped_column(JSONText, nullable=True)
    disable_rollback: Mapped[bool] = mapped_column(Boolean, default=True)
    timeout_mins: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Who asked (no token): lets a later internal action act with the same identity.
    context: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                           index=True)


class StackResource(Base):
    __tablename__ = "heat_resource"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    stack_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("heat_stack.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(32), default="INIT")
    status: Mapped[str] = mapped_column(String(32), default="COMPLETE")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    physical_resource_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    properties_data: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    rsrc_metadata: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    requires: Mapped[list[str]] = mapped_column(JSONText, default=list)
    nested_stack_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StackEvent(Base):
    __tablename__ = "heat_event"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), default=new_uuid, unique=True)
    stack_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("heat_stack.id", ondelete="CASCADE"), nullable=False, index=True)
    resource_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(255), nullable=False)
    physical_resource_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    properties: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SoftwareConfig(Base):
    __tablename__ = "heat_software_config"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    group: Mapped[str] = mapped_column(String(255), default="Heat::Ungrouped")
    config: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SoftwareDeployment(Base):
    __tablename__ = "heat_software_deployment"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    config_id: Mapped[str] = mapped_column(String(36), nullable=False)
    server_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    input_values: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    output_values: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    action: Mapped[str] = mapped_column(String(32), default="INIT")
    status: Mapped[str] = mapped_column(String(32), default="COMPLETE")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


