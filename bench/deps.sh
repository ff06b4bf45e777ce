#!/bin/sh
# Install the Debian packages the benchmark needs; does nothing when all are there.
# nginx's stream module is a separate package (nginx-light has none built in).
set -eu
PKGS="stunnel4 haproxy nginx libnginx-mod-stream gnuplot-nox openssl libssl-dev gcc make \
python3 iproute2 util-linux procps"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "bench-deps: missing:$missing (run as root to install)" >&2
	exit 1
fi
echo "bench-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
apt-get install -y --no-install-recommends $missing ||
	{ apt-get update && apt-get install -y --no-install-recommends $missing; }
