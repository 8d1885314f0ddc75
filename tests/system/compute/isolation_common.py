"""Shared parts of the isolation system tests (test_isolation.py): the static escape
probe and the image that carries it, the host-side readings (process status, cgroups,
dmesg, markers), the cloud wrapper that boots each case's server as the demo user, and
the verdict that gathers every finding of a case before it fails."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveCloud

ROOTFS_TAR = Path("/var/cache/pocketstack/test-images/rootfs.tar")
PROBE_SRC = Path(__file__).with_name("escape_probe.c")
GUEST_PROBE = "/usr/bin/escape-probe"
DRIVER_SRC = ROOT / "pocketstack" / "drivers" / "compute" / "container.py"
IDMAP_BASE = 1_000_000_000
CGROUP = Path("/sys/fs/cgroup")
V2 = (CGROUP / "cgroup.controllers").exists()

# Capabilities a guest must never hold on the host (bit numbers in CapBnd).
CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_ADMIN = 16, 17, 19, 21
FORBIDDEN_CAPS = {"CAP_SYS_MODULE": CAP_SYS_MODULE, "CAP_SYS_RAWIO": CAP_SYS_RAWIO,
                  "CAP_SYS_PTRACE": CAP_SYS_PTRACE, "CAP_SYS_ADMIN": CAP_SYS_ADMIN}


def runc_driver() -> bool:
    """True once the container driver confines servers with runc (pids limit included).
    Not a bare "runc" match: the unshare driver's docstring says "no runc"."""
    try:
        return re.search(r"^RUNC\s*=", DRIVER_SRC.read_text(), re.M) is not None
    except OSError:
        return False


confined_only = pytest.mark.skipif(
    not runc_driver(), reason="the container driver has no runc confinement (no pids/memory "
    "guarantees yet): a fork bomb or memory hog would hit this shared machine")

# The fork bomb and the memory hog wait for this file in their root before they start: the
# host puts it there only after it has seen the server's limits and seccomp filter.
GO_FILE = "ps-go"
WAIT_FOR_GO = f"""
echo probe-ready
while [ ! -e /{GO_FILE} ]; do usleep 100000; done
"""


# -- host facts ------------------------------------------------------------------------------
def root_device() -> tuple[int, int, str]:
    """(major, minor, fstype) of the file system mounted at the host's /."""
    found = None
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            if fields[4] == "/":
                major, minor = fields[2].split(":")
                found = (int(major), int(minor), post.split()[0])
    if found is None:
        st = os.stat("/")
        found = (os.major(st.st_dev), os.minor(st.st_dev), "ext4")
    return found


def dmesg() -> str:
    res = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30)
    return res.stdout


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def status(pid: int) -> dict[str, str]:
    out = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def cgroup_group(data_dir: Path) -> str:
    return "pocketstack-" + hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:8]


def cgroup_dir(data_dir: Path, controller: str, server_id: str) -> Path:
    group = cgroup_group(data_dir)
    return CGROUP / group / server_id if V2 else CGROUP / controller / group / server_id


@dataclass
class Host:
    """What each case looks for on the host, made before any server boots."""

    tag: str
    escape_marker: Path  # the release_agent would write it
    host_marker: Path  # at the host's /: invisible to a guest that stays in its root
    sentinel: subprocess.Popen
    sentinel_name: str
    root_dev: tuple[int, int, str]
    sysctl: Path
    sysctl_before: str
    core_pattern_before: str
    sysrq_lines_before: int


@dataclass
class Outcome:
    server_id: str
    console: str
    results: dict[str, str]
    lines: list[str]

    def report(self) -> str:
        return ("guest results:\n  " + "\n  ".join(self.lines) + "\nconsole tail:\n"
                + self.console[-1500:])


# The console is a terminal: the image's console shell may have left its prompt (and
# ash's cursor position query) at the start of the line the guest's script prints on.
PROMPT = r"(?:[^\n]*?[#$] (?:\x1b\[6n)?)?"


def parse_results(console: str) -> tuple[dict[str, str], list[str]]:
    results, lines = {}, []
    for line in console.splitlines():
        line = re.sub(rf"^{PROMPT}(?=RESULT )", "", line)
        if line.startswith("RESULT "):
            parts = line.split(" ", 2)
            if len(parts) >= 2:
                results[parts[1]] = parts[2] if len(parts) > 2 else ""
                lines.append(line)
    return results, lines


@dataclass
class Iso:
    cloud: LiveCloud
    demo: object
    image_id: str
    flavor_id: str
    by_case: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def data_dir(self) -> Path:
        return self.cloud.data_dir

    def instance_dir(self, server_id: str) -> Path:
        return self.data_dir / "compute" / "instances" / server_id

    def state(self, server_id: str) -> dict:
        return json.loads((self.instance_dir(server_id) / "state.json").read_text())

    def boot(self, case: str, script: str, name: str | None = None,
             flavor_id: str | None = None) -> str:
        srv = self.demo.compute.create_server(
            name=name or f"ps-iso-{case.replace('_', '-')}", image_id=self.image_id,
            flavor_id=flavor_id or self.flavor_id, networks="none",
            user_data=base64.b64encode(script.encode()).decode())
        self.by_case[case].append(srv.id)
        return srv.id

    def wait_active(self, server_id: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while True:
            srv = self.demo.compute.get_server(server_id)
            if srv.status == "ACTIVE":
                return
            assert srv.status != "ERROR", f"{server_id} ERROR: {srv.fault}"
            assert time.monotonic() < deadline, f"{server_id} stuck in {srv.status}"
            time.sleep(0.1)

    def console(self, server_id: str) -> str:
        return self.demo.compute.get_server_console_output(server_id)["output"]

    def outcome(self, server_id: str, timeout: float = 90, watch=None,
                marker: str = "probe-done") -> Outcome:
        """Wait for ACTIVE, then for the ``marker`` line; ``watch()`` runs every poll."""
        self.wait_active(server_id, timeout)
        deadline = time.monotonic() + timeout
        while True:
            out = self.console(server_id)
            if re.search(rf"^{PROMPT}{marker}\s*$", out, re.M):
                break
            assert time.monotonic() < deadline, f"no {marker} from {server_id}:\n{out[-3000:]}"
            if watch:
                watch()
            time.sleep(0.2)
        results, lines = parse_results(out)
        print(f"== server {server_id}\n" + "\n".join(lines))  # shown when a test fails
        return Outcome(server_id, out, results, lines)

    def go(self, server_id: str) -> None:
        """Create /ps-go in the server's root (never following a symlink the guest made)."""
        root = os.open(self.instance_dir(server_id) / "rootfs",
                       os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.close(os.open(GO_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o644, dir_fd=root))
        finally:
            os.close(root)

    def assert_confined(self, server_id: str) -> None:
        """Before a hostile load starts: the server's init is under seccomp as a non-root
        host user."""
        st = status(self.state(server_id)["init_pid"])
        assert st.get("Seccomp") == "2" and int(st["Uid"].split()[0]) >= IDMAP_BASE, (
            f"server {server_id} is not confined (Seccomp {st.get('Seccomp')}, Uid "
            f"{st['Uid']}): not starting the load")

    def delete(self, server_ids: list[str], timeout: float = 60) -> None:
        for sid in server_ids:
            try:
                self.demo.compute.delete_server(sid, ignore_missing=True)
            except Exception:  # noqa: BLE001 - already going
                pass
        deadline = time.monotonic() + timeout
        for sid in server_ids:
            while self.demo.compute.find_server(sid, ignore_missing=True) is not None:
                assert time.monotonic() < deadline, f"server {sid} not deleted"
                time.sleep(0.1)


def build_probe(out: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: the static escape probe cannot be built")
    binary = out / "escape-probe"
    res = subprocess.run([gcc, "-static", "-O1", "-Wall", "-o", str(binary), str(PROBE_SRC)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"gcc -static failed (glibc static libs?):\n{res.stderr}"
    return binary


def build_image(out: Path, probe: Path) -> Path:
    """The seeded busybox rootfs tarball plus the probe at /usr/bin/escape-probe."""
    image = out / "isolation-rootfs.tar"
    with tarfile.open(ROOTFS_TAR) as src, \
            tarfile.open(image, "w", format=tarfile.GNU_FORMAT) as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        info = dst.gettarinfo(str(probe), arcname=GUEST_PROBE.lstrip("/"))
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mode = 0o755
        with open(probe, "rb") as fh:
            dst.addfile(info, fh)
    return image


class Verdict:
    """Collects every finding of one case, host side and guest side, and fails once with
    all of them (so a failure shows everything that escaped, not just the first)."""

    def __init__(self, out: Outcome) -> None:
        self.out = out
        self.problems: list[str] = []

    def host(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(f"HOST: {problem}")

    def want(self, name: str, *allowed: str) -> None:
        """RESULT ``name`` is one of ``allowed`` (exactly, or followed by detail)."""
        got = self.out.results.get(name)
        if got is None or not any(got == a or got.startswith(a + " ") for a in allowed):
            self.problems.append(f"guest: {name} -> {got!r}, expected {' or '.join(allowed)}")

    def refused(self, name: str) -> None:
        """The probe's attempt ``name`` failed (any errno)."""
        got = self.out.results.get(name)
        if got is None or got.startswith("ok"):
            self.problems.append(f"guest: {name} -> {got!r}, expected a refusal")

    def failed(self, name: str) -> None:
        """A busybox tool run with ``try`` exited non-zero."""
        got = self.out.results.get(name)
        if got is None or got.startswith("rc=0"):
            self.problems.append(f"guest: {name} -> {got!r}, expected a non-zero exit")

    def absent(self, prefix: str) -> None:
        hits = [line for line in self.out.lines if line.split(" ")[1].startswith(prefix)]
        if hits:
            self.problems.append(f"guest reached what it must not: {hits}")

    def check(self) -> None:
        assert not self.problems, ("isolation broken:\n  " + "\n  ".join(self.problems)
                                   + "\n" + self.out.report())
