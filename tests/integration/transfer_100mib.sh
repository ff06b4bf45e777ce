#!/usr/bin/env bash
# lanes: host
# 100 MiB each way through moat, checked by SHA-256, with the rate against direct.
source "$(dirname "$0")/../lib/common.sh"
size=$((100 * 1024 * 1024))
topo_up
start_app 9001 sha
start_app 9002 source --bytes $size
start_moatd
attach_default 9001
attach_default 9002

out=$(tls client-ec $SRV_IP 9001 --upload $size 2> "$T/up.err") || fail "upload refused: $(cat "$T/up.err")"
sent=$(echo "$out" | awk '/^sent-sha/ {print $2}')
got=$(echo "$out" | awk '/^sha/ {print $2}')
[ -n "$sent" ] && [ "$sent" = "$got" ] || fail "client->app hash mismatch: sent $sent, app got $got"
log "client->app 100 MiB intact; $(cat "$T/up.err")"

out=$(tls client-ec $SRV_IP 9002 --download $size 2> "$T/down.err") || fail "download failed: $out $(cat "$T/down.err")"
[[ $out == "download intact"* ]] || fail "app->client: $out"
log "app->client 100 MiB intact; $(cat "$T/down.err")"
moat status --json | python3 -c '
import json, sys
d = json.load(sys.stdin)
print("  fallbacks:", d["fallbacks"])' || true
stop_moatd
