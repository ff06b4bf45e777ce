#!/usr/bin/env bash
# lanes: host san
# Half-close both ways: the client's close_notify reaches the app as EOF and
# the app's reply still comes back; the app's EOF reaches the client as
# close_notify and the client can still send.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 9001 sha
start_app 9002 hello
start_moatd
attach_default 9001
attach_default 9002

out=$(tls client-ec $SRV_IP 9001 --tls 1.3 --request "half-closed request") || fail "client half-close: refused"
want=$(printf 'half-closed request' | sha256sum | cut -d' ' -f1)
[ "$out" = "sha $want" ] || fail "client half-close: app reply '$out', want 'sha $want'"
log "client close_notify -> app EOF; app reply after it arrived"

out=$(tls client-ec $SRV_IP 9002 --tls 1.3 --after-close-send "still talking") || fail "app half-close: refused"
[ "$out" = "hello" ] || fail "app half-close: got '$out'"
wait_for "app to receive data after its half-close" grep -q "after-half-close 'still talking'" "$T/app-9002.log"
log "app EOF -> client close_notify; client data after it reached the app"
stop_moatd
