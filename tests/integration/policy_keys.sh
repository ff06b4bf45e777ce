#!/usr/bin/env bash
# lanes: host san
# Policy keys other than identity: TLS versions, TLS 1.2 ciphers and 1.3
# suites, the chain depth limit with an intermediate CA, backend address,
# handshake timeout and concurrent handshake cap; [moat] defaults.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_app 9100 echo
start_moatd

set_policy() { # FILE KEYS...: one [port 8443] section, reloaded
	local file=$1; shift
	policy "$file" <<P
$(port_section 8443 "$@")
P
	reload_ok
}

set_policy vs0.conf 'min_tls = 1.3'
expect_ok client-ec $SRV_IP 8443 --tls 1.3
expect_refused client-ec $SRV_IP 8443 --tls 1.2
set_policy vs0.conf 'max_tls = 1.2'
expect_ok client-ec $SRV_IP 8443 --tls 1.2
expect_refused client-ec $SRV_IP 8443 --tls 1.3
log "min_tls and max_tls"

set_policy vs0.conf 'max_tls = 1.2' 'ciphers = ECDHE-ECDSA-AES256-GCM-SHA384'
expect_refused client-ec $SRV_IP 8443 --cipher ECDHE-ECDSA-AES128-GCM-SHA256
tls client-ec $SRV_IP 8443 --cipher ECDHE-ECDSA-AES256-GCM-SHA384 --print-version --request x 2> "$T/v" >/dev/null ||
	fail "allowed TLS 1.2 cipher refused"
grep -q 'ECDHE-ECDSA-AES256-GCM-SHA384' "$T/v" || fail "cipher: $(cat "$T/v")"
set_policy vs0.conf 'ciphersuites = TLS_CHACHA20_POLY1305_SHA256'
tls client-ec $SRV_IP 8443 --tls 1.3 --print-version --request x 2> "$T/v" >/dev/null || fail "1.3 refused"
grep -q 'TLS_CHACHA20_POLY1305_SHA256' "$T/v" || fail "suite: $(cat "$T/v")"
log "ciphers (TLS 1.2) and ciphersuites (TLS 1.3)"

# Intermediates in the bundle; verify_depth caps the chain.
policy vs0.conf <<P
[port 8443]
ca = $PKI/ca-with-inter.crt
cert = $PKI/server.crt
key = $PKI/server.key
P
reload_ok
expect_ok client-inter $SRV_IP 8443
expect_ok client-ec $SRV_IP 8443
printf 'verify_depth = 0\n' >> "$POLICY/vs0.conf"
reload_ok
expect_refused client-inter $SRV_IP 8443
expect_reason chain_too_long
expect_ok client-ec $SRV_IP 8443
log "intermediate CA in the bundle; verify_depth refuses longer chains"

# backend: the app lives on another port (and nothing listens on 8443's twin).
set_policy vs0.conf 'backend = 127.0.0.1:9100'
before=$(app_connections 9100)
expect_ok client-ec $SRV_IP 8443
[ "$(app_connections 9100)" -gt "$before" ] || fail "backend 9100 not used"
log "backend address"

# handshake_timeout and max_handshakes: silent TCP clients.
set_policy vs0.conf 'handshake_timeout = 700' 'max_handshakes = 1'
in_cli python3 -c "
import socket, time
s = socket.create_connection(('$SRV_IP', 8443), timeout=5)
t = time.monotonic(); s.settimeout(5)
try:
    s.recv(1)
except OSError:
    pass
print(round(time.monotonic() - t, 1))" > "$T/silent" &
silent=$!
sleep 0.3
expect_refused client-ec $SRV_IP 8443
expect_reason handshake_limit
wait $silent
took=$(cat "$T/silent")
python3 -c "import sys; sys.exit(0 if 0.3 <= $took <= 2.5 else 1)" || fail "silent client dropped after ${took}s, want ~0.7"
expect_reason handshake_timeout
expect_ok client-ec $SRV_IP 8443
log "handshake_timeout ${took}s and max_handshakes 1"

# [moat] defaults apply to ports that do not set their own.
policy moat.conf <<P
[moat]
max_handshakes = 1
P
set_policy vs0.conf
moat status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
p = [p for p in d["ports"] if p["port"] == 8443][0]
assert p["origin"].endswith("vs0.conf"), p' || fail "status: policy origin"
stop_moatd
