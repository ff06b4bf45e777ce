#!/usr/bin/env bash
# lanes: host san
# Good ECDSA and RSA client certs are accepted by python ssl, curl and
# s_client from the openssl CLI, over IPv4 and IPv6, TLS 1.2 and 1.3; bytes intact.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_moatd
attach_default 8443

for who in client-ec client-rsa; do
	for v in 1.2 1.3; do
		out=$(tls $who $SRV_IP 8443 --tls $v --request "hello from $who over $v") ||
			fail "$who TLS $v refused"
		[ "$out" = "hello from $who over $v" ] || fail "$who TLS $v: echo mismatch: '$out'"
	done
done
out=$(tls client-ec "$SRV_IP6" 8443 --request "over ipv6") || fail "IPv6 client refused"
[ "$out" = "over ipv6" ] || fail "IPv6 echo mismatch: '$out'"
log "python ssl: ECDSA+RSA, TLS 1.2+1.3, IPv4+IPv6 accepted"

# curl, a client nobody here wrote, against a plain HTTP app.
mkdir -p "$T/www" && echo "protected content" > "$T/www/index.html"
nsenter --net="/run/netns/$NS_SRV" python3 -m http.server 8081 --bind :: --directory "$T/www" \
	> "$T/http.out" 2>&1 &
APP_PIDS+=($!)
wait_for "http app" in_srv curl -sf http://127.0.0.1:8081/
attach_default 8081
out=$(in_cli curl -sS -m 10 --cacert "$PKI/ca.crt" --cert "$PKI/client-rsa.crt" \
	--key "$PKI/client-rsa.key" "https://$SRV_IP:8081/") || fail "curl with a client cert failed"
[ "$out" = "protected content" ] || fail "curl got '$out'"
log "curl --cert accepted"

# openssl s_client: send a line, the echo must come back through moat.
reply=$( (printf 'ping-s_client\n'; sleep 1) | in_cli timeout 10 openssl s_client -quiet \
	-connect "$SRV_IP:8443" -CAfile "$PKI/ca.crt" -cert "$PKI/client-ec.crt" \
	-key "$PKI/client-ec.key" 2>/dev/null || true)
[[ $reply == *ping-s_client* ]] || fail "openssl s_client got no echo: '$reply'"
log "openssl s_client accepted and echoed"
grep -q 'accept .*subject="CN=client-rsa"' "$T/moatd.log" || fail "acceptance not logged with subject"
moat status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = [p for p in d["ports"] if p["port"] == 8443][0]
assert p["accepted"] >= 6, p' || fail "status does not count the accepted handshakes"
stop_moatd
