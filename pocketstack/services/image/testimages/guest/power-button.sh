#!/bin/sh
echo "pocketstack-busybox: power button, powering off" > /dev/console
sync
poweroff -f
