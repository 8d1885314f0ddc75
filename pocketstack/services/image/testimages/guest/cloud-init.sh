#!/bin/sh
# pocketstack-cloud-init: what cloud-init's ConfigDrive and OpenStack datasources do for a
# cirros-like image, in busybox sh + jq. Every boot: hostname, the user's authorized_keys,
# each NIC from network_data.json (static where the network says "ipv4", DHCP where it says
# "ipv4_dhcp"); once per instance id: user data, when it is a script ("#!").
# Sources in order: a config drive (a directory at /config-drive, mounted read-only by the
# container driver; or a block device labelled config-2, ISO 9660 or vfat, mounted read-only
# here), else the metadata service at 169.254.169.254.
# Everything read is the cloud's data about this server (names and keys the tenant chose):
# values are checked against what they may look like before they reach a command line, and
# nothing is ever eval'ed.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
USER_NAME=cirros
HOME_DIR=/home/cirros
RUN=/run/pocketstack-cloud-init
STATE=/var/lib/cloud
MD=http://169.254.169.254
say() { echo "pocketstack-cloud-init: $*"; }
ms_sleep() { usleep "$1" 2>/dev/null || sleep 1; }

rm -rf "$RUN"
mkdir -p "$RUN" "$STATE"
chmod 0700 "$RUN" "$STATE"

copy_from() {  # $1: the root of a config drive
  [ -f "$1/openstack/latest/meta_data.json" ] || return 1
  for f in meta_data.json network_data.json user_data; do
    [ -f "$1/openstack/latest/$f" ] && cp "$1/openstack/latest/$f" "$RUN/$f"
  done
  return 0
}

from_config_drive() {
  copy_from /config-drive && return 0
  for label in config-2 CONFIG-2; do
    # util-linux's blkid (in the image) knows every file system; busybox's findfs is the
    # fallback
    dev=$(blkid -L "$label" 2>/dev/null || findfs "LABEL=$label" 2>/dev/null) || continue
    case "$dev" in /dev/[a-z]*) ;; *) continue ;; esac
    mkdir -p /mnt/config-2
    if mount -o ro -t iso9660 "$dev" /mnt/config-2 2>/dev/null ||
       mount -o ro -t vfat "$dev" /mnt/config-2 2>/dev/null; then
      copy_from /mnt/config-2 && { umount /mnt/config-2; return 0; }
      umount /mnt/config-2
    fi
  done
  return 1
}

from_metadata() {
  # The NIC's lease (and its route to 169.254.169.254) may still be coming: every 0.2 s
  # for 10 s, then every second for a minute more.
  i=0
  # (timeout, not wget -T: Debian's static busybox 1.35 wget crashes on -T)
  until timeout 5 wget -q -O "$RUN/meta_data.json" "$MD/openstack/latest/meta_data.json" \
      2>/dev/null
  do
    rm -f "$RUN/meta_data.json"
    i=$((i + 1))
    [ $i -ge 110 ] && return 1
    if [ $i -lt 50 ]; then ms_sleep 200000; else sleep 1; fi
  done
  for f in network_data.json user_data; do
    timeout 10 wget -q -O "$RUN/$f" "$MD/openstack/latest/$f" 2>/dev/null || rm -f "$RUN/$f"
  done
  return 0
}

if from_config_drive; then
  source=config-drive
elif from_metadata; then
  source=metadata-service
else
  say "no datasource (no config drive, no answer from $MD)"
  exit 1
fi
MDJ="$RUN/meta_data.json"
iid=$(jq -r '.uuid // empty' "$MDJ" 2>/dev/null)
case "$iid" in ""|*[!0-9A-Za-z-]*) say "meta_data.json has no usable uuid"; exit 1 ;; esac
say "datasource $source, instance $iid"

# -- hostname: letters, digits, '-' and '.', at most 63 characters (as Nova sanitizes)
name=$(jq -r '.hostname // .name // empty' "$MDJ" | head -n 1 | tr -c 'A-Za-z0-9.\n-' '-' |
       cut -c 1-63)
if [ -n "$name" ]; then
  # (a container's hostname is set by its runtime, and may not be changed from inside)
  [ "$(hostname)" = "$name" ] || hostname "$name"
  echo "$name" > /etc/hostname
  say "hostname $name"
fi

# -- network: each network of network_data.json on the NIC with its link's MAC
prefixlen() {  # 255.255.255.0 -> 24 (a number passes through)
  case "$1" in *.*) ;; *) echo "$1"; return ;; esac
  n=0
  for o in $(echo "$1" | tr . ' '); do
    case $o in
      255) n=$((n + 8)) ;; 254) n=$((n + 7)) ;; 252) n=$((n + 6)) ;; 248) n=$((n + 5)) ;;
      240) n=$((n + 4)) ;; 224) n=$((n + 3)) ;; 192) n=$((n + 2)) ;; 128) n=$((n + 1)) ;;
    esac
  done
  echo $n
}
nic_of() {  # the interface with MAC $1, waiting up to 10 s for it to be plugged
  want=$(echo "$1" | tr A-F a-f)
  i=0
  while [ $i -lt 50 ]; do
    for a in /sys/class/net/*/address; do
      [ "$(cat "$a" 2>/dev/null)" = "$want" ] && { d=${a%/address}; echo "${d##*/}"; return 0; }
    done
    i=$((i + 1)); ms_sleep 200000
  done
  return 1
}
ipv4_of() { set -- $(ip -o -4 addr show dev "$1" 2>/dev/null); echo "${4:-}"; }
NDJ="$RUN/network_data.json"
if [ -s "$NDJ" ]; then
  jq -r '(.links // []) as $links | (.networks // [])[] | . as $n
         | ([$links[] | select(.id == $n.link) | .ethernet_mac_address][0] // "-") as $mac
         | [$mac, ($n.type // "-"), ($n.ip_address // "-"), ($n.netmask // "-")]
           + [($n.routes // [])[] | "\(.network)/\(.netmask)/\(.gateway)"]
         | join(" ")' "$NDJ" 2>/dev/null > "$RUN/networks"
  while read -r mac type ip mask routes; do
    case "$mac" in *[!0-9A-Fa-f:]*|"") continue ;; esac
    nic=$(nic_of "$mac") || { say "no NIC with MAC $mac"; continue; }
    case "$type" in
      ipv4)
        case "$ip$mask" in *[!0-9.]*) continue ;; esac
        plen=$(prefixlen "$mask")
        ip link set "$nic" up
        ip addr replace "$ip/$plen" dev "$nic"
        for r in $routes; do
          rnet=${r%%/*}; rest=${r#*/}; rmask=${rest%%/*}; gw=${rest#*/}
          case "$rnet$rmask$gw" in *[!0-9.]*) continue ;; esac
          if [ "$rnet/$rmask" = "0.0.0.0/0.0.0.0" ]; then
            ip route add default via "$gw" dev "$nic" 2>/dev/null  # the first NIC's stays
          else
            ip route replace "$rnet/$(prefixlen "$rmask")" via "$gw" dev "$nic"
          fi
        done
        echo "pocketstack-busybox: $nic $ip/$plen static"
        ;;
      ipv4_dhcp)
        # (the VM's init asks DHCP on every NIC itself: CLOUD_INIT_DHCP=no)
        if [ "${CLOUD_INIT_DHCP:-yes}" != no ] && [ -z "$(ipv4_of "$nic")" ]; then
          ( ip link set "$nic" up
            udhcpc -i "$nic" -q -n -t 5 -T 2 -O staticroutes -s /etc/udhcpc.script \
              >/dev/null 2>&1
            a=$(ipv4_of "$nic"); echo "pocketstack-busybox: $nic ${a:-no-address}" ) &
        fi
        ;;
    esac
  done < "$RUN/networks"
fi

# -- the default user's authorized_keys (replaced as a whole: the file is the metadata's),
# after the network as cloud-init does: a first login finds the NICs configured
jq -r '[(.public_keys // {}) | .[]] + [(.keys // [])[] | select(.type == "ssh") | .data]
       | map(select(type == "string")) | unique | .[]' "$MDJ" 2>/dev/null |
  grep -E '^(ssh-|ecdsa-|sk-)[^[:cntrl:]]*$' > "$RUN/keys"
if [ -s "$RUN/keys" ]; then
  owner=$(awk -F: -v u="$USER_NAME" '$1 == u { print $3 ":" $4 }' /etc/passwd)
  mkdir -p "$HOME_DIR/.ssh"
  cp "$RUN/keys" "$HOME_DIR/.ssh/.authorized_keys.new"
  chmod 0700 "$HOME_DIR/.ssh"
  chmod 0600 "$HOME_DIR/.ssh/.authorized_keys.new"
  chown "${owner:-0:0}" "$HOME_DIR" "$HOME_DIR/.ssh" "$HOME_DIR/.ssh/.authorized_keys.new"
  mv -f "$HOME_DIR/.ssh/.authorized_keys.new" "$HOME_DIR/.ssh/authorized_keys"
  say "$(wc -l < "$RUN/keys") key(s) for $USER_NAME"
fi

# -- user data, once per instance (marked before it runs: once, even if it reboots us). In
# a container the driver's own boot script runs it (/.pocketstack-boot): not twice.
UD="$RUN/user_data"
SEM="$STATE/instances/$iid/sem"
mkdir -p "$SEM"
if [ -s "$UD" ] && [ ! -e "$SEM/user-data" ] && [ ! -e /.pocketstack-boot ]; then
  : > "$SEM/user-data"
  if [ "$(head -c 2 "$UD")" = "#!" ]; then
    cp "$UD" "$STATE/instances/$iid/user-data.sh"
    chmod 0700 "$STATE/instances/$iid/user-data.sh"
    say "running user data"
    "$STATE/instances/$iid/user-data.sh" 2>&1 | tee -a /var/log/cloud-init-output.log
    say "user data exited"
  fi
fi
say "done"
