/* SPDX-License-Identifier: MIT */
/*
 * The one kernel/user ABI of moat: map layouts and pin names shared by
 * bpf/moat_steer.bpf.c and moatd. Any change here must keep old pins
 * readable or bump MOAT_ABI_VERSION (moatd refuses mismatched pins).
 */
#ifndef MOAT_ABI_H
#define MOAT_ABI_H

#include <linux/types.h>

#define MOAT_ABI_VERSION 1

/* Loopback is ifindex 1 in every network namespace (LOOPBACK_IFINDEX). */
#define MOAT_LOOPBACK_IFINDEX 1
/* ifindex 0 in a port key: every non-loopback interface, present and future. */
#define MOAT_IFINDEX_ANY 0

#define MOAT_MAX_PORT_KEYS 4096
#define MOAT_MAX_BINDINGS 1024
/*
 * Each binding owns two listeners, one per address family, because a socket
 * bound to a specific IPv6 address is IPv6-only: slot*2 for IPv4 lookups,
 * slot*2+1 for IPv6 ones.
 */
#define MOAT_MAX_LISTENERS (2 * MOAT_MAX_BINDINGS)
#define MOAT_LISTENER_INDEX(slot, is_ipv6) ((slot) * 2 + ((is_ipv6) ? 1 : 0))
#define MOAT_MAX_BACKEND_EXEMPTIONS 8192

/* moat_ports: which (local port, ingress interface) pairs are protected. */
struct moat_port_key {
	__u16 port;    /* host byte order, as sk_lookup's local_port */
	__u16 pad;     /* must be zero */
	__u32 ifindex; /* MOAT_IFINDEX_ANY or a concrete ifindex */
};

struct moat_port_value {
	__u32 listener_slot; /* binding slot; see MOAT_LISTENER_INDEX */
	__u32 flags;         /* reserved, zero */
};

/*
 * moat_backend_exempt: moatd's own connections to the app while they are
 * being set up over a covered loopback. The key is the exact 4-tuple of a
 * socket moatd holds bound, so no other process can produce a SYN with it.
 */
struct moat_exempt_key {
	__u32 family;        /* AF_INET or AF_INET6 */
	__u32 src_addr[4];   /* network order; v4 uses src_addr[0] */
	__u32 dst_addr[4];
	__u16 src_port;      /* host order */
	__u16 dst_port;      /* host order */
	/* sizeof must stay 40: no implicit padding, so hashing is stable */
};

/* Per-verdict counters, a PERCPU_ARRAY indexed by enum moat_steer_stat. */
enum moat_steer_stat {
	MOAT_STAT_STEERED = 0,      /* handed to moatd's listener */
	MOAT_STAT_DROP_NO_LISTENER, /* protected, but moatd's socket is gone */
	MOAT_STAT_DROP_ASSIGN,      /* bpf_sk_assign refused the listener */
	MOAT_STAT_EXEMPT_BACKEND,   /* moatd's own backend connection */
	MOAT_STAT_MAX,
};

/* Pin layout under <bpffs>/moat/<netns inode>/. */
#define MOAT_PIN_ROOT        "moat"
#define MOAT_PIN_LINK        "steer_link"
#define MOAT_PIN_PORTS       "moat_ports"
#define MOAT_PIN_LISTENERS   "moat_listeners"
#define MOAT_PIN_EXEMPT      "moat_backend_exempt"
#define MOAT_PIN_STATS       "moat_stats"

#endif /* MOAT_ABI_H */
