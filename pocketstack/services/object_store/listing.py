"""Swift listing semantics (prefix, delimiter, marker, end_marker, limit, reverse) as
range queries over any table with a ``name`` column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session


def upper_bound(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``."""
    while prefix:
        last = prefix[-1]
        if ord(last) < 0x10FFFF:
            return prefix[:-1] + chr(ord(last) + 1)
        prefix = prefix[:-1]
    return None


def listing(session: Session, model: Any, scope: list[Any], *, prefix: str = "",
             delimiter: str = "", marker: str = "", end_marker: str = "",
             limit: int = 10000, reverse: bool = False) -> list[Any]:
    """Swift listing semantics over any table with a ``name`` column, in SQL.

    Returns rows and, where a delimiter folds names, ``str`` subdir entries. With a
    delimiter, each folded prefix costs one extra query (like Swift's container server).
    """
    name = model.name
    out: list[Any] = []
    upper = upper_bound(prefix) if prefix else None
    lo, hi = marker, end_marker  # exclusive bounds, in listing order
    while len(out) < limit:
        q = select(model).where(*scope)
        if prefix:
            q = q.where(name >= prefix)
            if upper is not None:
                q = q.where(name < upper)
        if reverse:
            if lo:
                q = q.where(name < lo)
            if hi:
                q = q.where(name > hi)
            q = q.order_by(name.desc())
        else:
            if lo:
                q = q.where(name > lo)
            if hi:
                q = q.where(name < hi)
            q = q.order_by(name)
        rows = session.scalars(q.limit(limit - len(out))).all()
        if not rows:
            break
        folded = False
        for row in rows:
            if delimiter:
                rest = row.name[len(prefix):]
                idx = rest.find(delimiter)
                if idx >= 0:
                    subdir = prefix + rest[:idx + len(delimiter)]
                    if subdir != marker:  # a client paging by the last subdir (as Swift)
                        out.append(subdir)
                    # Skip every name under this subdir with the next query. U+10FFFF is
                    # the largest code point, so subdir + it sorts after all of them.
                    lo = subdir if reverse else subdir + "\U0010ffff"
                    folded = True
                    break
            out.append(row)
            lo = row.name
        if not folded and len(rows) < limit:
            break
    return out[:limit]
