"""A container server's root file system as host root handles it: the boot scripts
written into it, its files shifted into the server's host uid range and back, writes
that never follow a symlink the guest made, image tarballs without device nodes, and
the snapshot tarball in the guest's own ids.

Everything here walks a tree the guest owns (and may have changed while it ran), as
host root: so nothing follows the guest's symlinks, and nothing reads the tree while
the guest can change it (the driver freezes a running server for a snapshot).
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from pocketstack.drivers.compute.idmap import IdRange

BOOT_SCRIPT = """#!/bin/sh
# pocketstack container boot: network (DHCP on eth0, as a cloud image's init would), user
# data (as cloud-init would, once the network is up), then the image's init.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
echo "pocketstack: booting $(cat /etc/hostname 2>/dev/null)"
UD=/var/lib/cloud/instance/user-data.txt
UP=/var/lib/cloud/instance/network-up
rm -f "$UP"
# User data runs once per instance, as cloud-init runs it (marked with the server's id
# before it runs: once even if it reboots the server; a server booted from a snapshot of
# another, or a rebuild's new disk, has no mark of its own, so it runs there);
# cloud-init's per-boot scripts run at every boot, before the user data (its order).
# Neither reads the console (stdin is its terminal): the console is for people.
userdata() {
  for s in /var/lib/cloud/scripts/per-boot/*; do [ -x "$s" ] && "$s" </dev/null; done
  ran="$UD.ran-$(cat /var/lib/cloud/instance/instance-id 2>/dev/null)"
  if [ -s "$UD" ] && [ "$(head -c 2 "$UD")" = "#!" ] && [ ! -e "$ran" ]; then
    : > "$ran"; chmod 0700 "$UD"; "$UD" </dev/null
  fi
}
if [ -x /.pocketstack-udhcpc ] && command -v busybox >/dev/null 2>&1; then
  # compute plugs eth0 into this namespace just after boot: wait for it (up, so its MAC is
  # the port's; polled every 0.1 s, then every second for a minute) and keep a DHCP client
  # running on it. User data runs once there is a lease, or after 10 s without one (a
  # data plane that plugs no eth0, e.g. the fake network driver).
  (
    i=0
    while [ $i -lt 110 ]; do
      case "$(busybox ip -o link show eth0 2>/dev/null)" in *[\\<,]UP[,\\>]*) break;; esac
      i=$((i+1))
      if [ $i -lt 50 ]; then busybox usleep 100000 2>/dev/null || sleep 1; else sleep 1; fi
    done
    busybox ip link show eth0 >/dev/null 2>&1 &&
      mkdir -p /var/run &&
      exec busybox udhcpc -i eth0 -f -p /var/run/udhcpc.eth0.pid -O staticroutes -t 5 -T 1 -A 2 \\
        -s /.pocketstack-udhcpc
  ) &
  (
    i=0
    while [ ! -e "$UP" ] && [ $i -lt 100 ]; do
      i=$((i+1)); busybox usleep 100000 2>/dev/null || sleep 1
    done
    userdata
  ) &
else
  userdata &
fi
if [ -x /sbin/init ]; then exec /sbin/init; fi
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
"""

# udhcpc's event script: the lease's address, default route and classless static routes
# (option 121: the route to 169.254.169.254 via the DHCP port), and a console line.
UDHCPC_SCRIPT = """#!/bin/sh
case "$1" in
  bound|renew)
    if ! ip -4 -o addr show dev $interface | grep -q " $ip/$mask "; then
      ip addr flush dev $interface
      ip addr add $ip/$mask dev $interface
    fi
    for r in $router; do ip route replace default via $r dev $interface; done
    set -- $staticroutes
    while [ $# -ge 2 ]; do ip route replace $1 via $2 dev $interface; shift 2; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    echo "pocketstack: $interface $ip/$mask router ${router:-none}"
    ip -4 -o addr show dev $interface
    : > /var/lib/cloud/instance/network-up
    ;;
esac
exit 0
"""


def shift_tree(root: Path, old: int, new: IdRange) -> None:
    """Move every file's owner and group from guest ids at host ``old + id`` to
    ``new.base + id`` (``old`` 0: a fresh copy of an image, owned as in its tarball). Ids
    outside the range become the guest's nobody. chown clears setuid/setgid bits, so they
    are put back: inside the user namespace they raise nobody above the guest's root."""
    def shifted(host_id: int) -> bool:
        return new.base <= host_id < new.base + new.count and new.base != old

    def move(path: str, st: os.stat_result) -> None:
        # Already in the new range: a shift that a crash cut short is being resumed.
        if shifted(st.st_uid) and shifted(st.st_gid):
            return
        uid, gid = st.st_uid - old, st.st_gid - old
        nu, ng = new.to_host(uid), new.to_host(gid)
        if (nu, ng) == (st.st_uid, st.st_gid):
            return
        os.lchown(path, nu, ng)
        if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(path, stat.S_IMODE(st.st_mode))

    move(str(root), os.lstat(root))
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            move(path, os.lstat(path))


def no_device_nodes(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "tar" filter, and no device nodes: an image never brings its own (the
    devices cgroup would refuse them anyway; runc makes the standard ones)."""
    member = tarfile.tar_filter(member, dest)
    return None if member.ischr() or member.isblk() else member


def put(root: Path, rel: str, data: str | bytes | None, mode: int, ids: IdRange,
         remove: bool = False) -> None:
    """Create (data None: a directory) or replace ``root/rel``, owned by the guest's
    root. The guest owns its file system and may have made any component a symlink
    to a host path while it ran: every parent is opened with O_NOFOLLOW relative to
    the one before, so a write never leaves ``root``."""
    parts = [p for p in rel.split("/") if p]
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                os.chown(part, ids.base, ids.base, dir_fd=fd, follow_symlinks=False)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        name = parts[-1]
        if remove:
            try:
                os.unlink(name, dir_fd=fd)
            except FileNotFoundError:
                pass
            return
        if data is None:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=fd)
                    raise FileNotFoundError
            except FileNotFoundError:
                os.mkdir(name, mode, dir_fd=fd)
                os.chown(name, ids.base, ids.base, dir_fd=fd, follow_symlinks=False)
            return
        tmp = f".{name}.pocketstack-tmp"
        try:
            os.unlink(tmp, dir_fd=fd)
        except FileNotFoundError:
            pass
        wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode,
                      dir_fd=fd)
        # No fsync: these files are written again at every start, so one lost to a
        # crash is simply rewritten (and the rename still never leaves half a file).
        with os.fdopen(wfd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            os.fchown(fh.fileno(), ids.base, ids.base)
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    finally:
        os.close(fd)


def write_snapshot(root: Path, target: Path, base: int, count: int) -> None:
    """``root`` as a rootfs tarball at ``target`` (atomically), its owners taken from
    host ids ``base + n`` back to the guest's ``n`` (outside the range: nobody); the
    server's mount points' contents and the boot script left out. Raises OSError."""
    skip = {"proc", "dev", "sys"}

    def unshift(ti: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = ti.name.split("/")
        if parts[:1] == ["."]:
            parts = parts[1:]
        if parts == [".pocketstack-boot"] or (len(parts) > 1 and parts[0] in skip):
            return None
        for attr in ("uid", "gid"):
            v = getattr(ti, attr) - base
            setattr(ti, attr, v if 0 <= v < count else 65534)
        ti.uname = ti.gname = ""
        return ti

    tmp = target.with_name(target.name + ".tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
            tar.add(str(root), arcname=".", filter=unshift)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, target)
