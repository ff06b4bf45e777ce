# bench/bench.mk: benchmark harness, included by the top-level Makefile.
#
#   make bench        build the bench tools, then measure moat against stunnel,
#                     HAProxy, nginx, direct plaintext and a splice relay
#                     (about 10-15 minutes; results in $(BUILD)/bench/)
#   make bench-quick  the ~1 minute smoke version (BENCH_QUICK=1), results in
#                     $(BUILD)/bench/quick/
#   make bench-smoke  bench/smoke-test.sh: the quick run plus checks that every
#                     target passed its enforcement check and every metric exists
#   make bench-deps   install the Debian packages the bench needs (idempotent)
#
# Settings are environment variables, see bench/README.md. The file also works
# on its own: make -f bench/bench.mk bench BENCH_MOAT_DEP=

BUILD ?= build
BENCH_OUT := $(BUILD)/bench
BENCH_OBJ := $(BENCH_OUT)/obj
BENCH_CC ?= $(CC)
BENCH_CFLAGS := -std=c11 -Wall -Wextra -Werror -O2 -MMD -MP
BENCH_LDFLAGS ?=
BENCH_LDLIBS := -lssl -lcrypto
BENCH_PY ?= /usr/bin/python3
# What builds moatd and moat; empty to bench whatever is already in $(BUILD).
BENCH_MOAT_DEP ?= all

BENCH_TOOLS := $(BENCH_OUT)/mb-client $(BENCH_OUT)/mb-backend $(BENCH_OUT)/mb-splice

.PHONY: bench bench-quick bench-smoke bench-deps bench-tools

bench-tools: $(BENCH_TOOLS)

$(BENCH_OBJ)/%.o: bench/%.c
	@mkdir -p $(@D)
	$(BENCH_CC) $(BENCH_CFLAGS) -c $< -o $@

$(BENCH_OUT)/mb-client: $(BENCH_OBJ)/mb_client.o $(BENCH_OBJ)/mb_common.o
	$(BENCH_CC) $(BENCH_LDFLAGS) -o $@ $^ $(BENCH_LDLIBS)

$(BENCH_OUT)/mb-backend: $(BENCH_OBJ)/mb_backend.o $(BENCH_OBJ)/mb_common.o
	$(BENCH_CC) $(BENCH_LDFLAGS) -o $@ $^

$(BENCH_OUT)/mb-splice: $(BENCH_OBJ)/mb_splice.o $(BENCH_OBJ)/mb_common.o
	$(BENCH_CC) $(BENCH_LDFLAGS) -o $@ $^

bench-deps:
	bench/deps.sh

bench: bench-deps bench-tools $(BENCH_MOAT_DEP)
	$(BENCH_PY) bench/moatbench.py --build $(BUILD)

bench-quick: bench-deps bench-tools $(BENCH_MOAT_DEP)
	BENCH_QUICK=1 $(BENCH_PY) bench/moatbench.py --build $(BUILD)

bench-smoke: bench-deps bench-tools
	BUILD=$(BUILD) BENCH_PY=$(BENCH_PY) bench/smoke-test.sh

-include $(wildcard $(BENCH_OBJ)/*.d)

# The data-path comparison inside a VM whose kernel has kTLS: plain TCP, moat
# on kTLS, moat on its OpenSSL relay (--datapath userspace) and stunnel, in one
# run. TCG distorts crypto cost: compare within the run only (printed).
BENCH_VM_KERNEL ?= sid
BENCH_VM_ENV ?= BENCH_QUICK=1 BENCH_RUNS=3 BENCH_BULK_BYTES=256M BENCH_SESSIONS=200 BENCH_HS_SECONDS=5 \
	BENCH_LAT_COUNT=1000 BENCH_TIMEOUT_SCALE=10 BENCH_QUIET_IDLE=0 \
	BENCH_TARGETS='direct moat-ktls moat-user stunnel' \
	BENCH_MOAT_VARIANTS='moat-ktls::;moat-user::--datapath userspace'
.PHONY: bench-vm
bench-vm: bench-deps bench-tools $(BENCH_MOAT_DEP)
	tests/vm/vm-run.sh --kernel $(BENCH_VM_KERNEL) --rw-cwd --timeout 3000 -- \
		env $(BENCH_VM_ENV) $(BENCH_PY) bench/moatbench.py --build $(BUILD) --vm --out $(BUILD)/bench/vm
