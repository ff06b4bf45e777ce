#!/usr/bin/env bash
# lanes: host san vm
# No cert, another CA, expired, not yet valid, no clientAuth EKU: all refused
# with a logged reason, and the app never sees a connection.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_moatd
attach_default 8443

for v in 1.2 1.3; do
	expect_refused none $SRV_IP 8443 --tls $v
	expect_reason no_client_cert
	expect_refused client-other-ca $SRV_IP 8443 --tls $v
	expect_reason untrusted_issuer
	expect_refused client-expired $SRV_IP 8443 --tls $v
	expect_reason cert_expired
	expect_refused client-future $SRV_IP 8443 --tls $v
	expect_reason cert_not_yet_valid
	expect_refused client-server-eku $SRV_IP 8443 --tls $v
	expect_reason not_for_client_auth
done
log "python ssl: every bad client refused in TLS 1.2 and 1.3"

# curl without a client certificate, as in the demo.
if in_cli curl -sS -m 10 --cacert "$PKI/ca.crt" "https://$SRV_IP:8443/" >/dev/null 2>&1; then
	fail "curl without a client certificate got an answer"
fi
grep -q 'reason=cert_expired: certificate verify failed: certificate has expired (depth=0 subject="CN=client-expired")' \
	"$T/moatd.log" || fail "rejection log lacks error, depth and subject"
grep -q 'reject peer=10.200.0.2:[0-9]* port=8443 iface=vs0 reason=' "$T/moatd.log" ||
	fail "rejection log lacks peer, port and interface"
[ "$(app_connections 8443)" = 0 ] || fail "the app saw $(app_connections 8443) connection(s)"
moat status | grep -q 'rejected:.*no_client_cert=' || fail "status does not show reasons"
log "app saw no connection; reasons logged and counted"
stop_moatd
