"""Virtual machines: each server one QEMU process booting its own copy-on-write disk (a
qcow2 overlay over the image), in a network namespace of its own, confined.

Layout under ``<data_dir>/compute/qemu/<server id>/`` (the directory root's, 0700):
  disk.qcow2     the server's disk: an overlay whose backing file is the image's base
  config.json    how to boot it (base format, kernel/ramdisk, flavor, its ports' MACs)
  state.json     pids (QEMU, the network namespace holder) with their start times, QMP path
  idmap.json     the server's host uid range (idmap.py; QEMU runs as its first id)
  console.log    the serial console (os-getConsoleOutput), appended across boots
  qemu.log       QEMU's own messages of its last start
Base images (and kernels/ramdisks) are linked, or copied, into ``<data_dir>/compute/
qemu-base/<image id>`` so a server outlives its image's deletion (Nova's ``_base``); an
unreferenced base goes with its last server. Bases and disks are qemu_disks.py's.

Confinement: QEMU runs as an unprivileged host user of the server's own (uid = gid = the
base of its range in the machine-wide registry of idmap.py, shared with the container
driver, so no two servers, of either driver, are the same user), with no supplementary
groups, no capabilities (bounding set empty), no_new_privs and QEMU's seccomp sandbox
(qemu_process.SANDBOX). It opens no host path by name: the driver opens, as root, its disk
and base (fd sets), kernel and ramdisk (/proc/self/fd/N), console log, QMP listening socket,
taps and volumes, and QEMU inherits the fds (qemu_process.BootFds) or gets them over QMP
for hot-plugs. Its directories are root's 0700, so the user cannot reach another server's
files, nor even its own by path; the files QEMU writes (disk.qcow2, console.log, qemu.log,
the QMP socket) are that user's. Base files are root's and read-only to it (0644 inside the
0700 qemu-base). qemu-img runs as that user too on anything QEMU could have written (the
disk's header names files; a root qemu-img following them would read host files). Every
image is checked before it becomes a base: a disk that names another file (a backing file,
a qcow2 data file, a vmdk extent) is refused. The server's user and the confined command
line are qemu_confine.py's; this module opens the fds and runs the lifecycle.

Networking: a small holder process (``unshare --net``) owns the server's namespace; QEMU runs
in it (``nsenter``). The network service plugs each port into that namespace as an ``ethN``
carrying the port's MAC; each port is also a guest NIC with that MAC on a tap, and the two
meet on a bridge, all named by the MAC (qemu_process.NIC_FUNCS; NICs come and go in
qemu_nics.py). The holder watches the namespace's links and puts each ethN on its bridge.
The holder outlives QEMU (stop/start keep the plugged ports); destroy ends both.

QEMU and the holder run in sessions of their own, so servers keep running while pocketstack
is down; at start the worker re-adopts them from state.json (pid + start time, so a reused
pid is never mistaken for a server). QEMU is not daemonized (its sandbox denies fork and
setsid): the driver starts it in a new session and knows its pid from the start.

A server of a release before confinement (QEMU as root, no idmap.json) keeps running as
it is; at its next start it gets a range and its files are given to that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pocketstack.drivers.compute._host import (KeyedLocks, alive, atomic_write,
                                               memory_and_disk, process_times, start_time)
from pocketstack.drivers.compute.base import (NOSTATE, RUNNING, SHUTDOWN, ComputeDriver,
                                              DriverCapabilities, DriverError, HostResources,
                                              InstanceDiagnostics, InstanceSpec)
from pocketstack.drivers.compute.idmap import DEFAULT_BASE, DEFAULT_REGISTRY, IdmapRegistry
from pocketstack.drivers.compute import qemu_rescue
from pocketstack.drivers.compute.qemu_confine import QemuConfine
from pocketstack.drivers.compute.qemu_console import QemuConsole
from pocketstack.drivers.compute.qemu_disks import QemuDisks, _readable
from pocketstack.drivers.compute.qemu_nics import QemuNics, open_taps
from pocketstack.drivers.compute.qemu_process import (NETNS_SCRIPT, NETNS_VERSION, QEMU,
                                                      QEMU_FORMATS, QEMU_IMG, QMP, BootFds,
                                                      QMPError, nic_hex, power_state_of, probe,
                                                      qemu_argv, read_version)
from pocketstack.drivers.compute.qemu_volumes import QemuVolumes

log = logging.getLogger("pocketstack.compute.qemu")


class QemuDriver(QemuConfine, QemuConsole, QemuDisks, QemuNics, QemuVolumes, ComputeDriver):
    name = "qemu"
    capabilities = DriverCapabilities(hypervisor_type="QEMU", real_processes=True,
                                      instances_survive_restart=True, needs_image_file=True,
                                      console_protocols=frozenset({"vnc", "spice", "serial"}))

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.conf = settings.compute
        base = Path(settings.data_dir) / "compute"
        self.instances_dir = base / "qemu"
        self.base_dir = base / "qemu-base"
        self.tag = hashlib.sha1(str(Path(settings.data_dir).resolve()).encode()).hexdigest()[:8]
        # QMP socket paths must fit sun_path (108 bytes); long data dirs use /run.
        self.sock_dir = Path(f"/run/pocketstack/qemu-{self.tag}")
        self.hostname = os.uname().nodename
        self._lock = KeyedLocks()
        # The machine-wide registry of host uid ranges (the container driver's too).
        self.idmaps = IdmapRegistry(
            Path(getattr(self.conf, "container_idmap_registry", None) or DEFAULT_REGISTRY),
            base=int(getattr(self.conf, "container_idmap_base", None) or DEFAULT_BASE))
        self.confine = os.geteuid() == 0
        self._accel: str | None = None
        self._accel_lock = threading.Lock()
        self._ver: int | None = None

    # -- host -------------------------------------------------------------------------------
    def init_host(self) -> None:
        # root's 0700: a QEMU user reaches nothing here by path (it is given fds)
        for d in (self.instances_dir, self.base_dir):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(d, 0o700)
        if shutil.which(QEMU):  # probe the accelerator now rather than in the first boot
            threading.Thread(target=self.accel, name="qemu-accel-probe", daemon=True).start()

    def list_hosts(self) -> list[HostResources]:
        mem, disk = memory_and_disk(self.instances_dir)
        cpus = os.cpu_count() or 1
        return [HostResources(host=self.hostname, hypervisor_hostname=self.hostname,
                              vcpus=cpus, memory_mb=mem, local_gb=disk,
                              hypervisor_type="QEMU", hypervisor_version=self._version(),
                              host_ip="127.0.0.1",
                              cpu_info={"arch": os.uname().machine, "model": "qemu64",
                                        "vendor": "QEMU", "topology": {
                                            "sockets": 1, "cores": cpus, "threads": 1},
                                        "features": []})]

    def _version(self) -> int:
        """QEMU's version as Nova reports it (7.2.22 -> 7002022)."""
        if self._ver is None:
            self._ver = read_version()
        return self._ver

    def accel(self) -> str:
        """"kvm" when it runs guests at least about as fast as TCG here, else "tcg"
        (setting ``qemu_accel``: auto, kvm, tcg)."""
        want = getattr(self.conf, "qemu_accel", "auto")
        if want != "auto":
            return want
        with self._accel_lock:
            if self._accel is None:
                accel = "tcg"
                if os.access("/dev/kvm", os.R_OK | os.W_OK):
                    tcg = probe("tcg", 10)
                    kvm = probe("kvm", max(2.0, (tcg or 1) * 3))
                    if kvm is not None and (tcg is None or kvm <= tcg * 2 + 0.3):
                        accel = "kvm"
                    log.info("qemu accelerator: %s (probe boot: kvm %s s, tcg %s s)", accel,
                             kvm and round(kvm, 2), tcg and round(tcg, 2))
                self._accel = accel
            return self._accel

    def _dir(self, server_id: str) -> Path:
        if "/" in server_id or server_id in ("", ".", ".."):
            raise DriverError(f"bad server id {server_id!r}")
        return self.instances_dir / server_id

    def list_instances(self, host: str) -> list[str]:
        if not self.instances_dir.is_dir():
            return []
        return [d.name for d in self.instances_dir.iterdir()
                if (d / "config.json").is_file() and (d / "disk.qcow2").is_file()]

    # -- state ------------------------------------------------------------------------------
    def _read_json(self, server_id: str, name: str) -> dict[str, Any]:
        try:
            return json.loads((self._dir(server_id) / name).read_text())
        except (OSError, ValueError):
            return {}

    def _write_json(self, server_id: str, name: str, data: dict[str, Any]) -> None:
        atomic_write(self._dir(server_id) / name, json.dumps(data, indent=1, sort_keys=True))

    def _qmp_path(self, server_id: str) -> str:
        path = str(self._dir(server_id) / "qmp.sock")
        if len(path.encode()) < 100:
            return path
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        return str(self.sock_dir / f"{server_id}.qmp")

    def _qmp(self, server_id: str, *cmds: tuple[str, dict[str, Any]],
             timeout: float = 5) -> list[Any]:
        with self._monitor(server_id, timeout) as q:
            return [q.cmd(name, **args) for name, args in cmds]

    @contextlib.contextmanager
    def _monitor(self, server_id: str, timeout: float = 5) -> Iterator[QMP]:
        """One QMP session for several commands: fds passed with add-fd live in their fd
        set only until the session ends unless a command of the same session uses them."""
        state = self._read_json(server_id, "state.json")
        if alive(state, "qemu") is None:
            raise DriverError(f"Server {server_id} is not running.")
        with self._lock("qmp-" + server_id):
            try:
                with QMP(state["qmp"], timeout) as q:
                    yield q
            except (OSError, ValueError, ConnectionError) as exc:
                raise DriverError(f"QEMU monitor of server {server_id} did not answer: "
                                  f"{exc}") from None

    def get_power_state(self, host: str, server_id: str) -> int:
        if not (self._dir(server_id) / "config.json").is_file():
            return NOSTATE
        if alive(self._read_json(server_id, "state.json"), "qemu") is None:
            return SHUTDOWN
        try:
            (status,) = self._qmp(server_id, ("query-status", {}))
        except (DriverError, QMPError):
            return RUNNING  # alive but its monitor is busy or slow
        return power_state_of(status.get("status", ""))

    def diagnostics(self, host: str, server_id: str) -> InstanceDiagnostics:
        """Uptime and CPU time of the QEMU process (its vCPU threads and the emulator, as
        libvirt counts a domain's); the guest's own memory use is not visible from here."""
        diag = InstanceDiagnostics(power_state=self.get_power_state(host, server_id))
        pid = alive(self._read_json(server_id, "state.json"), "qemu")
        times = process_times(pid) if pid else None
        if times:
            diag.uptime_s, diag.cpu_time_ns = times
        return diag

    def processes(self, host: str, server_id: str) -> list[int]:
        state = self._read_json(server_id, "state.json")
        return [p for p in (alive(state, "qemu"), alive(state, "netns")) if p]

    def netns_pid(self, host: str, server_id: str) -> int | None:
        return alive(self._read_json(server_id, "state.json"), "netns")

    # -- lifecycle --------------------------------------------------------------------------
    def spawn(self, spec: InstanceSpec) -> None:
        if shutil.which(QEMU) is None or shutil.which(QEMU_IMG) is None:
            raise DriverError("QEMU is not installed on this host (Debian packages "
                              "qemu-system-x86 and qemu-utils).")
        with self._lock(spec.id):
            d = self._dir(spec.id)
            if alive(self._read_json(spec.id, "state.json"), "qemu"):
                return
            try:
                if not (d / "disk.qcow2").is_file() or not (d / "config.json").is_file():
                    d.mkdir(parents=True, exist_ok=True, mode=0o700)
                    ids = self._ids(spec.id)
                    # Under the gc lock until config.json names the bases: a concurrent
                    # destroy's _gc_bases must not take them away in between.
                    with self._lock("gc"):
                        cfg = self._boot_config(spec)
                        if spec.config_drive is not None:  # our own file, built by compute
                            cfg["config_drive"] = str(spec.config_drive)
                        self._write_json(spec.id, "config.json", cfg)
                    self._create_disk(spec.id, cfg, ids)
                self._start(spec.id)
            except Exception as exc:
                self._destroy(spec.id)
                if isinstance(exc, DriverError):
                    raise
                raise DriverError(f"Could not start the virtual machine: {exc}") from exc

    def _ensure_netns(self, server_id: str) -> int:
        d = self._dir(server_id)
        state = self._read_json(server_id, "state.json")
        pid = alive(state, "netns")
        if pid is not None and state.get("netns_v", 1) >= NETNS_VERSION:
            return pid
        if pid is not None:  # an older holder (QEMU is not running here): a fresh namespace
            self._kill_holder(state)
        ready = d / "netns.ready"
        ready.unlink(missing_ok=True)
        with open(d / "netns.log", "ab") as logf:
            proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", NETNS_SCRIPT,
                                     "ps-qemu-netns", str(ready)],
                                    stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                    start_new_session=True, close_fds=True)
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it if it ever exits
        state.update(netns_pid=proc.pid, netns_start=start_time(proc.pid),
                     netns_v=NETNS_VERSION)
        self._write_json(server_id, "state.json", state)
        deadline = time.monotonic() + 10
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (d / "netns.log").read_bytes()[-400:].decode(errors="replace").strip()
                raise DriverError(f"Could not set up the server's network namespace: {tail}")
            time.sleep(0.005)
        ready.unlink(missing_ok=True)
        return proc.pid

    def _start(self, server_id: str) -> None:
        d = self._dir(server_id)
        cfg = self._read_json(server_id, "config.json")
        ids = self._ids(server_id)
        holder = self._ensure_netns(server_id)
        macs = list(dict.fromkeys(str(m).lower() for m in cfg.get("macs") or []))
        self._nic_links(holder, "sync", macs)
        qmp = self._qmp_path(server_id)
        (d / "qemu.pid").unlink(missing_ok=True)  # an older release's -pidfile
        opened: list[int] = []
        sock: socket.socket | None = None

        def opn(path: str | Path, flags: int, what: str) -> int:
            try:
                fd = os.open(path, flags | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                raise DriverError(f"Cannot open the server's {what}: {exc}") from None
            opened.append(fd)
            return fd

        try:
            for base in (cfg.get("base"), cfg.get("kernel"), cfg.get("ramdisk")):
                if base:  # a base of an older release: the image store's 0600
                    _readable(Path(base))
            fds = BootFds(
                disk=opn(d / "disk.qcow2", os.O_RDWR, "disk"),
                base=opn(cfg["base"], os.O_RDONLY, "image"),
                console=opn(d / "console.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                            "console log"),
                qmp=-1,
                kernel=opn(cfg["kernel"], os.O_RDONLY, "kernel") if cfg.get("kernel") else None,
                ramdisk=opn(cfg["ramdisk"], os.O_RDONLY, "ramdisk") if cfg.get("ramdisk")
                else None,
                config_drive=opn(cfg["config_drive"], os.O_RDONLY, "config drive")
                if cfg.get("config_drive") else None)
            if cfg.get("rescue_disk"):  # qemu_rescue.py: the own disk beside the rescue's
                fds.rescue_disk = opn(d / "rescue-disk.qcow2", os.O_RDWR, "own disk")
                fds.rescue_base = opn(cfg["rescue_disk"]["base"], os.O_RDONLY, "own image")
                fds.rescue_base_format = cfg["rescue_disk"]["base_format"]
            fds.taps = open_taps(holder, [nic_hex(m) for m in macs])
            opened += fds.taps.values()
            for guest, dev in self._read_json(server_id, "volumes.json").items():
                fds.volumes[guest] = opn(dev, os.O_RDWR, f"volume {guest} ({dev})")
            logfd = opn(d / "qemu.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "log")
            if ids is not None:
                for fd in (fds.console, logfd):
                    os.fchown(fd, *ids)
            fds.console_dir = self._open_console_dir(server_id, ids)  # qemu_console.py
            opened.append(fds.console_dir)
            Path(qmp).unlink(missing_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(qmp)
            os.chmod(qmp, 0o600)
            if ids is not None:
                os.chown(qmp, *ids)
            sock.listen(8)
            fds.qmp = sock.fileno()
            argv = self._confined(holder, ids) + qemu_argv(cfg, fds, accel=self.accel())
            proc = subprocess.Popen(argv, pass_fds=fds.all(), stdin=subprocess.DEVNULL,
                                    stdout=logfd, stderr=logfd, start_new_session=True,
                                    cwd="/")
        finally:
            for fd in opened:
                os.close(fd)
            if sock is not None:
                sock.close()
        state = self._read_json(server_id, "state.json")
        state.update(qemu_pid=proc.pid, qemu_start=start_time(proc.pid), qmp=qmp,
                     qemu_uid=ids[0] if ids else os.geteuid(), consoles=True)
        self._write_json(server_id, "state.json", state)
        self._wait_ready(server_id, proc, qmp)
        threading.Thread(target=proc.wait, daemon=True).start()  # reap it when it exits

    def _wait_ready(self, server_id: str, proc: subprocess.Popen, qmp: str) -> None:
        """Until QEMU answers on its monitor (what -daemonize used to wait for); its
        messages if it exits first."""
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                try:
                    out = (self._dir(server_id) / "qemu.log").read_text(errors="replace")
                except OSError:
                    out = ""
                err = "\n".join(line for line in out.splitlines()
                                if "host doesn't support requested feature" not in line)
                raise DriverError(f"QEMU failed to start (exit status {proc.returncode}): "
                                  f"{err.strip()[-400:]}")
            left = deadline - time.monotonic()
            if left <= 0:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                raise DriverError("QEMU did not start within 120 s.")
            try:
                with QMP(qmp, timeout=min(left, 10)) as q:
                    q.cmd("query-status")
                return
            except (OSError, ValueError, ConnectionError, QMPError):
                time.sleep(0.01)

    def _wait_gone(self, state: dict[str, Any], key: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while alive(state, key):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _stop_qemu(self, server_id: str, timeout: float) -> None:
        state = self._read_json(server_id, "state.json")
        pid = alive(state, "qemu")
        if pid is not None:
            if timeout > 0:
                try:
                    # A paused guest cannot see the power button.
                    self._qmp(server_id, ("cont", {}), ("system_powerdown", {}))
                except (DriverError, QMPError):
                    pass
                self._wait_gone(state, "qemu", timeout)
            if alive(state, "qemu"):
                try:
                    self._qmp(server_id, ("quit", {}), timeout=2)
                except (DriverError, QMPError, OSError):
                    pass
                if not self._wait_gone(state, "qemu", 3):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self._wait_gone(state, "qemu", 10)
        if state.get("qmp"):
            Path(state["qmp"]).unlink(missing_ok=True)
        if self._dir(server_id).is_dir():
            (self._dir(server_id) / "qemu.pid").unlink(missing_ok=True)
            if state.get("qemu_pid"):
                state.pop("qemu_pid", None)
                state.pop("qemu_start", None)
                self._write_json(server_id, "state.json", state)

    def power_off(self, host: str, server_id: str, timeout: float = 10) -> None:
        with self._lock(server_id):
            self._stop_qemu(server_id, timeout)

    def power_on(self, spec: InstanceSpec) -> None:
        with self._lock(spec.id):
            if alive(self._read_json(spec.id, "state.json"), "qemu"):
                return
            if not (self._dir(spec.id) / "disk.qcow2").is_file():
                raise DriverError(f"Server {spec.id} has no disk on this host.")
            cfg = self._read_json(spec.id, "config.json")
            new = dict(cfg)
            if spec.vcpus and spec.memory_mb:
                new.update(vcpus=spec.vcpus, memory_mb=spec.memory_mb)
            # The ports the caller names, when it names them, are the NICs; else the ones
            # config.json remembers (spawn's, plus attaches, minus detaches).
            macs = [str(p["mac_address"]).lower() for p in spec.network_info
                    if p.get("mac_address")]
            if macs:
                new["macs"] = macs
            if new != cfg:
                self._write_json(spec.id, "config.json", new)
            self._start(spec.id)

    def pause(self, host: str, server_id: str) -> None:
        try:
            self._qmp(server_id, ("stop", {}))
        except QMPError as exc:
            raise DriverError(f"Could not pause server {server_id}: {exc}") from None

    def unpause(self, host: str, server_id: str) -> None:
        try:
            self._qmp(server_id, ("cont", {}))
        except QMPError as exc:
            raise DriverError(f"Could not unpause server {server_id}: {exc}") from None

    def destroy(self, host: str, server_id: str) -> None:
        with self._lock(server_id):
            self._destroy(server_id)

    def _destroy(self, server_id: str) -> None:
        self._stop_qemu(server_id, 0)
        self._kill_holder(self._read_json(server_id, "state.json"))
        rec = self._read_json(server_id, "idmap.json")
        self._remove_console_dir(server_id)
        shutil.rmtree(self._dir(server_id), ignore_errors=True)
        if isinstance(rec.get("slot"), int):  # its user owns nothing any more
            self.idmaps.free(rec["slot"], self._dir(server_id))
        self._gc_bases()

    def _kill_holder(self, state: dict[str, Any]) -> None:
        holder = alive(state, "netns")
        if holder is not None:
            try:
                os.killpg(holder, signal.SIGKILL)  # sh, ip monitor and the read loop
            except (ProcessLookupError, PermissionError):
                pass
            self._wait_gone(state, "netns", 10)

    def rebuild(self, spec: InstanceSpec) -> None:
        """A fresh disk from the (new) image; the namespace, its port and volumes stay."""
        with self._lock(spec.id):
            self._stop_qemu(spec.id, 2)
            d = self._dir(spec.id)
            macs = self._read_json(spec.id, "config.json").get("macs")
            (d / "disk.qcow2").unlink(missing_ok=True)
            (d / "config.json").unlink(missing_ok=True)
        if not spec.network_info and macs:
            spec.network_info = [{"mac_address": m} for m in macs]
        self.spawn(spec)

    # -- rescue (qemu_rescue.py): the rescue image boots, the own disk is the second -------
    def rescue(self, spec: InstanceSpec, rescue: InstanceSpec) -> None:
        qemu_rescue.rescue(self, spec, rescue)

    def unrescue(self, spec: InstanceSpec) -> None:
        qemu_rescue.unrescue(self, spec)

    def purge(self) -> None:
        super().purge()
        shutil.rmtree(self.base_dir, ignore_errors=True)
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    def console_output(self, host: str, server_id: str, length: int | None = None) -> str:
        path = self._dir(server_id) / "console.log"
        if not path.exists():
            if (self._dir(server_id) / "config.json").exists():
                return ""
            raise DriverError(f"Server {server_id} has no console log.")
        with open(path, "rb") as fh:  # the tail only: the guest decides how big it is
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 1024 * 1024))
            data = fh.read().decode(errors="replace").replace("\r\n", "\n")
        if length is None:
            return data
        lines = data.splitlines(keepends=True)
        return "".join(lines[-length:]) if length > 0 else ""

    def snapshot(self, host: str, server_id: str, target: Path) -> None:
        d = self._dir(server_id)
        cfg = self._read_json(server_id, "config.json")
        if not (d / "disk.qcow2").is_file() or not cfg:
            raise DriverError(f"Server {server_id} has no disk to snapshot.")
        fmt = QEMU_FORMATS.get(cfg.get("disk_format", "raw"), "raw")
        tmp = target.with_name(target.name + ".tmp")
        # A running guest is stopped for the copy so the snapshot is consistent.
        paused_here = False
        if self.get_power_state("", server_id) == RUNNING:
            try:
                self._qmp(server_id, ("stop", {}))
                paused_here = True
            except (DriverError, QMPError):
                pass
        try:
            res = self._convert(server_id, cfg, fmt, tmp)
        finally:
            if paused_here:
                try:
                    self._qmp(server_id, ("cont", {}))
                except (DriverError, QMPError):
                    log.warning("could not resume server %s after its snapshot", server_id)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise DriverError(f"Snapshot failed: {res.stderr.strip()[-300:]}")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def resize(self, spec: InstanceSpec) -> None:
        """New vCPUs and memory apply at the next power on; the disk grows now."""
        with self._lock(spec.id):
            d = self._dir(spec.id)
            cfg = self._read_json(spec.id, "config.json")
            if not cfg:
                raise DriverError(f"Server {spec.id} is not on this host.")
            want = int(spec.root_gb or 0) * 2**30
            if want:
                ids = self._ids(spec.id)
                have = self._image_size(d / "disk.qcow2", "qcow2", ids)
                if want < have:
                    raise DriverError(f"Cannot resize server {spec.id} to a {spec.root_gb} GB "
                                      f"disk: its disk is {have / 2**30:g} GB and disks "
                                      "cannot shrink.")
                if want > have:
                    if alive(self._read_json(spec.id, "state.json"), "qemu"):
                        self._qmp(spec.id, ("block_resize", {"node-name": "root",
                                                             "size": want}))
                    else:
                        fd = os.open(d / "disk.qcow2", os.O_RDWR | os.O_CLOEXEC)
                        node = {"driver": "qcow2", "backing": None, "file": {
                            "driver": "file", "filename": f"/proc/self/fd/{fd}"}}
                        try:  # as the server's user, the backing file left alone
                            res = self._run_as(ids, [QEMU_IMG, "resize", "-q",
                                                     "json:" + json.dumps(node), str(want)],
                                               [fd], 120)
                        finally:
                            os.close(fd)
                        if res.returncode != 0:
                            raise DriverError(f"Could not grow the disk: "
                                              f"{res.stderr.strip()[-300:]}")
            cfg.update(vcpus=spec.vcpus, memory_mb=spec.memory_mb,
                       root_gb=spec.root_gb or cfg.get("root_gb", 0))
            self._write_json(spec.id, "config.json", cfg)
