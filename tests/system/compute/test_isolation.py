"""Instance isolation (issue 14): what a tenant's container server can do to the host.

Every case boots a server as the non-admin ``demo`` user (member of project demo) through
the API from a private image of the busybox rootfs plus a static probe
(``escape_probe.c``, compiled here with ``gcc -static``) at /usr/bin/escape-probe. The
server's user data (a ``#!/bin/sh`` script, run as the guest's root) makes the attempts
and prints ``RESULT <name> ok`` / ``RESULT <name> errno=<E...>`` lines and finally
``probe-done`` on its console; each test reads them through os-getConsoleOutput and
asserts both what the guest saw and that nothing happened on the host (a marker file
that must not appear, a sentinel process that must survive, a sysctl that must keep its
value, a kernel log line that must not be written...). Each test collects all findings
and fails once listing every one of them (HOST: ... / guest: ...) with the guest's
RESULT lines, so a failure says exactly what escaped.

The attempts are harmless on a host that lets them through (the old chroot driver does):
mounts are read-only or of a fresh named cgroup hierarchy, files are written back with
the value they had, the kernel log only gets a unique line, markers are unique /tmp
paths, sysctls are restored at teardown, /dev/mem is only read. The fork bomb and the
memory hog run only against the runc driver (the old one had no pids limit), and only
once the host has seen the server's limits and seccomp filter (the guest waits for a
go file the host puts into its root).

One cloud (container compute driver, file volume driver) and one image for the module;
the servers of the single-server cases are all booted at the start (concurrently) and
each test waits for its own. About 25 s here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import LiveCloud
from tests.system.compute.isolation_common import (CGROUP, FORBIDDEN_CAPS, IDMAP_BASE, 
                                                   ROOTFS_TAR, V2, WAIT_FOR_GO,
                                                   Host, Iso, Verdict, alive, build_image,
                                                   build_probe, cgroup_dir, cgroup_group,
                                                   confined_only, dmesg, mem_available,
                                                   root_device, start_time, status)
from tests.system.compute.isolation_scripts import (CASES, DONE, PREAMBLE,
                                                    script_guest_root_owner)

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(os.geteuid() != 0, reason="container servers need root")]


@pytest.fixture(scope="module")
def host():
    tag = secrets.token_hex(6)
    marker = Path(f"/ps-host-marker-{tag}")
    marker.write_text("the host's root file system\n")
    name = f"ps-sentinel-{tag}"
    sentinel = subprocess.Popen([name, "300"], executable=shutil.which("sleep") or "/bin/sleep",
                                start_new_session=True, stdin=subprocess.DEVNULL)
    sysctl = Path("/proc/sys/kernel/printk_ratelimit_burst")
    h = Host(tag=tag, escape_marker=Path(f"/tmp/ps-escape-{tag}"), host_marker=marker,
             sentinel=sentinel, sentinel_name=name, root_dev=root_device(), sysctl=sysctl,
             sysctl_before=sysctl.read_text(),
             core_pattern_before=Path("/proc/sys/kernel/core_pattern").read_text(),
             sysrq_lines_before=dmesg().count("sysrq"))
    try:
        yield h
    finally:
        sentinel.kill()
        sentinel.wait()
        marker.unlink(missing_ok=True)
        h.escape_marker.unlink(missing_ok=True)
        if sysctl.read_text() != h.sysctl_before:
            sysctl.write_text(h.sysctl_before)
        core = Path("/proc/sys/kernel/core_pattern")
        if core.read_text() != h.core_pattern_before:
            core.write_text(h.core_pattern_before)


# -- the cloud, the image, the servers -------------------------------------------------------
@pytest.fixture(scope="module")
def iso(tmp_path_factory):
    if not ROOTFS_TAR.exists():
        pytest.skip(f"{ROOTFS_TAR} missing: run scripts/build-test-images")
    work = tmp_path_factory.mktemp("isolation-build")
    probe = build_probe(work)
    image_file = build_image(work, probe)
    root = Path(f"/tmp/ps-isolation-{secrets.token_hex(4)}")
    cloud = LiveCloud(root / "data", extra_env={"POCKETSTACK_COMPUTE__DRIVER": "container",
                                                "POCKETSTACK_VOLUME__DRIVER": "file"})
    try:
        cloud.start()
        if "container driver unavailable" in cloud.log() or "compute: fake" in cloud.log():
            pytest.skip("the container compute driver cannot run here: " + cloud.log()[-300:])
        admin = cloud.sdk()
        demo_project = admin.identity.find_project("demo", ignore_missing=False)
        admin.set_compute_quotas(demo_project.id, instances=40, cores=40, ram=40 * 1024)
        demo = cloud.sdk(user="demo")  # project demo, role member: no admin anywhere
        image = demo.image.create_image(
            name="ps-isolation-probe", filename=str(image_file), container_format="docker",
            disk_format="raw", visibility="private", allow_duplicates=True)
        deadline = time.monotonic() + 60
        while (image := demo.image.get_image(image.id)).status != "active":
            assert image.status not in ("killed", "deleted") and time.monotonic() < deadline, \
                image.status
            time.sleep(0.2)
        flavor = demo.compute.find_flavor("m1.tiny", ignore_missing=False)
        it = Iso(cloud=cloud, demo=demo, image_id=image.id, flavor_id=flavor.id)
        yield it
        leftovers = [s.id for s in demo.compute.servers()]
        if leftovers:
            it.delete(leftovers, timeout=120)
    finally:
        cloud.destroy()
        for raw in (cloud.data_dir / "volumes").glob("volume-*"):  # loops of leftover volumes
            for line in subprocess.run(["losetup", "-j", str(raw)], capture_output=True,
                                       text=True).stdout.splitlines():
                subprocess.run(["losetup", "-d", line.split(":")[0]], capture_output=True)
        # the module leaves nothing behind: no cgroups, uid ranges or loop devices
        group = cgroup_group(cloud.data_dir)
        left = [str(d) for d in CGROUP.glob(f"*/{group}")] + \
            [str(d) for d in CGROUP.glob(group)]
        registry = Path("/var/lib/pocketstack/idmap")
        if registry.is_dir():
            left += [f"idmap slot {f.name}" for f in registry.iterdir()
                     if str(cloud.data_dir) in f.read_text(errors="replace")]
        loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
        left += [line for line in loops.splitlines() if str(root) in line]
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"left behind on the host: {left}"


@pytest.fixture(scope="module")
def guests(iso, host, request):
    """Boots, at once, the server of every selected single-server case."""
    wanted = {item.originalname.removeprefix("test_") for item in request.session.items
              if getattr(item, "module", None) is request.module}
    return {name: iso.boot(name, build(host, iso)) for name, build in CASES.items()
            if name in wanted}


@pytest.fixture(autouse=True)
def _delete_case_servers(request, iso):
    yield
    case_name = request.node.originalname.removeprefix("test_")
    ids = iso.by_case.pop(case_name, [])
    if ids:
        iso.delete(ids)


# -- the cases -------------------------------------------------------------------------------
def test_cgroup_release_agent(iso, guests, host):
    out = iso.outcome(guests["cgroup_release_agent"])
    v = Verdict(out)
    deadline = time.monotonic() + 3  # the kernel runs a release agent asynchronously
    while time.monotonic() < deadline and not host.escape_marker.exists():
        time.sleep(0.2)
    if host.escape_marker.exists():
        v.host(False, f"the release_agent ran on the host: {host.escape_marker} says "
                      f"{host.escape_marker.read_text().strip()!r}")
    v.want("cgroup-mount", "errno=EPERM")
    v.failed("busybox-mount-cgroup")
    v.absent("release-agent")  # never got as far as a release_agent file
    v.absent("host-hierarchy-visible")
    # its own cgroup namespace: no host cgroup path in /proc/self/cgroup
    if "pocketstack-" in out.results.get("cgroup-self", ""):
        v.problems.append("guest: /proc/self/cgroup shows host cgroup paths (no cgroup ns)")
    v.check()


def test_host_root_device(iso, guests, host):
    v = Verdict(iso.outcome(guests["host_root_device"]))
    v.want("hostdisk-mknod", "errno=EPERM")
    v.refused("hostdisk-open")
    v.refused("hostdisk-mount")
    v.absent("hostdisk-list")
    v.absent("hostdisk-marker")
    v.absent("blockdev-present")
    v.check()


def test_proc_writes(iso, guests, host):
    out = iso.outcome(guests["proc_writes"])
    v = Verdict(out)
    try:
        now = host.sysctl.read_text()
        v.host(now == host.sysctl_before, "the guest changed kernel.printk_ratelimit_burst: "
               f"{host.sysctl_before.strip()} -> {now.strip()}")
        core = Path("/proc/sys/kernel/core_pattern").read_text()
        v.host(core == host.core_pattern_before, f"core_pattern is now {core!r}")
        v.host(dmesg().count("sysrq") == host.sysrq_lines_before,
               "a sysrq request reached the kernel")
        # /proc/sysrq-trigger is masked (/dev/null over it; absent on a kernel without
        # sysrq, like this one): a write may "succeed" into /dev/null only.
        if out.results.get("sysrq-write", "").startswith("ok"):
            v.want("sysrq-stat", "character_special_file:1:3")
        v.want("sysctl-open", "errno=EROFS", "errno=EACCES", "errno=EPERM")
        v.want("sysctl-seen", host.sysctl_before.strip())
        v.refused("core-pattern-open")
        v.failed("busybox-sysctl")
        v.check()
    finally:  # put the host back whatever happened
        if host.sysctl.read_text() != host.sysctl_before:
            host.sysctl.write_text(host.sysctl_before)


def test_sysfs_proc_mounts(iso, guests, host):
    v = Verdict(iso.outcome(guests["sysfs_proc_mounts"]))
    for name in ("mount-sysfs", "mount-proc", "remount-sys-rw", "remount-proc-sys-rw"):
        v.want(name, "errno=EPERM")
    v.failed("busybox-remount-sys")
    v.absent("sysfs-rw-write")
    v.refused("sys-write-open")
    v.want("sys-options", "ro")
    v.check()


def test_ptrace_and_signals(iso, guests, host):
    out = iso.outcome(guests["ptrace_and_signals"])
    v = Verdict(out)
    pid = host.sentinel.pid
    time.sleep(0.5)
    v.host(alive(pid) and host.sentinel.poll() is None,
           f"the host's sentinel process {pid} was killed from a guest")
    v.host(iso.cloud.proc.poll() is None, "the cloud died")
    v.want("sentinel-visible", "no")
    v.want("ptrace-1", "errno=EPERM")
    v.want(f"ptrace-{pid}", "errno=EPERM", "errno=ESRCH")
    for line in out.lines:  # no attach to any process at all
        name = line.split(" ")[1]
        if name.startswith("ptrace-"):
            v.refused(name)
    v.want("kill-sentinel", "errno=ESRCH", "errno=EPERM")
    v.want("kill-all", "rc=0", "rc=1")  # ran (1: nothing left to signal)
    v.check()


ALLOWED_CHAR = {(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)}
ALLOWED_DEV = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx", "pts",
               "shm", "mqueue", "fd", "stdin", "stdout", "stderr", "core"}


def test_dev_kmsg_mem(iso, guests, host):
    out = iso.outcome(guests["dev_kmsg_mem"])
    v = Verdict(out)
    v.host(f"ps-kmsg-{host.tag}" not in dmesg(), "a guest wrote into the host's kernel log")
    v.want("mknod-kmsg", "errno=EPERM")
    v.want("mknod-mem", "errno=EPERM")
    for name in ("dev-kmsg-open", "dev-kmsg-w-open", "dev-mem-open", "tmp-kmsg-open",
                 "tmp-kmsg-w-open", "tmp-mem-open"):
        v.refused(name)
    seen = {}
    for line in out.lines:
        name = line.split(" ")[1]
        if name.startswith("dev:"):
            seen[name[4:]] = line.split(" ")[2]
    if "/dev/null" not in seen:
        v.problems.append("guest: no /dev listing")
    for path, kind in seen.items():
        parts = path.split("/")  # ['', 'dev', name] or ['', 'dev', 'pts', n]
        t, major, minor = kind.split(":")
        if parts[2] not in ALLOWED_DEV:
            v.problems.append(f"guest: unexpected {path} ({kind}) in /dev")
        if t == "b":
            v.problems.append(f"guest: block device {path} in a server without volumes")
        if t == "c":
            dev = (int(major, 16), int(minor, 16))
            if dev not in ALLOWED_CHAR and not (parts[2] == "pts" and dev[0] == 136):
                v.problems.append(f"guest: character device {path} {dev} not allow-listed")
    v.check()


def test_kernel_module(iso, guests, host):
    v = Verdict(iso.outcome(guests["kernel_module"]))
    # EPERM from the confinement, not ENOEXEC (the kernel parsed the junk) or ENOSYS
    v.want("module-init_module", "errno=EPERM")
    v.want("module-finit_module", "errno=EPERM")
    v.want("module-delete_module", "errno=EPERM")
    v.failed("busybox-insmod")
    v.check()


# Results of `escape-probe syscalls` and what a confined guest must get. A seccomp
# ENOSYS (clone3, so libcs fall back to clone) is as good as EPERM.
SYSCALLS_REFUSED = {
    name: ("errno=EPERM",) for name in (
        "unshare-user", "unshare-mnt", "unshare-user-mnt", "unshare-cgroup", "unshare-net",
        "unshare-pid", "clone-newuser", "clone-newns", "setns-mnt", "setns-pid", "setns-net",
        "setns-user", "setns-cgroup", "setns-ipc", "setns-uts", "keyctl-get-session",
        "add_key", "request_key", "bpf-map-create", "perf_event_open-self",
        "perf_event_open-cpu", "open_by_handle_at", "fsopen", "open_tree-clone", "fsmount",
        "move_mount", "mount_setattr", "umount2-proc", "pivot_root", "kexec_file_load",
        "kexec_load", "iopl", "ioperm", "swapon", "syslog-read-all", "userfaultfd")
}
SYSCALLS_REFUSED["clone3-newuser"] = ("errno=ENOSYS", "errno=EPERM")
# AF_VSOCK: the hypervisor's sockets are no network namespace's; refused in the 64-bit ABI
# and through int 0x80 (socket and the socketcall multiplexer).
for _name in ("socket-vsock", "socket32-vsock", "socketcall32-vsock"):
    SYSCALLS_REFUSED[_name] = ("errno=EPERM",)


def test_namespaces_and_syscalls(iso, guests, host):
    out = iso.outcome(guests["namespaces_and_syscalls"])
    v = Verdict(out)
    for name, allowed in SYSCALLS_REFUSED.items():
        if name.startswith("socket") and "32" in name and "ia32" in out.results:
            continue  # no 32-bit ABI to go through (no IA32 emulation, or SIGSYS by seccomp)
        v.want(name, *allowed)
    for name in ("busybox-unshare-m", "busybox-unshare-U", "busybox-unshare-p",
                 "busybox-nsenter-mnt", "busybox-nsenter-all"):
        v.failed(name)
    v.check()


def test_chroot_escape(iso, guests, host):
    v = Verdict(iso.outcome(guests["chroot_escape"]))
    # chroot itself is allowed (CAP_SYS_CHROOT); the way out only leads to its own root
    v.want("chroot-marker", "invisible")
    v.check()


def test_other_servers_disk(iso, guests, host):
    """Server A keeps a secret in its root file system and another on its volume (a raw
    block device it can read and write, but not mount); server B, booted after A wrote
    them, looks for both everywhere it can: its own tree, /proc/*/root, the host paths of
    the instances and volumes, a device node of A's volume, and the same after a chroot
    escape."""
    name_a, content_a, vol_a = (secrets.token_hex(8) for _ in range(3))
    demo = iso.demo
    vol = demo.block_storage.create_volume(size=1, name="ps-iso-secret-vol")
    a = iso.boot("other_servers_disk", PREAMBLE + f"""
echo "SECRET{content_a}" > /root/ps-secret-{name_a}
echo "RESULT secret-written $(cat /root/ps-secret-{name_a})"
i=0; while [ ! -b /dev/vdb ] && [ $i -lt 600 ]; do i=$((i+1)); usleep 100000; done
printf 'VOLSECRET%s' {vol_a} | dd of=/dev/vdb bs=512 count=1 conv=sync 2>/dev/null; sync
echo "RESULT volume-readback $(dd if=/dev/vdb bs=25 count=1 2>/dev/null)"
mkdir -p /mnt/v
$P mount own-volume-mount /dev/vdb /mnt/v ext2 ro
""" + DONE, name="ps-iso-secret-a")
    try:
        deadline = time.monotonic() + 60
        while (vol := demo.block_storage.get_volume(vol.id)).status != "available":
            assert "error" not in vol.status and time.monotonic() < deadline, vol.status
            time.sleep(0.2)
        iso.wait_active(a)
        demo.compute.create_volume_attachment(a, volume_id=vol.id, device="/dev/vdb")
        out_a = iso.outcome(a)
        assert out_a.results.get("secret-written") == f"SECRET{content_a}", out_a.report()
        # the guest can use its own volume raw (positive control), not mount it
        assert out_a.results.get("volume-readback") == f"VOLSECRET{vol_a}", out_a.report()
        va = Verdict(out_a)
        va.want("own-volume-mount", "errno=EPERM")  # reported with B's findings below
        devices = json.loads((iso.instance_dir(a) / "block-devices.json").read_text())
        rdev = os.stat(devices["/dev/vdb"]).st_rdev
        major, minor = os.major(rdev), os.minor(rdev)
        data = iso.data_dir.resolve()
        instances, volumes = data / "compute" / "instances", data / "volumes"
        # Regular files only (a FIFO or /proc/kmsg would block grep), at most 20 s a
        # search. B's own files hold the two halves of each secret, never the whole.
        secrets_sh = (f'N1=ps-secret; N2={name_a}; N="$N1-$N2"\n'
                      f'C1=SECRET; C2={content_a}; C="$C1$C2"\n'
                      f'V1=VOLSECRET; V2={vol_a}; V="$V1$V2"\n')

        def grep_files(where: str) -> str:
            return (f"timeout 20 find {where} \\( -name proc -o -name sys -o -name dev \\) "
                    "-prune -o -type f -size -8192k -print 2>/dev/null | "
                    'timeout 20 xargs grep -lsF "$C" 2>/dev/null')

        def hunt(prefix: str) -> str:  # the host paths of A's disk and volume
            return f"""
ls {instances}/*/rootfs/root/"$N" 2>/dev/null | sed 's/^/RESULT {prefix}-hostpath /'
{grep_files(str(instances))} | sed 's/^/RESULT {prefix}-hostcontent /'
for f in {volumes}/*; do
  head -c 4096 "$f" 2>/dev/null | grep -qF "$V" && echo "RESULT {prefix}-volume $f"
done
"""
        b = iso.boot("other_servers_disk", PREAMBLE + secrets_sh + f"""
timeout 20 find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -name "$N" -print \\
  2>/dev/null | sed 's/^/RESULT found-name /'
{grep_files("/")} | sed 's/^/RESULT found-content /'
for r in /proc/[0-9]*/root; do
  [ -e "$r/root/$N" ] && echo "RESULT found-procroot $r"
done
{hunt("found")}
$P mknod volume-mknod /tmp/vol b {major} {minor}
$P read volume-node /tmp/vol 64
$P read volume-vdb /dev/vdb 64
for d in /dev/vd* /dev/loop*; do [ -b "$d" ] && echo "RESULT blockdev-present $d"; done
cat > /tmp/ps-hunt.sh <<'EOS'
{secrets_sh}{hunt("found-escape")}
EOS
$P chroot escape {host.host_marker} /bin/sh -c "$(cat /tmp/ps-hunt.sh)"
""" + DONE, name="ps-iso-secret-b")
        out_b = iso.outcome(b)
        v = Verdict(out_b)
        v.problems += [f"server A: {p}" for p in va.problems]
        v.host((iso.instance_dir(a) / "rootfs" / "root" / f"ps-secret-{name_a}").exists(),
               "server A's secret is not where it wrote it (the test cannot judge B)")
        v.absent("found-")
        v.absent("blockdev-present")
        v.want("volume-mknod", "errno=EPERM")
        v.refused("volume-node-open")
        v.refused("volume-vdb-open")
        v.want("escape-marker", "invisible")
        v.check()
    finally:
        iso.delete(iso.by_case.pop("other_servers_disk", []))
        deadline = time.monotonic() + 60
        while demo.block_storage.get_volume(vol.id).status not in ("available", "error"):
            assert time.monotonic() < deadline, "the volume was not detached"
            time.sleep(0.2)
        demo.block_storage.delete_volume(vol.id)


def _uid_gid(st: dict[str, str]) -> tuple[list[int], list[int]]:
    return [int(x) for x in st["Uid"].split()], [int(x) for x in st["Gid"].split()]


def test_guest_root_owner(iso, guests, host):
    """The guest's root is an unprivileged host user of its own: its processes run as a
    host uid >= 1,000,000,000 without SYS_ADMIN/SYS_MODULE/SYS_RAWIO/SYS_PTRACE in the
    bounding set, with no_new_privs and a seccomp filter; what it creates is owned by that
    uid on the host; two servers have two different uids."""
    first = guests["guest_root_owner"]
    second = iso.boot("guest_root_owner", script_guest_root_owner(host, iso),
                      name="ps-iso-owner-2")
    bases = []
    for sid in (first, second):
        out = iso.outcome(sid)
        v = Verdict(out)
        v.want("guest-id", "0:0")  # root inside
        init = iso.state(sid)["init_pid"]
        pids = [init]
        procs = cgroup_dir(iso.data_dir, "pids", sid) / "cgroup.procs"
        if procs.exists():
            pids += [int(p) for p in procs.read_text().split() if int(p) != init]
        uid_base = None
        for pid in pids:
            try:
                st = status(pid)
            except OSError:
                continue  # gone meanwhile
            uids, gids = _uid_gid(st)
            what = f"guest process {pid} ({st.get('Name')})"
            v.host(min(uids) >= IDMAP_BASE and min(gids) >= IDMAP_BASE,
                   f"{what} runs as host uid {uids} gid {gids}")
            if pid == init:
                uid_base = uids[0]
            capbnd = int(st["CapBnd"], 16)
            held = [n for n, bit in FORBIDDEN_CAPS.items() if capbnd >> bit & 1]
            v.host(not held, f"{what} has {held} in CapBnd {st['CapBnd']}")
            v.host(st.get("NoNewPrivs") == "1", f"{what}: NoNewPrivs {st.get('NoNewPrivs')}")
            v.host(st.get("Seccomp") == "2", f"{what}: Seccomp {st.get('Seccomp')}")
        assert uid_base is not None, f"server {sid}'s init {init} is gone"
        rootfs = iso.instance_dir(sid) / "rootfs"
        made = (rootfs / "root" / f"ps-owned-{host.tag}").stat()
        v.host((made.st_uid, made.st_gid) == (uid_base, uid_base),
               f"a file the guest's root made is owned by host {made.st_uid}:{made.st_gid}")
        # Everything the guest can reach (its root file system) is in its own range; the
        # directory above it is host root's and lets the guest's uid only pass through.
        outside = []
        for dirpath, dirnames, filenames in os.walk(rootfs):
            for entry in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                owner = os.lstat(entry).st_uid
                if not uid_base <= owner < uid_base + 65536:
                    outside.append(f"{entry} (uid {owner})")
        v.host(not outside, f"{len(outside)} files in the guest's tree are outside its uid "
                            f"range, e.g. {outside[:5]}")
        inst = iso.instance_dir(sid).stat()
        v.host(inst.st_uid == 0 and inst.st_mode & 0o007 in (0, 0o001),
               f"instance directory mode {oct(inst.st_mode)} uid {inst.st_uid}")
        # ...and nothing of the host's configuration is the guest's
        if uid_base != 0:
            res = subprocess.run(["find", "/etc", "/root", "/var/lib/pocketstack", "-xdev",
                                  "-uid", str(uid_base), "-print"], capture_output=True,
                                 text=True, timeout=60)
            v.host(not res.stdout.strip(), f"host files owned by the guest's root:\n{res.stdout}")
        v.check()
        bases.append(uid_base)
    assert bases[0] != bases[1] and abs(bases[0] - bases[1]) >= 65536, (
        f"two servers' roots are host uids {bases}: not separate ranges")


def test_snapshot_of_running_server(iso, host, tmp_path):
    """A snapshot of a running server is made by host root reading the guest's tree while
    the guest changes it: it must never read a host file through a symlink the guest
    swaps in. The guest exchanges a directory /a (holding a file "secret") with a symlink
    to a host directory that holds a host-only "secret" of the same size, without pause,
    while the owner takes snapshots; no snapshot may hold the host's secret."""
    secret_dir = Path(f"/tmp/ps-host-secret-{host.tag}")
    secret_dir.mkdir(mode=0o700)
    content = f"HOSTSECRET-{secrets.token_hex(8)}\n"
    (secret_dir / "secret").write_text(content)
    try:
        sid = iso.boot("snapshot_of_running_server", PREAMBLE + f"""
mkdir /a
printf '%{len(content)}s' '' > /a/secret
ln -s {secret_dir} /b
$P swap /a /b 120 &
""" + DONE)
        iso.outcome(sid)
        leaks, made, errors = [], 0, 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and made < 12:
            image = iso.demo.compute.create_server_image(sid, f"ps-iso-snap-{made}")
            image = iso.demo.image.find_image(image.id, ignore_missing=True)
            while image is not None and image.status not in ("active", "killed", "deleted"):
                assert time.monotonic() < deadline + 60, "snapshot stuck"
                time.sleep(0.1)
                image = iso.demo.image.find_image(image.id, ignore_missing=True)
            iso.wait_active(sid)
            made += 1
            if image is None or image.status != "active":  # failed: the image is removed
                errors += 1
                continue
            out = tmp_path / f"snap-{made}.tar"
            iso.demo.image.download_image(image, output=str(out))
            iso.demo.image.delete_image(image)
            with tarfile.open(out) as tar:
                for member in tar.getmembers():
                    if member.isfile() and member.size == len(content):
                        data = tar.extractfile(member).read().decode(errors="replace")
                        if "HOSTSECRET" in data:
                            leaks.append(f"snapshot {made}: {member.name} = {data.strip()!r}")
            out.unlink()
        print(f"snapshots: {made} taken, {errors} failed")
        assert made > 0
        assert not leaks, "a snapshot read a host file through the guest's symlink:\n" + \
            "\n".join(leaks)
    finally:
        shutil.rmtree(secret_dir, ignore_errors=True)
        for image in iso.demo.image.images(owner=None):
            if image.name.startswith("ps-iso-snap-"):
                iso.demo.image.delete_image(image, ignore_missing=True)


@confined_only
def test_fork_bomb(iso, host):
    """A fork bomb stays inside the server's pids limit, the API keeps answering, and
    deleting the server takes every process of it."""
    sid = iso.boot("fork_bomb", PREAMBLE + WAIT_FOR_GO + """
$P forkbomb >/dev/null 2>&1 &
""" + DONE)
    iso.outcome(sid, marker="probe-ready")
    pids_dir = cgroup_dir(iso.data_dir, "pids", sid)
    limit_text = (pids_dir / "pids.max").read_text().strip()
    assert limit_text.isdigit() and int(limit_text) <= 4096, \
        f"pids.max is {limit_text!r}: not starting the fork bomb"
    limit = int(limit_text)
    iso.assert_confined(sid)
    iso.go(sid)
    iso.outcome(sid)
    peak, slowest = 0, 0.0
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        current = int((pids_dir / "pids.current").read_text())
        assert current <= limit
        peak = max(peak, current)
        t0 = time.monotonic()
        fresh = iso.cloud.sdk(user="demo")
        fresh.authorize()  # a token issue
        list(fresh.compute.servers())
        slowest = max(slowest, time.monotonic() - t0)
        assert time.monotonic() - t0 < 5, f"the API took {time.monotonic() - t0:.1f} s"
        time.sleep(0.3)
    assert peak >= limit * 0.9, f"the bomb never reached the limit ({peak}/{limit})"
    events = pids_dir / "pids.events"
    if events.exists():
        assert int(events.read_text().split()[-1]) > 0, "the limit never refused a fork"
    # The bomb's processes, by pid and start time (the uid range alone is no key: the
    # registry is machine-wide, another cloud may get the slot as soon as it is free).
    bomb = {pid: start_time(pid) for pid in
            map(int, (pids_dir / "cgroup.procs").read_text().split())}
    t0 = time.monotonic()
    iso.delete([sid], timeout=60)
    iso.by_case.pop("fork_bomb", None)
    took = time.monotonic() - t0
    assert not pids_dir.exists(), "the server's pids cgroup is still there"
    # (a zombie the host's init has not reaped yet is gone: alive() says so)
    left = [pid for pid, started in bomb.items()
            if started is not None and start_time(pid) == started and alive(pid)]
    def describe(pid: int) -> str:
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            st = status(pid)
            cg = Path(f"/proc/{pid}/cgroup").read_text().replace("\n", " ")
            return f"{pid} {st.get('Name')} uid {st.get('Uid')} ppid {st.get('PPid')} {cmd!r} {cg}"
        except OSError as exc:
            return f"{pid} ({exc})"
    assert not left, (f"{len(left)} processes of the deleted server still run:\n"
                      + "\n".join(describe(p) for p in left[:10]))
    print(f"fork bomb: peak {peak}/{limit} pids, slowest API round {slowest:.2f} s, "
          f"delete {took:.1f} s")


@confined_only
def test_memory_hog(iso, host):
    """A guest that allocates twice its flavor's memory is held (and OOM-killed) at the
    flavor's limit; the host loses no more than that and the API keeps answering."""
    sid = iso.boot("memory_hog", PREAMBLE + WAIT_FOR_GO + """
$P memhog 1024
echo "RESULT memhog-exit rc=$?"
""" + DONE)
    iso.outcome(sid, marker="probe-ready")
    mem = cgroup_dir(iso.data_dir, "memory", sid)
    limit = 512 * 2**20  # m1.tiny
    got = (mem / ("memory.max" if V2 else "memory.limit_in_bytes")).read_text().strip()
    assert got == str(limit), f"memory limit {got!r}, not m1.tiny's: not starting the hog"
    iso.assert_confined(sid)
    before = mem_available()
    lowest = [before]

    def watch():
        lowest[0] = min(lowest[0], mem_available())
    iso.go(sid)
    out = iso.outcome(sid, watch=watch)
    if V2:
        peak_file = mem / "memory.peak"
        assert int((mem / "memory.max").read_text()) == limit
        peak = int(peak_file.read_text()) if peak_file.exists() else 0
    else:
        assert int((mem / "memory.limit_in_bytes").read_text()) == limit
        peak = int((mem / "memory.max_usage_in_bytes").read_text())
        oom = dict(line.split() for line in (mem / "memory.oom_control").read_text().splitlines())
        assert int(oom.get("oom_kill", "1")) >= 1, f"no OOM kill in the server: {oom}"
    assert peak <= limit, f"the server used {peak} bytes over its {limit} limit"
    touched = [int(line.rsplit("mb=", 1)[1]) for line in out.lines if "memhog-touched" in line]
    assert not touched or max(touched) <= 512, f"the guest touched {max(touched)} MiB"
    v = Verdict(out)
    v.want("memhog-exit", "rc=137")  # SIGKILL by the OOM killer, inside the server
    v.check()
    assert before - lowest[0] < limit + 256 * 2**20, (
        f"host MemAvailable fell by {(before - lowest[0]) >> 20} MiB")
    t0 = time.monotonic()
    list(iso.cloud.sdk(user="demo").compute.servers())
    assert time.monotonic() - t0 < 5
    assert iso.cloud.proc.poll() is None, "the cloud died"
