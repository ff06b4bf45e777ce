#!/usr/bin/env bash
# demo-cross-vm.sh - the cross-VM moat demo, run on the host from vagrant/.
#
# Usage: ./demo-cross-vm.sh [--up] [--provider NAME]
#   --up        run `vagrant up` first (otherwise both VMs must be running)
#   --provider  passed to `vagrant up` (libvirt or virtualbox)
#
# 1. copies the client bundle (ca.crt, client.crt, client.key) that the server
#    VM made with the openssl CLI into vagrant/shared/, and pushes that synced
#    folder to the client VM (`vagrant rsync client`);
# 2. on the client VM, curl without a certificate (must fail) and with
#    --cert/--key (must succeed): client-check.sh;
# 3. shows `moat status` on the server VM.
# Exit status 0 when the demo behaved as expected.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
server_ip=${MOAT_SERVER_IP:-192.168.56.10}
port=${MOAT_APP_PORT:-8080}
up=0 provider=()
while (($#)); do
    case $1 in
        --up) up=1 ;;
        --provider) provider=(--provider "${2:?}"); shift ;;
        --provider=*) provider=(--provider "${1#*=}") ;;
        -h|--help) sed -n '2,15s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "demo-cross-vm: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

command -v vagrant >/dev/null || { echo "demo-cross-vm: vagrant not found (apt-get install vagrant)" >&2; exit 1; }

if ((up)); then
    vagrant up "${provider[@]}"
fi
for vm in server client; do
    if ! vagrant status "$vm" --machine-readable | grep -q ",$vm,state,running"; then
        echo "demo-cross-vm: the $vm VM is not running; start both with 'vagrant up' (or pass --up)" >&2
        exit 1
    fi
done

echo "==> copying the client certificate from the server VM to vagrant/shared/"
mkdir -p shared
chmod 700 shared
for f in ca.crt client.crt client.key; do
    # PEM is text; --no-tty keeps ssh from rewriting newlines, tr is belt and braces.
    vagrant ssh server --no-tty -c "sudo cat /etc/moat-demo/pki/$f" 2>/dev/null | tr -d '\r' >"shared/$f.tmp"
    if ! grep -q -- '-----BEGIN' "shared/$f.tmp"; then
        rm -f "shared/$f.tmp"
        echo "demo-cross-vm: could not read /etc/moat-demo/pki/$f on the server VM (provisioned?)" >&2
        exit 1
    fi
    mv "shared/$f.tmp" "shared/$f"
    echo "    shared/$f"
done
chmod 600 shared/client.key

echo "==> vagrant rsync client   (pushes vagrant/ with shared/ to /moat-vagrant on the client VM)"
vagrant rsync client

echo "==> on the client VM: client-check.sh $server_ip $port"
rc=0
vagrant ssh client --no-tty -c "bash /moat-vagrant/client-check.sh '$server_ip' '$port' /moat-vagrant/shared" || rc=$?

echo
echo "==> on the server VM: moat status"
vagrant ssh server --no-tty -c "sudo moat status" || true

if ((rc)); then
    echo "demo-cross-vm: FAILED"
    exit 1
fi
echo "demo-cross-vm: done: across two VMs, moat let only the client with a certificate through"
