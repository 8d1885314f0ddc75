#!/bin/sh
# mkfs -t TYPE [options] DEVICE, as util-linux's front end (Tempest runs `sudo mkfs -t ext4
# /dev/vdb`): runs mkfs.TYPE with the rest of the arguments.
type=ext2
if [ "$1" = -t ] && [ -n "$2" ]; then type=$2; shift 2; fi
case "$type" in *[!a-z0-9]*) echo "mkfs: bad type $type" >&2; exit 1 ;; esac
command -v "mkfs.$type" >/dev/null 2>&1 || { echo "mkfs: no mkfs.$type" >&2; exit 1; }
exec "mkfs.$type" "$@"
