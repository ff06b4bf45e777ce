#!/usr/bin/env bash
# lanes: host san
# moat check (no daemon) and moatd --check on a corpus of broken policies:
# every error as file:line:, exit 4 (moat) / 1 (moatd); a missing interface
# is only a warning; moatd refuses to start on an invalid policy.
source "$(dirname "$0")/../lib/common.sh"
D=$T/corpus
mkdir -p "$D"
good() { port_section "$@"; }

# case NAME FILE EXPECTED-LINE-TEXT: one broken file per directory.
expect_check() { # DIR PATTERN...
	local dir=$1 rc=0; shift
	"$BIN/moat" check "$dir" > "$T/check.out" 2>&1 || rc=$?
	[ $rc -eq 4 ] || fail "moat check $dir exited $rc, want 4: $(cat "$T/check.out")"
	for pat in "$@"; do
		grep -qF -- "$pat" "$T/check.out" || fail "moat check $dir: want '$pat' in: $(cat "$T/check.out")"
	done
}
mk() { mkdir -p "$D/$1"; cat > "$D/$1/$2"; }

mk unknown-key all.conf <<P
$(good 443)
colour = blue
P
expect_check "$D/unknown-key" "$D/unknown-key/all.conf:5: error: unknown key 'colour'"

mk bad-port all.conf <<P
[port 0]
ca = x
[port 99999]
P
expect_check "$D/bad-port" "all.conf:1: error: bad port '0'" "all.conf:3: error: bad port '99999'"

mk unreadable all.conf <<P
[port 443]
ca = $PKI/ca.crt
cert = $PKI/nope.crt
key = $PKI/server.key
P
expect_check "$D/unreadable" "all.conf:3: error: [port 443] certificate $PKI/nope.crt: No such file"

mk mismatch all.conf <<P
[port 443]
ca = $PKI/ca.crt
cert = $PKI/server.crt
key = $PKI/client-ec.key
P
expect_check "$D/mismatch" "all.conf:4: error: [port 443] key $PKI/client-ec.key does not match"

mk not-ca all.conf <<P
[port 443]
cert = $PKI/server.crt
key = $PKI/server.key
ca = $PKI/client-ec.crt
P
expect_check "$D/not-ca" "all.conf:4: error: [port 443] CA bundle $PKI/client-ec.crt holds 1 certificate(s) but no CA"

mk expired all.conf <<P
[port 443]
ca = $PKI/ca.crt
cert = $PKI/server-expired.crt
key = $PKI/server-expired.key
P
expect_check "$D/expired" "all.conf:3: error: [port 443] certificate $PKI/server-expired.crt has expired"

mk crl-other-ca all.conf <<P
$(good 443 "crl = $PKI/ca.crl" "crl = $PKI/ca2.crl")
P
expect_check "$D/crl-other-ca" "all.conf:6: error: [port 443] CRL $PKI/ca2.crl (issuer \"CN=unrelated CA\") is not signed by a CA of $PKI/ca.crt"

# Several files, several errors: all reported, each with its own file and line.
mk many moat.conf <<P
[moat]
close_disallowed_sessions = maybe
P
mk many vs0.conf <<P
$(good 8443 'min_tls = 1.3' 'max_tls = 1.2' 'allow_cert_sha256 = 12ab')
P
mk many lo.conf <<P
$(good 8443 'proxy_protocol = v3' 'ciphersuites = TLS_NOPE')
[port 8443]
P
expect_check "$D/many" "moat.conf:2: error: close_disallowed_sessions wants yes or no" \
	"vs0.conf:6: error: max_tls is below min_tls" "vs0.conf:7: error: allow_cert_sha256 wants 64 hex" \
	"lo.conf:5: error: proxy_protocol wants yes, v2 or no" "lo.conf:7: error: [port 8443] is already defined on line 1" \
	"lo.conf:6: error: [port 8443] no usable TLS 1.3 suite in 'TLS_NOPE'"
grep -q '3 error(s)\|[4-9] error(s)' "$T/check.out" || fail "error count: $(cat "$T/check.out")"
log "moat check: every broken case reported as file:line: error"

# A file for an interface that does not exist yet: a warning, exit 0.
mk later nosuch9.conf <<P
$(good 443)
P
"$BIN/moat" check "$D/later" > "$T/check.out" 2>&1 || fail "missing interface is an error: $(cat "$T/check.out")"
grep -q "nosuch9.conf: warning: interface nosuch9 does not exist (yet)" "$T/check.out" || fail "no warning: $(cat "$T/check.out")"
grep -q "policy OK: 1 port(s) in 1 file(s)" "$T/check.out" || fail "$(cat "$T/check.out")"
"$BIN/moat" check "$D/later/nosuch9.conf" > /dev/null 2>&1 || fail "moat check FILE failed"
log "missing interface: warning only; moat check FILE"

# moatd --check / -n, and moatd refusing to start.
rc=0; "$BIN/moatd" --check --policy-dir "$D/mismatch" > "$T/n.out" 2>&1 || rc=$?
[ $rc -eq 1 ] && grep -q 'all.conf:4: error' "$T/n.out" || fail "moatd --check: rc $rc $(cat "$T/n.out")"
"$BIN/moatd" -n --policy-dir "$D/later" > "$T/n.out" 2>&1 || fail "moatd -n on a valid policy: $(cat "$T/n.out")"
topo_up
mkdir -p "$MOAT_RUN_DIR"
rc=0; in_srv timeout 20 "$BIN/moatd" -f --policy-dir "$D/expired" > "$T/start.out" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "moatd started on an invalid policy (rc $rc)"
grep -q 'refusing to start: the policy in' "$T/start.out" || fail "$(cat "$T/start.out")"
log "moatd --check and refusal to start on an invalid policy"
