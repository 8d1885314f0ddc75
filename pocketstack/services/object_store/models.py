"""Swift's account/container/object records (the S3 API reads and writes the same rows).

Object *data* lives in files owned by the object driver (``drivers/objects``); a row points
at its immutable data file through ``file_id``. A write makes a new file and then commits
the row, so a crash leaves either the old row (old file) or the new one, never a torn
object; unreferenced files are swept at startup. Small objects are the exception: their
bytes are in the row itself (``data``, ``file_id`` empty), written by the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from pocketstack.db.base import Base, JSONText


def name_column(length: int) -> String:
    """Names sort and compare by code point, as in Swift and S3: listings use range
    queries (prefix, marker), which a locale collation on PostgreSQL would reorder."""
    return String(length).with_variant(String(length, collation="C"), "postgresql") \
        .with_variant(String(length, collation="utf8mb4_bin"), "mysql", "mariadb")


class SwiftAccount(Base):
    __tablename__ = "swift_account"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)  # AUTH_<project_id>
    created: Mapped[float] = mapped_column(Float, nullable=False)
    put_timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    # Header name (canonical Title-Case) -> value: X-Account-Meta-*, quota sysmeta.
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class SwiftContainer(Base):
    __tablename__ = "swift_container"

    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(name_column(256), primary_key=True)
    created: Mapped[float] = mapped_column(Float, nullable=False)
    put_timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    object_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    bytes_used: Mapped[int] = mapped_column(BigInteger, default=0, nullable=False)
    # X-Container-Meta-*, X-Container-Read/Write, X-Versions-Location, X-History-Location...
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class SwiftObject(Base):
    __tablename__ = "swift_object"
    __table_args__ = (Index("ix_swift_object_delete_at", "delete_at"),)

    account: Mapped[str] = mapped_column(String(255), primary_key=True)
    container: Mapped[str] = mapped_column(name_column(256), primary_key=True)
    name: Mapped[str] = mapped_column(name_column(1024), primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)  # listed size (SLO: total)
    etag: Mapped[str] = mapped_column(String(64), nullable=False)  # md5 hex (SLO: its etag)
    content_type: Mapped[str] = mapped_column(String(256), nullable=False)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False)
    delete_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # X-Object-Meta-*, Content-Disposition, Content-Encoding, X-Object-Manifest,
    # X-Static-Large-Object, Cache-Control, Expires ...
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)
    # An inline object's bytes (file_id ""); NULL when they are in a driver file. Deferred:
    # listings and metadata updates never load them.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True, deferred=True)


class S3Upload(Base):
    """An S3 multipart upload in progress; its parts are driver files named in ``parts``."""

    __tablename__ = "s3_upload"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    container: Mapped[str] = mapped_column(name_column(256), nullable=False)
    name: Mapped[str] = mapped_column(name_column(1024), nullable=False)
    created: Mapped[float] = mapped_column(Float, nullable=False)
    content_type: Mapped[str] = mapped_column(String(256), nullable=False)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONText, default=dict)


class S3UploadPart(Base):
    __tablename__ = "s3_upload_part"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    etag: Mapped[str] = mapped_column(String(64), nullable=False)
    timestamp: Mapped[float] = mapped_column(Float, nullable=False)


# Used by the orphan sweep: every column that references a driver file.
FILE_REFERENCES = (SwiftObject.file_id, S3UploadPart.file_id)
