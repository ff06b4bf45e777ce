# moat: transparent mutual-TLS enforcement with eBPF sk_lookup and kernel TLS.
#   make          build bpf object, skeleton, moatd and moat into build/
#   make deps     install the Debian packages moat needs (idempotent)
#   make demo     protect a plaintext demo app and show curl without/with a client cert
#   make test     unit, BPF, integration, sanitizer and VM (kTLS) lanes
#   make san      the same binaries built with ASan/UBSan into build/san/
#   make bench    benchmarks against stunnel, haproxy and nginx

BUILD ?= build
SAN ?= 0
ifeq ($(SAN),1)
OUT := $(BUILD)/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
OUT := $(BUILD)
SANFLAGS :=
endif

CC ?= gcc
CLANG ?= clang
BPFTOOL ?= bpftool
ARCH_INC := /usr/include/$(shell uname -m)-linux-gnu

PKGS := libbpf openssl libnl-3.0 libnl-route-3.0 inih
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP \
	-Iinclude -Iuserspace/common -Iuserspace/moatd -I$(BUILD) $(PKG_CFLAGS) $(SANFLAGS)
override LDFLAGS += $(SANFLAGS)
# gnu11: libbpf's helper macros need typeof and asm.
BPF_CFLAGS := -g -O2 -target bpf -std=gnu11 -Wall -Wextra -Werror -MMD -MP \
	-Iinclude -I$(ARCH_INC)

COMMON_SRCS := $(wildcard userspace/common/*.c)
MOATD_SRCS := $(wildcard userspace/moatd/*.c)
CLI_SRCS := $(wildcard userspace/cli/*.c)

COMMON_OBJS := $(COMMON_SRCS:%.c=$(OUT)/obj/%.o)
MOATD_OBJS := $(MOATD_SRCS:%.c=$(OUT)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(OUT)/obj/%.o)
# What `moat check` shares with moatd: the policy parser and validator.
CLI_MOATD_OBJS := $(addprefix $(OUT)/obj/userspace/moatd/,policy.o policy_check.o identity.o tls_context.o)
# moatd's modules minus main(), for unit tests.
MOATD_LIB_OBJS := $(filter-out $(OUT)/obj/userspace/moatd/main.o,$(MOATD_OBJS))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(OUT)/tests/%)
BPF_TEST_BIN := $(OUT)/tests/bpf_sk_lookup
TEST_HELPERS := $(patsubst tests/helpers/%.c,$(OUT)/tests/%,$(wildcard tests/helpers/*.c))

SKEL := $(BUILD)/moat_steer.skel.h
BPF_OBJ := $(BUILD)/moat_steer.bpf.o

.PHONY: all deps demo test san install vagrant-validate clean
all: $(OUT)/moatd $(OUT)/moat $(UNIT_BINS) $(BPF_TEST_BIN) $(TEST_HELPERS)

$(BPF_OBJ): bpf/moat_steer.bpf.c include/moat_abi.h
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(SKEL): $(BPF_OBJ)
	$(BPFTOOL) gen skeleton $< name moat_steer_bpf > $@.tmp && mv $@.tmp $@

$(OUT)/obj/%.o: %.c | $(SKEL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(OUT)/moatd: $(MOATD_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OUT)/moat: $(CLI_OBJS) $(CLI_MOATD_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OUT)/tests/%: $(OUT)/obj/tests/unit/%.o $(MOATD_LIB_OBJS) $(COMMON_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BPF_TEST_BIN): $(OUT)/obj/tests/bpf/test_sk_lookup.o $(MOATD_LIB_OBJS) $(COMMON_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(OUT)/tests/%: $(OUT)/obj/tests/helpers/%.o $(COMMON_OBJS)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

san:
	$(MAKE) SAN=1 all

deps:
	@tests/lib/install-deps.sh

demo: deps
	$(MAKE) all
	tests/demo/demo.sh

test: deps bench-deps
	$(MAKE) all
	$(MAKE) SAN=1 all
	tests/run.sh --lane all

PREFIX ?= /usr/local
install: all
	install -D -m 0755 $(OUT)/moatd $(DESTDIR)$(PREFIX)/sbin/moatd
	install -D -m 0755 $(OUT)/moat $(DESTDIR)$(PREFIX)/sbin/moat
	install -D -m 0644 userspace/systemd/moatd.service $(DESTDIR)/etc/systemd/system/moatd.service

vagrant-validate:
	cd vagrant && vagrant validate

clean:
	rm -rf $(BUILD)

VM_TEST_DEPS := all
-include $(wildcard tests/vm/vm.mk)
-include $(wildcard bench/bench.mk)
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
