#!/bin/sh
# sudo in the container image. Containers run with no_new_privs, so a setuid sudo could
# raise nothing: the image's `cirros` user is instead uid 0 of the server's own user
# namespace (an unprivileged host uid, confined like every process of the server), and
# sudo only drops its options and runs the command. `sudo id -u` answers 0 as on a VM.
sh_mode=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|-E|-H|-S|-k) shift ;;
    -u) [ "$2" = root ] || [ "$2" = 0 ] || { echo "sudo: only root is allowed" >&2; exit 1; }
        shift 2 ;;
    -i|-s) sh_mode=1; shift ;;
    --) shift; break ;;
    -*) echo "sudo: unsupported option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
[ $# -eq 0 ] && exec /bin/sh
[ -n "$sh_mode" ] && exec /bin/sh -c "$*"
exec "$@"
