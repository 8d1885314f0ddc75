"""Container servers: each one a real process tree in its own PID, mount, UTS, IPC and
network namespaces, chrooted into a per-server copy of its image's root file system, with
cgroup limits from the flavor. Built on util-linux ``unshare`` (no daemon, no runc).

Layout under ``<data_dir>/compute/instances/<server id>/``:
  rootfs/       the server's disk (a copy of the unpacked image; kept across stop/start)
  console.log   everything the server's init writes (os-getConsoleOutput)
  state.json    pids of the running server (unshare and the namespace's PID 1 + start times)
Cgroups: ``<controller>/pocketstack-<cloud>/<server id>`` (v1) or
``pocketstack-<cloud>/<server id>`` on the unified hierarchy (v2).

Servers are started in their own session, so they keep running while pocketstack is down;
at start the worker re-adopts them from state.json (checking pid start times, so a reused
pid is never mistaken for a server).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import stat
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute._host import (KeyedLocks, alive, atomic_write,
                                               memory_and_disk, process_times, start_time)
from pocketstack.drivers.compute.base import (NOSTATE, PAUSED, RUNNING, SHUTDOWN, ComputeDriver,
                                              DriverCapabilities, DriverError, HostResources,
                                              InstanceDiagnostics, InstanceSpec)

log = logging.getLogger("pocketstack.compute")

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "freezer", "pids")  # cpuacct: diagnostics

BOOT_SCRIPT = """#!/bin/sh
# pocketstack container boot: network (DHCP on eth0, as a cloud image's init would), user
# data (as cloud-init would, once the network is up), then the image's init.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
echo "pocketstack: booting $(cat /etc/hostname 2>/dev/null)"
UD=/var/lib/cloud/instance/user-data.txt
UP=/var/lib/cloud/instance/network-up
rm -f "$UP"
userdata() {
  if [ -s "$UD" ] && [ "$(head -c 2 "$UD")" = "#!" ]; then chmod 0700 "$UD"; "$UD"; fi
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
      exec busybox udhcpc -i eth0 -f -O staticroutes -t 5 -T 1 -A 2 -s /.pocketstack-udhcpc
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
    ip addr flush dev $interface
    ip addr add $ip/$mask dev $interface
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

def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


class Cgroups:
    """Per-server cgroups on v1 (this machine's hybrid layout) or v2."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.v2 = (CGROUP_ROOT / "cgroup.controllers").exists()

    def dirs(self, server_id: str) -> list[Path]:
        if self.v2:
            return [CGROUP_ROOT / self.group / server_id]
        return [CGROUP_ROOT / c / self.group / server_id for c in V1_CONTROLLERS
                if (CGROUP_ROOT / c).is_dir()]

    def _dir(self, controller: str, server_id: str) -> Path:
        return CGROUP_ROOT / (self.group if self.v2 else f"{controller}/{self.group}") / server_id

    def create(self, server_id: str, vcpus: int, memory_mb: int, period_us: int) -> None:
        if self.v2:
            parent = CGROUP_ROOT / self.group
            parent.mkdir(exist_ok=True)
            try:
                (parent / "cgroup.subtree_control").write_text("+memory +cpu +pids")
            except OSError:
                pass
        for d in self.dirs(server_id):
            d.mkdir(parents=True, exist_ok=True)
        self.set_limits(server_id, vcpus, memory_mb, period_us)

    def set_limits(self, server_id: str, vcpus: int, memory_mb: int, period_us: int) -> None:
        mem = memory_mb * 1024 * 1024
        if self.v2:
            d = self._dir("", server_id)
            (d / "memory.max").write_text(str(mem))
            (d / "cpu.max").write_text(f"{vcpus * period_us} {period_us}")
            (d / "cpu.weight").write_text(str(min(10000, 100 * vcpus)))
            return
        (self._dir("memory", server_id) / "memory.limit_in_bytes").write_text(str(mem))
        cpu = self._dir("cpu", server_id)
        (cpu / "cpu.shares").write_text(str(1024 * vcpus))
        (cpu / "cpu.cfs_period_us").write_text(str(period_us))
        (cpu / "cpu.cfs_quota_us").write_text(str(vcpus * period_us))

    def attach(self, server_id: str, pid: int) -> None:
        if self.v2:
            (self._dir("", server_id) / "cgroup.procs").write_text(str(pid))
            return
        for d in self.dirs(server_id):
            (d / "cgroup.procs").write_text(str(pid))

    def pids(self, server_id: str) -> list[int]:
        d = self._dir("pids" if not self.v2 else "", server_id)
        try:
            return [int(x) for x in (d / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def freeze(self, server_id: str, frozen: bool) -> None:
        if self.v2:
            (self._dir("", server_id) / "cgroup.freeze").write_text("1" if frozen else "0")
        else:
            (self._dir("freezer", server_id) / "freezer.state").write_text(
                "FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 5
        while frozen and not self.frozen(server_id) and time.monotonic() < deadline:
            time.sleep(0.01)

    def frozen(self, server_id: str) -> bool:
        try:
            if self.v2:
                events = (self._dir("", server_id) / "cgroup.events").read_text()
                return "frozen 1" in events
            return (self._dir("freezer", server_id) / "freezer.state").read_text().strip() == "FROZEN"
        except OSError:
            return False

    def usage(self, server_id: str) -> tuple[int | None, int | None, int | None]:
        """(memory limit bytes, memory in use bytes, CPU time ns) from the server's cgroup;
        None where a file is missing (e.g. a server started before it had a cpuacct group)."""
        def read(path: Path) -> str | None:
            try:
                return path.read_text()
            except OSError:
                return None

        def num(v: str | None) -> int | None:
            return int(v) if v is not None and v.strip().isdigit() else None
        if self.v2:
            d = self._dir("", server_id)
            limit, used, stat = read(d / "memory.max"), read(d / "memory.current"), read(d / "cpu.stat")
            cpu = None
            for line in (stat or "").splitlines():
                if line.startswith("usage_usec "):
                    cpu = int(line.split()[1]) * 1000
        else:
            m = self._dir("memory", server_id)
            limit, used = read(m / "memory.limit_in_bytes"), read(m / "memory.usage_in_bytes")
            cpu = num(read(self._dir("cpuacct", server_id) / "cpuacct.usage"))  # ns
        return num(limit), num(used), cpu

    def remove(self, server_id: str) -> None:
        for d in self.dirs(server_id):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
            try:  # the cloud's parent group goes with its last server (create remakes it)
                d.parent.rmdir()
            except OSError:
                pass


class ContainerDriver(ComputeDriver):
    name = "container"
    capabilities = DriverCapabilities(hypervisor_type="container", real_processes=True,
                                      instances_survive_restart=True, needs_image_file=True)

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.conf = settings.compute
        base = Path(settings.data_dir) / "compute"
        self.instances_dir = base / "instances"
        self.cache_dir = base / "image-cache"
        tag = hashlib.sha1(str(Path(settings.data_dir).resolve()).encode()).hexdigest()[:8]
        self.cgroups = Cgroups(f"pocketstack-{tag}")
        self.hostname = os.uname().nodename
        self._lock = KeyedLocks()

    # -- host -------------------------------------------------------------------------------
    def init_host(self) -> None:
        self.instances_dir.mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)

    def list_hosts(self) -> list[HostResources]:
        mem, disk = memory_and_disk(self.instances_dir)
        arch = os.uname().machine
        return [HostResources(host=self.hostname, hypervisor_hostname=self.hostname,
                              vcpus=os.cpu_count() or 1, memory_mb=mem, local_gb=disk,
                              hypervisor_type="container", hypervisor_version=1,
                              host_ip="127.0.0.1",
                              cpu_info={"arch": arch, "model": "host", "vendor": "host",
                                        "topology": {"sockets": 1, "cores": os.cpu_count() or 1,
                                                     "threads": 1}, "features": []})]

    def _dir(self, server_id: str) -> Path:
        if "/" in server_id or server_id in ("", ".", ".."):
            raise DriverError(f"bad server id {server_id!r}")
        return self.instances_dir / server_id

    def list_instances(self, host: str) -> list[str]:
        if not self.instances_dir.is_dir():
            return []
        return [d.name for d in self.instances_dir.iterdir() if (d / "rootfs").is_dir()]

    # -- state ------------------------------------------------------------------------------
    def _state(self, server_id: str) -> dict[str, Any]:
        try:
            return json.loads((self._dir(server_id) / "state.json").read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _alive(state: dict[str, Any], key: str = "init") -> int | None:
        return alive(state, key)

    def get_power_state(self, host: str, server_id: str) -> int:
        if not (self._dir(server_id) / "rootfs").is_dir():
            return NOSTATE
        if self._alive(self._state(server_id)) is None:
            return SHUTDOWN
        return PAUSED if self.cgroups.frozen(server_id) else RUNNING

    def diagnostics(self, host: str, server_id: str) -> InstanceDiagnostics:
        diag = InstanceDiagnostics(power_state=self.get_power_state(host, server_id))
        init = self._alive(self._state(server_id))
        if init is None:
            return diag
        limit, used, cpu = self.cgroups.usage(server_id)
        mib = 1024 * 1024
        diag.memory_max_mb = limit // mib if limit is not None else None
        diag.memory_used_mb = -(-used // mib) if used is not None else None
        diag.cpu_time_ns = cpu
        times = process_times(init)
        diag.uptime_s = times[0] if times else None
        return diag

    def processes(self, host: str, server_id: str) -> list[int]:
        return self.cgroups.pids(server_id) if self._alive(self._state(server_id)) else []

    def netns_pid(self, host: str, server_id: str) -> int | None:
        return self._alive(self._state(server_id))

    # -- lifecycle --------------------------------------------------------------------------
    def _unpacked_image(self, spec: InstanceSpec) -> Path:
        if spec.image_path is None or not Path(spec.image_path).exists():
            raise DriverError(f"Image {spec.image_id} has no data file to boot from.")
        key = hashlib.sha1(f"{spec.image_id}:{Path(spec.image_path).stat().st_size}:"
                           f"{Path(spec.image_path).stat().st_mtime_ns}".encode()).hexdigest()[:16]
        target = self.cache_dir / key
        if target.is_dir():
            return target
        with self._lock("cache-" + key):
            if target.is_dir():
                return target
            tmp = self.cache_dir / f".{key}.{os.getpid()}.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            try:
                with tarfile.open(spec.image_path) as tar:
                    tar.extractall(tmp, filter="tar")
            except (tarfile.TarError, OSError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise DriverError(f"Image {spec.image_id} is not a root file system tarball "
                                  f"(container_format bare/docker tar): {exc}") from None
            if not (tmp / "bin" / "sh").exists() and not (tmp / "sbin" / "init").exists():
                shutil.rmtree(tmp, ignore_errors=True)
                raise DriverError(f"Image {spec.image_id} has neither /bin/sh nor /sbin/init; "
                                  "it cannot boot as a container.")
            os.replace(tmp, target)
        return target

    def spawn(self, spec: InstanceSpec) -> None:
        with self._lock(spec.id):
            d = self._dir(spec.id)
            if self._alive(self._state(spec.id)):
                return
            try:
                if not (d / "rootfs").is_dir():
                    src = self._unpacked_image(spec)
                    tmp = d / "rootfs.tmp"
                    shutil.rmtree(tmp, ignore_errors=True)
                    d.mkdir(parents=True, exist_ok=True)
                    subprocess.run(["cp", "-a", "--reflink=auto", f"{src}/.", str(tmp)],
                                   check=True, capture_output=True)
                    os.replace(tmp, d / "rootfs")
                self._personalise(spec)
                self._start(spec)
            except Exception as exc:
                self._destroy(spec.id)
                if isinstance(exc, DriverError):
                    raise
                raise DriverError(f"Could not start container: {exc}") from exc

    def _personalise(self, spec: InstanceSpec) -> None:
        root = self._dir(spec.id) / "rootfs"
        for sub in ("etc", "proc", "sys", "dev", "tmp", "var/lib/cloud/instance", "root/.ssh"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        atomic_write(root / "etc/hostname", spec.hostname + "\n")
        atomic_write(root / "etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{spec.hostname}\n")
        inst = root / "var/lib/cloud/instance"
        if spec.user_data is not None:
            atomic_write(inst / "user-data.txt", spec.user_data, 0o600)
        atomic_write(inst / "meta-data.json", json.dumps(
            {"uuid": spec.id, "name": spec.name, "hostname": spec.hostname,
             "meta": spec.metadata}), 0o600)
        if spec.key_data:
            atomic_write(root / "root/.ssh/authorized_keys", spec.key_data + "\n", 0o600)
        atomic_write(root / ".pocketstack-boot", BOOT_SCRIPT, 0o755)
        # Only servers with ports wait for eth0 and ask for a lease. Power on, reboot and
        # rebuild specs carry no network_info: the build's is remembered next to the disk.
        nics = self._dir(spec.id) / "nics.json"
        if spec.network_info:
            atomic_write(nics, json.dumps([p.get("id") for p in spec.network_info]))
        dhcp = root / ".pocketstack-udhcpc"
        if nics.exists():
            atomic_write(dhcp, UDHCPC_SCRIPT, 0o755)
        else:
            dhcp.unlink(missing_ok=True)

    def _start(self, spec: InstanceSpec) -> None:
        d = self._dir(spec.id)
        root = d / "rootfs"
        self.cgroups.create(spec.id, spec.vcpus, spec.memory_mb, self.conf.container_cpu_period_us)
        # Inside the new namespaces, before chroot: private mounts, the hostname, /proc and
        # a minimal /dev; then the server's own boot script becomes PID 1.
        inner = " && ".join([
            "mount --make-rprivate /",
            f"hostname {shlex.quote(spec.hostname)}",
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs -o mode=755,size=1m tmpfs {root}/dev",
            *[f"touch {root}/dev/{n} && mount --bind /dev/{n} {root}/dev/{n}"
              for n in ("null", "zero", "full", "random", "urandom", "tty")],
            f"ip link set lo up 2>/dev/null || true",
            f"exec chroot {root} /.pocketstack-boot",
        ])
        cg = self.cgroups
        console = open(d / "console.log", "ab")

        def enter_cgroups() -> None:  # runs in the child between fork and exec
            cg.attach(spec.id, os.getpid())

        try:
            proc = subprocess.Popen(
                ["unshare", "--pid", "--mount", "--uts", "--ipc", "--net", "--fork",
                 "sh", "-c", inner], stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                start_new_session=True, preexec_fn=enter_cgroups, close_fds=True)
        finally:
            console.close()
        init = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            kids = _children(proc.pid)
            if kids:
                init = kids[0]
                break
            if proc.poll() is not None:
                break
            time.sleep(0.002)
        if init is None:
            tail = (d / "console.log").read_bytes()[-500:].decode(errors="replace")
            raise DriverError(f"The container's init did not start: {tail.strip()}")
        state = {"unshare_pid": proc.pid, "unshare_start": start_time(proc.pid),
                 "init_pid": init, "init_start": start_time(init)}
        atomic_write(d / "state.json", json.dumps(state))
        # Popen objects we never wait for would become zombies until we exit: reap in a thread.
        threading.Thread(target=proc.wait, daemon=True).start()
        # The boot script must be running (exec'd inside the chroot) before we call it up.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.readlink(f"/proc/{init}/root") == "/" and start_time(init) is not None:
                    time.sleep(0.002)
                    continue
                break
            except OSError:
                break
        if start_time(init) is None:
            tail = (d / "console.log").read_bytes()[-500:].decode(errors="replace")
            raise DriverError(f"The container exited at boot: {tail.strip()}")
        self._restore_block_devices(spec.id)  # /dev is a fresh tmpfs at every boot

    def _kill(self, server_id: str, timeout: float) -> None:
        state = self._state(server_id)
        init = self._alive(state)
        if self.cgroups.frozen(server_id):
            self.cgroups.freeze(server_id, False)
        if init is not None and timeout > 0:
            try:
                os.kill(init, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self._alive(state):
                time.sleep(0.02)
        for pid in [p for p in (init, self._alive(state, "unshare")) if p] + self.cgroups.pids(server_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (self._alive(state) or self.cgroups.pids(server_id)):
            time.sleep(0.01)

    def power_off(self, host: str, server_id: str, timeout: float = 10) -> None:
        with self._lock(server_id):
            self._kill(server_id, timeout)
            with open(self._dir(server_id) / "console.log", "ab") as fh:
                fh.write(b"pocketstack: powered off\n")

    def power_on(self, spec: InstanceSpec) -> None:
        with self._lock(spec.id):
            if self._alive(self._state(spec.id)):
                return
            if not (self._dir(spec.id) / "rootfs").is_dir():
                raise DriverError(f"Server {spec.id} has no disk on this host.")
            self._personalise(spec)
            self._start(spec)

    def pause(self, host: str, server_id: str) -> None:
        if self._alive(self._state(server_id)) is None:
            raise DriverError(f"Server {server_id} is not running.")
        self.cgroups.freeze(server_id, True)

    def unpause(self, host: str, server_id: str) -> None:
        self.cgroups.freeze(server_id, False)

    # -- volumes: a block device node in the server's own /dev ----------------------------
    # The container's /dev is a tmpfs in its mount namespace; /proc/<init>/root reaches it
    # from the host. Attached devices are recorded in block-devices.json so a stop/start
    # (a new tmpfs) gets them back.
    def _block_devices(self, server_id: str) -> dict[str, str]:
        try:
            return json.loads((self._dir(server_id) / "block-devices.json").read_text())
        except (OSError, ValueError):
            return {}

    def _mknod(self, server_id: str, host_device: str, guest_device: str) -> None:
        init = self._alive(self._state(server_id))
        if init is None:
            return  # not running: recorded, created at the next boot
        st = os.stat(host_device)
        if not stat.S_ISBLK(st.st_mode):
            raise DriverError(f"{host_device} is not a block device")
        node = Path(f"/proc/{init}/root") / guest_device.lstrip("/")
        try:
            node.unlink()
        except FileNotFoundError:
            pass
        os.mknod(node, stat.S_IFBLK | 0o660, st.st_rdev)

    def _restore_block_devices(self, server_id: str) -> None:
        for guest, host_dev in self._block_devices(server_id).items():
            try:
                self._mknod(server_id, host_dev, guest)
            except (OSError, DriverError) as exc:
                log.warning("could not restore %s in server %s: %s", guest, server_id, exc)

    def attach_block_device(self, host: str, server_id: str, host_device: str,
                            guest_device: str) -> None:
        if not guest_device.startswith("/dev/") or "/" in guest_device[5:]:
            raise DriverError(f"invalid guest device name {guest_device}")
        with self._lock(server_id):
            if not (self._dir(server_id) / "rootfs").is_dir():
                raise DriverError(f"Server {server_id} is not on this host.")
            try:
                self._mknod(server_id, host_device, guest_device)
            except OSError as exc:
                raise DriverError(f"cannot create {guest_device} in the server: {exc}") from None
            devices = self._block_devices(server_id)
            devices[guest_device] = host_device
            atomic_write(self._dir(server_id) / "block-devices.json", json.dumps(devices))

    def detach_block_device(self, host: str, server_id: str, guest_device: str) -> None:
        with self._lock(server_id):
            devices = self._block_devices(server_id)
            devices.pop(guest_device, None)
            if self._dir(server_id).is_dir():
                atomic_write(self._dir(server_id) / "block-devices.json", json.dumps(devices))
            init = self._alive(self._state(server_id))
            if init is not None:
                try:
                    (Path(f"/proc/{init}/root") / guest_device.lstrip("/")).unlink()
                except FileNotFoundError:
                    pass

    def destroy(self, host: str, server_id: str) -> None:
        with self._lock(server_id):
            self._destroy(server_id)

    def _destroy(self, server_id: str) -> None:
        self._kill(server_id, 0)
        self.cgroups.remove(server_id)
        shutil.rmtree(self._dir(server_id), ignore_errors=True)

    def purge(self) -> None:
        super().purge()
        for d in {p.parent for p in self.cgroups.dirs("x")}:  # the cloud's cgroup parents
            try:
                d.rmdir()
            except OSError:
                pass

    def console_output(self, host: str, server_id: str, length: int | None = None) -> str:
        path = self._dir(server_id) / "console.log"
        if not path.exists():
            raise DriverError(f"Server {server_id} has no console log.")
        data = path.read_bytes()[-1024 * 1024:].decode(errors="replace")
        if length is None:
            return data
        lines = data.splitlines(keepends=True)
        return "".join(lines[-length:]) if length > 0 else ""

    def snapshot(self, host: str, server_id: str, target: Path) -> None:
        root = self._dir(server_id) / "rootfs"
        if not root.is_dir():
            raise DriverError(f"Server {server_id} has no disk to snapshot.")
        tmp = target.with_name(target.name + ".tmp")
        excl = ["--exclude=./proc/*", "--exclude=./dev/*", "--exclude=./sys/*",
                "--exclude=./.pocketstack-boot"]
        res = subprocess.run(["tar", "-C", str(root), *excl, "-cf", str(tmp), "."],
                             capture_output=True, text=True)
        if res.returncode not in (0, 1):  # 1: a file changed while reading; still a snapshot
            raise DriverError(f"Snapshot failed: {res.stderr.strip()[-300:]}")
        os.replace(tmp, target)

    def resize(self, spec: InstanceSpec) -> None:
        if any(d.exists() for d in self.cgroups.dirs(spec.id)):
            self.cgroups.set_limits(spec.id, spec.vcpus, spec.memory_mb,
                                    self.conf.container_cpu_period_us)

    def rebuild(self, spec: InstanceSpec) -> None:
        with self._lock(spec.id):
            self._kill(spec.id, 2)
            shutil.rmtree(self._dir(spec.id) / "rootfs", ignore_errors=True)
        self.spawn(spec)
