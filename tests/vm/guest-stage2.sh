#!/bin/sh
# shellcheck shell=sh
# guest-stage2.sh - PID 1 of a moat VM after switch_root into the host root.
#
# Runs busybox sh from /run/moat-vm (the host may have no busybox). Checks
# that kTLS is available, runs the command prepared by vm-run.sh
# (/run/moat-vm/ctl/cmd.sh, host bash) with its output on the virtio-serial port
# "moat.out", writes its exit status to the control share and powers off.

B=/run/moat-vm/busybox
CTL=/run/moat-vm/ctl

off() {
    $B sync
    $B reboot -f
    $B sleep 10
}
fail() {
    echo "moat-vm: stage2: $*" >/dev/console
    echo "$*" >"$CTL/fail"
    off
}

# kTLS: tls.ko was loaded by the initramfs; its counters prove it is usable.
[ -e /proc/net/tls_stat ] ||
    fail "kTLS is not available in this kernel ($($B uname -r)): /proc/net/tls_stat missing"

out=
for p in /sys/class/virtio-ports/*; do
    [ "$($B cat "$p/name" 2>/dev/null)" = moat.out ] && out=/dev/${p##*/}
done
if [ -z "$out" ] || [ ! -c "$out" ]; then
    fail "virtio-serial port moat.out not found"
fi

$B cat /proc/uptime >"$CTL/booted"
case " $($B cat /proc/cmdline) " in *' moat.trace '*) echo "moat-vm: stage2 running the command" >/dev/kmsg ;; esac
$B env -i MOAT_VM_KERNEL="$($B uname -r)" /bin/bash "$CTL/cmd.sh" </dev/null >"$out" 2>&1
rc=$?
case " $($B cat /proc/cmdline) " in *' moat.trace '*) echo "moat-vm: command exited with $rc" >/dev/kmsg ;; esac
echo "$rc" >"$CTL/rc.new" && $B mv "$CTL/rc.new" "$CTL/rc"
off
