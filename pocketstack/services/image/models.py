"""Glance's data, as SQLAlchemy models (glance's own schema, trimmed).

Extra properties are rows of ``image_property`` (not a JSON column) so that list filters
on any property (``?os_distro=debian``) are SQL, and a list page loads them with one
IN query. Deleted images are removed, not soft-deleted: Glance v2 answers 404 for them
anyway, and their data files are gone.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (BigInteger, Boolean, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import (Base, JSONText, UTCDateTime, created_at_column, new_uuid,
                                 updated_at_column)


class Image(Base):
    __tablename__ = "image"
    __table_args__ = (
        Index("ix_image_owner_status", "owner", "status"),
        Index("ix_image_visibility", "visibility"),
        Index("ix_image_created", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(30), nullable=False, default="queued")
    visibility: Mapped[str] = mapped_column(String(20), nullable=False, default="shared")
    protected: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    disk_format: Mapped[str | None] = mapped_column(String(20), nullable=True)
    container_format: Mapped[str | None] = mapped_column(String(20), nullable=True)
    min_disk: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    min_ram: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    # file:// URL of the data in the store; None while there is none.
    location: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Ids of the stores holding the data, comma separated, highest weight first (what
    # the API shows as ``stores``); None for rows from before multi-store: the default
    # store. ``location`` is the URL of the first of them.
    stores: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Locations in the read-only HTTP store, in order: [{"url", "metadata"}]. The data
    # stays there; these are never written or deleted by us.
    http_locations: Mapped[list[Any] | None] = mapped_column(JSONText, nullable=True)
    # Staged data (glance-direct): its size and sha512 as computed while staging, so
    # import can prove the staged file was not truncated or altered in between.
    staged_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    staged_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Status the image returns to if an in-flight upload/import is abandoned.
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class ImageProperty(Base):
    __tablename__ = "image_property"
    __table_args__ = (Index("ix_image_property_name_value", "name", "value"),)

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False, default="")


class ImageTag(Base):
    __tablename__ = "image_tag"
    __table_args__ = (Index("ix_image_tag_value", "value"),)

    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class ImageMember(Base):
    __tablename__ = "image_member"
    __table_args__ = (UniqueConstraint("image_id", "member"),
                      Index("ix_image_member_member_status", "member", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    image_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("image.id", ondelete="CASCADE"), nullable=False, index=True)
    member: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class ImageTask(Base):
    """An interoperable-import task (GET /v2/images/{id}/tasks, /v2/tasks)."""

    __tablename__ = "image_task"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)
    type: Mapped[str] = mapped_column(String(30), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False, default="pending")
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    image_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    input: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONText, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()


class ImageCacheEntry(Base):
    """The image cache of this node (Glance's image cache): a local copy of an image's
    data in <data_dir>/image-cache, queued by an admin (PUT /v2/cache/{id}) or made when
    compute needs a local file of an image whose data is only at an http location."""

    __tablename__ = "image_cache_entry"

    image_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_accessed: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_modified: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class MetadefResourceType(Base):
    """A resource type named by an association beyond those glance ships (glance creates
    it on first use and keeps it)."""

    __tablename__ = "image_metadef_resource_types"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    created_at: Mapped[dt.datetime] = created_at_column()


class MetadefNamespace(Base):
    """A metadata definitions namespace (glance metadefs) with its contents.

    Objects, properties, tags and resource-type associations are small documents owned by
    one namespace and always read and written with it, so they live in JSON columns.
    """

    __tablename__ = "image_metadef_namespace"

    namespace: Mapped[str] = mapped_column(String(80), primary_key=True)
    display_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    visibility: Mapped[str] = mapped_column(String(32), nullable=False, default="private")
    protected: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    owner: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    resource_types: Mapped[list[Any]] = mapped_column(JSONText, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    objects: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    created_at: Mapped[dt.datetime] = created_at_column()
    updated_at: Mapped[dt.datetime | None] = updated_at_column()
