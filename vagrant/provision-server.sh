#!/usr/bin/env bash
# Vagrant provisioning for the server VM (runs as root inside it).
#
#   provision-server.sh build   make deps && make && make install; the demo PKI
#   provision-server.sh start   the plaintext app on $MOAT_APP_PORT, moatd -d,
#                               moat attach (idempotent; run on every `vagrant up`)
#   provision-server.sh pki     (re)make the demo PKI only if missing or stale
#
# The repository is rsynced to /moat. Certificates are made with the openssl
# CLI into /etc/moat-demo/pki: a CA, a server certificate for the VM's private
# address, and a client certificate that demo-cross-vm.sh copies to the client.
set -euo pipefail

repo=/moat
pki=/etc/moat-demo/pki
www=/srv/moat-demo
server_ip=${MOAT_SERVER_IP:?}
port=${MOAT_APP_PORT:-8080}

say() { printf 'provision: %s\n' "$*"; }

make_pki() {
    if [[ -s $pki/client.crt && -s $pki/server.crt ]] &&
       openssl x509 -in "$pki/server.crt" -noout -ext subjectAltName 2>/dev/null |
           tr ',' '\n' | sed 's/^ *//' | grep -qxF "IP Address:$server_ip"; then
        say "PKI present in $pki"
        return
    fi
    say "making the demo PKI in $pki (openssl CLI)"
    rm -rf "$pki"
    mkdir -p "$pki"
    chmod 700 "$pki"
    (
        cd "$pki"
        # CA: RSA-4096 with a passphrase-protected key, as in ngrok's mutual-TLS quick start.
        openssl genrsa -aes256 -passout pass:moat-demo -out ca.key 4096 2>/dev/null
        openssl req -new -x509 -sha256 -days 365 -key ca.key -passin pass:moat-demo \
            -subj "/CN=moat demo CA" -out ca.crt
        # Server certificate for the private-network address.
        openssl genrsa -out server.key 2048 2>/dev/null
        openssl req -new -key server.key -subj "/CN=moat-server" -out server.csr
        printf 'subjectAltName=IP:%s,DNS:moat-server\nextendedKeyUsage=serverAuth\n' "$server_ip" >server.ext
        openssl x509 -req -sha256 -days 365 -in server.csr -CA ca.crt -CAkey ca.key \
            -passin pass:moat-demo -set_serial 1 -extfile server.ext -out server.crt 2>/dev/null
        # Client certificate, through a CSR.
        openssl genrsa -out client.key 2048 2>/dev/null
        openssl req -new -key client.key -subj "/CN=moat-demo-client" -out client.csr
        printf 'extendedKeyUsage=clientAuth\n' >client.ext
        openssl x509 -req -sha256 -days 365 -in client.csr -CA ca.crt -CAkey ca.key \
            -passin pass:moat-demo -set_serial 2 -extfile client.ext -out client.crt 2>/dev/null
        rm -f ./*.csr ./*.ext
        chmod 600 ./*.key
    )
}

build() {
    [[ -f $repo/Makefile ]] || { echo "provision: $repo/Makefile missing (rsync synced folder?)" >&2; exit 1; }
    cd "$repo"
    say "make deps"
    make deps
    say "make"
    make
    say "make install (moatd and moat into /usr/local/sbin)"
    make install
    make_pki
}

start() {
    local rc=0 i
    mkdir -p "$www"
    echo "Hello from the app behind moat on $(hostname)" >"$www/index.html"
    if ! systemctl is-active --quiet moat-demo-app; then
        systemctl reset-failed moat-demo-app 2>/dev/null || true
        say "starting the plaintext app: python3 -m http.server $port"
        systemd-run --unit=moat-demo-app --property=Restart=always --working-directory="$www" \
            python3 -m http.server "$port" --bind 0.0.0.0 --directory "$www" >/dev/null
    fi
    for ((i = 0; i < 50; i++)); do
        curl -sf "http://127.0.0.1:$port/" >/dev/null && break
        sleep 0.2
    done

    if ! moat ping >/dev/null 2>&1; then
        say "moatd -d"
        moatd -d
        for ((i = 0; i < 50; i++)); do
            moat ping >/dev/null 2>&1 && break
            sleep 0.2
        done
    fi
    moat ping >/dev/null || { echo "provision: moatd did not come up" >&2; exit 1; }

    say "moat attach $port --ca $pki/ca.crt --cert $pki/server.crt --key $pki/server.key"
    moat attach "$port" --ca "$pki/ca.crt" --cert "$pki/server.crt" --key "$pki/server.key" || rc=$?
    case $rc in
        0) ;;
        5) say "port $port is already attached" ;;
        *) echo "provision: moat attach failed (exit $rc)" >&2; exit "$rc" ;;
    esac
    moat status | sed 's/^/    /'
    say "server ready: https://$server_ip:$port/ requires a client certificate from $pki/ca.crt"
}

case ${1:-} in
    build) build ;;
    start) start ;;
    pki) make_pki ;;
    *) echo "usage: $0 build|start|pki" >&2; exit 2 ;;
esac
