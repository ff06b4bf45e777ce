#!/usr/bin/env bash
# selftest.sh - quick check of the kTLS VM lane.
#
# Usage: tests/vm/selftest.sh [--kernel SUITE]... [--no-harness]
#   Boots each kernel (default: $VM_KERNELS or "bookworm trixie sid") with
#   vm-run.sh and checks inside: uname -r, /proc/net/tls_stat, veth between two
#   network namespaces, bpftool / the bpf syscall and bpffs, module autoload,
#   openssl version, and a TLS 1.3 (and 1.2) session over loopback with the
#   openssl CLI that really uses kTLS (tls_stat counters go up).
#   Unless --no-harness, also checks vm-run.sh itself once (on the first kernel):
#   exit status and env passing, a cwd under the host's /tmp, the timeout code.
#   Prints what it checked; exits non-zero if anything failed.
#
#   tests/vm/selftest.sh --in-guest   (what runs inside the VM)
set -euo pipefail

prog=${0##*/}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# ---------------------------------------------------------------------------
# Inside the VM.
in_guest() {
    local fails=0 t tmp port i before after
    local t_start
    t_start=$(date +%s%N)
    took() {  # time since the guest checks started
        local n
        n=$(($(date +%s%N) - t_start))
        printf '%d.%02d s' $((n / 1000000000)) $((n / 10000000 % 100))
    }
    ok() { printf '  ok   %s [at %s]\n' "$*" "$(took)"; }
    bad() { printf '  FAIL %s [at %s]\n' "$*" "$(took)"; fails=$((fails + 1)); }
    check() {  # check DESCRIPTION COMMAND...
        local desc=$1 out
        shift
        if out=$("$@" 2>&1); then ok "$desc"; else bad "$desc"; printf '%s\n' "$out" | sed 's/^/       | /'; fi
    }
    tls_counter() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }

    [[ ${MOAT_VM:-} == 1 ]] || { echo "$prog: --in-guest must run inside vm-run.sh" >&2; return 2; }
    tmp=$(mktemp -d)

    if [[ $(uname -r) == "${MOAT_VM_KERNEL:-}" ]]; then
        ok "kernel $(uname -r) (MOAT_VM_KERNEL matches uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { printf "%d MB", $2 / 1024 }' /proc/meminfo)"
    else
        bad "MOAT_VM_KERNEL='${MOAT_VM_KERNEL:-}' but uname -r is $(uname -r)"
    fi
    if [[ -r /proc/net/tls_stat ]]; then ok "/proc/net/tls_stat present (kTLS available)"; else bad "/proc/net/tls_stat missing"; fi
    # shellcheck disable=SC2016  # expanded by the inner shell
    check "writable /tmp, /etc, /var, /root (tmpfs and overlays)" \
        sh -c 'for d in /tmp /etc /var /root; do echo x >"$d/.moat-selftest" && rm "$d/.moat-selftest" || exit 1; done'
    check "cwd $PWD is the shared repo" test -r "$PWD/tests/vm/selftest.sh"

    check "veth pair between two network namespaces (ping across)" sh -c '
        ip netns add moat-st-a && ip netns add moat-st-b &&
        ip link add st-a netns moat-st-a type veth peer name st-b netns moat-st-b &&
        ip -n moat-st-a addr add 10.199.0.1/24 dev st-a && ip -n moat-st-b addr add 10.199.0.2/24 dev st-b &&
        ip -n moat-st-a link set st-a up && ip -n moat-st-b link set st-b up &&
        ip -n moat-st-a link set lo up && ip -n moat-st-b link set lo up &&
        ip netns exec moat-st-a ping -c1 -W5 10.199.0.2 >/dev/null &&
        ip netns del moat-st-a && ip netns del moat-st-b'
    check "module autoload through the host's modprobe (dummy)" sh -c \
        'ip link add moat-st-d type dummy && ip link del moat-st-d && grep -q "^dummy " /proc/modules'

    if command -v bpftool >/dev/null; then
        check "bpftool prog (bpf syscall)" bpftool prog show
        check "bpf map create + pin in bpffs /sys/fs/bpf" sh -c '
            bpftool map create /sys/fs/bpf/moat_selftest type array key 4 value 4 entries 1 name moat_st &&
            bpftool map show pinned /sys/fs/bpf/moat_selftest >/dev/null && rm /sys/fs/bpf/moat_selftest'
    else
        check "bpf syscall (python3 ctypes: BPF_MAP_CREATE)" python3 -c '
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack("IIII", 2, 4, 4, 1), 128)  # BPF_MAP_TYPE_ARRAY
fd = libc.syscall(321, 0, attr, 128)  # __NR_bpf, BPF_MAP_CREATE
raise SystemExit(0 if fd >= 0 else 1)'
    fi

    if command -v openssl >/dev/null; then
        ok "openssl: $(openssl version)"
    else
        bad "openssl not installed"
        printf '%s failure(s)\n' "$fails"
        return 1
    fi

    # kTLS with the openssl CLI: no -ktls flag, but "Options = KTLS" in the
    # system_default section of the config turns SSL_OP_ENABLE_KTLS on.
    cat >"$tmp/openssl.cnf" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_module
[ssl_module]
system_default = system_default_sect
[system_default_sect]
Options = KTLS
EOF
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
            -subj /CN=localhost -keyout "$tmp/key.pem" -out "$tmp/cert.pem" >"$tmp/req.log" 2>&1; then
        bad "openssl req (self-signed certificate)"; sed 's/^/       | /' "$tmp/req.log"
    fi
    port=44330
    for proto in tls1_3 tls1_2; do
        port=$((port + 1))
        before=$(tls_counter TlsTxSw) rxbefore=$(tls_counter TlsRxSw)
        OPENSSL_CONF=$tmp/openssl.cnf openssl s_server -accept "127.0.0.1:$port" -naccept 1 \
            -cert "$tmp/cert.pem" -key "$tmp/key.pem" "-$proto" -www >"$tmp/server.log" 2>&1 &
        local spid=$!
        for ((i = 0; i < 100; i++)); do
            ss -Hltn "sport = :$port" | grep -q . && break
            sleep 0.1
        done
        # The server's -www page is written with SSL_write, i.e. through kTLS TX.
        printf 'GET / HTTP/1.0\r\n\r\n' | OPENSSL_CONF=$tmp/openssl.cnf timeout 60 \
            openssl s_client -connect "127.0.0.1:$port" -servername localhost "-$proto" -ign_eof \
            >"$tmp/client.log" 2>&1 || true
        wait "$spid" 2>/dev/null || true
        after=$(tls_counter TlsTxSw) rxafter=$(tls_counter TlsRxSw)
        local what="TX"
        [[ $proto == tls1_2 ]] && what="TX+RX"
        if ((after > before)) && grep -q 'Protocol *: TLSv1\.[23]' "$tmp/client.log" &&
           grep -qi 'Using Kernel TLS for sending' "$tmp/client.log" &&
           { [[ $proto == tls1_3 ]] || ((rxafter > rxbefore)); }; then
            ok "openssl s_server/s_client ${proto/tls1_/TLS 1.} over loopback with kTLS $what (TlsTxSw $before -> $after, TlsRxSw $rxbefore -> $rxafter)"
        else
            bad "openssl ${proto/tls1_/TLS 1.} kTLS session (TlsTxSw $before -> $after, TlsRxSw $rxbefore -> $rxafter)"
            sed 's/^/       | client: /' "$tmp/client.log" | grep -v -- '-----\|^       | client: [A-Za-z0-9+/=]\{40,\}$' | tail -n 25
            sed 's/^/       | server: /' "$tmp/server.log" | tail -n 10
        fi
    done

    rm -rf "$tmp"
    if ((fails)); then printf '%s failure(s)\n' "$fails"; return 1; fi
    echo "all guest checks passed"
}

if [[ ${1:-} == --in-guest ]]; then
    in_guest
    exit
fi

# ---------------------------------------------------------------------------
# On the host.
kernels=() harness=1
while (($#)); do
    case $1 in
        --kernel) kernels+=("${2:?}"); shift ;;
        --kernel=*) kernels+=("${1#*=}") ;;
        --no-harness) harness=0 ;;
        -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "$prog: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if ((${#kernels[@]} == 0)); then
    read -r -a kernels <<<"${VM_KERNELS:-bookworm trixie sid}"
fi

repo=$(cd "$here/../.." && pwd -P)
vmrun=$here/vm-run.sh
failed=()
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

if ((harness)); then
    k=${kernels[0]}
    echo "== vm-run.sh harness checks ($k kernel)"
    tmpd=$(mktemp -d /tmp/moat-vm-selftest.XXXXXX)
    trap 'rm -rf "$tmpd"' EXIT
    echo ok >"$tmpd/marker"
    t=$(now)
    set +e
    # shellcheck disable=SC2016  # expanded inside the VM
    out=$(cd "$tmpd" && TEST_MOAT_SELFTEST='a b$c' "$vmrun" --kernel "$k" -- \
        bash -c 'printf "%s|%s|%s\n" "$(cat marker)" "$TEST_MOAT_SELFTEST" "$PWD"; echo to-stderr >&2; exit 3' 2>/dev/null)
    rc=$?
    set -e
    expect="ok|a b\$c|$tmpd"
    if [[ $rc == 3 && $out == "$expect"$'\n'to-stderr ]]; then
        echo "  ok   exit status 3 returned, TEST_* env passed, cwd under host /tmp shared, stderr captured ($(secs "$t" "$(now)") s)"
    else
        echo "  FAIL harness run: rc=$rc (want 3), output='$out' (want '$expect' + 'to-stderr')"
        failed+=("harness")
    fi
    t=$(now)
    set +e
    "$vmrun" --kernel "$k" --timeout 3 -- sleep 60 >/dev/null 2>&1
    rc=$?
    set -e
    if [[ $rc == 124 ]]; then
        echo "  ok   --timeout 3 gives exit status 124 ($(secs "$t" "$(now)") s)"
    else
        echo "  FAIL --timeout 3 gave exit status $rc (want 124)"
        failed+=("timeout")
    fi
fi

for k in "${kernels[@]}"; do
    echo "== $k"
    t=$(now)
    set +e
    (cd "$repo" && "$vmrun" --kernel "$k" --timeout 300 -- tests/vm/selftest.sh --in-guest)
    rc=$?
    set -e
    if ((rc == 0)); then
        echo "  -> $k: PASS ($(secs "$t" "$(now)") s including boot)"
    else
        echo "  -> $k: FAIL (exit status $rc)"
        failed+=("$k")
    fi
done

if ((${#failed[@]})); then
    echo "$prog: FAILED: ${failed[*]}"
    exit 1
fi
echo "$prog: all VM lane checks passed (${kernels[*]})"
