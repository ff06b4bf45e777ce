#!/usr/bin/env bash
# test-on-server.sh - run `make test` on the server VM, run on the host from vagrant/.
#
# Usage: ./test-on-server.sh [MAKE_ARGS...]
#   e.g. ./test-on-server.sh                      # all lanes (the VM lane boots 3 kernels)
#        ./test-on-server.sh VM_KERNELS=bookworm  # one kernel for the VM lane
#        MOAT_TEST_TARGET=vm-test ./test-on-server.sh
# Pushes the current working tree first (`vagrant rsync server`), then runs
# `sudo make ${MOAT_TEST_TARGET:-test} MAKE_ARGS...` in /moat. The exit status is
# make's. The server VM's own kernel (Debian 12, 6.1) has kTLS, so moat's data
# path runs on kTLS there natively.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
command -v vagrant >/dev/null || { echo "test-on-server: vagrant not found (apt-get install vagrant)" >&2; exit 1; }
if ! vagrant status server --machine-readable | grep -q ',server,state,running'; then
    echo "test-on-server: the server VM is not running; 'vagrant up server' first" >&2
    exit 1
fi

args=""
for a in "$@"; do
    args+=" $(printf '%q' "$a")"
done
target=${MOAT_TEST_TARGET:-test}
[[ $target =~ ^[A-Za-z0-9_.-]+$ ]] || { echo "test-on-server: bad MOAT_TEST_TARGET '$target'" >&2; exit 2; }

echo "==> vagrant rsync server"
vagrant rsync server
echo "==> on the server VM: cd /moat && sudo make $target$args"
exec vagrant ssh server --no-tty -c "cd /moat && sudo make $target$args"
