#!/usr/bin/env bash
# lanes: host san
# Loopback is not covered by default. Covered with --iface lo: an unprivileged
# local process gets nothing in plaintext and is refused without a cert,
# while moatd's own backend connections (over lo) still reach the app.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_moatd
attach_default 8443
out=$(in_srv python3 -c "
import socket
s = socket.create_connection(('127.0.0.1', 8443), timeout=5)
s.sendall(b'lo-plain'); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())") || fail "lo not reachable by default"
[ "$out" = lo-plain ] || fail "default lo echo: '$out'"
moat detach 8443 >/dev/null
log "default: loopback is not covered"

attach_default 8443 --iface lo --iface vs0
before=$(app_connections 8443)
# An unprivileged user, plaintext: must not reach the app.
in_srv setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -c "
import socket, sys
s = socket.create_connection(('127.0.0.1', 8443), timeout=5)
s.sendall(b'GET / HTTP/1.0\r\n\r\n'); s.shutdown(socket.SHUT_WR)
data = s.recv(100)
sys.exit(0 if data.startswith(b'GET') else 3)" && fail "unprivileged plaintext reached the app over lo"
# Unprivileged, TLS without a cert (and with a source port it picked): refused.
in_srv setpriv --reuid=nobody --regid=nogroup --clear-groups python3 "$LIB/tls_client.py" 127.0.0.1 8443 \
	--ca "$PKI/ca.crt" --request x > /dev/null 2>&1 && fail "unprivileged TLS without cert got through"
# Root, plaintext, over IPv6 loopback too.
in_srv python3 -c "
import socket, sys
s = socket.create_connection(('::1', 8443), timeout=5)
s.sendall(b'x'); s.shutdown(socket.SHUT_WR)
sys.exit(0 if s.recv(10) == b'x' else 3)" 2>/dev/null && fail "root plaintext reached the app over ::1"
[ "$(app_connections 8443)" = "$before" ] || fail "the app saw a connection from an unverified local process"
log "lo covered: local plaintext and cert-less TLS refused, app saw none"

# A verified client over lo: moatd's own connection to the app must pass.
out=$(in_srv python3 "$LIB/tls_client.py" 127.0.0.1 8443 --ca "$PKI/ca.crt" \
	--cert "$PKI/client-ec.crt" --key "$PKI/client-ec.key" --request "via lo") || fail "verified client over lo refused"
[ "$out" = "via lo" ] || fail "verified lo echo: '$out'"
[ "$(tls client-ec $SRV_IP 8443 --request veth)" = veth ] || fail "verified veth client refused"
moat status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["steering"]["backend_exempt"] >= 2, d["steering"]' || fail "backend exemptions not counted"
log "lo covered: moatd's backend connections exempt by exact 4-tuple"
stop_moatd
