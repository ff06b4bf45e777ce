#!/usr/bin/env bash
# lanes: host
# The Vagrant topology (vagrant/) is valid: vagrant validate runs offline.
set -euo pipefail
cd "$(dirname "$0")/../../vagrant"
command -v vagrant >/dev/null || { echo "SKIP: vagrant is not installed (make deps installs it)"; exit 77; }
out=$(vagrant validate 2>&1) || { echo "FAIL: vagrant validate: $out"; exit 1; }
echo "$out" | grep -q "validated successfully" || { echo "FAIL: unexpected output: $out"; exit 1; }
grep -q 'config.vm.define "server"' Vagrantfile && grep -q 'config.vm.define "client"' Vagrantfile ||
	{ echo "FAIL: Vagrantfile must define a server and a client VM"; exit 1; }
echo "  $out"
