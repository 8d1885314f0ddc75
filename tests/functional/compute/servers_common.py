"""Helpers the compute functional tests share: unique names on the shared cloud, and
waiting for a server's status."""

from __future__ import annotations

import time
import uuid


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait(conn, sid, statuses, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        srv = conn.compute.get_server(sid)
        if srv.status in statuses:
            return srv
        assert time.monotonic() < deadline, f"{sid} stuck in {srv.status}"
        time.sleep(0.05)
