"""Database access: one ``Database`` per process, built from settings and passed down."""

from pocketstack.db.base import Base
from pocketstack.db.engine import Database

__all__ = ["Base", "Database"]
