#!/usr/bin/env bash
# lanes: host san
# A malformed ClientHello, plaintext HTTP, a silent client and a flood of slow
# handshakes are all refused with a reason, and none reaches the app; a good
# client still gets through while they hang on.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_moatd --handshake-timeout 1500 --max-handshakes 20
attach_default 8443

send_raw() { # BYTES(printf format): what comes back
	in_cli python3 -c "
import socket, sys
s = socket.create_connection(('$SRV_IP', 8443), timeout=5)
s.sendall(sys.argv[1].encode('latin-1').decode('unicode_escape').encode('latin-1'))
try:
    print(repr(s.recv(100)))
except OSError as e:
    print(e)" "$1"
}
out=$(send_raw 'GET / HTTP/1.0\r\n\r\n')
[[ $out != *GET* ]] || fail "plaintext HTTP was echoed: $out"
expect_reason tls_error
# A TLS record header announcing a ClientHello, followed by garbage.
send_raw '\x16\x03\x01\x00\x30\x01\x00\x00\x2c\x03\x03garbagegarbagegarbagegarbagegarbage!!!!!!!!!!' >/dev/null
wait_for "two tls_error rejections" test "$(grep -c 'reason=tls_error' "$T/moatd.log")" -ge 2
log "plaintext and malformed ClientHello refused"

# 25 silent clients: 20 fill the handshake cap, the rest are refused at once.
in_cli python3 -c "
import socket, time
socks = []
for _ in range(25):
    try:  # those over the cap are reset by moatd, maybe before connect() returns
        socks.append(socket.create_connection(('$SRV_IP', 8443), timeout=5))
    except OSError:
        pass
time.sleep(3)" &
silent=$!
sleep 0.5
expect_reason handshake_limit
wait_for "handshake timeouts" grep -q 'reason=handshake_timeout' "$T/moatd.log"
wait "$silent" || true
log "silent clients timed out, the cap held"
[ "$(tls client-ec $SRV_IP 8443 --request "after the storm")" = "after the storm" ] ||
	fail "good client refused after the hostile ones"
[ "$(app_connections 8443)" = 1 ] || fail "app saw $(app_connections 8443) connections, want 1"
moat status --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["ports"][0]
assert p["handshaking"] == 0, p
assert p["rejected"]["handshake_timeout"] >= 1 and p["rejected"]["handshake_limit"] >= 1, p' ||
	fail "status does not account for the hostile clients"
stop_moatd
