# shellcheck shell=bash
# Sourced by every integration test. A test is a script that exits 0 (pass),
# 77 (skip, after printing why) or anything else (fail).
#
# Topology (made fresh per test):
#   netns $NS_CLI  vc0 10.200.0.2/24 fd00:200::2/64 --- vs0 10.200.0.1/24 fd00:200::1/64  netns $NS_SRV
#   netns $NS_CLI  vc1 10.201.0.2/24 --------------- vs1 10.201.0.1/24                    (with_second_link)
# The app and moatd run in $NS_SRV. moatd is entered with nsenter --net only, so
# it keeps the host's mount namespace and bpffs, and its pins outlive it as in
# production (ip netns exec would give it a private bpffs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${MOAT_BIN_DIR:-$ROOT/build}
LIB=$ROOT/tests/lib
PKI=${MOAT_TEST_PKI:-/tmp/moat-test-pki}
T=$(mktemp -d /tmp/moat-test.XXXXXX)
export MOAT_RUN_DIR=$T/run
# moatd's policy directory in tests: empty unless a test writes files there.
POLICY=$T/policy
NS_SRV=moat-s$$
NS_CLI=moat-c$$
SRV_IP=10.200.0.1
SRV_IP6=fd00:200::1
SRV_IP_2=10.201.0.1
MOATD_PID=
APP_PIDS=()

log() { printf '  %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*"; dump_logs; exit 1; }
skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

dump_logs() {
	if [ -f "$T/moatd.log" ]; then
		echo "---- moatd log (last 30 lines)"
		tail -n 30 "$T/moatd.log"
	fi
}

in_srv() { nsenter --net="/run/netns/$NS_SRV" "$@"; }
in_cli() { nsenter --net="/run/netns/$NS_CLI" "$@"; }
moat() { in_srv "$BIN/moat" "$@"; }

cleanup() {
	local rc=$?
	set +e
	[ -n "$MOATD_PID" ] && kill -TERM "$MOATD_PID" 2>/dev/null && wait "$MOATD_PID" 2>/dev/null
	for p in "${APP_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	if ip netns list | grep -q "^$NS_SRV"; then
		in_srv "$BIN/moatd" --cleanup >/dev/null 2>&1
	fi
	ip netns del "$NS_SRV" 2>/dev/null
	ip netns del "$NS_CLI" 2>/dev/null
	rm -rf "$T"
	exit $rc
}
trap cleanup EXIT

ensure_pki() {
	"$LIB/make-certs.sh" "$PKI" >/dev/null
}

topo_up() {
	ip netns add "$NS_SRV"
	ip netns add "$NS_CLI"
	ip link add "vs0-$$" type veth peer name "vc0-$$"
	ip link set "vs0-$$" netns "$NS_SRV" name vs0
	ip link set "vc0-$$" netns "$NS_CLI" name vc0
	ip -n "$NS_SRV" addr add $SRV_IP/24 dev vs0
	ip -n "$NS_SRV" addr add $SRV_IP6/64 dev vs0 nodad
	ip -n "$NS_CLI" addr add 10.200.0.2/24 dev vc0
	ip -n "$NS_CLI" addr add fd00:200::2/64 dev vc0 nodad
	for ns in "$NS_SRV" "$NS_CLI"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_SRV" link set vs0 up
	ip -n "$NS_CLI" link set vc0 up
}

with_second_link() {
	ip link add "vs1-$$" type veth peer name "vc1-$$"
	ip link set "vs1-$$" netns "$NS_SRV" name vs1
	ip link set "vc1-$$" netns "$NS_CLI" name vc1
	ip -n "$NS_SRV" addr add $SRV_IP_2/24 dev vs1
	ip -n "$NS_CLI" addr add 10.201.0.2/24 dev vc1
	ip -n "$NS_SRV" link set vs1 up
	ip -n "$NS_CLI" link set vc1 up
}

# start_app PORT MODE [app.py args...]: the plaintext service, in the server netns.
start_app() {
	local port=$1 mode=$2; shift 2
	# nsenter directly (not through a function) so $! is the app itself.
	nsenter --net="/run/netns/$NS_SRV" python3 "$LIB/app.py" --port "$port" --mode "$mode" \
		--log "$T/app-$port.log" "$@" > "$T/app-$port.out" 2>&1 &
	APP_PIDS+=($!)
	wait_for "app on port $port" grep -q ready "$T/app-$port.out"
}

app_connections() { grep -c '^conn ' "$T/app-$1.log" || true; }

wait_for() { # DESCRIPTION CMD...: retry for up to 10 s
	local what=$1; shift
	for _ in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	fail "timed out waiting for $what"
}

start_moatd() {
	mkdir -p "$MOAT_RUN_DIR" "$POLICY"
	nsenter --net="/run/netns/$NS_SRV" "$BIN/moatd" -f --policy-dir "$POLICY" "$@" >> "$T/moatd.log" 2>&1 &
	MOATD_PID=$!
	wait_for "moatd control socket" moat ping
}

stop_moatd() {
	kill -TERM "$MOATD_PID"
	wait "$MOATD_PID" || fail "moatd exited with status $? on SIGTERM"
	MOATD_PID=
}

attach_default() { # PORT [moat attach args...]
	local port=$1; shift
	moat attach "$port" --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" "$@" \
		>/dev/null || fail "moat attach $port failed"
}

# tls CLIENT_CERT_NAME HOST PORT [tls_client.py args...]: python ssl client in the client netns.
tls() {
	local who=$1 host=$2 port=$3; shift 3
	local certargs=()
	[ "$who" != none ] && certargs=(--cert "$PKI/$who.crt" --key "$PKI/$who.key")
	in_cli python3 "$LIB/tls_client.py" "$host" "$port" --ca "$PKI/ca.crt" "${certargs[@]}" "$@"
}

# expect_refused WHO HOST PORT: the server must refuse this client.
expect_refused() {
	local rc=0
	tls "$@" --request "ping" > "$T/out" 2> "$T/err" || rc=$?
	[ $rc -eq 3 ] || fail "client $1 to $2:$3: expected refusal (3), got $rc: $(cat "$T/out" "$T/err")"
}

expect_reason() { # REASON: moatd logged a rejection with this reason
	wait_for "rejection reason $1 in moatd log" grep -q "reason=$1" "$T/moatd.log"
}

ensure_pki

# policy FILE: writes stdin to $POLICY/FILE atomically (moatd may be watching).
policy() {
	mkdir -p "$POLICY"
	cat > "$POLICY/.$1.tmp"
	mv "$POLICY/.$1.tmp" "$POLICY/$1"
}

# port_section PORT [extra keys...]: a [port] section with the test CA and server cert.
port_section() {
	local port=$1; shift
	printf '[port %s]\nca = %s\ncert = %s\nkey = %s\n' "$port" "$PKI/ca.crt" "$PKI/server.crt" "$PKI/server.key"
	for kv in "$@"; do printf '%s\n' "$kv"; done
}

reload_ok() { moat reload > "$T/reload.out" 2>&1 || fail "moat reload failed: $(cat "$T/reload.out")"; }

# expect_ok WHO HOST PORT [args]: the client is admitted and its request echoed.
expect_ok() {
	local out
	out=$(tls "$@" --request "hi-$1" 2> "$T/err") || fail "client $1 to $2:$3 refused: $(cat "$T/err")"
	[ "$out" = "hi-$1" ] || fail "client $1 to $2:$3: echo '$out'"
}

# sha256 of a certificate (DER) and of its public key (SPKI DER).
cert_sha256() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1; }
spki_sha256() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1
}
