// SPDX-License-Identifier: MIT
#include "binding.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath.h"
#include "ktls.h"
#include "log.h"
#include "steering.h"

#define LISTEN_BACKLOG 4096

static struct binding *binding_list;
static struct steering *steer;
static watch_fn listener_ready;
static uint32_t default_handshake_timeout_ms = 10000;
static uint32_t default_max_handshakes = 1024;

void bindings_set_defaults(uint32_t handshake_timeout_ms, uint32_t max_handshakes)
{
	default_handshake_timeout_ms = handshake_timeout_ms;
	default_max_handshakes = max_handshakes;
}

void bindings_init(struct steering *st, watch_fn on_listener_ready)
{
	steer = st;
	listener_ready = on_listener_ready;
}

struct binding *bindings_first(void)
{
	return binding_list;
}

struct binding *binding_find(uint16_t port)
{
	for (struct binding *b = binding_list; b; b = b->next)
		if (b->port == port)
			return b;
	return NULL;
}

struct binding *binding_find_origin(uint16_t port, const char *origin)
{
	for (struct binding *b = binding_list; b; b = b->next)
		if (b->port == port && (origin ? b->origin && !strcmp(b->origin, origin) : !b->origin))
			return b;
	return NULL;
}

struct binding *binding_find_attached(uint16_t port)
{
	return binding_find_origin(port, NULL);
}

bool bindings_serve_key(uint16_t port, uint32_t ifindex)
{
	for (struct binding *b = binding_list; b; b = b->next) {
		if (b->port != port)
			continue;
		if (ifindex == MOAT_IFINDEX_ANY && b->all_ifaces)
			return true;
		for (size_t i = 0; ifindex != MOAT_IFINDEX_ANY && i < b->n_ifaces; i++)
			if (b->ifaces[i].ifindex == ifindex)
				return true;
	}
	return false;
}

/* Does an attachment on these interfaces (none: all but lo) meet binding b? */
static bool overlaps(const struct binding *b, size_t n, const char *const *names)
{
	bool b_lo_only = !b->all_ifaces && b->n_ifaces == 1 && !strcmp(b->ifaces[0].name, "lo");

	if (!n)
		return b->all_ifaces || !b_lo_only;
	for (size_t i = 0; i < n; i++) {
		if (b->all_ifaces && strcmp(names[i], "lo"))
			return true;
		for (size_t j = 0; j < b->n_ifaces; j++)
			if (!strcmp(b->ifaces[j].name, names[i]))
				return true;
	}
	return false;
}

void binding_get(struct binding *b)
{
	b->refs++;
}

static void binding_free(struct binding *b)
{
	SSL_CTX_free(b->ctx);
	free(b->origin);
	free(b->ca_path);
	free(b->cert_path);
	free(b->key_path);
	free(b);
}

void binding_put(struct binding *b)
{
	if (--b->refs == 0)
		binding_free(b);
}

void binding_count_reject(struct binding *b, const char *reason)
{
	size_t i;

	for (i = 0; i < b->n_reasons; i++) {
		if (strcmp(b->rejected[i].reason, reason) == 0) {
			b->rejected[i].count++;
			return;
		}
	}
	if (i == BINDING_MAX_REASONS) {
		/* Table full: the last bucket turns into a catch-all. */
		i = BINDING_MAX_REASONS - 1;
		reason = "other";
	} else {
		b->n_reasons++;
	}
	snprintf(b->rejected[i].reason, sizeof(b->rejected[i].reason), "%s", reason);
	b->rejected[i].count++;
}

struct slot_scan {
	uint8_t used[MOAT_MAX_BINDINGS];
};

static void mark_slot(const struct moat_port_key *key, const struct moat_port_value *val, void *arg)
{
	struct slot_scan *scan = arg;

	(void)key;
	if (val->listener_slot < MOAT_MAX_BINDINGS)
		scan->used[val->listener_slot] = 1;
}

/* A slot nothing points at: orphaned port keys keep theirs, so they keep refusing. */
static int pick_free_slot(void)
{
	struct slot_scan scan;

	memset(&scan, 0, sizeof(scan));
	steering_ports_foreach(steer, mark_slot, &scan);
	for (struct binding *b = binding_list; b; b = b->next)
		scan.used[b->slot] = 1;
	for (int i = 0; i < MOAT_MAX_BINDINGS; i++)
		if (!scan.used[i])
			return i;
	return -ENOSPC;
}

/*
 * Listeners are bound to ephemeral loopback ports: sk_lookup hands them
 * connections for any address, and nothing can be reached through them
 * without the TLS handshake.
 */
static int listener_create(int family, uint16_t *own_port)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_storage bound;
	socklen_t len = sizeof(bound);
	int fd, one = 1, err;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* PKTINFO makes accepted sockets remember their ingress interface. */
	if (family == AF_INET6)
		err = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) ||
		      bind(fd, (struct sockaddr *)&a6, sizeof(a6));
	else
		err = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
		      bind(fd, (struct sockaddr *)&a4, sizeof(a4));
	if (err || listen(fd, LISTEN_BACKLOG) || getsockname(fd, (struct sockaddr *)&bound, &len)) {
		err = -errno;
		close(fd);
		return err;
	}
	*own_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
					     : ((struct sockaddr_in *)&bound)->sin_port);
	return fd;
}

static void listeners_close(struct binding *b)
{
	for (int i = 0; i < 2; i++) {
		struct binding_listener *l = &b->listeners[i];

		watch_remove(&l->watch);
		steering_listener_del(steer, MOAT_LISTENER_INDEX(b->slot, i));
		if (l->watch.fd >= 0)
			close(l->watch.fd);
		l->watch.fd = -1;
	}
}

static int listeners_open(struct binding *b, char *msg, size_t msglen)
{
	static const int families[2] = { AF_INET, AF_INET6 };
	int err;

	for (int i = 0; i < 2; i++) {
		struct binding_listener *l = &b->listeners[i];

		l->owner = b;
		l->watch.on_event = listener_ready;
		l->watch.fd = listener_create(families[i], &l->own_port);
		if (l->watch.fd < 0) {
			err = l->watch.fd;
			snprintf(msg, msglen, "cannot create %s listener: %s",
				 i ? "IPv6" : "IPv4", strerror(-err));
			goto close_listeners;
		}
		if ((err = steering_listener_set(steer, MOAT_LISTENER_INDEX(b->slot, i), l->watch.fd))) {
			snprintf(msg, msglen, "cannot put listener in sockmap: %s", strerror(-err));
			goto close_listeners;
		}
		if ((err = watch_set(&l->watch, EPOLLIN))) {
			snprintf(msg, msglen, "cannot watch listener: %s", strerror(-err));
			goto close_listeners;
		}
	}
	return 0;

close_listeners:
	listeners_close(b);
	return err;
}

static int iface_keys_apply(struct binding *b, bool install)
{
	int err = 0;

	if (b->all_ifaces) {
		err = install ? steering_port_set(steer, b->port, MOAT_IFINDEX_ANY, b->slot)
			      : steering_port_del(steer, b->port, MOAT_IFINDEX_ANY);
	}
	for (size_t i = 0; i < b->n_ifaces && !err; i++) {
		if (!b->ifaces[i].ifindex)
			continue;
		err = install ? steering_port_set(steer, b->port, b->ifaces[i].ifindex, b->slot)
			      : steering_port_del(steer, b->port, b->ifaces[i].ifindex);
	}
	return err;
}

static void refresh_loopback_flag(struct binding *b)
{
	b->covers_loopback = false;
	for (size_t i = 0; i < b->n_ifaces; i++)
		if (b->ifaces[i].ifindex == MOAT_LOOPBACK_IFINDEX)
			b->covers_loopback = true;
}

static enum binding_error fill_ifaces(struct binding *b, const struct binding_spec *spec,
				      char *msg, size_t msglen)
{
	b->all_ifaces = spec->n_ifaces == 0;
	for (size_t i = 0; i < spec->n_ifaces; i++) {
		const char *name = spec->ifaces[i];
		bool dup = false;

		if (strlen(name) >= IFNAMSIZ || !*name) {
			snprintf(msg, msglen, "invalid interface name '%s'", name);
			return BINDING_ERR_IFACE;
		}
		for (size_t j = 0; j < b->n_ifaces; j++)
			dup |= strcmp(b->ifaces[j].name, name) == 0;
		if (dup)
			continue;
		struct binding_iface *bi = &b->ifaces[b->n_ifaces++];

		snprintf(bi->name, sizeof(bi->name), "%s", name);
		bi->ifindex = ifaces_index_of(name);
		if (!bi->ifindex && spec->slot < 0 && !spec->origin) {
			snprintf(msg, msglen, "unknown interface '%s'", name);
			return BINDING_ERR_IFACE;
		}
	}
	refresh_loopback_flag(b);
	return BINDING_OK;
}

static void apply_settings(struct binding *b, const struct binding_spec *spec)
{
	b->handshake_timeout_ms = spec->handshake_timeout_ms ? spec->handshake_timeout_ms
							     : default_handshake_timeout_ms;
	b->max_handshakes = spec->max_handshakes ? spec->max_handshakes : default_max_handshakes;
	b->backend = spec->backend;
	b->proxy_v2 = spec->proxy_v2;
	b->userspace_relay = spec->userspace_relay;
	b->close_disallowed = spec->close_disallowed;
}

static int replace_string(char **slot, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

void binding_update(struct binding *b, const struct binding_spec *spec)
{
	if (SSL_CTX_up_ref(spec->ctx) == 1) {
		if (datapath_kernel_has_ktls())
			tls_context_set_keylog(spec->ctx, ktls_keylog);
		/* In-flight handshakes hold the old context through their SSL. */
		SSL_CTX_free(b->ctx);
		b->ctx = spec->ctx;
	} else {
		log_error("port %u: cannot take the new TLS context; the old one stays", b->port);
	}
	apply_settings(b, spec);
	if (replace_string(&b->ca_path, spec->ca) || replace_string(&b->cert_path, spec->cert) ||
	    replace_string(&b->key_path, spec->key))
		log_warn("port %u: out of memory recording file names", b->port);
}

enum binding_error binding_attach(const struct binding_spec *spec, char *msg, size_t msglen)
{
	struct tls_files files = { spec->ca, spec->cert, spec->key };
	enum tls_load_error load_err;
	enum binding_error ret;
	struct binding *b;
	int slot, err;

	msg[0] = '\0';
	if (spec->port == 0) {
		snprintf(msg, msglen, "port must be between 1 and 65535");
		return BINDING_ERR_INPUT;
	}
	if (binding_find_origin(spec->port, spec->origin)) {
		snprintf(msg, msglen, "port %u is already attached; run 'moat detach %u' first",
			 spec->port, spec->port);
		return BINDING_ERR_CONFLICT;
	}
	for (struct binding *o = binding_list; o && !spec->origin; o = o->next) {
		if (o->port == spec->port && overlaps(o, spec->n_ifaces, spec->ifaces)) {
			snprintf(msg, msglen, "port %u is defined by policy file %s on an overlapping "
				 "interface; change the policy there and run 'moat reload'",
				 spec->port, o->origin);
			return BINDING_ERR_CONFLICT;
		}
	}
	if (spec->n_ifaces > BINDING_MAX_IFACES) {
		snprintf(msg, msglen, "at most %d interfaces per port", BINDING_MAX_IFACES);
		return BINDING_ERR_INPUT;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		goto out_of_memory;
	b->refs = 1;
	b->port = spec->port;
	b->listeners[0].watch.fd = b->listeners[1].watch.fd = -1;
	apply_settings(b, spec);
	if ((ret = fill_ifaces(b, spec, msg, msglen)) != BINDING_OK)
		goto free_binding;
	b->ca_path = strdup(spec->ca);
	b->cert_path = strdup(spec->cert);
	b->key_path = strdup(spec->key);
	b->origin = spec->origin ? strdup(spec->origin) : NULL;
	if (!b->ca_path || !b->cert_path || !b->key_path || (spec->origin && !b->origin)) {
		ret = BINDING_ERR_SYSTEM;
		snprintf(msg, msglen, "out of memory");
		goto free_binding;
	}
	if (spec->ctx && SSL_CTX_up_ref(spec->ctx) == 1) {
		b->ctx = spec->ctx;
	} else if (!spec->ctx) {
		b->ctx = tls_context_create(&files, &load_err, msg, msglen);
		if (!b->ctx) {
			ret = load_err == TLS_LOAD_INTERNAL ? BINDING_ERR_SYSTEM : BINDING_ERR_INPUT;
			goto free_binding;
		}
	} else {
		ret = BINDING_ERR_SYSTEM;
		snprintf(msg, msglen, "cannot reference the TLS context");
		goto free_binding;
	}

	/* TLS 1.3 RX offload needs the client traffic secret. */
	if (datapath_kernel_has_ktls())
		tls_context_set_keylog(b->ctx, ktls_keylog);

	slot = spec->slot >= 0 ? spec->slot : pick_free_slot();
	if (slot < 0 || slot >= MOAT_MAX_BINDINGS) {
		snprintf(msg, msglen, "no free listener slot (at most %d bindings)", MOAT_MAX_BINDINGS);
		ret = BINDING_ERR_SYSTEM;
		goto free_binding;
	}
	b->slot = (uint32_t)slot;
	if (listeners_open(b, msg, msglen)) {
		ret = BINDING_ERR_SYSTEM;
		goto free_binding;
	}
	/* Keys last: the port is steered only once the listeners can take it. */
	if ((err = iface_keys_apply(b, true))) {
		snprintf(msg, msglen, "cannot install port keys: %s", strerror(-err));
		iface_keys_apply(b, false);
		ret = BINDING_ERR_SYSTEM;
		goto close_listeners;
	}
	b->next = binding_list;
	binding_list = b;
	return BINDING_OK;

close_listeners:
	listeners_close(b);
free_binding:
	binding_free(b);
	return ret;

out_of_memory:
	snprintf(msg, msglen, "out of memory");
	return BINDING_ERR_SYSTEM;
}

static void binding_unlink(struct binding *b)
{
	for (struct binding **pp = &binding_list; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			return;
		}
	}
}

struct orphan_scan {
	uint16_t port;
	const char *iface_filter; /* NULL: all */
	uint32_t ifindex;
	int removed;
};

static void remove_orphan_key(const struct moat_port_key *key, const struct moat_port_value *val,
			      void *arg)
{
	struct orphan_scan *scan = arg;

	(void)val;
	if (key->port != scan->port || bindings_serve_key(key->port, key->ifindex))
		return;
	if (scan->iface_filter && key->ifindex != scan->ifindex)
		return;
	if (steering_port_del(steer, key->port, key->ifindex) == 0)
		scan->removed++;
}

enum binding_error binding_detach(uint16_t port, const char *iface, char *msg, size_t msglen)
{
	struct binding *b = binding_find_attached(port);

	msg[0] = '\0';
	if (!b && binding_find(port)) {
		snprintf(msg, msglen, "port %u is defined by policy file %s; remove it there and run "
			 "'moat reload'", port, binding_find(port)->origin);
		return BINDING_ERR_CONFLICT;
	}
	if (!b) {
		/* Keys left by an earlier moatd that nothing restored: lift them. */
		struct orphan_scan scan = { .port = port, .iface_filter = iface,
					    .ifindex = iface ? ifaces_index_of(iface) : 0 };

		steering_ports_foreach(steer, remove_orphan_key, &scan);
		if (scan.removed) {
			snprintf(msg, msglen, "removed %d orphaned protection key(s) for port %u",
				 scan.removed, port);
			return BINDING_OK;
		}
		snprintf(msg, msglen, "port %u is not attached", port);
		return BINDING_ERR_CONFLICT;
	}
	if (iface) {
		size_t i;

		if (b->all_ifaces) {
			snprintf(msg, msglen, "port %u is attached on all interfaces; "
				 "detach it without --iface", port);
			return BINDING_ERR_CONFLICT;
		}
		for (i = 0; i < b->n_ifaces && strcmp(b->ifaces[i].name, iface); i++)
			;
		if (i == b->n_ifaces) {
			snprintf(msg, msglen, "port %u is not attached on interface '%s'", port, iface);
			return BINDING_ERR_CONFLICT;
		}
		if (b->n_ifaces > 1) {
			if (b->ifaces[i].ifindex)
				steering_port_del(steer, port, b->ifaces[i].ifindex);
			b->ifaces[i] = b->ifaces[--b->n_ifaces];
			refresh_loopback_flag(b);
			return BINDING_OK;
		}
	}
	/* Keys first, so no new connection is steered to a closing listener. */
	iface_keys_apply(b, false);
	listeners_close(b);
	binding_unlink(b);
	b->detached = true;
	binding_put(b);
	return BINDING_OK;
}

void binding_remove(struct binding *b)
{
	/* Keys first, so no new connection is steered to a closing listener. */
	iface_keys_apply(b, false);
	listeners_close(b);
	binding_unlink(b);
	b->detached = true;
	binding_put(b);
}

void bindings_shutdown(void)
{
	while (binding_list) {
		struct binding *b = binding_list;

		binding_list = b->next;
		/* Keys stay: with the listener gone the port refuses, fail closed. */
		listeners_close(b);
		b->detached = true;
		binding_put(b);
	}
}

void bindings_link_update(const char *name, uint32_t ifindex, bool present)
{
	/*
	 * Removals for every binding first, then additions: two bindings of one
	 * port (vs1.conf, vs9.conf) share the key (port, ifindex) across a rename.
	 */
	for (int pass = 0; pass < 2; pass++) {
		for (struct binding *b = binding_list; b; b = b->next) {
			for (size_t i = 0; i < b->n_ifaces; i++) {
				struct binding_iface *bi = &b->ifaces[i];
				bool name_match = present && strcmp(bi->name, name) == 0;

				if (name_match && bi->ifindex == ifindex)
					continue;
				/* Gone, renamed away, or the name now sits on another index. */
				if (pass == 0 && bi->ifindex && (bi->ifindex == ifindex || name_match)) {
					steering_port_del(steer, b->port, bi->ifindex);
					log_info("port %u: interface %s (index %u) %s; its key is removed",
						 b->port, bi->name, bi->ifindex,
						 present ? "changed" : "went away");
					bi->ifindex = 0;
				}
				if (pass == 1 && name_match) {
					bi->ifindex = ifindex;
					if (steering_port_set(steer, b->port, ifindex, b->slot) == 0)
						log_info("port %u: interface %s is present (index %u); now protected",
							 b->port, name, ifindex);
					else
						log_error("port %u: cannot protect interface %s", b->port, name);
				}
			}
			refresh_loopback_flag(b);
		}
	}
}
