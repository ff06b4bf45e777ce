#!/usr/bin/env bash
# lanes: host san
# Live reload by moat reload, SIGHUP and file changes (inotify). A broken
# policy is refused whole and service continues unchanged. Rotated server
# certificates take effect without a restart; listeners of unchanged ports
# stay. moat attach is refused on ports the files define (exit 5).
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
start_app 9001 echo
policy all.conf <<P
$(port_section 8443 'allow_cn = client-ec')
P
start_moatd
expect_ok client-ec $SRV_IP 8443
expect_refused client-rsa $SRV_IP 8443

# A broken file in the directory: refused whole, nothing changes.
policy all.conf <<P
$(port_section 8443 'allow_cn = client-rsa')
$(port_section 9001 'bogus_key = 1')
P
rc=0; moat reload > "$T/reload.out" 2>&1 || rc=$?
[ $rc -eq 4 ] || fail "reload of a broken policy exited $rc: $(cat "$T/reload.out")"
grep -q "all.conf:10: error: unknown key 'bogus_key'" "$T/reload.out" || fail "$(cat "$T/reload.out")"
grep -q 'the running policy stays in force' "$T/reload.out" || fail "$(cat "$T/reload.out")"
expect_ok client-ec $SRV_IP 8443
expect_refused client-rsa $SRV_IP 8443
out=$(in_cli python3 -c "
import socket
s = socket.create_connection(('$SRV_IP', 9001), timeout=5)
s.sendall(b'plain'); s.shutdown(socket.SHUT_WR); print(s.recv(100).decode())") || fail "9001 changed"
[ "$out" = plain ] || fail "9001 not plaintext: $out"
log "broken policy refused whole; the running one unchanged"

# Fixing the file is picked up by inotify, no command needed.
policy all.conf <<P
$(port_section 8443 'allow_cn = client-rsa')
$(port_section 9001)
P
wait_for "inotify reload" grep -q 'policy loaded (policy files changed): 2 port' "$T/moatd.log"
expect_ok client-rsa $SRV_IP 8443
expect_refused client-ec $SRV_IP 8443
expect_ok client-ec $SRV_IP 9001
log "edit picked up by inotify: new identity rule, new port"

# SIGHUP; and a rotated server certificate (same path) used at once.
cp "$PKI/server.crt" "$T/srv.crt"; cp "$PKI/server.key" "$T/srv.key"
policy all.conf <<P
[port 8443]
ca = $PKI/ca.crt
cert = $T/srv.crt
key = $T/srv.key
P
kill -HUP "$MOATD_PID"
wait_for "SIGHUP reload" grep -q 'policy loaded (SIGHUP): 1 port' "$T/moatd.log"
serial() { echo | in_cli timeout 5 openssl s_client -connect $SRV_IP:8443 -CAfile "$PKI/ca.crt" \
	-cert "$PKI/client-ec.crt" -key "$PKI/client-ec.key" 2>/dev/null | openssl x509 -noout -serial; }
[ "$(serial)" = "$(openssl x509 -in "$PKI/server.crt" -noout -serial)" ] || fail "server cert before rotation"
# A new server certificate for the same key and addresses, swapped in by rename.
openssl req -new -key "$PKI/server.key" -subj /CN=server-rotated -out "$T/r.csr" 2>/dev/null
openssl ca -batch -config "$PKI/ca.cnf" -in "$T/r.csr" -out "$T/r.crt" -extfile "$PKI/server.ext" \
	-notext -days 30 2>/dev/null || fail "cannot sign a rotated server cert"
cp "$T/r.crt" "$T/srv.crt.new" && mv "$T/srv.crt.new" "$T/srv.crt"
want=$(openssl x509 -in "$T/r.crt" -noout -serial)
rotated() { [ "$(serial)" = "$want" ]; }
wait_for "rotation reload" rotated
expect_refused none $SRV_IP 8443
log "SIGHUP reload; rotated server certificate served without a restart"

# Port 9001 left the policy: plaintext again. Attach conflicts with the files.
expect_ok client-ec $SRV_IP 8443
rc=0; moat attach 8443 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" \
	> "$T/a.out" 2>&1 || rc=$?
[ $rc -eq 5 ] && grep -q 'defined by policy file .*all.conf' "$T/a.out" || fail "attach over policy: $rc $(cat "$T/a.out")"
rc=0; moat attach 8443 --iface vs0 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" \
	> "$T/a.out" 2>&1 || rc=$?
[ $rc -eq 5 ] || fail "attach --iface vs0 over all.conf: $rc $(cat "$T/a.out")"
rc=0; moat detach 8443 > "$T/a.out" 2>&1 || rc=$?
[ $rc -eq 5 ] && grep -q 'remove it there' "$T/a.out" || fail "detach of a policy port: $rc $(cat "$T/a.out")"
attach_default 9001
# ... and a policy that would overlap a runtime attachment is refused.
policy all.conf <<P
$(port_section 8443)
$(port_section 9001)
P
rc=0; moat reload > "$T/reload.out" 2>&1 || rc=$?
[ $rc -eq 4 ] && grep -q "port 9001 is attached at run time" "$T/reload.out" || fail "overlap: $(cat "$T/reload.out")"
[ ! -e "$POLICY/9001.conf" ] && ! grep -rq 9001 /etc/moat 2>/dev/null || fail "attach wrote policy files"
log "attach/detach refused on policy ports (exit 5); policy overlapping an attachment refused"
stop_moatd
