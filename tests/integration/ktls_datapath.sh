#!/usr/bin/env bash
# lanes: vm
# Kernel TLS data path (needs a kernel with kTLS: the VM lane). Sessions run
# on kTLS TX+RX for TLS 1.2 and 1.3 with AES-128-GCM, AES-256-GCM and
# ChaCha20-Poly1305; 100 MiB each way intact; payload never passes through
# moatd's read/write calls; close_notify half-closes; a client KeyUpdate
# rekeys on kernels that can (6.14+) and ends in a clean, logged close before.
source "$(dirname "$0")/../lib/common.sh"
[ -r /proc/net/tls_stat ] || skip "this kernel has no kTLS (/proc/net/tls_stat missing); the VM lane runs this test"
topo_up
start_app 9001 sha
start_app 9002 source --bytes $((100 * 1024 * 1024))
start_app 9003 echo
start_moatd
for p in 9001 9002 9003; do attach_default $p; done
moat status --json | python3 -c 'import json,sys; assert json.load(sys.stdin)["ktls_available"]' ||
	fail "moatd did not detect kTLS"
tls_stat() { in_srv awk -v k="$1" '$1 == k {print $2}' /proc/net/tls_stat; }

last_close() { grep 'close peer=' "$T/moatd.log" | tail -n1; }
expect_ktls_close() { # WHAT
	wait_for "session close ($1)" test "$(grep -c 'close peer=' "$T/moatd.log")" -ge "$closes"
	last_close | grep -q 'datapath=ktls' || fail "$1: not on kTLS: $(last_close)"
}

# s_client from the openssl CLI: one line echoed back over each suite.
closes=0
s_client_echo() { # VERSION-FLAG SUITE-FLAG SUITE
	local out
	out=$( (printf 'echo-%s\n' "$3"; sleep 1) | in_cli timeout 10 openssl s_client -quiet "$1" "$2" "$3" \
		-connect "$SRV_IP:9003" -CAfile "$PKI/ca.crt" -cert "$PKI/client-ec.crt" \
		-key "$PKI/client-ec.key" 2>/dev/null || true)
	[[ $out == *"echo-$3"* ]] || fail "$1 $3: no echo: '$out'"
	closes=$((closes + 1))
	expect_ktls_close "$1 $3"
}
rx0=$(tls_stat TlsRxSw); tx0=$(tls_stat TlsTxSw)
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
	s_client_echo -tls1_3 -ciphersuites $suite
done
for suite in ECDHE-ECDSA-AES128-GCM-SHA256 ECDHE-ECDSA-AES256-GCM-SHA384 ECDHE-ECDSA-CHACHA20-POLY1305; do
	s_client_echo -tls1_2 -cipher $suite
done
[ "$(tls_stat TlsRxSw)" -ge $((rx0 + 6)) ] && [ "$(tls_stat TlsTxSw)" -ge $((tx0 + 6)) ] ||
	fail "tls_stat did not count 6 kTLS RX+TX sessions: $(in_srv cat /proc/net/tls_stat | tr '\n' ' ')"
log "TLS 1.3 and 1.2 x AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305 ran on kTLS TX+RX"

# A live session seen by ss and by moat status.
(printf 'hold\n'; sleep 4) | in_cli timeout 10 openssl s_client -quiet -connect "$SRV_IP:9003" \
	-CAfile "$PKI/ca.crt" -cert "$PKI/client-ec.crt" -key "$PKI/client-ec.key" >/dev/null 2>&1 &
holder=$!
wait_for "a live kTLS session in moat status" sh -c \
	"'$BIN/moat' status --json 2>/dev/null | grep -q '\"datapath\":\"ktls\"' || nsenter --net=/run/netns/$NS_SRV '$BIN/moat' status --json | grep -q '\"datapath\":\"ktls\"'"
in_srv ss -tni state established "( sport = :9003 )" > "$T/ss.out"
grep -q 'tcp-ulp-tls' "$T/ss.out" && grep -Eq 'rxconf: (sw|hw)' "$T/ss.out" && grep -Eq 'txconf: (sw|hw)' "$T/ss.out" ||
	fail "ss does not show a kTLS TX+RX socket: $(cat "$T/ss.out")"
wait "$holder" || true
closes=$((closes + 1))
log "ss -tni: $(grep -o 'tcp-ulp-tls.*' "$T/ss.out" | head -n1)"

# 100 MiB each way, hashed.
out=$(tls client-ec $SRV_IP 9001 --upload $((100 * 1024 * 1024)) 2> "$T/up.err") || fail "upload failed"
[ "$(echo "$out" | awk '/^sent-sha/ {print $2}')" = "$(echo "$out" | awk '/^sha/ {print $2}')" ] ||
	fail "client->app 100 MiB corrupted: $out"
out=$(tls client-ec $SRV_IP 9002 --download $((100 * 1024 * 1024)) 2> "$T/down.err") || fail "download failed"
[[ $out == "download intact"* ]] || fail "app->client: $out"
closes=$((closes + 2))
expect_ktls_close "100 MiB transfers"
log "100 MiB each way intact on kTLS; client->app: $(cat "$T/up.err"); app->client: $(cat "$T/down.err")"

# Payload must not pass through moatd's memory: strace counts the bytes its
# read/write-family calls carry against what splice moves (16 MiB each way;
# strace under TCG is slow).
command -v strace >/dev/null || fail "strace missing (make deps installs it)"
strace -f -qq -e trace=read,write,recvfrom,sendto,recvmsg,sendmsg,readv,writev,splice -e signal=none \
	-o "$T/strace.out" -p "$MOATD_PID" &
tracer=$!
sleep 1
mib16=$((16 * 1024 * 1024))
out=$(tls client-ec $SRV_IP 9001 --upload $mib16 2>/dev/null) || fail "traced upload failed"
[ "$(echo "$out" | awk '/^sent-sha/ {print $2}')" = "$(echo "$out" | awk '/^sha/ {print $2}')" ] ||
	fail "traced upload corrupted"
in_srv pkill -f "app.py --port 9002" || true
start_app 9004 source --bytes $mib16
attach_default 9004
out=$(tls client-ec $SRV_IP 9004 --download $mib16 2>/dev/null) || fail "traced download failed"
[[ $out == "download intact"* ]] || fail "traced download: $out"
closes=$((closes + 2))
expect_ktls_close "traced transfers"
kill "$tracer"; wait "$tracer" 2>/dev/null || true
copied=$(awk '!/splice\(/ && /= [0-9]+$/ {n += $NF} END {print n + 0}' "$T/strace.out")
spliced=$(awk '/splice\(/ && /= [0-9]+$/ {n += $NF} END {print n + 0}' "$T/strace.out")
log "32 MiB relayed: $copied bytes through moatd's read/write calls, $spliced bytes spliced"
[ "$spliced" -ge $((2 * 2 * mib16)) ] || fail "splice moved only $spliced bytes"
[ "$copied" -lt $((256 * 1024)) ] || fail "$copied payload bytes passed through moatd's memory"

# A port pinned to the userspace relay stays there, and says why.
moat attach 9005 --ca "$PKI/ca.crt" --cert "$PKI/server.crt" --key "$PKI/server.key" \
	--datapath userspace >/dev/null || fail "attach --datapath userspace failed"
start_app 9005 echo
out=$( (printf 'user-relay\n'; sleep 1) | in_cli timeout 10 openssl s_client -quiet -connect "$SRV_IP:9005" \
	-CAfile "$PKI/ca.crt" -cert "$PKI/client-ec.crt" -key "$PKI/client-ec.key" 2>/dev/null || true)
[[ $out == *user-relay* ]] || fail "userspace-relay port: no echo"
closes=$((closes + 1))
wait_for "userspace session close" test "$(grep -c 'close peer=' "$T/moatd.log")" -ge "$closes"
last_close | grep -q 'datapath=userspace' || fail "--datapath userspace ran on: $(last_close)"
moat status --json | grep -q '"userspace relay chosen for this port":1' || fail "fallback reason not counted"
log "--datapath userspace: OpenSSL relay, reason counted"

# close_notify from the client: the app sees EOF and its answer still arrives.
out=$(tls client-ec $SRV_IP 9001 --tls 1.3 --request "half") || fail "half-close refused"
[ "$out" = "sha $(printf half | sha256sum | cut -d' ' -f1)" ] || fail "half-close answer '$out'"
closes=$((closes + 1))
expect_ktls_close "close_notify half-close"

# KeyUpdate from the client ('k': update ours, 'K': also ask the server to update).
kver=$(uname -r); major=${kver%%.*}; minor=${kver#*.}; minor=${minor%%.*}
# s_client reads commands only at the start of a read from stdin, so each
# line goes in through a fifo once the previous one has come back.
for cmd in k K; do
	fifo=$T/ku-$cmd.in; outf=$T/ku-$cmd.out
	mkfifo "$fifo"
	in_cli timeout 30 openssl s_client -tls1_3 -connect "$SRV_IP:9003" -CAfile "$PKI/ca.crt" \
		-cert "$PKI/client-ec.crt" -key "$PKI/client-ec.key" < "$fifo" > "$outf" 2>&1 &
	client=$!
	exec 7> "$fifo"
	echo "before-$cmd" >&7
	wait_for "echo before KeyUpdate $cmd" grep -q "^before-$cmd" "$outf"
	echo "$cmd" >&7
	wait_for "s_client to send KeyUpdate $cmd" grep -q KEYUPDATE "$outf"
	sleep 0.5
	( echo "after-$cmd" >&7 ) 2>/dev/null || true
	closes=$((closes + 1))
	if [ "$major" -gt 6 ] || { [ "$major" -eq 6 ] && [ "$minor" -ge 14 ]; }; then
		wait_for "echo after KeyUpdate $cmd" grep -q "^after-$cmd" "$outf"
		exec 7>&-
		wait "$client" || true
		grep -q "client KeyUpdate #1, kTLS rekeyed" "$T/moatd.log" || fail "rekey not logged"
		if [ $cmd = K ]; then
			grep -q 'rekeyed both ways' "$T/moatd.log" || fail "TX rekey not logged"
		fi
		log "KeyUpdate ($cmd) on $kver: rekeyed, session went on"
	else
		wait_for "clean close after KeyUpdate $cmd" test "$(grep -c 'kernel cannot rekey kTLS, closed' "$T/moatd.log")" -ge \
			"$([ $cmd = k ] && echo 1 || echo 2)"
		exec 7>&-
		wait "$client" || true
		! grep -q "^after-$cmd" "$outf" || fail "KeyUpdate $cmd on $kver: data after the update passed?"
		log "KeyUpdate ($cmd) on $kver: clean, logged close (kernel cannot rekey)"
	fi
done
stop_moatd
