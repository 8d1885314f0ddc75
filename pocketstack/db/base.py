"""Declarative base and column helpers shared by every service's models."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from sqlalchemy import DateTime, MetaData, String, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    """Keystone-style id: 32 hex characters."""
    return uuid.uuid4().hex


def new_uuid() -> str:
    """Nova/Neutron/Cinder/Glance-style id: dashed UUID."""
    return str(uuid.uuid4())


class JSONText(TypeDecorator):
    """JSON stored as text (orjson); portable across SQLite, PostgreSQL and MariaDB."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return orjson.dumps(value).decode()

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        if value is None:
            return None
        return orjson.loads(value)


class UTCDateTime(TypeDecorator):
    """Naive UTC datetimes in the database, whatever the backend's timezone handling."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value


def id_column(factory=new_id, length: int = 64) -> Mapped[str]:
    return mapped_column(String(length), primary_key=True, default=factory)


def created_at_column() -> Mapped[dt.datetime]:
    return mapped_column(UTCDateTime, default=utcnow, nullable=False)


def updated_at_column() -> Mapped[dt.datetime | None]:
    return mapped_column(UTCDateTime, default=None, onupdate=utcnow, nullable=True)


def isotime(value: dt.datetime | None, *, micro: bool = False, z: bool = True) -> str | None:
    """Render a naive-UTC datetime the way OpenStack APIs do (``2026-01-02T03:04:05Z``)."""
    if value is None:
        return None
    text = value.strftime("%Y-%m-%dT%H:%M:%S.%f" if micro else "%Y-%m-%dT%H:%M:%S")
    return text + ("Z" if z else "")
