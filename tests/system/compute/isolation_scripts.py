"""The guest side of the isolation system tests: one user-data shell script per case,
each run as root inside a server booted by the demo user; each prints ``RESULT name
outcome`` lines (many through the static escape probe) and ``probe-done``. The host side
and the assertions are in test_isolation.py."""

from __future__ import annotations

from tests.system.compute.isolation_common import GUEST_PROBE, Host, Iso

# -- user-data scripts -----------------------------------------------------------------------
PREAMBLE = f"""#!/bin/sh
exec 2>&1
export PATH=/usr/bin:/bin:/usr/sbin:/sbin
P={GUEST_PROBE}
# try NAME CMD...: run a busybox tool, print its exit status and first output
try() {{
  n=$1; shift
  o=$("$@" 2>&1); rc=$?
  echo "RESULT $n rc=$rc $(echo "$o" | tr '\\n' ' ' | cut -c1-160)"
}}
"""
DONE = "\necho probe-done\n"

CASES = {}


def case(fn):
    """A case whose server is booted (with the others) when the module's servers start."""
    CASES[fn.__name__.removeprefix("script_")] = fn
    return fn


@case
def script_cgroup_release_agent(h: Host, iso: Iso) -> str:
    instances = iso.data_dir.resolve() / "compute" / "instances"
    return PREAMBLE + f"""
echo "RESULT cgroup-self $(tr '\\n' ' ' < /proc/self/cgroup)"
UUID=$(sed -n 's/.*"uuid": *"\\([^"]*\\)".*/\\1/p' /var/lib/cloud/instance/meta-data.json)
HOSTROOT={instances}/$UUID/rootfs
printf '#!/bin/sh\\necho "escaped uid=$(id -u)" > {h.escape_marker}\\n' > /ps-escape.sh
chmod 755 /ps-escape.sh
mkdir -p /tmp/cg
$P mount cgroup-mount cgroup /tmp/cg cgroup rw none,name=ps{h.tag}
try busybox-mount-cgroup mount -t cgroup -o none,name=psb{h.tag} cgroup /tmp/cg
if grep -q " /tmp/cg cgroup" /proc/mounts; then
  $P write release-agent /tmp/cg/release_agent "$HOSTROOT/ps-escape.sh"
  mkdir /tmp/cg/x
  echo 1 > /tmp/cg/x/notify_on_release
  sh -c 'echo $$ > /tmp/cg/x/cgroup.procs; :'
  sleep 1
  rmdir /tmp/cg/x
  umount /tmp/cg
fi
for f in /sys/fs/cgroup/*/release_agent; do
  [ -e "$f" ] && echo "RESULT host-hierarchy-visible $f"
done
""" + DONE


@case
def script_host_root_device(h: Host, iso: Iso) -> str:
    major, minor, fstype = h.root_dev
    return PREAMBLE + f"""
$P mknod hostdisk-mknod /tmp/hostdisk b {major} {minor}
$P read hostdisk /tmp/hostdisk 512
mkdir -p /tmp/hd
$P mount hostdisk-mount /tmp/hostdisk /tmp/hd {fstype} ro
if grep -q " /tmp/hd " /proc/mounts; then
  echo "RESULT hostdisk-list $(ls /tmp/hd | tr '\\n' ' ')"
  [ -e /tmp/hd/{h.host_marker.name} ] && echo "RESULT hostdisk-marker visible"
  umount /tmp/hd
fi
for d in /dev/vd* /dev/sd* /dev/nvme* /dev/xvd* /dev/loop*; do
  [ -b "$d" ] && echo "RESULT blockdev-present $d"
done
""" + DONE


@case
def script_proc_writes(h: Host, iso: Iso) -> str:
    new = int(h.sysctl_before.strip()) + 7
    return PREAMBLE + f"""
echo "RESULT sysrq-stat $(stat -c '%F:%t:%T' /proc/sysrq-trigger 2>&1 | tr ' ' _)"
$P write sysrq /proc/sysrq-trigger h
$P write sysctl /proc/sys/kernel/printk_ratelimit_burst {new}
echo "RESULT sysctl-seen $(cat /proc/sys/kernel/printk_ratelimit_burst)"
$P rewrite core-pattern /proc/sys/kernel/core_pattern
try busybox-sysctl sysctl -w kernel.printk_ratelimit_burst={new}
""" + DONE


@case
def script_sysfs_proc_mounts(h: Host, iso: Iso) -> str:
    return PREAMBLE + """
mkdir -p /tmp/s /tmp/p
$P mount mount-sysfs sysfs /tmp/s sysfs rw
$P mount mount-proc proc /tmp/p proc rw
$P mount remount-sys-rw sysfs /sys sysfs remount
$P mount remount-proc-sys-rw proc /proc/sys proc remount,bind
try busybox-remount-sys mount -o remount,rw /sys
if grep -q " /tmp/s sysfs" /proc/mounts; then
  $P rewrite sysfs-rw-write /tmp/s/module/printk/parameters/time
  umount /tmp/s
fi
grep -q " /tmp/p proc" /proc/mounts && umount /tmp/p
$P rewrite sys-write /sys/module/printk/parameters/time
echo "RESULT sys-options $(grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
""" + DONE


@case
def script_ptrace_and_signals(h: Host, iso: Iso) -> str:
    pid = h.sentinel.pid
    return PREAMBLE + f"""
visible=no
for f in /proc/[0-9]*/cmdline; do
  grep -q {h.sentinel_name} "$f" 2>/dev/null && visible=yes
done
echo "RESULT sentinel-visible $visible"
count=$(ls -d /proc/[0-9]* | wc -l)
echo "RESULT proc-count $count"
others=$(ls -d /proc/[0-9]* | sed 's,/proc/,,' | grep -v "^$$\\$" | tr '\\n' ' ')
$P ptrace ptrace 1 {pid} $others
$P kill kill-sentinel 9 {pid}
try busybox-kill-sentinel kill -9 {pid}
# kill -9 -1 only inside a PID namespace of its own (never where the host's are visible)
if [ "$visible" = no ] && [ "$count" -lt 200 ]; then
  kill -9 -1; echo "RESULT kill-all rc=$?"
else
  echo "RESULT kill-all skipped"
fi
sleep 1
""" + DONE


@case
def script_dev_kmsg_mem(h: Host, iso: Iso) -> str:
    return PREAMBLE + f"""
$P mknod mknod-kmsg /tmp/kmsg c 1 11
$P mknod mknod-mem /tmp/mem c 1 1
$P read dev-kmsg /dev/kmsg 256
$P write dev-kmsg-w /dev/kmsg "<3>ps-kmsg-{h.tag} from a guest"
$P read dev-mem /dev/mem 16
$P read tmp-kmsg /tmp/kmsg 256
$P write tmp-kmsg-w /tmp/kmsg "<3>ps-kmsg-{h.tag} from a guest"
$P read tmp-mem /tmp/mem 16
for f in /dev/* /dev/pts/* /dev/shm/* /dev/mqueue/*; do
  if [ -L "$f" ]; then t=l; elif [ -c "$f" ]; then t=c; elif [ -b "$f" ]; then t=b;
  elif [ -d "$f" ]; then t=d; elif [ -e "$f" ]; then t=f; else continue; fi
  echo "RESULT dev:$f $t:$(stat -c '%t:%T' "$f")"
done
""" + DONE


@case
def script_kernel_module(h: Host, iso: Iso) -> str:
    return PREAMBLE + """
$P module module
try busybox-insmod insmod /tmp/ps-junk.ko
""" + DONE


@case
def script_namespaces_and_syscalls(h: Host, iso: Iso) -> str:
    return PREAMBLE + """
$P syscalls
try busybox-unshare-m unshare -m true
try busybox-unshare-U unshare -U -r true
try busybox-unshare-p unshare -p -f true
try busybox-nsenter-mnt nsenter -t 1 -m true
try busybox-nsenter-all nsenter -t 1 -m -u -i -n -p true
""" + DONE


@case
def script_chroot_escape(h: Host, iso: Iso) -> str:
    return PREAMBLE + f"""
$P chroot chroot {h.host_marker}
""" + DONE


@case
def script_guest_root_owner(h: Host, iso: Iso) -> str:
    return PREAMBLE + f"""
touch /root/ps-owned-{h.tag}
echo "RESULT guest-id $(id -u):$(id -g)"
echo "RESULT guest-caps $(grep -E '^Cap(Eff|Bnd)' /proc/self/status | tr -s '\\t\\n' '  ')"
""" + DONE
