# tests/vm/vm.mk - kTLS VM test lane; included by the top-level Makefile.
#
#   make vm-test             run $(VM_TEST_CMD) in a VM per kernel in $(VM_KERNELS)
#   make vm-test-bookworm    ... on one kernel (also vm-test-trixie, vm-test-sid)
#   make vm-kernels          download/cache the kernels only (VM_REFRESH=1: look
#                            for newer ones)
#   make vm-selftest         check the lane itself (kTLS, veth, bpf, openssl)
#
# Needs root and the packages in VM_DEPS_PACKAGES. Kernels are cached in
# $(MOAT_VM_CACHE) (default /var/cache/moat-vm).

VM_KERNELS ?= bookworm trixie sid
VM_TIMEOUT ?= 1800
VM_MEM ?= 1024
VM_TEST_CMD ?= tests/run.sh --lane vm
# Targets to build before booting (the guest runs the host-built binaries).
VM_TEST_DEPS ?=
VM_REFRESH ?=

VM_LANE_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
VM_DEPS_PACKAGES := qemu-system-x86 busybox-static kmod cpio xz-utils zstd

VM_ALL_SUITES := bookworm trixie sid
VM_TEST_ONE := $(addprefix vm-test-,$(VM_ALL_SUITES))

.PHONY: vm-test vm-kernels vm-selftest $(VM_TEST_ONE)

vm-test: $(VM_TEST_DEPS)
	$(VM_LANE_DIR)/vm-test.sh --kernels "$(VM_KERNELS)" --timeout $(VM_TIMEOUT) --mem $(VM_MEM) -- $(VM_TEST_CMD)

$(VM_TEST_ONE): vm-test-%: $(VM_TEST_DEPS)
	$(VM_LANE_DIR)/vm-test.sh --kernels "$*" --timeout $(VM_TIMEOUT) --mem $(VM_MEM) -- $(VM_TEST_CMD)

vm-kernels:
	@set -e; for k in $(VM_KERNELS); do \
	    printf '%s: ' "$$k"; \
	    $(VM_LANE_DIR)/fetch-kernel.sh --quiet $(if $(filter 1 yes true,$(VM_REFRESH)),--refresh) $$k; \
	done

vm-selftest:
	$(VM_LANE_DIR)/selftest.sh $(addprefix --kernel ,$(VM_KERNELS))
