#!/usr/bin/env bash
# lanes: host san vm
# SIGKILL moatd: the port refuses connections and the app receives none.
# Restart moatd: service resumes from the recorded attachment.
# moat detach: the app is reachable directly again.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_moatd
attach_default 8443
[ "$(tls client-ec $SRV_IP 8443 --request up)" = up ] || fail "not serving before the kill"

kill -KILL "$MOATD_PID"; wait "$MOATD_PID" 2>/dev/null || true; MOATD_PID=
before=$(app_connections 8443)
for i in 1 2 3; do
	if in_cli python3 -c "import socket; socket.create_connection(('$SRV_IP', 8443), timeout=3)" 2>/dev/null; then
		fail "TCP connect to the protected port succeeded with moatd dead (try $i)"
	fi
	if in_cli curl -s -m 3 "http://$SRV_IP:8443/" >/dev/null 2>&1; then
		fail "plaintext request reached something with moatd dead"
	fi
done
in_cli python3 -c "
import socket
try:
    socket.create_connection(('$SRV_IP', 8443), timeout=3)
except ConnectionRefusedError:
    raise SystemExit(0)
raise SystemExit('not refused')" || fail "connect was not refused (RST) with moatd dead"
tls client-ec "$SRV_IP6" 8443 --request x >/dev/null 2>&1 && fail "IPv6 client got through with moatd dead"
[ "$(app_connections 8443)" = "$before" ] || fail "the app received connections while moatd was dead"
log "moatd killed: connections refused over IPv4 and IPv6, app saw none"

start_moatd
[ "$(tls client-ec $SRV_IP 8443 --request resumed)" = resumed ] || fail "service did not resume after restart"
expect_refused none $SRV_IP 8443
log "moatd restarted: protection and service resumed"

moat detach 8443 >/dev/null || fail "detach failed"
out=$(in_cli python3 -c "
import socket
s = socket.create_connection(('$SRV_IP', 8443), timeout=5)
s.sendall(b'plain'); s.shutdown(socket.SHUT_WR)
print(s.recv(100).decode())") || fail "app not reachable after detach"
[ "$out" = plain ] || fail "plaintext echo after detach: '$out'"
log "moat detach: the app is reachable directly again"

# Stopping moatd with nothing attached leaves nothing behind; SIGTERM with a
# port attached keeps it closed (checked by the kill above for SIGKILL).
attach_default 8443
stop_moatd
in_cli python3 -c "import socket; socket.create_connection(('$SRV_IP', 8443), timeout=3)" 2>/dev/null &&
	fail "port open after a clean moatd stop"
log "moatd stopped cleanly: port still refuses"
