// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * moat's sk_lookup dispatcher. For a TCP lookup on a protected
 * (port, ingress interface) it selects moatd's listener, whatever the
 * destination address. Everything else passes untouched to the normal
 * socket lookup. Fail closed: a protected port never falls through to the
 * app, even when moatd is gone.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "moat_abi.h"

#define AF_INET 2
#define AF_INET6 10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MOAT_MAX_PORT_KEYS);
	__type(key, struct moat_port_key);
	__type(value, struct moat_port_value);
} moat_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, MOAT_MAX_LISTENERS);
	__type(key, __u32);
	__type(value, __u64);
} moat_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MOAT_MAX_BACKEND_EXEMPTIONS);
	__type(key, struct moat_exempt_key);
	__type(value, __u8);
} moat_backend_exempt SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MOAT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} moat_stats SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&moat_stats, &stat);

	if (n)
		*n += 1;
}

static __always_inline const struct moat_port_value *
find_protection(const struct bpf_sk_lookup *ctx)
{
	struct moat_port_key key = {
		.port = (__u16)ctx->local_port,
		.ifindex = ctx->ingress_ifindex,
	};
	const struct moat_port_value *val;

	val = bpf_map_lookup_elem(&moat_ports, &key);
	if (val)
		return val;
	/* The wildcard never covers loopback: lo must be named to be covered. */
	if (ctx->ingress_ifindex == MOAT_LOOPBACK_IFINDEX)
		return 0;
	key.ifindex = MOAT_IFINDEX_ANY;
	return bpf_map_lookup_elem(&moat_ports, &key);
}

static __always_inline int is_moatd_backend(const struct bpf_sk_lookup *ctx)
{
	struct moat_exempt_key key = {
		.family = ctx->family,
		.src_port = bpf_ntohs(ctx->remote_port),
		.dst_port = (__u16)ctx->local_port,
	};

	if (ctx->family == AF_INET) {
		key.src_addr[0] = ctx->remote_ip4;
		key.dst_addr[0] = ctx->local_ip4;
	} else {
		key.src_addr[0] = ctx->remote_ip6[0];
		key.src_addr[1] = ctx->remote_ip6[1];
		key.src_addr[2] = ctx->remote_ip6[2];
		key.src_addr[3] = ctx->remote_ip6[3];
		key.dst_addr[0] = ctx->local_ip6[0];
		key.dst_addr[1] = ctx->local_ip6[1];
		key.dst_addr[2] = ctx->local_ip6[2];
		key.dst_addr[3] = ctx->local_ip6[3];
	}
	return bpf_map_lookup_elem(&moat_backend_exempt, &key) != 0;
}

SEC("sk_lookup")
int moat_steer(struct bpf_sk_lookup *ctx)
{
	const struct moat_port_value *prot;
	struct bpf_sock *listener;
	__u32 slot;
	long err;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS;

	prot = find_protection(ctx);
	if (!prot)
		return SK_PASS;

	/*
	 * moatd's own connection to the app: only the exact 4-tuple of a socket
	 * moatd holds bound matches, which no other local process can create.
	 */
	if (is_moatd_backend(ctx)) {
		count(MOAT_STAT_EXEMPT_BACKEND);
		return SK_PASS;
	}

	slot = MOAT_LISTENER_INDEX(prot->listener_slot, ctx->family == AF_INET6);
	listener = bpf_map_lookup_elem(&moat_listeners, &slot);
	if (!listener) {
		/* moatd is down or restarting: refuse rather than reach the app. */
		count(MOAT_STAT_DROP_NO_LISTENER);
		return SK_DROP;
	}

	err = bpf_sk_assign(ctx, listener, 0);
	bpf_sk_release(listener);
	if (err) {
		/* Family or state mismatch: refusing is the only safe answer. */
		count(MOAT_STAT_DROP_ASSIGN);
		return SK_DROP;
	}
	count(MOAT_STAT_STEERED);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
