#!/usr/bin/env bash
# client-check.sh - runs on the client VM (demo-cross-vm.sh starts it):
# curl against the protected app on the server VM, without and with a client
# certificate. Exits 0 only if moat refused the first and served the second.
#
# Usage: client-check.sh [SERVER_IP [PORT [CERT_DIR]]]
#   defaults: 192.168.56.10 8080 /moat-vagrant/shared (ca.crt client.crt client.key)
set -euo pipefail

server=${1:-${MOAT_SERVER_IP:-192.168.56.10}}
port=${2:-${MOAT_APP_PORT:-8080}}
dir=${3:-/moat-vagrant/shared}
url=https://$server:$port/
fails=0

step() { printf '\n==> %s\n' "$*"; }
show() { printf '    $ %s\n' "$*"; }
indent() { sed 's/^/    /'; }

for f in ca.crt client.crt client.key; do
    [[ -s $dir/$f ]] || { echo "client-check: $dir/$f missing (run demo-cross-vm.sh on the host)" >&2; exit 2; }
done
cd "$dir"

step "client $(hostname) -> $url, no client certificate: must be refused"
show "curl --cacert ca.crt $url"
if out=$(curl -sS -m 10 --cacert ca.crt "$url" 2>&1); then
    echo "$out" | indent
    echo "    UNEXPECTED: served without a client certificate"
    fails=$((fails + 1))
else
    echo "$out" | indent
    echo "    refused, as it should be"
fi

step "plaintext HTTP to the same port: must not be served"
show "curl http://$server:$port/"
if out=$(curl -sS -m 10 "http://$server:$port/" 2>&1); then
    echo "$out" | indent
    echo "    UNEXPECTED: plaintext served"
    fails=$((fails + 1))
else
    echo "$out" | indent
    echo "    not served, as it should be"
fi

step "with the client certificate: must be served"
show "curl --cacert ca.crt --cert client.crt --key client.key $url"
if out=$(curl -sS -m 10 --cacert ca.crt --cert client.crt --key client.key "$url" 2>&1) &&
   [[ $out == *"Hello from the app behind moat"* ]]; then
    echo "$out" | indent
    echo "    served, as it should be"
else
    echo "$out" | indent
    echo "    UNEXPECTED: the certified client was not served"
    fails=$((fails + 1))
fi

echo
if ((fails)); then
    echo "client-check: FAILED ($fails unexpected result(s))"
    exit 1
fi
echo "client-check: OK: moat refused the client without a certificate and served the one with it"
