/* SPDX-License-Identifier: MIT */
/*
 * One client connection: TLS handshake and verdict, the connection to the
 * app, then a data path (kernel TLS splice relay or OpenSSL relay).
 */
#ifndef MOAT_SESSION_H
#define MOAT_SESSION_H

#include <net/if.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "binding.h"
#include "event_loop.h"
#include "ktls.h"
#include "moat_abi.h"
#include "tls_context.h"

enum session_phase {
	PHASE_HANDSHAKE,
	PHASE_CONNECTING, /* verified; connecting to the app */
	PHASE_RELAY,
	PHASE_CLOSED,
};

enum datapath {
	DATAPATH_NONE,
	DATAPATH_USERSPACE, /* OpenSSL reads and writes the records */
	DATAPATH_KTLS,      /* the kernel does, payload stays in kernel pipes */
};

struct relay_buf {
	char *data; /* from the buffer pool; NULL while idle */
	uint32_t off, len;
};

struct ktls_relay;

struct session {
	struct session *next, *prev;
	struct binding *binding;
	struct watch client;
	struct watch backend;
	SSL *ssl;
	enum session_phase phase;
	enum datapath datapath;
	char datapath_why[64]; /* why not kTLS, or which directions */
	uint64_t started_ms, deadline_ms;

	struct verify_outcome verify;
	char peer[INET6_ADDRSTRLEN + 8];
	char ifname[IFNAMSIZ];
	char subject[256];
	char tls_version[16];
	char cipher[64];
	struct sockaddr_storage local; /* the address the client dialled */

	struct moat_exempt_key exempt;
	bool exempt_set;

	/* userspace relay */
	struct relay_buf to_app, to_client;
	bool client_eof, app_eof, app_shut_wr, client_shut_wr, truncated;
	bool ssl_read_wants_write, ssl_write_wants_read;
	bool scheduled; /* queued for another relay turn */

	struct ktls_relay *ktls;

	/* The client's certificate and intermediates, kept so a reload can judge them again. */
	X509 *peer_cert;
	STACK_OF(X509) *peer_chain;
	/* PROXY v2 header still to be written to the app before relaying. */
	uint8_t *proxy_hdr;
	uint16_t proxy_len, proxy_off;
	bool backend_connected;

	uint64_t bytes_to_app, bytes_to_client;
	/* TLS 1.3 application traffic secrets from the keylog; wiped at close. */
	struct traffic_secret client_secret, server_secret;
};

struct steering;

void sessions_init(struct steering *st);
/* Listener watch callback: accepts and starts handshakes. */
void sessions_on_listener(struct watch *w, uint32_t events);
/* Enforces handshake/connect deadlines; returns ms until the next one (-1: none). */
int sessions_expire(void);
/* Frees sessions closed during the last event round. */
void sessions_reap(void);
void sessions_close_all(void);
struct session *sessions_first(void);
uint32_t sessions_count(void);

/* Ends the session; reason is logged when non-NULL. abort_backend sends RST to the app. */
void session_close(struct session *s, const char *reason, bool abort_backend);
/* Makes the coming close of the client fd a reset rather than a FIN. */
void session_abort_client(struct session *s);
const char *datapath_name(enum datapath dp);
/*
 * After a reload: closes established sessions whose certificate the policy
 * now in force refuses, on bindings that ask for it. Returns how many.
 */
unsigned sessions_recheck(void);
const char *session_phase_name(const struct session *s);

#endif
