#!/bin/sh
# udhcpc's event script: the lease's address, a default route unless one exists (the first
# NIC's), the classless static routes (option 121: the route to 169.254.169.254 via the
# DHCP port) and the name servers.
case "$1" in
  bound|renew)
    # a renewal of the same address changes nothing (a flush would drop it for a moment)
    if ! ip -4 -o addr show dev "$interface" | grep -q " $ip/${mask:-24} "; then
      ip addr flush dev "$interface"
      ip addr add "$ip/${mask:-24}" dev "$interface"
    fi
    [ -n "$router" ] && ip route add default via ${router%% *} dev "$interface" 2>/dev/null
    set -- $staticroutes
    while [ $# -ge 2 ]; do
      if [ "$1" = 0.0.0.0/0 ]; then ip route add default via "$2" dev "$interface" 2>/dev/null
      else ip route replace "$1" via "$2" dev "$interface"; fi
      shift 2
    done
    if [ -n "$dns" ]; then
      : > /etc/resolv.conf
      for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    fi
    ;;
esac
exit 0
