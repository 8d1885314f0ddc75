#!/bin/sh
# Starts dropbear: host keys made at first boot in this guest (never shipped in the image:
# every server has its own), ed25519 and ECDSA now (milliseconds, even under TCG), RSA only
# if a client asks for it (-R); key logins only (-s: no password logins at all), no port
# forwarding (-j -k). It forks into the background; its log is /var/log/dropbear.log.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
[ -x /usr/sbin/dropbear ] || { echo "pocketstack-busybox: no ssh server in this image"; exit 0; }
mkdir -p /etc/dropbear /var/log
chmod 0700 /etc/dropbear
for t in ed25519 ecdsa; do
  k=/etc/dropbear/dropbear_${t}_host_key
  [ -s "$k" ] || dropbearkey -t "$t" -f "$k" >/dev/null 2>&1
done
dropbear -R -s -j -k -p 22 -P /run/dropbear.pid -E 2>>/var/log/dropbear.log
echo "pocketstack-busybox: sshd $(dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key 2>/dev/null | grep -o 'SHA256:[^ ]*')"
