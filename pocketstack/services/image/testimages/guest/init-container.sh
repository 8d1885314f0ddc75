#!/bin/sh
# pocketstack cirros-like container init (/sbin/init, exec'd by the driver's boot script,
# which has started DHCP on eth0 and runs the user data): basics, the SSH server, the
# cloud-init datasource in the background, and the console.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc 2>/dev/null
mount -t sysfs sysfs /sys 2>/dev/null
hostname -F /etc/hostname 2>/dev/null
mkdir -p /run /var/log /home/cirros/.ssh
# The key the driver wrote for root (the server's key pair) lets the default user log in
# before the metadata service has answered; cloud-init then writes the metadata's keys.
if [ -s /root/.ssh/authorized_keys ] && [ ! -s /home/cirros/.ssh/authorized_keys ]; then
  cp /root/.ssh/authorized_keys /home/cirros/.ssh/authorized_keys
  chmod 0600 /home/cirros/.ssh/authorized_keys
fi
chmod 0700 /home/cirros/.ssh
/usr/sbin/pocketstack-sshd-start
/usr/sbin/pocketstack-cloud-init &
echo "pocketstack-busybox: up"
trap 'exit 0' TERM INT
# The console (stdin): a root login while it is a terminal, a new one when it exits (at
# most one a second); with stdin at /dev/null or at EOF, nothing to serve: just wait.
# login, not a bare `sh -i`: a job started in the background of this non-interactive
# shell ignores SIGINT, and an interactive sh keeps what it inherited, so ^C on the
# console did nothing; login sets the signals back to their defaults.
exec 3<&0
while :; do
  if [ -t 3 ]; then
    setsid -c login -f root <&3 &
    wait $!
    sleep 1 & wait $!
  else
    sleep 3600 & wait $!
  fi
done
