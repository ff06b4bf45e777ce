#!/usr/bin/env bash
# lanes: host san
# proxy_protocol = yes: moat sends a PROXY v2 header before the client's
# bytes. A real HAProxy (bind ... accept-proxy) sees the client's address and
# the SAN URI (PP2_TYPE_UNIQUE_ID, fc_pp_unique_id); a strict parser sees the
# PP2_TYPE_SSL TLV with version, CN and cipher. Ports without it get none.
source "$(dirname "$0")/../lib/common.sh"
command -v haproxy >/dev/null || skip "haproxy is not installed (tests/lib/install-deps.sh)"
topo_up
cat > "$T/haproxy.cfg" <<CFG
global
	maxconn 100
defaults
	mode http
	timeout connect 5s
	timeout client 10s
	timeout server 10s
frontend moat_pp
	bind 127.0.0.1:9443 accept-proxy
	http-request return status 200 content-type text/plain lf-string "src=%[src] port=%[src_port] dst=%[dst]:%[dst_port] uid=%[fc_pp_unique_id]\n"
CFG
# nsenter directly (not through a function) so $! is haproxy itself.
nsenter --net="/run/netns/$NS_SRV" haproxy -db -f "$T/haproxy.cfg" > "$T/haproxy.out" 2>&1 &
APP_PIDS+=($!)
wait_for "haproxy" in_srv python3 -c "import socket; socket.create_connection(('127.0.0.1', 9443), timeout=1)"
start_app 9002 ppv2
start_app 8445 echo
policy all.conf <<P
$(port_section 8443 'backend = 127.0.0.1:9443' 'proxy_protocol = yes')
$(port_section 8444 'backend = 9002' 'proxy_protocol = v2')
$(port_section 8445)
P
start_moatd

curl_as() { # WHO URL
	in_cli curl -sS -m 10 --cacert "$PKI/ca.crt" --cert "$PKI/$1.crt" --key "$PKI/$1.key" "$2"
}
out=$(curl_as client-spiffe "https://$SRV_IP:8443/") || fail "curl through moat to haproxy failed"
[[ $out == "src=10.200.0.2 port="*" dst=10.200.0.1:8443 uid=spiffe://example.org/ns/prod/web" ]] ||
	fail "haproxy saw: '$out'"
out=$(curl_as client-ec "https://[$SRV_IP6]:8443/") || fail "IPv6 curl failed"
[[ $out == "src=fd00:200::2 port="*" dst=fd00:200::1:8443 uid=" ]] || fail "haproxy saw over IPv6: '$out'"
log "haproxy accept-proxy: real client address (IPv4, IPv6) and SAN URI"

out=$(tls client-spiffe $SRV_IP 8444 --tls 1.3 --request hello) || fail "ppv2 app refused"
[ "$out" = hello ] || fail "bytes after the header: '$out'"
line=$(grep '^pp2 ' "$T/app-9002.log" | tail -1)
for want in "src=10.200.0.2:" "dst=10.200.0.1:8444" "client=0x7" "verify=0" "version=TLSv1.3" \
	"cn=client-spiffe" "cipher=TLS_AES_128_GCM_SHA256" "unique_id=spiffe://example.org/ns/prod/web" \
	"san_uri=spiffe://example.org/ns/prod/web"; do
	[[ $line == *"$want"* ]] || fail "PROXY header lacks '$want': $line"
done
tls client-rsa $SRV_IP 8444 --tls 1.2 --request x >/dev/null || fail "TLS 1.2 ppv2"
line=$(grep '^pp2 ' "$T/app-9002.log" | tail -1)
[[ $line == *"version=TLSv1.2"*"cn=client-rsa"*"cipher=ECDHE-"* && $line != *unique_id* ]] || fail "TLS 1.2 header: $line"
log "PP2_TYPE_SSL: version, CN, cipher; SAN URI as UNIQUE_ID and 0xE0"

[ "$(tls client-ec $SRV_IP 8445 --request plain)" = plain ] || fail "port without proxy_protocol got a header"
stop_moatd
