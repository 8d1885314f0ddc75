#!/bin/sh
# pocketstack cirros-like VM /init (initramfs): basics, kernel modules, DHCP on the boot
# NICs, the SSH server, the cloud-init datasource, hot-plug watcher, console root shell.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /run /var/log /tmp
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run 2>/dev/null
ip link set lo up
hostname -F /etc/hostname 2>/dev/null
# Modules in dependency order (/lib/modules/order, written by the image build).
for m in $(cat /lib/modules/order 2>/dev/null); do
  [ -d /sys/module/$m ] || [ ! -f /lib/modules/$m.ko ] || insmod /lib/modules/$m.ko 2>/dev/null
done
# Booted from the cloud-image-shaped disk (its boot loader passes pocketstack.root=LABEL=...):
# mount that root file system and switch to it, where this same script runs again as
# /sbin/init; the guest's files then live on its disk. Booted with only the initramfs
# (kernel_id/ramdisk_id), everything stays in memory, as before.
root=$(sed -n 's/.*pocketstack[.]root=\([^ ]*\).*/\1/p' /proc/cmdline)
if [ -n "$root" ] && grep -q '^[^ ]* / rootfs ' /proc/mounts; then
  case "$root" in LABEL=[A-Za-z0-9._-]*|UUID=[0-9a-f-]*) ;; *) root="" ;; esac
  dev="" i=0
  while [ -n "$root" ] && [ -z "$dev" ] && [ $i -lt 50 ]; do
    dev=$(findfs "$root" 2>/dev/null) || { usleep 100000; i=$((i + 1)); }
  done
  mkdir -p /newroot
  if [ -n "$dev" ] && mount -t ext4 "$dev" /newroot && [ -x /newroot/sbin/init ]; then
    umount /dev/pts /run /sys
    mount --move /dev /newroot/dev
    umount /proc
    exec switch_root /newroot /sbin/init
  fi
  echo "pocketstack-busybox: root ${root:-?} not found, staying in the initramfs" > /dev/console
fi
# The power button (/etc/acpi/PWRF/00000080) powers off, as a cloud image's acpid would.
acpid 2>/dev/null
chown -R cirros:cirros /home/cirros
nic_up() {
  ip link set "$1" up
  # A DHCP client that stays, as cirros's: it renews the lease, and at once on SIGUSR1 to
  # the pid in /var/run/udhcpc.<nic>.pid (what Tempest signals). It goes to the background
  # with a lease, or after its first tries without one (and keeps asking).
  udhcpc -i "$1" -b -p "/var/run/udhcpc.$1.pid" -t 5 -T 2 -O staticroutes \
    -s /etc/udhcpc.script >/dev/null 2>&1
  set -- "$1" $(ip -o -4 addr show dev "$1")
  echo "pocketstack-busybox: $1 ${5:-no-address}" > /dev/console
}
nics() { ls /sys/class/net | grep '^e' | tr '\n' ' '; }
# The SSH server and the datasource (which waits for the metadata service) need not wait
# for DHCP on every NIC: a NIC on a network without DHCP takes 10 s to give up.
/usr/sbin/pocketstack-sshd-start > /dev/console 2>&1
CLOUD_INIT_DHCP=no /usr/sbin/pocketstack-cloud-init > /dev/console 2>&1 &
pids=""
for nic in /sys/class/net/e*; do
  [ -e "$nic" ] || continue
  nic_up "${nic##*/}" &
  pids="$pids $!"
done
[ -n "$pids" ] && wait $pids
# Disks and NICs coming and going (volumes and ports hot-plugged), as console lines; a new
# NIC asks for DHCP as the boot ones did (in the background: it may get no answer).
(
  old=""
  oldn=$(nics)
  while :; do
    cur=$(ls /sys/block | grep '^vd' | tr '\n' ' ')
    [ "$cur" != "$old" ] && echo "pocketstack-busybox: disks ${cur:-none}" > /dev/console
    old=$cur
    curn=$(nics)
    if [ "$curn" != "$oldn" ]; then
      echo "pocketstack-busybox: nics ${curn:-none}" > /dev/console
      for n in $curn; do
        case " $oldn " in *" $n "*) ;; *) nic_up "$n" & ;; esac
      done
    fi
    oldn=$curn
    sleep 1
  done
) &
echo "pocketstack-busybox: booted $(uname -r)" > /dev/console
# The serial console is physical access: a root shell, a new one whenever it exits (at
# most one a second, so a console at EOF does not spin).
while :; do
  setsid cttyhack /bin/sh
  sleep 1
done
