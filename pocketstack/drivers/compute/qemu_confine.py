"""The user a server's QEMU runs as, and how it is confined. Each server has an unprivileged
host user of its own: uid = gid = the base of its range in the machine-wide registry of
idmap.py (shared with the container driver, so no two servers, of either driver, are the
same user), claimed at each start, kept in idmap.json and freed when the server is deleted.
The files QEMU writes (QEMU_FILES) are that user's, 0600, in the server's root-owned 0700
directory. QEMU starts through nsenter and setpriv (no supplementary groups but /dev/kvm's
where the host shares it that way, no capabilities, no_new_privs); qemu-img runs as that
user too on anything QEMU could have written, reaching files only through the fds the
driver opened as root and passed it.

A mixin of QemuDriver, apart from the lifecycle in qemu.py: it uses the driver's server
directory, state files, per-server locks, idmap registry and accelerator (``_dir``,
``_read_json``, ``_write_json``, ``_lock``, ``idmaps``, ``confine``, ``accel``).
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from typing import Any

from pocketstack.drivers.compute.base import DriverError
from pocketstack.drivers.compute.idmap import IdmapExhausted

log = logging.getLogger("pocketstack.compute.qemu")

# A server's QEMU user: (uid, gid), or None where the driver does not run as root (then
# QEMU runs as the driver's own, unprivileged, user).
Ids = tuple[int, int] | None
# Files QEMU writes: its user's. A server of an older release has them as root's.
QEMU_FILES = ("disk.qcow2", "console.log", "qemu.log")


class QemuConfine:
    _dir: Any
    _read_json: Any
    _write_json: Any
    _lock: Any
    idmaps: Any
    confine: bool
    accel: Any

    def _ids(self, server_id: str) -> Ids:
        """The server's QEMU user, allocated at its first start and kept until it is
        deleted (idmap.json; claimed again at each start, so a registry lost with /var/lib
        is rebuilt). The files QEMU writes are given to it: a server of an older release
        (QEMU ran as root) gets its range and its files at its next start."""
        if not self.confine:
            return None
        with self._lock("ids-" + server_id):
            return self._ids_locked(server_id)

    def _ids_locked(self, server_id: str) -> tuple[int, int]:
        d = self._dir(server_id)
        os.chmod(d, 0o700)
        rec = self._read_json(server_id, "idmap.json")
        ids = None
        if isinstance(rec.get("slot"), int):
            ids = self.idmaps.claim(rec["slot"], d)
        if ids is None:
            try:
                ids = self.idmaps.allocate(d)
            except IdmapExhausted as exc:
                raise DriverError(f"No host uid range left for the server: {exc}") from None
        if rec.get("slot") != ids.slot or rec.get("base") != ids.base:
            self._write_json(server_id, "idmap.json",
                             {"slot": ids.slot, "base": ids.base, "count": ids.count})
        uid = gid = ids.base
        for name in QEMU_FILES:
            try:
                st = os.lstat(d / name)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(st.st_mode):
                raise DriverError(f"Server {server_id}: {name} is not a regular file.")
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(d / name, uid, gid, follow_symlinks=False)
            if stat.S_IMODE(st.st_mode) != 0o600:
                os.chmod(d / name, 0o600, follow_symlinks=False)
        return uid, gid

    def _run_as(self, ids: Ids, argv: list[str], fds: list[int], timeout: float
                ) -> subprocess.CompletedProcess:
        """``argv`` as the server's user, inheriting ``fds`` (it reaches files through
        /proc/self/fd/N only)."""
        kw: dict[str, Any] = {} if ids is None else {
            "user": ids[0], "group": ids[1], "extra_groups": []}
        return subprocess.run(argv, pass_fds=fds, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, cwd="/", **kw)

    def _confined(self, holder: int, ids: Ids) -> list[str]:
        """The prefix that runs QEMU in the server's namespace as the server's user: no
        supplementary groups (but /dev/kvm's, where that is how it is shared), no
        capabilities, no_new_privs; QEMU's sandbox then adds its seccomp filter."""
        argv = ["nsenter", f"--net=/proc/{holder}/ns/net", "--"]
        if ids is None:
            return argv
        groups = self._kvm_groups()
        return argv + ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}",
                       f"--groups={','.join(map(str, groups))}" if groups
                       else "--clear-groups", "--no-new-privs", "--inh-caps=-all",
                       "--bounding-set=-all", "--"]

    def _kvm_groups(self) -> list[int]:
        """Supplementary groups QEMU needs for /dev/kvm when it boots with KVM: none if
        everyone may use it (systemd's default 0666), its group if that is how the host
        shares it (0660 root:kvm); a root-only /dev/kvm (no udev rules ran) is opened up
        to 0666 as systemd would."""
        if "kvm" not in self.accel().split(":"):
            return []
        try:
            st = os.stat("/dev/kvm")
        except OSError:
            return []
        if st.st_mode & 0o006 == 0o006:
            return []
        if st.st_gid != 0 and st.st_mode & 0o060 == 0o060:
            return [st.st_gid]
        os.chmod("/dev/kvm", 0o666)
        log.warning("/dev/kvm was root's only: made it 0666 (as systemd's udev rules do) so "
                    "that confined QEMU processes can use KVM")
        return []
