/* SPDX-License-Identifier: MIT */
/*
 * A binding is one protected port on a set of interfaces with its TLS
 * policy: the unit `moat attach` creates. It owns a listener per address
 * family in one sockmap slot pair; the BPF port keys of its interfaces point
 * at that slot.
 */
#ifndef MOAT_BINDING_H
#define MOAT_BINDING_H

#include <net/if.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>

#include "event_loop.h"
#include "tls_context.h"

#define BINDING_MAX_IFACES 32
#define BINDING_MAX_REASONS 32

struct reject_count {
	char reason[48];
	uint64_t count;
};

struct binding_iface {
	char name[IFNAMSIZ];
	uint32_t ifindex; /* 0 while no interface has this name */
};

/* One per address family: a socket bound to ::1 serves IPv6 only. */
struct binding_listener {
	struct watch watch;
	struct binding *owner;
	uint16_t own_port; /* the ephemeral loopback port it is bound to */
};

struct binding {
	struct binding *next;
	unsigned refs;      /* the binding list holds one; each session one */
	bool detached;
	uint16_t port;
	uint32_t slot;
	bool all_ifaces;    /* every non-loopback interface, present and future */
	bool covers_loopback;
	size_t n_ifaces;
	struct binding_iface ifaces[BINDING_MAX_IFACES];
	char *ca_path, *cert_path, *key_path;
	char *origin;       /* the policy file that defines it; NULL: `moat attach` */
	SSL_CTX *ctx;       /* new handshakes; a reload swaps it, sessions keep theirs */
	struct sockaddr_storage backend; /* AF_UNSPEC: 127.0.0.1 on the port */
	bool proxy_v2;      /* PROXY v2 header toward the app */
	bool userspace_relay; /* `moat attach --datapath userspace`: never kTLS */
	bool close_disallowed; /* a reload closes sessions it no longer allows */
	struct binding_listener listeners[2]; /* [0] IPv4, [1] IPv6 */
	uint32_t handshake_timeout_ms;
	uint32_t max_handshakes;
	/* counters for `moat status` */
	uint32_t handshakes_now;
	uint32_t live_sessions;
	uint64_t accepted;
	size_t n_reasons;
	struct reject_count rejected[BINDING_MAX_REASONS];
};

struct binding_spec {
	uint16_t port;
	const char *ca, *cert, *key;
	size_t n_ifaces;
	const char *ifaces[BINDING_MAX_IFACES]; /* none: all non-loopback */
	int slot;                               /* -1: pick a free one */
	/* Policy-file bindings (zero for `moat attach`): */
	const char *origin;     /* policy file; absent interfaces then wait for their link */
	SSL_CTX *ctx;           /* prebuilt and validated; binding takes its own reference */
	struct sockaddr_storage backend;
	bool proxy_v2, close_disallowed;
	uint32_t handshake_timeout_ms, max_handshakes; /* 0: daemon defaults */
	bool userspace_relay;   /* never offload to kTLS (comparisons) */
};

struct steering;

/* Outcome classes a caller maps to exit codes. */
enum binding_error {
	BINDING_OK,
	BINDING_ERR_INPUT,     /* see tls_load_error in msg */
	BINDING_ERR_CONFLICT,
	BINDING_ERR_IFACE,
	BINDING_ERR_SYSTEM,
};

void bindings_init(struct steering *st, watch_fn on_listener_ready);
void bindings_set_defaults(uint32_t handshake_timeout_ms, uint32_t max_handshakes);
enum binding_error binding_attach(const struct binding_spec *spec, char *msg, size_t msglen);
enum binding_error binding_detach(uint16_t port, const char *iface, char *msg, size_t msglen);
struct binding *bindings_first(void);
/* Any binding of port (policy or attach). */
struct binding *binding_find(uint16_t port);
/* The `moat attach` binding of port, or the one a policy file defines. */
struct binding *binding_find_attached(uint16_t port);
struct binding *binding_find_origin(uint16_t port, const char *origin);
/* Whether a live binding owns this BPF port key. */
bool bindings_serve_key(uint16_t port, uint32_t ifindex);
/*
 * Reload: gives b the new context and settings of spec (same port, origin
 * and interfaces). Listeners and keys stay, so no connection is refused.
 */
void binding_update(struct binding *b, const struct binding_spec *spec);
/* Reload: removes a policy binding (keys, then listeners); its sessions go on. */
void binding_remove(struct binding *b);
void binding_get(struct binding *b);
void binding_put(struct binding *b);
void binding_count_reject(struct binding *b, const char *reason);
/* Closes every listener and drops all bindings; pins and port keys stay. */
void bindings_shutdown(void);

/* Called by interface tracking: (name, ifindex) appeared, changed or went away. */
void bindings_link_update(const char *name, uint32_t ifindex, bool present);
/* Resolves an interface name now: 0 when absent. Provided by ifaces.c. */
uint32_t ifaces_index_of(const char *name);

#endif
