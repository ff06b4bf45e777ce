#!/usr/bin/env bash
# Vagrant provisioning for both VMs: the few Debian packages every VM needs.
# Idempotent; runs as root inside the VM.
set -euo pipefail

packages=(ca-certificates curl openssl rsync iproute2)
missing=()
for p in "${packages[@]}"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "provision: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "provision: $(hostname): base packages present ($(uname -r))"
