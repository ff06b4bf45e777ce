#!/usr/bin/env bash
# lanes: host san
# moat's errors are clear and carry documented exit codes; nothing changes on error.
source "$(dirname "$0")/../lib/common.sh"
topo_up

expect_exit() { # CODE PATTERN CMD...
	local code=$1 pattern=$2 rc=0; shift 2
	"$@" > "$T/cli.out" 2>&1 || rc=$?
	[ $rc -eq "$code" ] || fail "'$*' exited $rc, want $code: $(cat "$T/cli.out")"
	grep -qi -- "$pattern" "$T/cli.out" || fail "'$*' said '$(cat "$T/cli.out")', want /$pattern/"
}

expect_exit 3 "is moatd running" moat status
expect_exit 2 "invalid port" moat attach 70000 --ca x --cert y --key z
expect_exit 2 "needs --ca" moat attach 8443
expect_exit 0 "Usage: moat" "$BIN/moat" --help
expect_exit 0 "Usage: moatd" "$BIN/moatd" --help
log "no daemon and usage errors"

start_app 8443 echo
start_moatd
k=(--cert "$PKI/server.crt" --key "$PKI/server.key")
expect_exit 4 "No such file" moat attach 8443 --ca "$PKI/nope.crt" "${k[@]}"
expect_exit 4 "encrypted" moat attach 8443 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server-enc.key"
expect_exit 4 "does not match" moat attach 8443 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/client-ec.key"
expect_exit 4 "no CA" moat attach 8443 --ca "$PKI/client-ec.crt" "${k[@]}"
echo "not a certificate" > "$T/garbage.pem"
expect_exit 4 "no PEM certificate" moat attach 8443 --ca "$T/garbage.pem" "${k[@]}"
expect_exit 4 "no PEM certificate" moat attach 8443 --ca "$PKI/ca.crt" --cert "$T/garbage.pem" --key "$PKI/server.key"
expect_exit 6 "unknown interface 'eth99'" moat attach 8443 --ca "$PKI/ca.crt" "${k[@]}" --iface eth99
moat status --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["ports"] == []' ||
	fail "a failed attach left a port behind"
log "bad inputs rejected, nothing attached"

attach_default 8443
expect_exit 5 "already attached" moat attach 8443 --ca "$PKI/ca.crt" "${k[@]}"
expect_exit 5 "not attached" moat detach 8444
expect_exit 5 "all interfaces" moat detach 8443 --iface vs0
[ "$(tls client-ec $SRV_IP 8443 --request still)" = still ] || fail "conflicts disturbed the attached port"
log "conflicts reported, existing protection untouched"

# Only root may talk to moatd.
chmod 755 "$T" "$MOAT_RUN_DIR"
expect_exit 7 "root" in_srv setpriv --reuid=nobody --regid=nogroup --clear-groups "$BIN/moat" status
log "non-root caller refused"
stop_moatd
