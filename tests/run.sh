#!/usr/bin/env bash
# moat's test runner. Lanes:
#   host  unit tests, the BPF test, integration tests in network namespaces (default)
#   san   integration tests marked for it, against the ASan/UBSan build (build/san)
#   vm    integration tests marked for it, inside a VM whose kernel has kTLS
#         (run by tests/vm/vm-run.sh; 'all' starts it for every kernel in VM_KERNELS)
#   all   host + san + vm: what 'make test' runs
# Usage: tests/run.sh [--lane LANE] [PATTERN...]   (PATTERN filters test names)
# Ends with "N passed, N failed, N skipped"; exits non-zero if anything failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
lane=host
filters=()
while [ $# -gt 0 ]; do
	case $1 in
	--lane) lane=$2; shift 2 ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) filters+=("$1"); shift ;;
	esac
done

passed=0 failed=0 skipped=0
failures=()
export MOAT_TEST_PKI=${MOAT_TEST_PKI:-/tmp/moat-test-pki}
"$ROOT/tests/lib/make-certs.sh" "$MOAT_TEST_PKI" >/dev/null || { echo "cannot make the test PKI"; exit 1; }

selected() {
	[ ${#filters[@]} -eq 0 ] && return 0
	for f in "${filters[@]}"; do [[ $1 == *"$f"* ]] && return 0; done
	return 1
}

record() { # NAME RC SECONDS
	case $2 in
	0) passed=$((passed + 1)); printf 'PASS  %-44s %4ss\n' "$1" "$3" ;;
	77) skipped=$((skipped + 1)); printf 'SKIP  %-44s %4ss\n' "$1" "$3" ;;
	*) failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %-44s %4ss (exit %s)\n' "$1" "$3" "$2" ;;
	esac
}

run_one() { # NAME CMD...: runs, shows output only on failure or skip
	local name=$1; shift
	local out start rc
	selected "$name" || return 0
	out=$(mktemp)
	start=$(date +%s)
	timeout --kill-after=10 600 "$@" > "$out" 2>&1
	rc=$?
	record "$name" $rc $(( $(date +%s) - start ))
	if [ $rc -eq 77 ]; then
		grep -m1 '^SKIP' "$out" | sed 's/^/      /'
	elif [ $rc -ne 0 ]; then
		sed 's/^/      | /' "$out" | tail -n 60
	fi
	rm -f "$out"
}

run_unit() {
	local bin
	for bin in build/tests/test_*; do
		[ -x "$bin" ] || continue
		run_one "unit/$(basename "$bin")" "$bin"
	done
	run_one "bpf/sk_lookup_prog_test_run" build/tests/bpf_sk_lookup
}

# Integration tests declare their lanes in a "# lanes:" header line.
run_integration() { # LANE BIN_DIR
	local t name
	for t in tests/integration/*.sh; do
		name=$(basename "$t" .sh)
		grep -q "^# lanes:.*\b$1\b" "$t" || continue
		MOAT_BIN_DIR=$2 run_one "$1/$name" bash "$t"
	done
}

run_vm_lanes() {
	local kernels=${VM_KERNELS:-bookworm trixie sid} k out summary
	if [ ! -x tests/vm/vm-run.sh ]; then
		record "vm/lane" 77 0
		echo "      SKIP: tests/vm/vm-run.sh is missing"
		return
	fi
	for k in $kernels; do
		out=$(mktemp)
		echo "== vm lane: $k"
		tests/vm/vm-run.sh --kernel "$k" -- tests/run.sh --lane vm "${filters[@]}" 2>&1 | tee "$out" | sed 's/^/   /'
		summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$out" | tail -n1)
		if [ -z "$summary" ]; then
			record "vm-$k/boot" 1 0
		else
			local p f s
			read -r p f s <<<"$(echo "$summary" | sed -E 's/([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?/\1 \2 \4/')"
			passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + ${s:-0}))
			[ "$f" -gt 0 ] && failures+=("vm-$k ($f)")
		fi
		rm -f "$out"
	done
}

case $lane in
host) run_unit; run_integration host build ;;
san) run_integration san build/san ;;
vm) run_integration vm build ;;
all)
	run_unit
	run_integration host build
	run_integration san build/san
	# The benchmark harness in its one-minute form, so it cannot rot.
	run_one "bench/smoke (BENCH_QUICK=1)" bench/smoke-test.sh
	run_vm_lanes
	;;
*) echo "unknown lane $lane"; exit 2 ;;
esac

[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
