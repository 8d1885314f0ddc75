"""Nova's state: flavors, keypairs, servers and their history, hosts, groups, quotas, tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (Boolean, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import (Base, JSONText, UTCDateTime, new_uuid, utcnow)
from pocketstack.workers.queue import TaskMixin


class SecondsDateTime(UTCDateTime):
    """A server's timestamps at second precision, as Nova keeps them (MySQL DATETIME): the
    ``updated`` a client is shown is exactly what changes-since/changes-before compare with
    (values compared with the column go through here too)."""

    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        value = super().process_bind_param(value, dialect)
        return value.replace(microsecond=0) if value is not None else None


class Flavor(Base):
    __tablename__ = "compute_flavors"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Nova's "flavorid"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    memory_mb: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    extra_specs: Mapped[dict[str, str]] = mapped_column(JSONText, default=dict)
    seq: Mapped[int] = mapped_column(Integer, default=0)  # creation order for paging
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlavorAccess(Base):
    __tablename__ = "compute_flavor_access"
    flavor_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("compute_flavors.id", ondelete="CASCADE"), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class KeyPair(Base):
    __tablename__ = "compute_keypairs"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    fingerprint: Mapped[str] = mapped_column(String(255))
    public_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Host(Base):
    """A compute service and its hypervisor (Nova's services + compute_nodes rows)."""

    __tablename__ = "compute_hosts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    seq: Mapped[int] = mapped_column(Integer, unique=True)  # integer id before 2.53
    service_id: Mapped[str] = mapped_column(String(36), default=new_uuid)
    host: Mapped[str] = mapped_column(String(255), unique=True)
    hypervisor_hostname: Mapped[str] = mapped_column(String(255))
    hypervisor_type: Mapped[str] = mapped_column(String(64))
    hypervisor_version: Mapped[int] = mapped_column(Integer, default=1)
    host_ip: Mapped[str] = mapped_column(String(64), default="127.0.0.1")
    driver: Mapped[str] = mapped_column(String(32))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    local_gb: Mapped[int] = mapped_column(Integer)
    vcpus_used: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, default=0)
    running_vms: Mapped[int] = mapped_column(Integer, default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float, default=16.0)
    ram_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.5)
    disk_allocation_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    reserved_host_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    cpu_info: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    disabled_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PciDevice(Base):
    __tablename__ = "compute_pci_devices"
    __table_args__ = (Index("ix_compute_pci_host_free", "host_id", "vendor_id", "product_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host_id: Mapped[str] = mapped_column(String(36), ForeignKey("compute_hosts.id",
                                                                 ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(32))
    vendor_id: Mapped[str] = mapped_column(String(8))
    product_id: Mapped[str] = mapped_column(String(8))
    server_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class Aggregate(Base):
    __tablename__ = "compute_aggregates"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid, unique=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    hosts: Mapped[list[str]] = mapped_column(JSONText, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ServerGroup(Base):
    __tablename__ = "compute_server_groups"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    policy: Mapped[str] = mapped_column(String(32))
    rules: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Server(Base):
    __tablename__ = "compute_servers"
    __table_args__ = (Index("ix_compute_servers_project", "project_id", "deleted"),
                      Index("ix_compute_servers_host", "host", "deleted"))
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    seq: Mapped[int] = mapped_column(Integer, index=True)  # creation order, for paging
    name: Mapped[str] = mapped_column(String(255))
    hostname: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    image_id: Mapped[str] = mapped_column(String(36), default="")
    image: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)  # snapshot at boot
    flavor_id: Mapped[str] = mapped_column(String(255))
    flavor: Mapped[dict[str, Any]] = mapped_column(JSONText)  # snapshot: the instance keeps it
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer)
    key_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSONText, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSONText, default=list)
    security_groups: Mapped[list[str]] = mapped_column(JSONText, default=list)
    requested_networks: Mapped[Any] = mapped_column(JSONText, nullable=True)
    requested_az: Mapped[str | None] = mapped_column(String(255), nullable=True)
    availability_zone: Mapped[str | None] = mapped_column(String(255), nullable=True)
    scheduler_hints: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    group_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    old_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vm_state: Mapped[str] = mapped_column(String(32), default="building")
    task_state: Mapped[str | None] = mapped_column(String(64), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    locked_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    locked_reason: Mapped[str | None] = mapped_column(String(255), nullable=True)
    access_ipv4: Mapped[str] = mapped_column(String(64), default="")
    access_ipv6: Mapped[str] = mapped_column(String(64), default="")
    config_drive: Mapped[str] = mapped_column(String(8), default="")
    disk_config: Mapped[str] = mapped_column(String(16), default="MANUAL")
    fault: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    reservation_id: Mapped[str] = mapped_column(String(32))
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    launched_at: Mapped[dt.datetime | None] = mapped_column(SecondsDateTime, nullable=True)
    terminated_at: Mapped[dt.datetime | None] = mapped_column(SecondsDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(SecondsDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(SecondsDateTime, default=utcnow,
                                                    onupdate=utcnow)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(SecondsDateTime, nullable=True)


class Allocation(Base):
    """What a server holds on a host; the sum over a host is its *_used columns."""

    __tablename__ = "compute_allocations"
    server_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    host_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    disk_gb: Mapped[int] = mapped_column(Integer)


class InstanceAction(Base):
    __tablename__ = "compute_instance_actions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    request_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(String(255), nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class InstanceActionEvent(Base):
    __tablename__ = "compute_instance_action_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(Integer, ForeignKey(
        "compute_instance_actions.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(255))
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    result: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Quota(Base):
    """A per-project limit; project_id "" holds the defaults (Nova's quota class 'default')."""

    __tablename__ = "compute_quotas"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer)


class ProjectLock(Base):
    """One row per project, locked (FOR UPDATE) while a quota is checked and consumed."""

    __tablename__ = "compute_project_locks"
    project_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)


class ComputeTask(TaskMixin, Base):
    __tablename__ = "compute_tasks"


class Migration(Base):
    """A resize or cold migration of a server (Nova's migrations table), listed by the
    admin API GET /os-migrations. The integer id is the API's; uuid is shown from 2.59."""

    __tablename__ = "compute_migrations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid, unique=True)
    server_id: Mapped[str] = mapped_column(String(36), index=True)
    project_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    migration_type: Mapped[str] = mapped_column(String(32))  # resize / migration
    status: Mapped[str] = mapped_column(String(32))
    source_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_node: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dest_host: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Nova shows its flavors' integer primary keys here; ours is Flavor.seq.
    old_instance_type_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    new_instance_type_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
