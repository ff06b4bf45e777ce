#!/usr/bin/env bash
# Vagrant provisioning for the client VM. It needs only curl and openssl
# (provision-common.sh); the client certificate arrives later, when
# demo-cross-vm.sh copies it into vagrant/shared/ and runs `vagrant rsync client`.
set -euo pipefail
server=${MOAT_SERVER_IP:?}
port=${MOAT_APP_PORT:-8080}

if ping -c1 -W2 "$server" >/dev/null 2>&1; then
    echo "provision: client reaches the server VM at $server"
else
    echo "provision: note: $server does not answer ping yet (is the server VM up?)"
fi
echo "provision: client ready; run ./demo-cross-vm.sh on the host to try https://$server:$port/"
