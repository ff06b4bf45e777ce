#!/usr/bin/env bash
# lanes: host san
# Interface files follow interfaces by name over rtnetlink: a veth created
# after moatd started gets its file's policy; a rename moves protection to
# the new name's file; a deleted interface's key is dropped and a new
# interface reusing its ifindex inherits nothing.
source "$(dirname "$0")/../lib/common.sh"
topo_up
start_app 8443 echo
policy vs1.conf <<P
$(port_section 8443)
P
policy vs9.conf <<P
$(port_section 8443 'allow_cn = client-rsa')
P
start_moatd
plain() { # HOST: plaintext reaches the app (not protected) or not
	in_cli python3 -c "
import socket
s = socket.create_connection(('$1', 8443), timeout=3)
s.sendall(b'plain'); s.shutdown(socket.SHUT_WR)
assert s.recv(100) == b'plain'" 2>/dev/null
}
keys() { moat status --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sorted(i["ifindex"] for p in d["ports"] for i in p["interfaces"]))'; }

plain $SRV_IP || fail "vs0 has no policy file but is protected"
# vs1 appears now, with a chosen ifindex so it can be reused later.
ip -n "$NS_SRV" link add vs1 index 4242 type veth peer name vc1 netns "$NS_CLI"
ip -n "$NS_SRV" addr add $SRV_IP_2/24 dev vs1
ip -n "$NS_CLI" addr add 10.201.0.2/24 dev vc1
ip -n "$NS_SRV" link set vs1 up
ip -n "$NS_CLI" link set vc1 up
wait_for "vs1 protected" grep -q 'interface vs1 is present (index 4242); now protected' "$T/moatd.log"
expect_ok client-ec $SRV_IP_2 8443
expect_refused none $SRV_IP_2 8443
plain $SRV_IP || fail "vs0 became protected"
log "veth created after moatd started: protected by vs1.conf at once"

# Rename vs1 -> vs9: vs1.conf no longer applies, vs9.conf (CN client-rsa) does.
ip -n "$NS_SRV" link set vs1 down
ip -n "$NS_SRV" link set vs1 name vs9
ip -n "$NS_SRV" link set vs9 up
ip -n "$NS_SRV" addr add $SRV_IP_2/24 dev vs9 2>/dev/null || true
wait_for "vs9 protected" grep -q 'interface vs9 is present (index 4242)' "$T/moatd.log"
expect_ok client-rsa $SRV_IP_2 8443
expect_refused client-ec $SRV_IP_2 8443
expect_reason policy_denied
log "rename vs1 -> vs9: policy follows the name"

# Delete it, then a new interface with another name reuses index 4242.
ip -n "$NS_SRV" link del vs9
wait_for "key removed" grep -q 'interface vs9 (index 4242) went away' "$T/moatd.log"
[ "$(keys)" = "[0, 0]" ] || fail "stale keys after delete: $(keys)"
ip -n "$NS_SRV" link add vsx index 4242 type veth peer name vcx netns "$NS_CLI"
ip -n "$NS_SRV" addr add 10.202.0.1/24 dev vsx
ip -n "$NS_CLI" addr add 10.202.0.2/24 dev vcx
ip -n "$NS_SRV" link set vsx up
ip -n "$NS_CLI" link set vcx up
sleep 0.5
plain 10.202.0.1 || fail "reused ifindex 4242 inherited a stale policy"
log "deleted interface dropped; reused ifindex 4242 (vsx) inherits nothing"

# Recreated under the old name with yet another index: protected again.
ip -n "$NS_SRV" link del vsx
ip -n "$NS_SRV" link add vs1 index 4343 type veth peer name vc1 netns "$NS_CLI"
ip -n "$NS_SRV" addr add $SRV_IP_2/24 dev vs1
ip -n "$NS_CLI" addr add 10.201.0.2/24 dev vc1 2>/dev/null || true
ip -n "$NS_SRV" link set vs1 up
ip -n "$NS_CLI" link set vc1 up
wait_for "vs1 again" grep -q 'interface vs1 is present (index 4343)' "$T/moatd.log"
expect_ok client-ec $SRV_IP_2 8443
log "recreated vs1 (index 4343) protected again"
stop_moatd
