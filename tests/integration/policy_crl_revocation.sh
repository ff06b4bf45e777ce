#!/usr/bin/env bash
# lanes: host san
# CRLs: a revoked client is refused (cert_revoked). A rotated CRL file takes
# effect without a restart; with close_disallowed_sessions the live session
# of a newly revoked client is closed, others keep flowing; without it, live
# sessions run on.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
cp "$PKI/ca-empty.crl" "$T/current.crl"
policy vs0.conf <<P
$(port_section 8443 "crl = $T/current.crl")
P
start_moatd
expect_ok client-revoked $SRV_IP 8443
expect_ok client-ec $SRV_IP 8443
log "CRL without the revocation: both admitted"

hold() { # WHO OUT: a held-open session in the background, waits until it relays
	rm -f "$T/$2.ready"
	in_cli python3 "$LIB/hold_session.py" $SRV_IP 8443 --ca "$PKI/ca.crt" --cert "$PKI/$1.crt" \
		--key "$PKI/$1.key" --hold 6 --ready "$T/$2.ready" > "$T/$2" 2>&1 &
	wait_for "$1 session" test -f "$T/$2.ready"
}

# Without close_disallowed_sessions: the live session survives the new CRL.
hold client-revoked keep
cp "$PKI/ca.crl" "$T/current.crl"  # rotation, seen by inotify on the CRL's directory
wait_for "reload after the CRL rotation" grep -q 'policy loaded (policy files changed)' "$T/moatd.log"
expect_refused client-revoked $SRV_IP 8443
expect_reason cert_revoked
expect_ok client-ec $SRV_IP 8443
wait %%
grep -q '^open' "$T/keep" || fail "session closed without close_disallowed_sessions: $(cat "$T/keep")"
log "rotated CRL: revoked client refused at once; live session kept (option off)"

# With it: the revoked client's live session is closed, another's is not.
cp "$PKI/ca-empty.crl" "$T/current.crl"
policy moat.conf <<P
[moat]
close_disallowed_sessions = yes
P
reload_ok
hold client-revoked revoked
hold client-ec good
cp "$PKI/ca.crl" "$T/current.crl"
moat reload > "$T/reload.out" || fail "reload failed"
grep -q '1 session(s) closed' "$T/reload.out" || fail "reload report: $(cat "$T/reload.out")"
wait_for "revoked session closed" grep -q '^closed' "$T/revoked"
sleep 6.5
grep -q '^open' "$T/good" || fail "good session closed: $(cat "$T/good")"
grep -q 'the new policy refuses it: certificate revoked' "$T/moatd.log" || fail "close reason not logged"
log "close_disallowed_sessions: revoked live session closed, the other kept"

# Identity rules narrowed with the per-port option also close sessions.
hold client-ec ec
policy vs0.conf <<P
$(port_section 8443 "crl = $T/current.crl" 'allow_cn = client-rsa' 'close_disallowed_sessions = yes')
P
reload_ok
wait_for "disallowed identity closed" grep -q '^closed' "$T/ec"
grep -q 'identity no longer allowed' "$T/moatd.log" || fail "identity close not logged"
log "narrowed identity rule closes the live session"
stop_moatd
