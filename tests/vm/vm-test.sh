#!/usr/bin/env bash
# vm-test.sh - run a test command in a VM for each kernel of the kTLS lane and
# summarise. Used by `make vm-test` (tests/vm/vm.mk).
#
# Usage: tests/vm/vm-test.sh [--kernels "SUITE..."] [--timeout SECS] [--mem MB]
#                            [-- COMMAND...]
#   --kernels  suites to run (default: $VM_KERNELS or "bookworm trixie sid")
#   --timeout  per-kernel VM timeout in seconds (default 1800)
#   --mem      guest memory in MB (default 1024)
#   COMMAND    default: tests/run.sh --lane vm (run from the repo root)
#
# Every kernel is run even if an earlier one failed. The summary takes the
# command's last "N passed, N failed, N skipped" line. Exit status: 0 if the
# command passed on every kernel, 1 otherwise, 2 on usage errors.
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

kernels=${VM_KERNELS:-bookworm trixie sid}
timeout_s=1800 mem=1024
while (($#)); do
    case $1 in
        --kernels) kernels=${2:?}; shift ;;
        --kernels=*) kernels=${1#*=} ;;
        --timeout) timeout_s=${2:?}; shift ;;
        --timeout=*) timeout_s=${1#*=} ;;
        --mem) mem=${2:?}; shift ;;
        --mem=*) mem=${1#*=} ;;
        --) shift; break ;;
        -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "$prog: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
(($#)) || set -- tests/run.sh --lane vm
read -r -a suites <<<"$kernels"
((${#suites[@]})) || { echo "$prog: no kernels given" >&2; exit 2; }

if [[ $1 == */* && ! -e $1 ]]; then
    echo "$prog: error: $1 not found (run from the repository root)" >&2
    exit 2
fi
if [[ $(id -u) != 0 ]]; then
    echo "$prog: error: the VM lane must run as root (qemu shares / with security_model=none)" >&2
    exit 2
fi

logdir=$(mktemp -d "${TMPDIR:-/tmp}/moat-vm-test.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
cache=${MOAT_VM_CACHE:-/var/cache/moat-vm}

results=() failed=0
for k in "${suites[@]}"; do
    echo "=== vm-test: $k kernel: $*"
    start=$(date +%s)
    set +e
    "$here/vm-run.sh" --kernel "$k" --timeout "$timeout_s" --mem "$mem" -- "$@" | tee "$logdir/$k.log"
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(($(date +%s) - start))
    rel=$(cat "$cache/$k/release" 2>/dev/null || echo '?')
    summary=$(grep -aE '[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$logdir/$k.log" | tail -n1 | tr -d '\r' || true)
    case $rc in
        0) status=PASS ;;
        124) status=TIMEOUT ;;
        125) status="VM ERROR" ;;
        *) status="FAIL($rc)" ;;
    esac
    ((rc == 0)) || failed=1
    results+=("$(printf '  %-9s %-24s %-10s %5ss  %s' "$k" "$rel" "$status" "$secs" "${summary:-(no summary line)}")")
    echo "=== vm-test: $k: $status"
done

echo "=== vm-test summary ($*)"
printf '%s\n' "${results[@]}"
if ((failed)); then
    echo "vm-test: FAILED"
    exit 1
fi
echo "vm-test: passed on all kernels (${suites[*]})"
