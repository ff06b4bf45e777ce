#!/usr/bin/env bash
# lanes: host vm
# Reloads (new identity rules, rotated CRL, SIGHUP, file edits) while 100 MiB
# flow each way: the transfers complete intact, no new connection is refused
# during the reloads, and the established sessions are never touched.
source "$(dirname "$0")/../lib/common.sh"
size=$((100 * 1024 * 1024))
topo_up
start_app 9001 sha
start_app 9002 source --bytes $size
start_app 9003 echo
write() { # EXTRA-KEY: all three ports, with a varying rule
	policy all.conf <<P
$(port_section 9001 "$1")
$(port_section 9002 "$1")
$(port_section 9003 "$1")
P
}
write 'allow_cn = client-*'
start_moatd

tls client-ec $SRV_IP 9001 --upload $size > "$T/up" 2> "$T/up.err" &
up=$!
tls client-ec $SRV_IP 9002 --download $size > "$T/down" 2> "$T/down.err" &
down=$!
for i in $(seq 1 6); do
	case $((i % 3)) in
	0) write "crl = $PKI/ca.crl"; reload_ok ;;
	1) write "allow_cn = client-e*"; kill -HUP "$MOATD_PID" ;;
	2) write "allow_uri = spiffe://example.org/**" ;;  # inotify
	esac
	sleep 0.4
	# New handshakes during the reload storm are served (identity allowing).
	if [ $((i % 3)) -ne 2 ]; then
		expect_ok client-ec $SRV_IP 9003
	fi
done
wait $up || fail "upload failed: $(cat "$T/up.err")"
wait $down || fail "download failed: $(cat "$T/down" "$T/down.err")"
sent=$(awk '/^sent-sha/ {print $2}' "$T/up")
got=$(awk '/^sha/ {print $2}' "$T/up")
[ -n "$sent" ] && [ "$sent" = "$got" ] || fail "upload hash mismatch: sent $sent, app got $got"
grep -q 'download intact' "$T/down" || fail "download: $(cat "$T/down")"
n=$(grep -c 'policy loaded' "$T/moatd.log")
[ "$n" -ge 6 ] || fail "only $n reloads happened"
grep -q 'refused by the reloaded policy' "$T/moatd.log" && fail "a session was closed by a reload"
log "$n reloads during 100 MiB each way: both intact; new clients served throughout"
stop_moatd
