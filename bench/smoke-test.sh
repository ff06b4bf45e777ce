#!/bin/bash
# SPDX-License-Identifier: MIT
# Smoke test of the benchmark harness: runs the quick version (BENCH_QUICK=1,
# about a minute) and fails if the harness is broken: a target that fails its
# enforcement check or cannot be measured, a metric missing from the CSV, or
# a missing chart or README snippet.
#
# moat itself may be skipped only while build/moatd and build/moat do not
# exist; once they do, moat must be measured like every peer.
#
#   bench/smoke-test.sh            (root; BUILD=build by default)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=${BENCH_PY:-/usr/bin/python3}
OUT=$BUILD/bench/quick

if [ "$(id -u)" != 0 ]; then
	echo "smoke-test: SKIP: needs root (network namespaces)"
	exit 0
fi
make -s -f bench/bench.mk BUILD="$BUILD" bench-tools

rm -rf "$OUT"
rc=0
BENCH_QUICK=1 "$PY" bench/moatbench.py --build "$BUILD" --out "$OUT" >"$BUILD/bench/smoke.out" 2>"$BUILD/bench/smoke.err" || rc=$?
cat "$BUILD/bench/smoke.out"
if [ "$rc" != 0 ]; then
	tail -n 30 "$BUILD/bench/smoke.err" >&2
	echo "smoke-test: FAIL: harness exited $rc (3 = a target failed its enforcement check)" >&2
	exit 1
fi

"$PY" - "$OUT" "$BUILD" <<'EOF'
import csv, os, sys
out, build = sys.argv[1], sys.argv[2]
rows = list(csv.DictReader(open(os.path.join(out, 'results.csv'))))
by = {}
for r in rows:
    by.setdefault(r['target'], {})[r['metric']] = r
errors = []
moat_built = all(os.access(os.path.join(build, b), os.X_OK) for b in ('moatd', 'moat'))
tls = ['stunnel', 'haproxy', 'nginx'] + (['moat'] if moat_built else [])
common = ['bulk_up_gbps', 'bulk_down_gbps', 'cpu_machine_up_s_per_gib',
          'cpu_machine_down_s_per_gib', 'hs_ec_per_s', 'hs_rsa_per_s', 'lat_p50_us',
          'lat_p99_us', 'lat_p999_us', 'mem_kern_kib_100', 'mem_kern_kib_500']
proxied = ['cpu_proxy_up_s_per_gib', 'cpu_proxy_down_s_per_gib', 'mem_rss_kib_100',
           'mem_rss_kib_500', 'hs_ec_proxy_cpu_us', 'hs_rsa_proxy_cpu_us']
want = {t: common + proxied + ['hs_ec_ratio', 'hs_rsa_ratio'] for t in tls}
want['splice'] = common + proxied
want['direct'] = common
for t, ms in want.items():
    got = by.get(t, {})
    if 'failed' in got or 'skipped' in got:
        errors.append(f'{t}: {"failed" if "failed" in got else "skipped"}: '
                      f'{(got.get("failed") or got.get("skipped"))["note"]}')
        continue
    for m in ms:
        if m not in got or got[m]['median'] == '':
            errors.append(f'{t}: metric {m} missing')
if not moat_built and 'skipped' not in by.get('moat', {}):
    errors.append('moat: not built, but not reported as skipped')
for b in ('crypto-bound',):
    if 'hs_ec_per_s' not in by.get(b, {}):
        errors.append('crypto bound (openssl speed) missing')
for f in ('bench.png', 'results.md', 'samples.csv'):
    p = os.path.join(out, f)
    if not os.path.isfile(p) or os.path.getsize(p) < 200:
        errors.append(f'{p} missing or empty')
if open(os.path.join(out, 'bench.png'), 'rb').read(8) != b'\x89PNG\r\n\x1a\n':
    errors.append('bench.png is not a PNG')
for e in errors:
    print(f'smoke-test: FAIL: {e}', file=sys.stderr)
if errors:
    sys.exit(1)
print(f'smoke-test: OK ({len(rows)} result rows; moat {"measured" if moat_built else "skipped, not built"})')
EOF
