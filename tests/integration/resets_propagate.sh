#!/usr/bin/env bash
# lanes: host san vm
# Resets cross moat both ways: the app aborting reaches the client as an
# abort (not a clean close_notify), and a client aborting reaches the app as
# a reset (not a clean EOF).
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 9001 reset
start_app 9002 echo
start_moatd
attach_default 9001
attach_default 9002

rc=0
tls client-ec $SRV_IP 9001 --request "hi" > "$T/out" 2> "$T/err" || rc=$?
grep -q "about to reset" "$T/out" "$T/err" || true
[ $rc -ne 0 ] || fail "app reset reached the client as a clean close: $(cat "$T/out" "$T/err")"
wait_for "moatd to log the app's reset" grep -q 'reason=app reset the connection' "$T/moatd.log"
log "app RST -> client abort (client exit $rc: $(tail -n1 "$T/err"))"

in_cli python3 - "$SRV_IP" "$PKI" <<'PY'
import socket, ssl, struct, sys, time
host, pki = sys.argv[1], sys.argv[2]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.load_verify_locations(f"{pki}/ca.crt")
ctx.load_cert_chain(f"{pki}/client-ec.crt", f"{pki}/client-ec.key")
raw = socket.create_connection((host, 9002), timeout=5)
s = ctx.wrap_socket(raw)
s.sendall(b"ping")
assert s.recv(10) == b"ping"           # the server's verdict and the relay are up
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()                              # RST from the client, no close_notify
PY
wait_for "the app to see the client's reset" grep -q 'error .*Connection reset by peer' "$T/app-9002.log"
log "client RST -> app sees ECONNRESET"
stop_moatd
