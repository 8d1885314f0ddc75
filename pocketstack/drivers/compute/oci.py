"""The OCI runtime spec (``config.json``) of a container server, for runc to enforce.

Pure functions of the server's settings (unit tested): the driver writes the result into
the server's bundle and lets runc do the confinement, instead of hand-rolled namespace
flags. What a guest gets, and why:

- every namespace, a user namespace included: the guest's root is host uid ``idmap.base``
  (a 65536-id range of its own per server, see idmap.py) and has capabilities only over
  what that namespace owns (its own network, mounts, processes);
- a default container runtime's capability set (Docker's, plus CAP_NET_ADMIN on the
  server's own network namespace, which its DHCP client needs): no CAP_SYS_ADMIN,
  CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_PTRACE, CAP_SYS_TIME, CAP_SYSLOG...;
- ``no_new_privs`` and a seccomp allow-list (below) in the shape of a default container
  runtime profile: no kernel keyring, bpf, perf, kexec, module loading,
  open_by_handle_at, mount APIs or namespace creation/entry;
- pivot_root into the server's own root file system with its own /proc (the usual
  masked and read-only paths), a read-only /sys, and a devices cgroup that allows only
  null, zero, full, random, urandom, tty, ptmx/pts and the server's attached volumes;
- cgroup limits from the flavor (memory, CPU) and a pids limit (a fork bomb stays in).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Docker's default capabilities, plus NET_ADMIN (namespaced: it governs only the server's
# own network namespace, which its user namespace owns; udhcpc needs it to set addresses).
CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_NET_ADMIN",
)

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/proc/sysrq-trigger", "/sys/firmware", "/sys/devices/virtual/powercap",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys")

# (type, major, minor) of the character devices every server has; runc creates the nodes.
STANDARD_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7), "/dev/random": (1, 8),
    "/dev/urandom": (1, 9), "/dev/tty": (5, 0),
}
# The devices cgroup also lets the guest use its pseudo-terminals (ptmx, pts/*).
PTY_DEVICES = ((5, 2), (136, None))

# System calls a guest may make: what a default container runtime profile allows a
# container without CAP_SYS_ADMIN and friends. Everything else fails with EPERM, notably
# keyctl/add_key/request_key, bpf, perf_event_open, kexec_*, init_module/finit_module/
# delete_module, open_by_handle_at, mount/umount2/pivot_root, fsopen/fsmount/move_mount/
# open_tree/mount_setattr, setns/unshare, clone3 (ENOSYS, so libcs fall back to clone,
# whose namespace flags are filtered below), iopl/ioperm, swapon, reboot, acct,
# settimeofday, syslog, userfaultfd, quotactl, lookup_dcookie, kcmp, process_vm_*.
# Only the native x86_64 ABI is allowed (see seccomp_profile): no 32-bit socketcall, whose
# arguments sit in memory where seccomp cannot see the address family.
SYSCALLS_ALLOWED = """
accept accept4 access adjtimex alarm arch_prctl bind brk capget capset chdir chmod chown
chown32 chroot clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat
dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2
epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat
faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2
fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork
fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64
getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer
getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid getresgid32
getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname getsockopt
get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch
inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit ipc kill
landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown lchown32
lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr
lstat lstat64 madvise membarrier memfd_create mincore mkdir mkdirat mknod mknodat mlock
mlock2 mlockall mmap mmap2 modify_ldt mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap
msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat
_newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc
pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64
process_mrelease pselect6 pselect6_time64 pwrite64 pwritev pwritev2 read readahead
readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages
removexattr rename renameat renameat2 restart_syscall rmdir rseq rt_sigaction
rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam
sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam
sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid
setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
sigprocmask sigreturn socketpair splice stat stat64 statfs statfs64 statx
symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
""".split()

# clone() flags that make namespaces (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|
# NEWNET): a guest may fork and make threads, never new namespaces.
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40  # socket(AF_VSOCK) reaches the host's hypervisor sockets: refused
EPERM, ENOSYS = 1, 38


def seccomp_profile() -> dict[str, Any]:
    """The seccomp section of the spec. Native x86_64 only: a system call through the
    32-bit ABI (int 0x80) is not in the filter's architectures and kills the caller
    (SIGSYS). Listing SCMP_ARCH_X86 would let libseccomp turn the socket() rule into an
    unconditional socketcall(SYS_SOCKET), a way around the AF_VSOCK refusal; a guest
    that needs 32-bit programs belongs in a VM."""
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": EPERM,
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            {"names": list(SYSCALLS_ALLOWED), "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0,
                       "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}]},
            # personality(): only the harmless personas (Linux, 32-bit uname, query).
            *({"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]}
              for v in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF)),
        ],
    }


@dataclass
class ContainerSpec:
    """What the driver knows of one server when it (re)starts it."""

    server_id: str
    hostname: str
    rootfs: str  # absolute path of the server's root file system on the host
    uid_base: int  # host uid (= gid) of the guest's root; the range is ``uid_count`` long
    uid_count: int
    cgroups_path: str  # e.g. /pocketstack-1a2b3c4d/<server id>
    vcpus: int
    memory_mb: int
    cpu_period_us: int
    pids_max: int
    nofile_max: int = 1024  # open files hard limit (runc cannot raise it above its own)
    args: list[str] = field(default_factory=lambda: ["/.pocketstack-boot"])
    block_devices: list[tuple[int, int]] = field(default_factory=list)  # (major, minor)
    # More bind mounts (the config drive's read-only tree, a rescued server's disk), as
    # OCI mount entries; their sources are the driver's own paths.
    mounts: list[dict[str, Any]] = field(default_factory=list)


def _device_rule(kind: str, major: int | None, minor: int | None, access: str = "rwm") -> dict:
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


def runtime_spec(s: ContainerSpec) -> dict[str, Any]:
    """The whole ``config.json`` for runc."""
    ro = ["nosuid", "noexec", "nodev", "ro"]
    caps = list(CAPABILITIES)
    devices = [_device_rule("c", *STANDARD_DEVICES[p]) for p in STANDARD_DEVICES]
    devices += [_device_rule("c", major, minor) for major, minor in PTY_DEVICES]
    devices += [_device_rule("b", major, minor, "rw") for major, minor in s.block_devices]
    period = s.cpu_period_us
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(s.args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=linux", "container=pocketstack"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": s.nofile_max,
                         "soft": min(1024, s.nofile_max)}],
            "noNewPrivileges": True,
            # Under host memory pressure the guests go before the cloud's own processes.
            "oomScoreAdj": 500,
        },
        "root": {"path": s.rootfs, "readonly": False},
        "hostname": s.hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ro},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=755", "size=65536k"]},
            *s.mounts,
        ],
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": s.uid_base, "size": s.uid_count}],
            "gidMappings": [{"containerID": 0, "hostID": s.uid_base, "size": s.uid_count}],
            "namespaces": [{"type": t} for t in
                           ("pid", "network", "ipc", "uts", "mount", "user", "cgroup")],
            "devices": [{"path": p, "type": "c", "major": ma, "minor": mi, "fileMode": 0o666,
                         "uid": 0, "gid": 0} for p, (ma, mi) in STANDARD_DEVICES.items()],
            "cgroupsPath": s.cgroups_path,
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}, *devices],
                "memory": {"limit": s.memory_mb * 2**20},
                "cpu": {"shares": 1024 * s.vcpus, "quota": s.vcpus * period, "period": period},
                "pids": {"limit": s.pids_max},
            },
            "rootfsPropagation": "private",
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            "seccomp": seccomp_profile(),
        },
    }
