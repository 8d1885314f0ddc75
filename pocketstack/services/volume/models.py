"""Cinder's tables. Rows are hard-deleted (Cinder soft-deletes; nothing here reads the past)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pocketstack.db.base import (Base, JSONText, UTCDateTime, created_at_column, id_column,
                                 new_uuid, updated_at_column)


class VolumeType(Base):
    __tablename__ = "volume_types"

    id: Mapped[str] = id_column(new_uuid, 36)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    qos_specs_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # volume encryption spec (provider, cipher, key_size, control_location); volumes of an
    # encrypted type are refused: this cloud has no key manager to hold their keys
    encryption: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class QosSpec(Base):
    """QoS specs (qos-specs API); volume types point at one through qos_specs_id."""

    __tablename__ = "volume_qos_specs"

    id: Mapped[str] = id_column(new_uuid, 36)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    consumer: Mapped[str] = mapped_column(String(16), default="back-end")
    specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()


class ProjectDefaultType(Base):
    """A project's own default volume type (3.62 default-types), used instead of the
    cloud's when the project creates a volume without one."""

    __tablename__ = "volume_project_default_types"

    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    volume_type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_types.id"),
                                                index=True)


class VolumeTypeProject(Base):
    """Which projects may use a private volume type (os-volume-type-access)."""

    __tablename__ = "volume_type_projects"

    type_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_types.id",
                                                                ondelete="CASCADE"),
                                         primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class Volume(Base):
    __tablename__ = "volume_volumes"

    id: Mapped[str] = id_column(new_uuid, 36)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32), index=True)
    # the operation the volume worker must finish (create kind, delete, extend...) after a
    # crash; null when nothing is in flight
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    availability_zone: Mapped[str] = mapped_column(String(255))
    volume_type_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_volid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    group_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    bootable: Mapped[bool] = mapped_column(Boolean, default=False)
    # admin metadata "readonly": None until os-update_readonly_flag sets it (Cinder shows
    # the key in metadata only once set)
    readonly: Mapped[bool | None] = mapped_column(Boolean, nullable=True, default=None)
    multiattach: Mapped[bool] = mapped_column(Boolean, default=False)
    consumes_quota: Mapped[bool] = mapped_column(Boolean, default=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    image_metadata: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    migration_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()
    launched_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)

    attachments: Mapped[list["VolumeAttachment"]] = relationship(
        back_populates="volume", cascade="all, delete-orphan", lazy="selectin",
        order_by="VolumeAttachment.created_at")


class VolumeAttachment(Base):
    __tablename__ = "volume_attachments"

    id: Mapped[str] = id_column(new_uuid, 36)
    volume_id: Mapped[str] = mapped_column(String(36), ForeignKey("volume_volumes.id",
                                                                  ondelete="CASCADE"),
                                           index=True)
    instance_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    attached_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    mountpoint: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # reserved | attaching | attached | detaching (Cinder's attach_status values)
    attach_status: Mapped[str] = mapped_column(String(32))
    attach_mode: Mapped[str] = mapped_column(String(8), default="rw")
    connector: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    device_path: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attach_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()

    volume: Mapped[Volume] = relationship(back_populates="attachments")


class Snapshot(Base):
    __tablename__ = "volume_snapshots"

    id: Mapped[str] = id_column(new_uuid, 36)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    progress: Mapped[str | None] = mapped_column(String(8), nullable=True)
    size: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    consumes_quota: Mapped[bool] = mapped_column(Boolean, default=True)
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True,
                                                          index=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class Quota(Base):
    """A hard limit set for one project (``openstack quota set``); absent means the default."""

    __tablename__ = "volume_quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    resource: Mapped[str] = mapped_column(String(255))
    hard_limit: Mapped[int] = mapped_column(Integer)


class QuotaClass(Base):
    """Quota class limits; class "default" holds the cloud's defaults."""

    __tablename__ = "volume_quota_classes"
    __table_args__ = (UniqueConstraint("class_name", "resource"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    class_name: Mapped[str] = mapped_column(String(255))
    resource: Mapped[str] = mapped_column(String(255))
    hard_limit: Mapped[int] = mapped_column(Integer)


class Transfer(Base):
    __tablename__ = "volume_transfers"

    id: Mapped[str] = id_column(new_uuid, 36)
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    salt: Mapped[str] = mapped_column(String(255))
    crypt_hash: Mapped[str] = mapped_column(String(255))
    no_snapshots: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = created_at_column()


class Message(Base):
    """User messages (3.3+): why an asynchronous operation failed, for the project to read."""

    __tablename__ = "volume_messages"

    id: Mapped[str] = id_column(new_uuid, 36)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    request_id: Mapped[str] = mapped_column(String(255))
    resource_type: Mapped[str] = mapped_column(String(36))
    resource_uuid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    event_id: Mapped[str] = mapped_column(String(255))
    message_level: Mapped[str] = mapped_column(String(32))
    user_message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = created_at_column()
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Backup(Base):
    """A volume backup: its chunks and a ``_metadata`` object live in a Swift container of
    the owner's account (object store); this row is the index Cinder keeps."""

    __tablename__ = "volume_backups"

    id: Mapped[str] = id_column(new_uuid, 36)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    volume_id: Mapped[str] = mapped_column(String(36), index=True)
    snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # creating | available | deleting | error | error_deleting | restoring
    status: Mapped[str] = mapped_column(String(32), index=True)
    # the work the backup worker must finish after a crash (create, restore, delete)
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    fail_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    container: Mapped[str] = mapped_column(String(255))
    # the Swift account holding the objects (AUTH_<owner>); null means AUTH_<project_id>.
    # An imported record keeps pointing at the exporting project's account.
    account: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # object name prefix of this backup's chunks inside the container
    object_prefix: Mapped[str] = mapped_column(String(512))
    size: Mapped[int] = mapped_column(Integer)
    object_count: Mapped[int] = mapped_column(Integer, default=0)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    num_dependent_backups: Mapped[int] = mapped_column(Integer, default=0)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    data_timestamp: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class GroupType(Base):
    """Generic volume group types (3.11+) with their group specs."""

    __tablename__ = "volume_group_types"

    id: Mapped[str] = id_column(new_uuid, 36)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    group_specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class Group(Base):
    """A generic volume group (3.13+); member volumes carry its id in ``group_id``."""

    __tablename__ = "volume_groups"

    id: Mapped[str] = id_column(new_uuid, 36)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # creating | available | deleting | error | updating
    status: Mapped[str] = mapped_column(String(32))
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    group_type_id: Mapped[str] = mapped_column(String(36))
    volume_type_ids: Mapped[list[str]] = mapped_column(JSONText, default=list)
    availability_zone: Mapped[str] = mapped_column(String(255))
    group_snapshot_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    source_group_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class GroupSnapshot(Base):
    """A snapshot of every volume of a group at once (3.14+); the member snapshots carry
    its id in ``group_snapshot_id``."""

    __tablename__ = "volume_group_snapshots"

    id: Mapped[str] = id_column(new_uuid, 36)
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    group_id: Mapped[str] = mapped_column(String(36), index=True)
    group_type_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(32))
    task: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()
