#!/usr/bin/env bash
# lanes: host san
# Two ports with different CAs at once; a port covered on one veth and not
# on another; unknown interfaces refused; detach from one interface.
source "$(dirname "$0")/../lib/common.sh"
topo_up
with_second_link
start_app 9001 echo
start_app 9002 echo
start_moatd
attach_default 9001
# Port 9002 trusts only the unrelated CA (ca2) and only on vs0.
moat attach 9002 --ca "$PKI/ca2.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" --iface vs0 \
	>/dev/null || fail "attach 9002 failed"

[ "$(tls client-ec $SRV_IP 9001 --request a)" = a ] || fail "9001 refused a client of its CA"
expect_refused client-other-ca $SRV_IP 9001
in_cli python3 "$LIB/tls_client.py" $SRV_IP 9002 --ca "$PKI/ca.crt" --cert "$PKI/client-other-ca.crt" \
	--key "$PKI/client-other-ca.key" --request b > "$T/out" || fail "9002 refused a client of ca2"
[ "$(cat "$T/out")" = b ] || fail "9002 echo mismatch"
expect_refused client-ec $SRV_IP 9002
log "two ports, two CAs: each admits only its own clients"

# 9002 is not covered on vs1: plaintext reaches the app there, but not on vs0.
out=$(in_cli python3 -c "
import socket
s = socket.create_connection(('$SRV_IP_2', 9002), timeout=5)
s.sendall(b'plain-vs1'); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())") ||
	fail "uncovered interface vs1 does not reach the app"
[ "$out" = plain-vs1 ] || fail "vs1 plaintext echo: '$out'"
expect_refused client-ec $SRV_IP 9002
log "per-interface attach: covered on vs0, plaintext on vs1"

# Interfaces are followed by name: a link named vs2 that does not exist yet.
moat attach 9003 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" --iface nosuch0 \
	>/dev/null 2>&1 && fail "attach to an unknown interface succeeded"
moat detach 9002 --iface vs0 >/dev/null || fail "detach 9002 --iface vs0 failed"
out=$(in_cli python3 -c "
import socket
s = socket.create_connection(('$SRV_IP', 9002), timeout=5)
s.sendall(b'plain-vs0'); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())") ||
	fail "vs0 not reachable after detach --iface"
[ "$out" = plain-vs0 ] || fail "vs0 plaintext after detach: '$out'"
log "detach --iface lifts protection from that interface"
stop_moatd
