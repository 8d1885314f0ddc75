"""Host uid/gid ranges for guests: each server's root is a different unprivileged host
user (LXD's ``security.idmap.isolated``), so two tenants' roots are never the same host
user and neither is root on the host.

Ranges are ``count`` ids long, starting at ``base + slot * count``. The registry of
taken slots is machine-wide (several clouds may run on one machine), one file per slot
created with O_EXCL, so two allocators never hand out the same slot; the file names its
owner (a server directory). A slot whose owner directory no longer exists (a cloud
removed without ``down --purge``) is taken back, unless a process still runs as one of
its uids (that cloud's servers keep running without it). The server keeps its slot across stop,
start and restarts of the cloud: the driver records it in the server's directory and
frees it when the server is deleted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGISTRY = Path("/var/lib/pocketstack/idmap")
DEFAULT_BASE = 1_000_000_000  # far above login users, /etc/subuid ranges and nobody
DEFAULT_COUNT = 65536  # a whole 16-bit uid space inside the guest
UID_MAX = 2**32 - 2  # (uid_t)-1 is "no uid"


def _zombie(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True  # gone


class IdmapExhausted(Exception):
    pass


@dataclass(frozen=True)
class IdRange:
    slot: int
    base: int
    count: int

    def to_host(self, guest_id: int) -> int:
        return self.base + guest_id if 0 <= guest_id < self.count else self.base + 65534


class IdmapRegistry:
    def __init__(self, registry: Path = DEFAULT_REGISTRY, base: int = DEFAULT_BASE,
                 count: int = DEFAULT_COUNT) -> None:
        self.registry = registry
        self.base = base
        self.count = count
        self.slots = (UID_MAX + 1 - base) // count

    def _range(self, slot: int) -> IdRange:
        return IdRange(slot, self.base + slot * self.count, self.count)

    def _owner(self, slot: int) -> str | None:
        try:
            return json.loads((self.registry / str(slot)).read_text()).get("owner")
        except (OSError, ValueError, AttributeError):
            return None

    def _in_use(self, slot: int) -> bool:
        """Whether a process still runs as one of the slot's host uids (a server left
        running when its cloud's directory was deleted): its range is not free."""
        r = self._range(slot)
        try:
            pids = [p for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return True
        for pid in pids:
            try:
                uid = os.stat(f"/proc/{pid}").st_uid  # the process's effective uid
            except OSError:
                continue
            if r.base <= uid < r.base + r.count and not _zombie(pid):
                return True
        return False

    def allocate(self, owner: Path) -> IdRange:
        """A free range, registered to ``owner`` (a directory that exists while the range
        is in use). Raises IdmapExhausted when every slot is taken."""
        self.registry.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"owner": str(owner)}).encode()
        taken = {int(n) for n in os.listdir(self.registry) if n.isdigit()}
        # The lowest slot that is free or stale. Others allocate at the same time: a slot
        # that was free when listed may be taken at open (O_EXCL fails), so go on past it.
        for slot in range(self.slots):
            if slot in taken:  # a stale owner's slot: take it back, once
                stale = self._owner(slot)
                if stale is None or Path(stale).exists() or self._in_use(slot):
                    continue
                try:
                    os.rename(self.registry / str(slot),
                              self.registry / f".{slot}.stale.{os.getpid()}")
                    os.unlink(self.registry / f".{slot}.stale.{os.getpid()}")
                except OSError:
                    continue
            try:
                fd = os.open(self.registry / str(slot), os.O_WRONLY | os.O_CREAT | os.O_EXCL,
                             0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            return self._range(slot)
        raise IdmapExhausted(f"all {self.slots} guest uid ranges are in use")

    def get(self, slot: int, owner: Path) -> IdRange | None:
        """The range of ``slot`` if it is still registered to ``owner``."""
        return self._range(slot) if self._owner(slot) == str(owner) else None

    def claim(self, slot: int, owner: Path) -> IdRange | None:
        """Register ``slot`` to ``owner`` again if nobody holds it (a registry lost with
        /var/lib, the server's record kept); None if another owner has it."""
        if self.get(slot, owner):
            return self._range(slot)
        self.registry.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.registry / str(slot), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"owner": str(owner)}))
        return self._range(slot)

    def free(self, slot: int, owner: Path) -> None:
        """Release ``slot`` if ``owner`` holds it. Idempotent."""
        if self._owner(slot) == str(owner):
            try:
                os.unlink(self.registry / str(slot))
            except FileNotFoundError:
                pass
