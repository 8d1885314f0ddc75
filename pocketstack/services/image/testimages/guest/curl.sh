#!/bin/sh
# curl for the busybox images, over busybox's wget: the forms guests and Tempest's checks
# use (curl URL, -s/-S/-f/-L, -o FILE, -X POST -d DATA, -V). Debian's real curl would add
# 18 MB of libraries to every VM's initramfs; anything else says it is not supported here.
out=- data= url=
while [ $# -gt 0 ]; do
  case "$1" in
    -V|--version) echo "curl (pocketstack busybox: wget wrapper)"; exit 0 ;;
    -s|-S|-f|-L|-sS|-Ss|-sf|-fs|-fsS|-sSf|-fsSL|-sSL|-sL|--silent|--show-error|--fail|--location) ;;
    -o|--output) out=$2; shift ;;
    -X|--request) [ "$2" = GET ] || [ "$2" = POST ] || { echo "curl: -X $2 not supported here" >&2; exit 2; }; shift ;;
    -d|--data|--data-raw|--data-binary) data=$2; shift ;;
    -*) echo "curl: option $1 not supported here (busybox wget wrapper)" >&2; exit 2 ;;
    *) url=$1 ;;
  esac
  shift
done
[ -n "$url" ] || { echo "curl: no URL specified" >&2; exit 2; }
if [ -n "$data" ]; then exec wget -q -O "$out" --post-data="$data" "$url"; fi
exec wget -q -O "$out" "$url"
