"""A cache for the results of pure reads (hot GETs such as GET /v3/projects).

An entry is served only while no db.write() committed in this process since it was
computed (``Database.generation``) and for at most ``ttl`` seconds (which bounds how long
a write made by another process — a second API replica, the CLI — can go unseen, as the
token cache does). The key must contain everything the result depends on besides the
database: callers use the caller's token (so scope, roles and policy are the same), the
route and the query. A hit costs a dict lookup in the event loop: no worker thread, no
database session.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

MISS = object()


class ReadCache:
    def __init__(self, db: Any, ttl: float, size: int = 4096) -> None:
        self.db = db
        self.ttl = ttl
        self.size = size
        self._data: OrderedDict[Any, tuple[int, float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        if self.ttl <= 0:
            return MISS
        item = self._data.get(key)
        if item is None:
            return MISS
        generation, stamp, value = item
        if generation != self.db.generation or time.monotonic() - stamp > self.ttl:
            self._data.pop(key, None)
            return MISS
        return value

    def generation(self) -> int:
        """Read before computing a value; pass to ``put``."""
        return self.db.generation

    def put(self, key: Any, generation: int, value: Any) -> None:
        if self.ttl <= 0 or generation != self.db.generation:
            return  # a write landed while we computed: the value may already be stale
        with self._lock:
            self._data[key] = (generation, time.monotonic(), value)
            self._data.move_to_end(key)
            if len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
