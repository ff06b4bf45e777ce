#!/bin/sh
# shellcheck shell=sh
# guest-init.sh - /init of the moat VM lane's initramfs (busybox sh, PID 1).
#
# Loads the modules listed in /modules.list, mounts the host root (9p,
# read-only, under a read-only overlay) at /newroot virtme-style, adds tmpfs and
# overlays so the guest can write, then switch_root's into it and runs
# guest-stage2.sh as PID 1. The VM ends with "reboot -f": qemu runs with
# -no-reboot, so a reset (or a panic, panic=-1) makes it exit.
# Built into the initramfs by vm-run.sh; not meant to run on the host.
#
# 9p shares (mount tags): hostroot = host /, moatctl = per-run control dir
# (config, cmd.sh, results; writable), moatshareN = the caller's cwd and
# vm-run.sh --share directories.

PATH=/bin
export PATH

mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
mount -t devtmpfs -o nosuid,mode=0755 devtmpfs /dev
exec </dev/console >/dev/console 2>&1

CTL=/ctl
ctl_ok=0
fail() {
    echo "moat-vm: init: $*"
    if [ "$ctl_ok" = 1 ]; then echo "$*" >"$CTL/fail"; fi
    sync
    reboot -f
    sleep 10
}

ninep='trans=virtio,version=9p2000.L,msize=512000'

# "moat.trace" on the kernel command line (vm-run.sh -v): timestamps in the log.
trace=0
case " $(cat /proc/cmdline) " in *' moat.trace '*) trace=1 ;; esac
mark() { if [ "$trace" = 1 ]; then echo "moat-vm: $*" >/dev/kmsg; fi; }
mark "init started"

# Modules, in dependency order: "FILE required|optional".
while read -r ko need; do
    [ -n "$ko" ] || continue
    if ! out=$(insmod "/modules/$ko" 2>&1); then
        case $out in *'File exists'*) continue ;; esac
        if [ "$need" = required ]; then fail "cannot load $ko: $out"; fi
        echo "moat-vm: warning: cannot load $ko: $out"
    fi
    mark "loaded $ko"
done </modules.list

mkdir -p "$CTL" /hostroot /newroot /ovl
mount -t 9p -o "$ninep,cache=none" moatctl "$CTL" || fail "cannot mount the control share"
ctl_ok=1
[ -r "$CTL/config" ] || fail "no $CTL/config"
# shellcheck source=/dev/null
. "$CTL/config"

# The host root: 9p at /hostroot, seen through a read-only overlay at /newroot.
# 9p does not cache failed lookups (each costs a round trip to qemu, ~4 ms
# under TCG); the overlay does, which makes PATH and import searches fast.
H=/hostroot
mount -t 9p -o "$ninep,ro,cache=loose" hostroot "$H" || fail "cannot mount the host root over 9p"
mount -t tmpfs -o mode=0755 ovl /ovl || fail "cannot mount tmpfs"
mkdir -p /ovl/empty
R=/newroot
if [ "${MOAT_VM_ROOT_OVERLAY:-1}" = 1 ] &&
   mount -t overlay -o "ro,lowerdir=$H:/ovl/empty" root-ovl "$R"; then
    :
else
    [ "${MOAT_VM_ROOT_OVERLAY:-1}" = 1 ] && echo "moat-vm: warning: no overlay over the 9p root; using 9p directly"
    mount --bind "$H" "$R" || fail "cannot bind the host root"
fi

# The cached kernel's modules at /lib/modules/RELEASE (for autoload via the
# host's modprobe). tmpfs over the host's module dir, then a bind mount.
moddir=$R/lib/modules
link=$(readlink "$H/lib" 2>/dev/null || true)
case $link in
    '') ;;
    /*) moddir=$R$link/modules ;;
    *) moddir=$R/$link/modules ;;
esac
if [ -d "$moddir" ] && [ -d "$H$MOAT_VM_MODULES" ]; then
    if ! { mount -t tmpfs -o mode=0755 modules "$moddir" &&
           mkdir -p "$moddir/$MOAT_VM_RELEASE" &&
           mount --bind "$H$MOAT_VM_MODULES" "$moddir/$MOAT_VM_RELEASE"; }; then
        fail "cannot mount the modules at $moddir/$MOAT_VM_RELEASE"
    fi
else
    echo "moat-vm: warning: no /lib/modules in the host root; module autoload disabled"
fi

mount --move /dev "$R/dev" || fail "cannot move /dev"
mount --move /proc "$R/proc" || fail "cannot move /proc"
mount --move /sys "$R/sys" || fail "cannot move /sys"
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts "$R/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$R/dev/shm"
mount -t mqueue mqueue "$R/dev/mqueue" 2>/dev/null || true
ln -sf /proc/self/fd "$R/dev/fd" 2>/dev/null || true
ln -sf /proc/self/fd/0 "$R/dev/stdin" 2>/dev/null || true
ln -sf /proc/self/fd/1 "$R/dev/stdout" 2>/dev/null || true
ln -sf /proc/self/fd/2 "$R/dev/stderr" 2>/dev/null || true
mount -t bpf -o mode=0700 bpf "$R/sys/fs/bpf" || fail "cannot mount bpffs"
mount -t cgroup2 -o nsdelegate cgroup2 "$R/sys/fs/cgroup" 2>/dev/null || true
mount -t debugfs debugfs "$R/sys/kernel/debug" 2>/dev/null || true
mount -t tracefs tracefs "$R/sys/kernel/tracing" 2>/dev/null || true

mount -t tmpfs -o nosuid,nodev,mode=1777 tmp "$R/tmp" || fail "cannot mount /tmp"
mount -t tmpfs -o nosuid,nodev,mode=0755 run "$R/run" || fail "cannot mount /run"
V=$R/run/moat-vm
mkdir -p "$V/ctl"
mount --move "$CTL" "$V/ctl" || fail "cannot move the control share"
CTL=$V/ctl

# Writable /etc, /var, /root: overlays with a tmpfs upper layer.
for d in etc var root; do
    mkdir -p "/ovl/$d/upper" "/ovl/$d/work"
    mount -t overlay -o "lowerdir=$H/$d,upperdir=/ovl/$d/upper,workdir=/ovl/$d/work" \
        "ovl-$d" "$R/$d" || fail "cannot mount the /$d overlay"
done

# The caller's cwd (usually the repo) and --share directories, each at its own
# absolute path (parents first); only the cwd may be writable (--rw-cwd).
i=0
while :; do
    p='' rw=0
    eval "p=\${MOAT_VM_SHARE_$i:-} rw=\${MOAT_VM_SHARE_${i}_RW:-0}"
    [ -n "$p" ] || break
    mkdir -p "$R$p" 2>/dev/null || true
    if [ "$rw" = 1 ]; then opts="$ninep,cache=none"; else opts="$ninep,ro,cache=loose"; fi
    mount -t 9p -o "$opts" "moatshare$i" "$R$p" || fail "cannot mount $p"
    i=$((i + 1))
done

hostname moat-vm
ip link set lo up || fail "cannot bring up lo"
mark "mounts done"

cp /bin/busybox "$V/busybox" || fail "cannot copy busybox"
cp /stage2 "$V/stage2" || fail "cannot copy stage 2"
# shellcheck disable=SC2093  # fail only runs if the exec fails
exec switch_root "$R" /run/moat-vm/busybox sh /run/moat-vm/stage2
fail "switch_root failed"
