#!/usr/bin/env bash
# Installs the Debian packages moat needs to build, run and test (idempotent).
# Only installs what is missing; runs apt-get update only when it has to.
set -euo pipefail

packages=(
	# build
	make gcc clang llvm pkg-config libbpf-dev bpftool libssl-dev libnl-3-dev libnl-route-3-dev
	libelf-dev zlib1g-dev libinih-dev
	# run and test: real clients and tools nobody here wrote
	openssl ca-certificates curl python3 iproute2 util-linux procps kmod strace
	# PROXY v2 consumers for the identity-to-the-app test
	haproxy
	# kTLS VM lane (tests/vm): qemu under TCG, a busybox initramfs, Debian kernels
	qemu-system-x86 busybox-static cpio xz-utils zstd
	# vagrant/ topology check (vagrant validate runs offline)
	vagrant vagrant-libvirt
)
${MOAT_EXTRA_PACKAGES:+packages+=($MOAT_EXTRA_PACKAGES)}

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get install)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	echo "install-deps: this script supports Debian and derivatives (apt-get not found)" >&2
	exit 1
fi
missing=()
for p in "${packages[@]}"; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#packages[@]} packages present"
	exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
