#!/usr/bin/env bash
# vm-run.sh - run a command as root inside a throw-away qemu VM with a Debian
# kernel that has kTLS, on a read-only view of this machine's root filesystem.
#
# Usage: tests/vm/vm-run.sh [options] -- COMMAND [ARG...]
#   --kernel SUITE  bookworm | trixie | sid (default: $MOAT_VM_SUITE or bookworm);
#                   fetched into the cache first if missing
#   --timeout SECS  wall-clock limit for the whole VM, boot included
#                   (default: $MOAT_VM_TIMEOUT or 1800)
#   --mem MB        guest memory (default 1024)
#   --smp N         guest CPUs (default 2)
#   --rw-cwd        share the current directory writable (default: read-only)
#   --share DIR     also share host directory DIR read-only at the same path
#                   (repeatable; needed for paths under the host's /tmp)
#   --env NAME[=VALUE]  pass one more environment variable (repeatable)
#   -v, --verbose   show boot timing and the guest kernel log
#
# The command runs as root in the caller's current directory (shared at the
# same absolute path), with /tmp, /run, /dev/shm as fresh tmpfs and /etc, /var,
# /root writable through tmpfs overlays; nothing it writes reaches the host
# (except below the cwd with --rw-cwd). bpffs is at /sys/fs/bpf, lo is up.
# Passed through: variables named MOAT_* and TEST_*, those listed in
# $MOAT_VM_PASSENV, --env ones, and LANG LC_ALL TERM TZ. HOME=/root. PATH is
# /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin unless passed
# (--env PATH). Also set: MOAT_VM=1, MOAT_VM_SUITE, MOAT_VM_KERNEL (the
# guest's uname -r).
# The command's stdout and stderr both go to this script's stdout; stdin is
# /dev/null.
#
# Exit status: the command's own, or
#   124  the VM timed out (message on stderr)
#   125  the VM could not be set up or booted, or it has no kTLS (message on stderr)
#     2  usage error
#
# Environment: MOAT_VM_CACHE (cache root, default /var/cache/moat-vm),
# MOAT_VM_TIMEOUT (default --timeout),
# MOAT_VM_VERBOSE=1 (same as -v), MOAT_VM_QEMU (qemu binary),
# MOAT_VM_APPEND (extra kernel command line), MOAT_VM_MACHINE (qemu -machine,
# default q35), MOAT_VM_ACCEL=kvm (use KVM instead of TCG),
# MOAT_VM_ROOT_OVERLAY=0 (plain 9p root without the caching overlay).
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
EXIT_VM=125
EXIT_TIMEOUT=124

die() { printf '%s: error: %s\n' "$prog" "$*" >&2; exit "$EXIT_VM"; }
usage() { sed -n '5,/^#$/s/^# \{0,1\}//p' "$0" >&2; exit 2; }
bad_usage() { printf '%s: %s\n' "$prog" "$*" >&2; exit 2; }

suite=${MOAT_VM_SUITE:-bookworm}
timeout_s=${MOAT_VM_TIMEOUT:-1800} mem=1024 smp=2 rw_cwd=0 verbose=${MOAT_VM_VERBOSE:-0}
extra_env=() extra_shares=()
while (($#)); do
    case $1 in
        --kernel) suite=${2:?}; shift ;;
        --kernel=*) suite=${1#*=} ;;
        --timeout) timeout_s=${2:?}; shift ;;
        --timeout=*) timeout_s=${1#*=} ;;
        --mem) mem=${2:?}; shift ;;
        --mem=*) mem=${1#*=} ;;
        --smp) smp=${2:?}; shift ;;
        --smp=*) smp=${1#*=} ;;
        --rw-cwd) rw_cwd=1 ;;
        --share) extra_shares+=("${2:?}"); shift ;;
        --share=*) extra_shares+=("${1#*=}") ;;
        --env) extra_env+=("${2:?}"); shift ;;
        --env=*) extra_env+=("${1#*=}") ;;
        -v|--verbose) verbose=1 ;;
        -h|--help) usage ;;
        --) shift; break ;;
        *) printf '%s: unknown option %s\n' "$prog" "$1" >&2; usage ;;
    esac
    shift
done
(($#)) || usage
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || bad_usage "--timeout wants a number of seconds"
[[ $mem =~ ^[1-9][0-9]*$ ]] || bad_usage "--mem wants a number of MB"
[[ $smp =~ ^[1-9][0-9]*$ ]] || bad_usage "--smp wants a number"
case $suite in
    bookworm|trixie|sid) ;;
    *) bad_usage "--kernel: unknown suite '$suite' (bookworm, trixie or sid)" ;;
esac

[[ $(id -u) == 0 ]] || die "must run as root (the host root is shared with security_model=none)"
qemu=${MOAT_VM_QEMU:-qemu-system-x86_64}
command -v "$qemu" >/dev/null || die "$qemu not found (apt-get install qemu-system-x86)"
command -v cpio >/dev/null || die "cpio not found (apt-get install cpio)"
command -v modprobe >/dev/null || die "modprobe not found (apt-get install kmod)"
busybox=/bin/busybox
bb_ldd=$(LC_ALL=C ldd "$busybox" 2>&1 || true)
if [[ ! -x $busybox || $bb_ldd != *'not a dynamic executable'* ]]; then
    die "$busybox is missing or not static (apt-get install busybox-static)"
fi

log() { [[ $verbose != 1 ]] || printf '%s: %s\n' "$prog" "$*" >&2; }
now() { date +%s.%N; }
t0=$(now)

# --- kernel -------------------------------------------------------------------
cache_root=${MOAT_VM_CACHE:-/var/cache/moat-vm}
fetch_opts=()
[[ -s $cache_root/$suite/release ]] && fetch_opts=(--quiet)  # else show the download
rel=$("$here/fetch-kernel.sh" "${fetch_opts[@]}" "$suite") || die "cannot get the $suite kernel (see above)"
kdir=$(cd "$cache_root/$suite" && pwd -P)
kernel=$kdir/vmlinuz
[[ -s $kdir/vmlinux ]] && kernel=$kdir/vmlinux

# --- initramfs (cached per kernel; rebuilt when its inputs change) -------------
modules=(virtio_pci:required virtio_console:required 9pnet_virtio:required 9p:required
         overlay:required tls:required aesni_intel ghash_clmulni_intel gcm ctr
         ghash_generic ccm chacha20poly1305 chacha_x86_64 poly1305_x86_64 veth)

module_list() {  # prints "PATH required|optional" in load order
    local spec name need line path
    declare -A seen=()
    for spec in "${modules[@]}"; do
        name=${spec%%:*} need=optional
        [[ $spec == *:required ]] && need=required
        if ! line=$(modprobe -d "$kdir" -S "$rel" --show-depends "$name" 2>/dev/null); then
            [[ $need == optional ]] && continue
            die "kernel $rel has no module $name"
        fi
        while read -r kind path _; do
            [[ $kind == insmod && -z ${seen[$path]:-} ]] || continue
            seen[$path]=1
            printf '%s %s\n' "$path" "$need"
        done <<<"$line"
    done
}

mlist=$(module_list)
key=$({
    cat "$here/guest-init.sh" "$here/guest-stage2.sh"
    printf '%s\n' "$rel" "$mlist"
    stat -c '%s %Y' "$busybox"
} | sha256sum | cut -c1-16)
initrd=$kdir/initramfs-$key.cpio
if [[ ! -s $initrd ]]; then
    log "building $initrd"
    stage=$(mktemp -d "$kdir/.initramfs.XXXXXX")
    # shellcheck disable=SC2064  # expand now: $stage is fixed
    trap "rm -rf '$stage'" EXIT
    mkdir -p "$stage"/{bin,dev,proc,sys,modules,newroot,ctl}
    cp "$busybox" "$stage/bin/busybox"
    for applet in $("$busybox" --list); do
        [[ $applet == busybox ]] || ln -s busybox "$stage/bin/$applet"
    done
    mknod -m 600 "$stage/dev/console" c 5 1
    mknod -m 666 "$stage/dev/null" c 1 3
    cp "$here/guest-init.sh" "$stage/init"
    cp "$here/guest-stage2.sh" "$stage/stage2"
    chmod 755 "$stage/init"
    : >"$stage/modules.list"
    while read -r path need; do
        [[ -n $path ]] || continue
        cp "$path" "$stage/modules/"
        printf '%s %s\n' "${path##*/}" "$need" >>"$stage/modules.list"
    done <<<"$mlist"
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$stage.cpio"
    rm -f "$kdir"/initramfs-*.cpio
    mv "$stage.cpio" "$initrd"
    rm -rf "$stage"
    trap - EXIT
fi

# --- per-run control directory -------------------------------------------------
ctl=$(mktemp -d "${TMPDIR:-/tmp}/moat-vm.XXXXXX")
qpid="" catpid=""
# shellcheck disable=SC2317  # called by trap
cleanup() {
    [[ -z $qpid ]] || kill "$qpid" 2>/dev/null || true
    [[ -z $catpid ]] || kill "$catpid" 2>/dev/null || true
    rm -rf "$ctl"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cwd=$(pwd -P)
# Directories shared at their own path: the cwd (+ --share ones), parents first.
shares=()
for d in "${extra_shares[@]}"; do
    [[ -d $d ]] || die "--share $d: not a directory"
done
while IFS= read -r d; do
    [[ -n $d && $d != / ]] && shares+=("$d")
done < <(
    {
        printf '%s\n' "$cwd"
        for d in "${extra_shares[@]}"; do (cd "$d" && pwd -P); done
    } | awk '!seen[$0]++ { print length($0) "\t" $0 }' | sort -n -s -k1,1 | cut -f2-
)
shq() { printf "'%s'" "${1//\'/\'\\\'\'}"; }  # quote for busybox sh
qesc() { printf '%s' "${1//,/,,}"; }               # quote for a qemu option value
{
    echo "MOAT_VM_RELEASE=$(shq "$rel")"
    echo "MOAT_VM_MODULES=$(shq "$kdir/lib/modules/$rel")"
    echo "MOAT_VM_ROOT_OVERLAY=$([[ ${MOAT_VM_ROOT_OVERLAY:-1} == 0 ]] && echo 0 || echo 1)"
    for i in "${!shares[@]}"; do
        echo "MOAT_VM_SHARE_$i=$(shq "${shares[$i]}")"
        rw=0
        [[ $rw_cwd == 1 && ${shares[$i]} == "$cwd" ]] && rw=1
        echo "MOAT_VM_SHARE_${i}_RW=$rw"
    done
} >"$ctl/config"

# The command script, run by the host's bash inside the guest.
guest_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
{
    echo '# generated by vm-run.sh'
    # A plain system PATH unless PATH is passed on purpose: every directory in
    # it costs lookups over 9p, and wrappers such as pyenv shims take seconds
    # per call under TCG.
    printf 'export PATH=%q\n' "$guest_path"
    echo 'export HOME=/root'
    names=()
    while IFS= read -r n; do
        [[ $n =~ ^(MOAT|TEST)_ ]] && names+=("$n")
    done < <(compgen -e)
    for n in ${MOAT_VM_PASSENV:-} LANG LC_ALL TERM TZ; do
        [[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "MOAT_VM_PASSENV: bad variable name '$n'"
        [[ -n ${!n+set} ]] && names+=("$n")
    done
    for n in "${names[@]}"; do
        printf 'export %s=%q\n' "$n" "${!n}"
    done
    for e in "${extra_env[@]}"; do
        n=${e%%=*}
        [[ $n =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--env: bad variable name '$n'"
        if [[ $e == *=* ]]; then
            printf 'export %s=%q\n' "$n" "${e#*=}"
        elif [[ -n ${!n+set} ]]; then
            printf 'export %s=%q\n' "$n" "${!n}"
        fi
    done
    echo 'export MOAT_VM=1'
    printf 'export MOAT_VM_SUITE=%q\n' "$suite"
    echo 'export MOAT_VM_KERNEL  # set by the guest from uname -r'
    printf 'cd -- %q || exit 125\n' "$cwd"
    printf 'exec'
    printf ' %q' "$@"
    printf '\n'
} >"$ctl/cmd.sh"

# --- boot --------------------------------------------------------------------
# cryptomgr.notests skips the crypto self-tests (about 1 s under TCG);
# mitigations=off avoids page-table switches on every syscall (slow under TCG).
append="console=ttyS0 panic=-1 rdinit=/init cryptomgr.notests mitigations=off random.trust_cpu=on"
append+=" i8042.noaux=1 i8042.nomux=1 i8042.nopnp=1 8250.nr_uarts=1 tsc=reliable no_timer_check"
if [[ $verbose == 1 ]]; then append+=" loglevel=6 moat.trace"; else append+=" quiet loglevel=3"; fi
append+=${MOAT_VM_APPEND:+ $MOAT_VM_APPEND}

ninep=security_model=none,multidevs=remap
# TCG by default: KVM guests hang on the machines this lane was built on.
if [[ ${MOAT_VM_ACCEL:-tcg} == kvm ]]; then
    accel=(-accel kvm -cpu host)
else
    # shellcheck disable=SC2054
    accel=(-accel tcg,thread=multi -cpu max)
fi
# shellcheck disable=SC2054  # qemu option lists use commas
qargs=(
    -nodefaults -no-user-config -display none -vga none -no-reboot
    -machine "${MOAT_VM_MACHINE:-q35}" "${accel[@]}" -smp "$smp" -m "$mem"
    -kernel "$kernel" -initrd "$initrd" -append "$append"
    -chardev "file,id=con,path=$(qesc "$ctl")/console.log" -serial chardev:con
    -device virtio-serial-pci
    -chardev "file,id=out,path=$(qesc "$ctl")/out" -device virtserialport,chardev=out,name=moat.out
    -fsdev "local,id=hostroot,path=/,readonly=on,$ninep" -device virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot
    -fsdev "local,id=ctl,path=$(qesc "$ctl"),$ninep" -device virtio-9p-pci,fsdev=ctl,mount_tag=moatctl
)
for i in "${!shares[@]}"; do
    ro=readonly=on,
    [[ $rw_cwd == 1 && ${shares[$i]} == "$cwd" ]] && ro=
    # shellcheck disable=SC2054
    qargs+=(-fsdev "local,id=share$i,path=$(qesc "${shares[$i]}"),$ro$ninep"
            -device "virtio-9p-pci,fsdev=share$i,mount_tag=moatshare$i")
done

log "kernel $suite $rel ($(basename "$kernel")), ${mem} MB, $smp CPUs, timeout ${timeout_s}s"
# Guest output: virtio-serial -> FIFO -> cat -> our stdout. Holding the FIFO
# open read-write here means neither side blocks in open(), and cat sees EOF
# only once we close it after qemu has gone.
mkfifo "$ctl/out"
exec 3<>"$ctl/out"
# If our stdout goes away (| head), keep draining so the guest never blocks.
{ cat "$ctl/out" || cat "$ctl/out" >/dev/null; } 3>&- &
catpid=$!
t1=$(now)
set +e
timeout --foreground -k 10 "$timeout_s" "$qemu" "${qargs[@]}" </dev/null 3>&- 2>"$ctl/qemu.err" &
qpid=$!
wait "$qpid"
qrc=$?
qpid=
exec 3>&-
wait "$catpid"
set -e
t2=$(now)

show_console() {
    if [[ -s $ctl/console.log ]]; then
        printf '%s: guest console (last lines):\n' "$prog" >&2
        tail -n "${1:-25}" "$ctl/console.log" | sed 's/^/    /' >&2
    fi
}
if [[ $verbose == 1 ]]; then
    [[ ! -s $ctl/console.log ]] || sed 's/^/    [guest] /' "$ctl/console.log" >&2
    boot=
    [[ ! -s $ctl/booted ]] || boot=$(cut -d' ' -f1 "$ctl/booted")
    log "$(awk -v a="$t0" -v b="$t1" -v c="$t2" -v g="${boot:-?}" \
        'BEGIN { printf "setup %.2fs, VM %.2fs wall (guest uptime at command start: %ss)", b - a, c - b, g }')"
fi
if [[ -s $ctl/qemu.err ]] && { [[ $verbose == 1 ]] || [[ ! -s $ctl/rc ]]; }; then
    sed 's/^/    [qemu] /' "$ctl/qemu.err" >&2
fi

if [[ -s $ctl/rc ]]; then
    rc=$(<"$ctl/rc")
    [[ $rc =~ ^[0-9]+$ ]] || die "garbled exit status from the guest: '$rc'"
    exit "$rc"
fi
if ((qrc == 124 || qrc == 137)); then
    show_console 15
    printf '%s: error: VM (%s kernel %s) timed out after %ss\n' "$prog" "$suite" "$rel" "$timeout_s" >&2
    exit "$EXIT_TIMEOUT"
fi
if [[ -s $ctl/fail ]]; then
    printf '%s: error: VM setup failed (%s kernel %s): %s\n' "$prog" "$suite" "$rel" "$(<"$ctl/fail")" >&2
    exit "$EXIT_VM"
fi
show_console 40
if ((qrc != 0)); then
    die "qemu exited with status $qrc before the command finished ($suite kernel $rel)"
fi
die "the VM ($suite kernel $rel) stopped before the command finished (boot failure or kernel panic)"
