#!/usr/bin/env bash
# make demo: a plaintext web app protected by moat, in its own network
# namespaces so it never touches the host's ports. Certificates are made the
# way ngrok's mutual-TLS quick start makes them (openssl CLI: RSA-4096 CA
# with a passphrase-protected key, RSA-2048 client through a CSR).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$ROOT/build
W=$(mktemp -d /tmp/moat-demo.XXXXXX)
SRV=moat-demo-srv CLI=moat-demo-cli
PORT=8080 SRV_IP=10.99.0.1
export MOAT_RUN_DIR=$W/run
MOATD_PID= APP_PID=

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '    $ %s\n' "$*"; }

cleanup() {
	set +e
	[ -n "$MOATD_PID" ] && kill "$MOATD_PID" 2>/dev/null && wait "$MOATD_PID" 2>/dev/null
	[ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null && wait "$APP_PID" 2>/dev/null
	ip netns list | grep -q "^$SRV" && nsenter --net=/run/netns/$SRV "$BIN/moatd" --cleanup >/dev/null 2>&1
	ip netns del $SRV 2>/dev/null
	ip netns del $CLI 2>/dev/null
	rm -rf "$W"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "make demo must run as root (BPF, network namespaces)"; exit 1; }
for ns in $SRV $CLI; do ip netns del $ns 2>/dev/null || true; done

step "Network: namespace $SRV ($SRV_IP, the server) <-veth-> $CLI (10.99.0.2, the client)"
ip netns add $SRV; ip netns add $CLI
ip link add demo-srv type veth peer name demo-cli
ip link set demo-srv netns $SRV; ip link set demo-cli netns $CLI
ip -n $SRV addr add $SRV_IP/24 dev demo-srv; ip -n $CLI addr add 10.99.0.2/24 dev demo-cli
for ns in $SRV $CLI; do ip -n $ns link set lo up; done
ip -n $SRV link set demo-srv up; ip -n $CLI link set demo-cli up

step "Certificates, as in ngrok's mutual-TLS quick start"
cd "$W"
show "openssl genrsa -aes256 -passout pass:demo -out ca.key 4096"
openssl genrsa -aes256 -passout pass:demo -out ca.key 4096 2>/dev/null
show "openssl req -new -x509 -days 365 -key ca.key -subj /CN=moat-demo-ca -out ca.crt"
openssl req -new -x509 -sha256 -days 365 -key ca.key -passin pass:demo -subj "/CN=moat-demo-ca" -out ca.crt
show "openssl genrsa -out client.key 2048"
openssl genrsa -out client.key 2048 2>/dev/null
show "openssl req -new -key client.key -subj /CN=demo-client -out client.csr"
openssl req -new -key client.key -subj "/CN=demo-client" -out client.csr
show "openssl x509 -req -days 365 -in client.csr -CA ca.crt -CAkey ca.key -set_serial 1 -out client.crt"
openssl x509 -req -sha256 -days 365 -in client.csr -CA ca.crt -CAkey ca.key -passin pass:demo \
	-set_serial 1 -out client.crt 2>/dev/null
# moat also needs a server certificate; the same CA signs one for the demo address.
openssl genrsa -out server.key 2048 2>/dev/null
openssl req -new -key server.key -subj "/CN=$SRV_IP" -out server.csr
openssl x509 -req -sha256 -days 365 -in server.csr -CA ca.crt -CAkey ca.key -passin pass:demo \
	-set_serial 2 -extfile <(printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$SRV_IP") \
	-out server.crt 2>/dev/null

step "A plaintext app on port $PORT (python3 -m http.server), unmodified"
mkdir -p www && echo "Hello from the app behind moat" > www/index.html
nsenter --net=/run/netns/$SRV python3 -m http.server $PORT --bind 0.0.0.0 --directory www \
	> app.log 2>&1 &
APP_PID=$!
for _ in $(seq 50); do nsenter --net=/run/netns/$SRV curl -sf http://127.0.0.1:$PORT/ >/dev/null && break; sleep 0.1; done
show "curl http://$SRV_IP:$PORT/      # before moat: plaintext, anyone can read it"
ip netns exec $CLI curl -sS -m 5 http://$SRV_IP:$PORT/ | sed 's/^/    /'

step "Start moatd and attach it to port $PORT"
nsenter --net=/run/netns/$SRV "$BIN/moatd" --policy-dir "$W/policy" > moatd.log 2>&1 &
MOATD_PID=$!
for _ in $(seq 50); do nsenter --net=/run/netns/$SRV "$BIN/moat" ping >/dev/null 2>&1 && break; sleep 0.1; done
show "moat attach $PORT --ca ca.crt --cert server.crt --key server.key"
nsenter --net=/run/netns/$SRV "$BIN/moat" attach $PORT --ca ca.crt --cert server.crt --key server.key | sed 's/^/    /'

step "curl without a client certificate: refused"
show "curl --cacert ca.crt https://$SRV_IP:$PORT/"
if ip netns exec $CLI curl -sS -m 5 --cacert ca.crt https://$SRV_IP:$PORT/ 2>&1 | sed 's/^/    /'; then
	if ip netns exec $CLI curl -sf -m 5 --cacert ca.crt https://$SRV_IP:$PORT/ >/dev/null 2>&1; then
		echo "DEMO FAILED: a client without a certificate got through"; exit 1
	fi
fi
show "curl http://$SRV_IP:$PORT/      # plaintext is not served either"
ip netns exec $CLI curl -sS -m 5 http://$SRV_IP:$PORT/ 2>&1 | sed 's/^/    /' || true

step "curl with the client certificate: accepted"
show "curl --cacert ca.crt --cert client.crt --key client.key https://$SRV_IP:$PORT/"
out=$(ip netns exec $CLI curl -sS -m 5 --cacert ca.crt --cert client.crt --key client.key https://$SRV_IP:$PORT/)
echo "$out" | sed 's/^/    /'
[ "$out" = "Hello from the app behind moat" ] || { echo "DEMO FAILED: the certified client did not get the page"; exit 1; }

step "moat status"
nsenter --net=/run/netns/$SRV "$BIN/moat" status | sed 's/^/    /'
step "moatd's log"
sed 's/^/    /' moatd.log
printf '\nDemo done: the app never changed; moat enforced mutual TLS in front of it. Cleaning up.\n'
