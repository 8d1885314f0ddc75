"""The container driver's confinement as data: the OCI spec runc gets (namespaces, id
maps, capabilities, seccomp, masked paths, devices, limits), the machine-wide registry of
guest uid ranges, shifting a root file system into a range and back, and writes into a
guest's file system that never follow the guest's symlinks."""

from __future__ import annotations

import json
import os
import stat
import tarfile
import time

import pytest

from pocketstack.drivers.compute import container, container_rootfs, oci
from pocketstack.drivers.compute.idmap import IdmapExhausted, IdmapRegistry, IdRange


def spec(**kw) -> dict:
    args = dict(server_id="s1", hostname="web-1", rootfs="/data/compute/instances/s1/rootfs",
                uid_base=1_000_065_536, uid_count=65536, cgroups_path="/pocketstack-ab/s1",
                vcpus=2, memory_mb=512, cpu_period_us=100000, pids_max=1024)
    args.update(kw)
    return oci.runtime_spec(oci.ContainerSpec(**args))


def test_spec_namespaces_and_id_maps():
    s = spec()
    assert {n["type"] for n in s["linux"]["namespaces"]} == {
        "pid", "network", "ipc", "uts", "mount", "user", "cgroup"}
    assert all("path" not in n for n in s["linux"]["namespaces"])  # all new, none shared
    for key in ("uidMappings", "gidMappings"):
        assert s["linux"][key] == [{"containerID": 0, "hostID": 1_000_065_536, "size": 65536}]
    assert s["root"] == {"path": "/data/compute/instances/s1/rootfs", "readonly": False}
    assert s["hostname"] == "web-1"
    assert s["process"]["user"] == {"uid": 0, "gid": 0}
    assert s["process"]["noNewPrivileges"] is True
    assert s["process"]["terminal"] is False


def test_spec_capabilities_are_a_default_runtimes():
    caps = spec()["process"]["capabilities"]
    for kind in ("bounding", "effective", "permitted"):
        assert set(caps[kind]) == set(oci.CAPABILITIES)
    for dangerous in ("CAP_SYS_ADMIN", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE",
                      "CAP_SYS_TIME", "CAP_SYSLOG", "CAP_DAC_READ_SEARCH", "CAP_SYS_BOOT",
                      "CAP_BPF", "CAP_PERFMON", "CAP_MAC_ADMIN", "CAP_LINUX_IMMUTABLE"):
        assert dangerous not in caps["bounding"]
    assert "ambient" not in caps and "inheritable" not in caps


def test_spec_proc_and_sys_are_masked_or_read_only():
    s = spec()
    assert "/proc/sysrq-trigger" in s["linux"]["maskedPaths"]
    assert "/proc/kcore" in s["linux"]["maskedPaths"]
    assert "/proc/sys" in s["linux"]["readonlyPaths"]
    sysfs = next(m for m in s["mounts"] if m["destination"] == "/sys")
    assert sysfs["type"] == "sysfs" and "ro" in sysfs["options"]
    # no host path is bind-mounted into the guest, and nothing from the host's /dev
    assert not any(m["type"] == "bind" or "bind" in m.get("options", []) or
                   "rbind" in m.get("options", []) for m in s["mounts"])
    assert not any(m["destination"] in ("/dev", "/sys/fs/cgroup") for m in s["mounts"])


def test_spec_devices_allow_list_and_volumes():
    s = spec(block_devices=[(7, 3)])
    rules = s["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}  # deny everything first
    allowed = {(r["type"], r.get("major"), r.get("minor")) for r in rules[1:]}
    assert allowed == {("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
                       ("c", 5, 0), ("c", 5, 2), ("c", 136, None), ("b", 7, 3)}
    assert next(r for r in rules[1:] if r["type"] == "b")["access"] == "rw"  # no mknod of it
    assert all(r["allow"] for r in rules[1:])
    assert {d["path"] for d in s["linux"]["devices"]} == set(oci.STANDARD_DEVICES)


def test_spec_limits_from_the_flavor():
    res = spec(vcpus=2, memory_mb=512, pids_max=300)["linux"]["resources"]
    assert res["memory"] == {"limit": 512 * 2**20}
    assert res["cpu"] == {"shares": 2048, "quota": 200000, "period": 100000}
    assert res["pids"] == {"limit": 300}
    assert spec()["linux"]["cgroupsPath"] == "/pocketstack-ab/s1"


def test_seccomp_allow_list_refuses_what_a_default_profile_refuses():
    prof = spec()["linux"]["seccomp"]
    assert prof["defaultAction"] == "SCMP_ACT_ERRNO" and prof["defaultErrnoRet"] == 1
    # native only: x86 would turn the socket() rule into socketcall(SYS_SOCKET), whose
    # address family seccomp cannot see (AF_VSOCK through int 0x80)
    assert prof["architectures"] == ["SCMP_ARCH_X86_64"]
    unconditional = {n for r in prof["syscalls"] if r["action"] == "SCMP_ACT_ALLOW"
                     and not r.get("args") for n in r["names"]}
    for denied in ("mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key",
                   "request_key", "bpf", "perf_event_open", "kexec_load", "kexec_file_load",
                   "init_module", "finit_module", "delete_module", "open_by_handle_at",
                   "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
                   "mount_setattr", "iopl", "ioperm", "swapon", "swapoff", "reboot", "acct",
                   "settimeofday", "clock_settime", "syslog", "userfaultfd", "quotactl",
                   "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "clone",
                   "clone3", "socket", "personality", "name_to_handle_at", "uselib",
                   "lookup_dcookie", "vhangup", "sethostname", "socketcall"):
        assert denied not in unconditional, denied
    for needed in ("read", "write", "execve", "openat", "fork", "wait4", "socketpair",
                   "setuid", "chroot", "mknod", "ioctl", "futex", "rt_sigaction"):
        assert needed in unconditional, needed
    clone = next(r for r in prof["syscalls"] if r["names"] == ["clone"])
    assert clone["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0,
                              "op": "SCMP_CMP_MASKED_EQ"}]
    clone3 = next(r for r in prof["syscalls"] if r["names"] == ["clone3"])
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


# -- uid ranges ---------------------------------------------------------------------------

def test_ranges_are_distinct_and_freed(tmp_path):
    reg = IdmapRegistry(tmp_path / "reg", base=1_000_000_000, count=65536)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    ra, rb = reg.allocate(a), reg.allocate(b)
    assert ra.base == 1_000_000_000 and rb.base == 1_000_065_536
    assert reg.get(ra.slot, a) == ra and reg.get(ra.slot, b) is None
    reg.free(ra.slot, b)  # not b's: nothing happens
    assert reg.get(ra.slot, a) == ra
    reg.free(ra.slot, a)
    assert reg.get(ra.slot, a) is None
    assert reg.allocate(b).slot == ra.slot  # the lowest free slot again


def test_a_registry_shared_by_two_clouds(tmp_path):
    r1 = IdmapRegistry(tmp_path / "reg")
    r2 = IdmapRegistry(tmp_path / "reg")
    owners = [tmp_path / f"s{i}" for i in range(6)]
    for o in owners:
        o.mkdir()
    slots = [(r1 if i % 2 else r2).allocate(o).slot for i, o in enumerate(owners)]
    assert sorted(slots) == list(range(6))


def test_stale_slots_are_taken_back_and_claims_respected(tmp_path):
    # a base no process on this machine runs in (servers of other clouds use the default)
    reg = IdmapRegistry(tmp_path / "reg", base=3_500_000_000)
    gone, live, new = tmp_path / "gone", tmp_path / "live", tmp_path / "new"
    gone.mkdir()
    live.mkdir()
    new.mkdir()
    g, lv = reg.allocate(gone), reg.allocate(live)
    gone.rmdir()  # a cloud deleted without down --purge
    assert reg.allocate(new).slot == g.slot
    assert reg.claim(lv.slot, new) is None  # held by a live owner
    assert reg.claim(lv.slot, live) == lv
    os.unlink(tmp_path / "reg" / str(lv.slot))  # registry lost: the record claims it back
    assert reg.claim(lv.slot, live) == lv


def test_exhausted_registry(tmp_path):
    reg = IdmapRegistry(tmp_path / "reg", base=2**32 - 2 * 65536 - 1, count=65536)
    assert reg.slots == 2
    owners = [tmp_path / str(i) for i in range(3)]
    for o in owners:
        o.mkdir()
    reg.allocate(owners[0])
    reg.allocate(owners[1])
    with pytest.raises(IdmapExhausted):
        reg.allocate(owners[2])


def test_range_maps_outside_ids_to_nobody():
    r = IdRange(slot=1, base=1000, count=100)
    assert r.to_host(0) == 1000 and r.to_host(99) == 1099
    assert r.to_host(100) == 1000 + 65534 and r.to_host(-5) == 1000 + 65534


# -- shifting root file systems -----------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_shift_tree_moves_owners_and_keeps_setuid(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    su = root / "bin" / "su"
    su.write_text("x")
    os.chown(su, 0, 0)
    os.chmod(su, 0o4755)
    home = root / "home"
    home.mkdir()
    os.chown(home, 1000, 1000)
    (root / "link").symlink_to("/etc/shadow")  # never followed
    r = IdRange(slot=0, base=1_000_000_000, count=65536)
    container_rootfs.shift_tree(root, 0, r)
    assert (os.stat(su).st_uid, os.stat(su).st_gid) == (r.base, r.base)
    assert stat.S_IMODE(os.stat(su).st_mode) == 0o4755
    assert os.stat(home).st_uid == r.base + 1000
    assert os.lstat(root / "link").st_uid == r.base
    assert os.stat("/etc/shadow").st_uid == 0
    # and from one range into another (a server whose range changed)
    r2 = IdRange(slot=3, base=1_000_196_608, count=65536)
    container_rootfs.shift_tree(root, r.base, r2)
    assert os.stat(home).st_uid == r2.base + 1000 and os.stat(root).st_uid == r2.base


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_put_never_follows_a_guests_symlink(tmp_path):
    root = tmp_path / "rootfs"
    outside = tmp_path / "host"
    root.mkdir()
    outside.mkdir()
    (root / "etc").symlink_to(outside)  # the guest replaced /etc with a link to a host dir
    ids = IdRange(slot=0, base=1_000_000_000, count=65536)
    with pytest.raises(OSError):
        container_rootfs.put(root, "etc/hostname", "pwned\n", 0o644, ids)
    assert list(outside.iterdir()) == []
    (root / "etc").unlink()
    (root / "etc").mkdir()
    (root / "etc" / "hostname").symlink_to(outside / "victim")  # a leaf link is replaced
    container_rootfs.put(root, "etc/hostname", "web\n", 0o644, ids)
    assert not (outside / "victim").exists()
    assert (root / "etc" / "hostname").read_text() == "web\n"
    assert os.stat(root / "etc" / "hostname").st_uid == ids.base


def test_image_tarballs_bring_no_device_nodes(tmp_path):
    tar_path = tmp_path / "img.tar"
    with tarfile.open(tar_path, "w") as tar:
        for name, kind in (("dev/sda", tarfile.BLKTYPE), ("dev/mem", tarfile.CHRTYPE),
                           ("etc/motd", tarfile.REGTYPE)):
            ti = tarfile.TarInfo(name)
            ti.type = kind
            ti.devmajor, ti.devminor = 8, 0
            tar.addfile(ti, None if kind != tarfile.REGTYPE else open(os.devnull, "rb"))
    out = tmp_path / "out"
    with tarfile.open(tar_path) as tar:
        tar.extractall(out, filter=container_rootfs.no_device_nodes)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if not p.is_dir()) == [
        "etc/motd"]


def test_runc_error_is_the_last_logged_error(tmp_path):
    log = tmp_path / "runc.log"
    log.write_text("\n".join(json.dumps(e) for e in (
        {"level": "warning", "msg": "w"}, {"level": "error", "msg": "first"},
        {"level": "error", "msg": "runc run failed: no such file"})) + "\n")
    assert container._runc_error(log) == "runc run failed: no such file"
    assert "without a log" in container._runc_error(tmp_path / "none")


def test_concurrent_allocations_never_share_or_fail(tmp_path):
    """Regression: a slot taken between the listing and the O_EXCL open ended the search
    ("all ranges in use") instead of trying the next one."""
    import threading

    reg = IdmapRegistry(tmp_path / "reg")
    got: list[int] = []
    errors: list[Exception] = []

    def work(t: int) -> None:
        for i in range(10):
            owner = tmp_path / f"o{t}-{i}"
            owner.mkdir()
            try:
                got.append(IdmapRegistry(tmp_path / "reg").allocate(owner).slot)
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(got) == list(range(80)) and reg.slots > 80


@pytest.mark.skipif(os.geteuid() != 0, reason="setuid needs root")
def test_a_stale_slot_with_a_running_process_is_not_taken_back(tmp_path):
    """Regression: a cloud's directory deleted while its servers still ran freed their
    ranges, and the next server got the same host uid as a running guest."""
    import subprocess

    reg = IdmapRegistry(tmp_path / "reg", base=3_000_000_000, count=65536)
    gone, new = tmp_path / "gone", tmp_path / "new"
    gone.mkdir()
    new.mkdir()
    r = reg.allocate(gone)
    gone.rmdir()
    proc = subprocess.Popen(["sleep", "30"], user=r.base + 5, group=r.base + 5, extra_groups=[])
    try:
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{proc.pid}").st_uid != r.base + 5:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert reg.allocate(new).slot != r.slot
    finally:
        proc.kill()
        proc.wait()
    other = tmp_path / "other"
    other.mkdir()
    assert reg.allocate(other).slot == r.slot  # nothing runs as it any more: taken back


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_a_shift_cut_short_by_a_crash_is_resumed(tmp_path):
    """kill -9 during the first boot's shift leaves some files in the new range and some
    not; the next start shifts again from the record (old base 0) and must not push the
    done ones out of the range (they would become the guest's nobody)."""
    root = tmp_path / "rootfs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    os.chown(root / "b", 1000, 1000)
    r = IdRange(slot=0, base=1_000_000_000, count=65536)
    os.chown(root / "a", r.base + 1000, r.base + 1000)  # done before the crash
    container_rootfs.shift_tree(root, 0, r)
    assert os.stat(root / "a").st_uid == r.base + 1000
    assert os.stat(root / "b").st_uid == r.base + 1000
    assert os.stat(root).st_uid == r.base
