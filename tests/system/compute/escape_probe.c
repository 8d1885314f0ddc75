/* escape-probe: the guest half of tests/system/compute/test_isolation.py.
 *
 * Built static (gcc -static -O1) at test time and put at /usr/bin/escape-probe in a test
 * image. Each call makes one kind of attempt a tenant could make from inside a container
 * server and prints one line per attempt:
 *
 *     RESULT <name> ok [detail]        the call succeeded
 *     RESULT <name> errno=<ENAME>      it failed with that errno
 *
 * Every attempt is harmless on a host that lets it through: mounts are read-only or
 * unmounted at once, writes go to files the test names (or write back the value a file
 * already has), module loading gets a junk buffer the kernel refuses to parse, kexec gets
 * invalid flags, /dev/mem is only ever opened read-only, a ptrace attach is
 * detached at once.
 *
 *   escape-probe mount NAME SOURCE TARGET FSTYPE FLAGS [DATA]   FLAGS: ro,rw,remount,bind,
 *                                                               nosuid,nodev,noexec
 *   escape-probe umount NAME TARGET
 *   escape-probe mknod NAME PATH b|c MAJOR MINOR
 *   escape-probe read NAME PATH [MAXBYTES]        open O_RDONLY and read
 *   escape-probe write NAME PATH DATA             open O_WRONLY (no O_CREAT) and write
 *   escape-probe rewrite NAME PATH                read PATH, write the same bytes back
 *   escape-probe ptrace NAME PID...               PTRACE_ATTACH (then DETACH) each pid
 *   escape-probe kill NAME SIG PID                kill(2)
 *   escape-probe module NAME                      init_module/finit_module on junk
 *   escape-probe syscalls                         namespaces, keyrings, bpf, perf,
 *                                                 open_by_handle_at, mount APIs, kexec,
 *                                                 AF_VSOCK (64-bit and int 0x80)...
 *   escape-probe chroot NAME MARKER [CMD ARGS...] mkdir+chroot without chdir, chdir ..
 *                                                 many times, chroot("."): is MARKER (a
 *                                                 host path) visible? Then exec CMD there.
 *   escape-probe swap A B SECONDS                 exchange A and B (a directory and a
 *                                                 symlink) without pause for SECONDS
 *   escape-probe memhog MB                        malloc and touch MB MiB, 16 MiB a step
 *   escape-probe forkbomb                         fork without end (only under a pids
 *                                                 limit!)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_fsopen
#define SYS_fsopen 430
#endif
#ifndef SYS_fsmount
#define SYS_fsmount 432
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define OPEN_TREE_CLONE_ 1

static void result(const char *name, long rc, const char *detail) {
    if (rc < 0) {
        const char *e = strerrorname_np(errno);
        printf("RESULT %s errno=%s\n", name, e ? e : "UNKNOWN");
    } else if (detail && *detail) {
        printf("RESULT %s ok %s\n", name, detail);
    } else {
        printf("RESULT %s ok\n", name);
    }
    fflush(stdout);
}

static unsigned long mount_flags(const char *s) {
    unsigned long f = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        if (!strcmp(t, "ro")) f |= MS_RDONLY;
        else if (!strcmp(t, "remount")) f |= MS_REMOUNT;
        else if (!strcmp(t, "bind")) f |= MS_BIND;
        else if (!strcmp(t, "nosuid")) f |= MS_NOSUID;
        else if (!strcmp(t, "nodev")) f |= MS_NODEV;
        else if (!strcmp(t, "noexec")) f |= MS_NOEXEC;
    }
    return f;
}

static int do_mount(int argc, char **argv) {
    if (argc < 7) return 2;
    const char *data = argc > 7 ? argv[7] : NULL;
    long rc = mount(argv[3], argv[4], argv[5], mount_flags(argv[6]), data);
    result(argv[2], rc, NULL);
    return 0;
}

static int do_mknod(int argc, char **argv) {
    if (argc < 7) return 2;
    mode_t type = argv[4][0] == 'b' ? S_IFBLK : S_IFCHR;
    dev_t dev = makedev(atoi(argv[5]), atoi(argv[6]));
    result(argv[2], mknod(argv[3], type | 0600, dev), NULL);
    return 0;
}

static int do_read(int argc, char **argv) {
    if (argc < 4) return 2;
    size_t max = argc > 4 ? (size_t)atol(argv[4]) : 4096;
    char name[256];
    int fd = open(argv[3], O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    snprintf(name, sizeof name, "%s-open", argv[2]);
    result(name, fd, NULL);
    if (fd < 0) return 0;
    char *buf = malloc(max + 1);
    ssize_t n = read(fd, buf, max);
    char detail[64];
    snprintf(detail, sizeof detail, "bytes=%zd", n);
    snprintf(name, sizeof name, "%s-read", argv[2]);
    result(name, n, detail);
    close(fd);
    free(buf);
    return 0;
}

static int do_write(int argc, char **argv) {
    if (argc < 5) return 2;
    char name[256];
    int fd = open(argv[3], O_WRONLY | O_CLOEXEC);
    snprintf(name, sizeof name, "%s-open", argv[2]);
    result(name, fd, NULL);
    if (fd < 0) return 0;
    ssize_t n = write(fd, argv[4], strlen(argv[4]));
    snprintf(name, sizeof name, "%s-write", argv[2]);
    result(name, n, NULL);
    close(fd);
    return 0;
}

static int do_rewrite(int argc, char **argv) {
    if (argc < 4) return 2;
    char buf[4096], name[256];
    int fd = open(argv[3], O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
    if (fd >= 0) close(fd);
    snprintf(name, sizeof name, "%s-read", argv[2]);
    result(name, n, NULL);
    if (n < 0) return 0;
    fd = open(argv[3], O_WRONLY | O_CLOEXEC);
    snprintf(name, sizeof name, "%s-open", argv[2]);
    result(name, fd, NULL);
    if (fd < 0) return 0;
    snprintf(name, sizeof name, "%s-write", argv[2]);
    result(name, write(fd, buf, n), NULL);
    close(fd);
    return 0;
}

static int do_ptrace(int argc, char **argv) {
    char name[256];
    for (int i = 3; i < argc; i++) {
        pid_t pid = atoi(argv[i]);
        snprintf(name, sizeof name, "%s-%d", argv[2], pid);
        long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
        result(name, rc, NULL);
        if (rc == 0) {
            waitpid(pid, NULL, __WALL);
            ptrace(PTRACE_DETACH, pid, NULL, NULL);
        }
    }
    return 0;
}

static int do_kill(int argc, char **argv) {
    if (argc < 5) return 2;
    result(argv[2], kill(atoi(argv[4]), atoi(argv[3])), NULL);
    return 0;
}

static int do_module(char **argv) {
    char name[256];
    /* Not an ELF file: a kernel that lets us in answers ENOEXEC; a confined guest EPERM. */
    static const char junk[] = "pocketstack isolation probe: not a kernel module\n";
    snprintf(name, sizeof name, "%s-init_module", argv[2]);
    result(name, syscall(SYS_init_module, junk, sizeof junk, ""), NULL);
    int fd = open("/tmp/ps-junk.ko", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, junk, sizeof junk) < 0) perror("write");
        lseek(fd, 0, SEEK_SET);
    }
    snprintf(name, sizeof name, "%s-finit_module", argv[2]);
    result(name, fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0), NULL);
    if (fd >= 0) close(fd);
    snprintf(name, sizeof name, "%s-delete_module", argv[2]);
    result(name, syscall(SYS_delete_module, "ps_no_such_module", O_NONBLOCK), NULL);
    return 0;
}

/* A system call through the 32-bit ABI (int 0x80) from this 64-bit process: a seccomp
 * filter must cover the x86 architecture and its socketcall() multiplexer too. */
static long sys32(long nr, long a, long b, long c) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    return ret;
}

static void result32(const char *name, long rc) {
    if (rc < 0 && rc > -4096) {
        errno = (int)-rc;
        rc = -1;
    }
    result(name, rc, NULL);
}

/* AF_VSOCK reaches the hypervisor's sockets, which no network namespace fences: a socket
 * is only created (and closed), never connected. */
static void vsock(void) {
    int fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    result("socket-vsock", fd, NULL);
    if (fd >= 0) close(fd);
    pid_t pid = fork();
    if (pid == 0) {  /* a child: without IA32 emulation int 0x80 kills it */
        long r = sys32(359 /* i386 socket */, 40, SOCK_STREAM, 0);
        result32("socket32-vsock", r);
        if (r >= 0) close(r);
        unsigned int *args = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
        if (args == MAP_FAILED) _exit(1);
        args[0] = 40;
        args[1] = SOCK_STREAM;
        args[2] = 0;
        r = sys32(102 /* i386 socketcall */, 1 /* SYS_SOCKET */, (long)args, 0);
        result32("socketcall32-vsock", r);
        if (r >= 0) close(r);
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    if (WIFSIGNALED(st)) printf("RESULT ia32 unavailable signal=%d\n", WTERMSIG(st));
    fflush(stdout);
}

/* Child-side helper for namespace-creating clone(): exit at once. */
static long clone_ns(unsigned long flags) {
    long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) syscall(SYS_exit_group, 0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return pid;
}

static int do_syscalls(void) {
    /* Namespaces: create (in a child, so this process stays where it is) and enter. */
    static const struct { const char *name; int flags; } unshares[] = {
        {"unshare-user", CLONE_NEWUSER}, {"unshare-mnt", CLONE_NEWNS},
        {"unshare-user-mnt", CLONE_NEWUSER | CLONE_NEWNS}, {"unshare-cgroup", CLONE_NEWCGROUP},
        {"unshare-net", CLONE_NEWNET}, {"unshare-pid", CLONE_NEWPID},
    };
    for (size_t i = 0; i < sizeof unshares / sizeof *unshares; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            long rc = unshare(unshares[i].flags);
            result(unshares[i].name, rc, NULL);
            _exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    result("clone-newuser", clone_ns(CLONE_NEWUSER), NULL);
    result("clone-newns", clone_ns(CLONE_NEWNS), NULL);
    {
        uint64_t args[11] = {0};
        args[0] = CLONE_NEWUSER; /* flags */
        args[4] = SIGCHLD;       /* exit_signal */
        long pid = syscall(SYS_clone3, args, sizeof args);
        if (pid == 0) syscall(SYS_exit_group, 0);
        if (pid > 0) waitpid(pid, NULL, 0);
        result("clone3-newuser", pid, NULL);
    }
    static const char *nss[] = {"mnt", "pid", "net", "user", "cgroup", "ipc", "uts"};
    for (size_t i = 0; i < sizeof nss / sizeof *nss; i++) {
        char path[64], name[64];
        snprintf(path, sizeof path, "/proc/1/ns/%s", nss[i]);
        snprintf(name, sizeof name, "setns-%s", nss[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        pid_t pid = fork();
        if (pid == 0) {
            if (fd < 0) {
                result(name, -1, NULL);
            } else {
                result(name, setns(fd, 0), NULL);
            }
            _exit(0);
        }
        waitpid(pid, NULL, 0);
        if (fd >= 0) close(fd);
    }
    /* Keyrings (the process keyring dies with us). */
    result("keyctl-get-session", syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID,
                                         KEY_SPEC_SESSION_KEYRING, 0), NULL);
    result("add_key", syscall(SYS_add_key, "user", "ps-probe", "x", 1,
                              KEY_SPEC_PROCESS_KEYRING), NULL);
    result("request_key", syscall(SYS_request_key, "user", "ps-probe-none", NULL,
                                  KEY_SPEC_PROCESS_KEYRING), NULL);
    /* bpf: a one-element array map. */
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.map_type = BPF_MAP_TYPE_ARRAY;
        attr.key_size = 4;
        attr.value_size = 4;
        attr.max_entries = 1;
        long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
        result("bpf-map-create", fd, NULL);
        if (fd >= 0) close(fd);
    }
    /* perf: a software clock counter on ourselves, and a CPU-wide one. */
    {
        struct perf_event_attr pe;
        memset(&pe, 0, sizeof pe);
        pe.type = PERF_TYPE_SOFTWARE;
        pe.size = sizeof pe;
        pe.config = PERF_COUNT_SW_CPU_CLOCK;
        pe.disabled = 1;
        long fd = syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0);
        result("perf_event_open-self", fd, NULL);
        if (fd >= 0) close(fd);
        fd = syscall(SYS_perf_event_open, &pe, -1, 0, -1, 0);
        result("perf_event_open-cpu", fd, NULL);
        if (fd >= 0) close(fd);
    }
    /* open_by_handle_at: "shocker" - a hand-made ext4/xfs handle of inode 2 (a file
     * system's root), opened read-only relative to our "/". */
    {
        struct { unsigned int bytes; int type; unsigned char h[8]; } fh = {
            8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};  /* FILEID_INO32_GEN: inode 2, generation 0 */
        int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        long fd = syscall(SYS_open_by_handle_at, root, &fh, O_RDONLY | O_DIRECTORY);
        result("open_by_handle_at", fd, NULL);
        if (fd >= 0) close(fd);
        struct { unsigned int bytes; int type; unsigned char h[128]; } nh = {128, 0, {0}};
        int mnt;
        result("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/", &nh, &mnt, 0),
               NULL);
        if (root >= 0) close(root);
    }
    /* The new mount API and friends. */
    {
        long fd = syscall(SYS_fsopen, "tmpfs", 0);
        result("fsopen", fd, NULL);
        if (fd >= 0) close(fd);
        fd = syscall(SYS_open_tree, AT_FDCWD, "/", OPEN_TREE_CLONE_);
        result("open_tree-clone", fd, NULL);
        if (fd >= 0) close(fd);
        result("fsmount", syscall(SYS_fsmount, -1, 0, 0), NULL);
        result("move_mount", syscall(SYS_move_mount, -1, "", -1, "", 0), NULL);
        result("mount_setattr", syscall(SYS_mount_setattr, -1, "", 0, NULL, 0), NULL);
        result("umount2-proc", syscall(SYS_umount2, "/nonexistent-ps-probe", 0), NULL);
        result("pivot_root", syscall(SYS_pivot_root, "/nonexistent-ps-a", "/nonexistent-ps-b"),
               NULL);
    }
    /* kexec with invalid flags / a wrong architecture: refused right after the permission
     * check, before anything is loaded or unloaded. */
    result("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0x40000000UL), NULL);
    result("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0x7fff0000UL), NULL);
    /* Raw I/O ports: iopl(3) gives this process port access (undone at once). */
    {
        long rc = syscall(SYS_iopl, 3);
        result("iopl", rc, NULL);
        if (rc == 0) syscall(SYS_iopl, 0);
        rc = syscall(SYS_ioperm, 0x80, 1, 1);
        result("ioperm", rc, NULL);
        if (rc == 0) syscall(SYS_ioperm, 0x80, 1, 0);
    }
    result("swapon", syscall(SYS_swapon, "/nonexistent-ps-swap", 0), NULL);
    {
        char buf[64];
        result("syslog-read-all", syscall(SYS_syslog, 3, buf, sizeof buf), NULL);
    }
    result("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC), NULL);
    vsock();
    return 0;
}

static int do_chroot(int argc, char **argv) {
    if (argc < 4) return 2;
    char name[256];
    mkdir("/tmp/ps-chroot-x", 0755);
    if (chdir("/") < 0) perror("chdir /");
    snprintf(name, sizeof name, "%s-chroot-x", argv[2]);
    long rc = chroot("/tmp/ps-chroot-x"); /* without chdir: cwd stays outside the root */
    result(name, rc, NULL);
    for (int i = 0; i < 256; i++)
        if (chdir("..") < 0) break;
    snprintf(name, sizeof name, "%s-chroot-dot", argv[2]);
    result(name, chroot("."), NULL);
    struct stat st;
    snprintf(name, sizeof name, "%s-marker", argv[2]);
    if (stat(argv[3], &st) == 0) {
        printf("RESULT %s visible\n", name);
    } else {
        printf("RESULT %s invisible errno=%s\n", name, strerrorname_np(errno));
    }
    fflush(stdout);
    if (argc > 4) {
        execv(argv[4], argv + 4);
        snprintf(name, sizeof name, "%s-exec", argv[2]);
        result(name, -1, NULL);
    }
    return 0;
}

/* Swap two paths (renameat2 RENAME_EXCHANGE) as fast as possible for SECONDS: a
 * directory and a symlink, so a host process walking the guest's tree by path meets one
 * or the other. */
static int do_swap(int argc, char **argv) {
    if (argc < 5) return 2;
    time_t end = time(NULL) + atoi(argv[4]);
    long n = 0, failed = 0;
    while (time(NULL) < end) {
        for (int i = 0; i < 10000; i++, n++)
            if (syscall(SYS_renameat2, AT_FDCWD, argv[2], AT_FDCWD, argv[3], 2 /* EXCHANGE */))
                failed++;
    }
    printf("RESULT swap ok swaps=%ld failed=%ld\n", n, failed);
    return 0;
}

static int do_memhog(int argc, char **argv) {
    if (argc < 3) return 2;
    long mb = atol(argv[2]), step = 16, done = 0;
    while (done < mb) {
        char *p = malloc(step << 20);
        if (!p) {
            result("memhog-malloc", -1, NULL);
            break;
        }
        for (long i = 0; i < (step << 20); i += 4096) p[i] = 1;
        done += step;
        printf("RESULT memhog-touched ok mb=%ld\n", done);
        fflush(stdout);
    }
    return 0;
}

static int do_forkbomb(void) {
    for (;;) {
        if (fork() < 0) usleep(1000);
    }
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2) {
        fprintf(stderr, "usage: escape-probe OP ...\n");
        return 2;
    }
    const char *op = argv[1];
    int rc = 2;
    if (!strcmp(op, "mount")) rc = do_mount(argc, argv);
    else if (!strcmp(op, "umount") && argc > 3) {
        result(argv[2], umount2(argv[3], MNT_DETACH), NULL);
        rc = 0;
    } else if (!strcmp(op, "mknod")) rc = do_mknod(argc, argv);
    else if (!strcmp(op, "read")) rc = do_read(argc, argv);
    else if (!strcmp(op, "write")) rc = do_write(argc, argv);
    else if (!strcmp(op, "rewrite")) rc = do_rewrite(argc, argv);
    else if (!strcmp(op, "ptrace")) rc = do_ptrace(argc, argv);
    else if (!strcmp(op, "kill")) rc = do_kill(argc, argv);
    else if (!strcmp(op, "module") && argc > 2) rc = do_module(argv);
    else if (!strcmp(op, "syscalls")) rc = do_syscalls();
    else if (!strcmp(op, "chroot")) rc = do_chroot(argc, argv);
    else if (!strcmp(op, "memhog")) rc = do_memhog(argc, argv);
    else if (!strcmp(op, "swap")) rc = do_swap(argc, argv);
    else if (!strcmp(op, "forkbomb")) rc = do_forkbomb();
    if (rc == 2) fprintf(stderr, "escape-probe: bad arguments for %s\n", op);
    return rc;
}
