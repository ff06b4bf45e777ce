// SPDX-License-Identifier: MIT
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "app_connect.h"
#include "buffer_pool.h"
#include "datapath.h"
#include "identity.h"
#include "log.h"
#include "sockaddr_text.h"
#include "ssl_compat.h"


static struct session *live_list;  /* every open session */
static struct session *graveyard;  /* closed this round, freed by sessions_reap */
static uint32_t live_count;

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

static void handshake_step(struct session *s);

void sessions_init(struct steering *st)
{
	app_connect_init(st);
}

struct session *sessions_first(void)
{
	return live_list;
}

uint32_t sessions_count(void)
{
	return live_count;
}

const char *datapath_name(enum datapath dp)
{
	switch (dp) {
	case DATAPATH_USERSPACE: return "userspace";
	case DATAPATH_KTLS: return "ktls";
	default: return "none";
	}
}

static const char *phase_label(enum session_phase p)
{
	switch (p) {
	case PHASE_HANDSHAKE: return "handshake";
	case PHASE_CONNECTING: return "connecting";
	case PHASE_RELAY: return "relay";
	default: return "closed";
	}
}

/* The ingress interface, remembered by the kernel because the listener asked for PKTINFO. */
static uint32_t ingress_ifindex(int fd, int family, bool v4mapped)
{
	char cbuf[256];
	socklen_t len = sizeof(cbuf);
	struct msghdr msg = { .msg_control = cbuf };
	struct cmsghdr *c;

	if (family == AF_INET6 && !v4mapped) {
		if (getsockopt(fd, IPPROTO_IPV6, IPV6_2292PKTOPTIONS, cbuf, &len))
			return 0;
	} else if (getsockopt(fd, IPPROTO_IP, IP_PKTOPTIONS, cbuf, &len)) {
		return 0;
	}
	msg.msg_controllen = len;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			return (uint32_t)pi.ipi_ifindex;
		}
		if (c->cmsg_level == IPPROTO_IPV6 &&
		    (c->cmsg_type == IPV6_PKTINFO || c->cmsg_type == IPV6_2292PKTINFO)) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			return pi.ipi6_ifindex;
		}
	}
	return 0;
}

static void on_client_event(struct watch *w, uint32_t events);
static void on_backend_event(struct watch *w, uint32_t events);

static void reject(struct session *s, const char *reason, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reject(struct session *s, const char *reason, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	binding_count_reject(s->binding, reason);
	log_warn("reject peer=%s port=%u iface=%s reason=%s: %s", s->peer, s->binding->port,
		 s->ifname, reason, detail);
	session_close(s, NULL, false);
}

static void reject_fast(struct binding *b, int fd, const char *peer, const char *reason,
			const char *detail)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	binding_count_reject(b, reason);
	log_warn("reject peer=%s port=%u reason=%s: %s", peer, b->port, reason, detail);
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void session_start(struct binding *b, int fd, const struct sockaddr_storage *peer_addr)
{
	socklen_t len = sizeof(struct sockaddr_storage);
	char peer[INET6_ADDRSTRLEN + 8];
	struct session *s;
	bool v4mapped;
	uint32_t ifindex;
	int one = 1;

	sockaddr_text(peer_addr, "?", peer, sizeof(peer));
	if (b->handshakes_now >= b->max_handshakes) {
		reject_fast(b, fd, peer, "handshake_limit", "too many handshakes in progress");
		return;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		reject_fast(b, fd, peer, "out_of_memory", "cannot allocate session");
		return;
	}
	memcpy(s->peer, peer, sizeof(peer));
	s->client.fd = fd;
	s->client.on_event = on_client_event;
	s->backend.fd = -1;
	s->backend.on_event = on_backend_event;
	s->binding = b;
	binding_get(b);
	b->handshakes_now++;
	b->live_sessions++;
	s->phase = PHASE_HANDSHAKE;
	s->started_ms = now_ms();
	s->deadline_ms = s->started_ms + b->handshake_timeout_ms;
	s->verify.error = X509_V_OK;
	s->next = live_list;
	if (live_list)
		live_list->prev = s;
	live_list = s;
	live_count++;

	getsockname(fd, (struct sockaddr *)&s->local, &len);
	if (sockaddr_port(&s->local) == b->listeners[0].own_port ||
	    sockaddr_port(&s->local) == b->listeners[1].own_port) {
		/* Dialled moatd's own listener, not a protected port: nothing to relay to. */
		reject(s, "not_steered", "direct connection to moatd's listener port %u",
		       sockaddr_port(&s->local));
		return;
	}
	v4mapped = s->local.ss_family == AF_INET6 &&
		   IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&s->local)->sin6_addr);
	ifindex = ingress_ifindex(fd, s->local.ss_family, v4mapped);
	if (!ifindex || !if_indextoname(ifindex, s->ifname))
		snprintf(s->ifname, sizeof(s->ifname), "?");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	s->ssl = SSL_new(b->ctx);
	if (!s->ssl || SSL_set_fd(s->ssl, fd) != 1) {
		char why[256];

		openssl_errors_to_string(why, sizeof(why));
		reject(s, "internal", "cannot create TLS session: %s", why);
		return;
	}
	SSL_set_app_data(s->ssl, s);
	SSL_set_ex_data(s->ssl, tls_verify_outcome_index(), &s->verify);
	SSL_set_accept_state(s->ssl);
	handshake_step(s);
}

void sessions_on_listener(struct watch *w, uint32_t events)
{
	struct binding_listener *l = container_of(w, struct binding_listener, watch);
	struct binding *b = l->owner;

	(void)events;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage peer;
		socklen_t len = sizeof(peer);
		int fd = accept4(w->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("port %u: accept: %s", b->port, strerror(errno));
			return;
		}
		session_start(b, fd, &peer);
	}
}

static void verify_reason(const struct verify_outcome *v, const char **key)
{
	switch (v->error) {
	case X509_V_ERR_CERT_HAS_EXPIRED: *key = "cert_expired"; break;
	case X509_V_ERR_CERT_NOT_YET_VALID: *key = "cert_not_yet_valid"; break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE: *key = "untrusted_issuer"; break;
	case X509_V_ERR_INVALID_PURPOSE: *key = "not_for_client_auth"; break;
	case X509_V_ERR_CERT_REVOKED: *key = "cert_revoked"; break;
	case X509_V_ERR_CERT_CHAIN_TOO_LONG: *key = "chain_too_long"; break;
	case X509_V_ERR_APPLICATION_VERIFICATION: *key = "policy_denied"; break;
	default: *key = "verify_failed"; break;
	}
}

static void handshake_failed(struct session *s, int ssl_err)
{
	unsigned long e = ERR_peek_error();
	char detail[512];
	const char *key;

	if (s->verify.error != X509_V_OK) {
		verify_reason(&s->verify, &key);
		ERR_clear_error();
		reject(s, key, "certificate verify failed: %s (depth=%d subject=\"%s\")",
		       X509_verify_cert_error_string(s->verify.error), s->verify.depth,
		       s->verify.subject);
		return;
	}
	if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		ERR_clear_error();
		reject(s, "no_client_cert", "client presented no certificate");
		return;
	}
	if (ssl_err == SSL_ERROR_SYSCALL || (ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
		int err = errno;

		ERR_clear_error();
		reject(s, "handshake_aborted", "client went away during the handshake%s%s",
		       err ? ": " : "", err ? strerror(err) : "");
		return;
	}
	openssl_errors_to_string(detail, sizeof(detail));
	reject(s, "tls_error", "handshake failed: %s", detail);
}

static void handshake_done(struct session *s)
{
	X509 *peer_cert = SSL_get0_peer_certificate(s->ssl);

	/* SSL_VERIFY_FAIL_IF_NO_PEER_CERT makes both impossible; checked anyway. */
	if (!peer_cert || SSL_get_verify_result(s->ssl) != X509_V_OK) {
		reject(s, "verify_failed", "handshake finished without a verified client certificate");
		return;
	}
	tls_name_oneline(X509_get_subject_name(peer_cert), s->subject, sizeof(s->subject));
	/* Ours to keep: kTLS frees the SSL, a reload may judge this chain again. */
	if (X509_up_ref(peer_cert) == 1)
		s->peer_cert = peer_cert;
	if (SSL_get_peer_cert_chain(s->ssl))
		s->peer_chain = X509_chain_up_ref(SSL_get_peer_cert_chain(s->ssl));
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", SSL_get_version(s->ssl));
	snprintf(s->cipher, sizeof(s->cipher), "%s", SSL_get_cipher_name(s->ssl));
	s->binding->handshakes_now--;
	s->binding->accepted++;
	log_info("accept peer=%s port=%u iface=%s subject=\"%s\" tls=%s cipher=%s", s->peer,
		 s->binding->port, s->ifname, s->subject, s->tls_version, s->cipher);
	app_connect_start(s);
}

static void handshake_step(struct session *s)
{
	int ret, err;

	ERR_clear_error();
	ret = SSL_do_handshake(s->ssl);
	if (ret == 1) {
		handshake_done(s);
		return;
	}
	err = SSL_get_error(s->ssl, ret);
	if (err == SSL_ERROR_WANT_READ) {
		watch_set(&s->client, EPOLLIN);
		return;
	}
	if (err == SSL_ERROR_WANT_WRITE) {
		watch_set(&s->client, EPOLLOUT);
		return;
	}
	handshake_failed(s, err);
}

static void on_client_event(struct watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, client);

	if (s->phase == PHASE_HANDSHAKE)
		handshake_step(s);
	else if (s->phase == PHASE_RELAY)
		datapath_on_client(s, events);
}

static void on_backend_event(struct watch *w, uint32_t events)
{
	struct session *s = container_of(w, struct session, backend);

	if (s->phase == PHASE_CONNECTING)
		app_connect_finish(s);
	else if (s->phase == PHASE_RELAY)
		datapath_on_backend(s, events);
}

static void close_fd(int *fd, bool abort)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (*fd < 0)
		return;
	if (abort)
		setsockopt(*fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(*fd);
	*fd = -1;
}

/*
 * A refused client usually has bytes we never read (its request, pipelined
 * behind the handshake). Closing over unread bytes sends RST, which makes the
 * client drop our alert unread; reading them first lets the alert arrive.
 */
static void discard_pending_input(int fd)
{
	char sink[4096];

	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
		;
}

void session_close(struct session *s, const char *reason, bool abort_backend)
{
	if (s->phase == PHASE_CLOSED)
		return;
	if (reason)
		log_info("close peer=%s port=%u subject=\"%s\" datapath=%s to_app=%llu to_client=%llu "
			 "ms=%llu reason=%s", s->peer, s->binding->port, s->subject,
			 datapath_name(s->datapath), (unsigned long long)s->bytes_to_app,
			 (unsigned long long)s->bytes_to_client,
			 (unsigned long long)(now_ms() - s->started_ms), reason);
	if (s->phase == PHASE_HANDSHAKE) {
		s->binding->handshakes_now--;
		discard_pending_input(s->client.fd);
	}
	s->binding->live_sessions--;
	datapath_release(s);
	app_connect_clear_exemption(s);
	watch_remove(&s->client);
	watch_remove(&s->backend);
	if (s->ssl) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	OPENSSL_cleanse(&s->client_secret, sizeof(s->client_secret));
	OPENSSL_cleanse(&s->server_secret, sizeof(s->server_secret));
	X509_free(s->peer_cert);
	s->peer_cert = NULL;
	sk_X509_pop_free(s->peer_chain, X509_free);
	s->peer_chain = NULL;
	free(s->proxy_hdr);
	s->proxy_hdr = NULL;
	close_fd(&s->client.fd, false);
	close_fd(&s->backend.fd, abort_backend);
	buffer_pool_put(s->to_app.data);
	buffer_pool_put(s->to_client.data);
	s->to_app.data = s->to_client.data = NULL;
	s->phase = PHASE_CLOSED;

	if (s->prev)
		s->prev->next = s->next;
	else
		live_list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	live_count--;
	s->prev = NULL;
	s->next = graveyard;
	graveyard = s;
}

void session_abort_client(struct session *s)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (s->client.fd >= 0)
		setsockopt(s->client.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

void sessions_reap(void)
{
	while (graveyard) {
		struct session *s = graveyard;

		graveyard = s->next;
		binding_put(s->binding);
		free(s);
	}
}

int sessions_expire(void)
{
	uint64_t now = now_ms(), next = UINT64_MAX;
	struct session *s, *n;

	for (s = live_list; s; s = n) {
		n = s->next;
		if (s->phase != PHASE_HANDSHAKE && s->phase != PHASE_CONNECTING)
			continue;
		if (s->deadline_ms <= now) {
			if (s->phase == PHASE_HANDSHAKE)
				reject(s, "handshake_timeout", "no complete handshake within %u ms",
				       s->binding->handshake_timeout_ms);
			else
				session_close(s, "app connect timeout", false);
			continue;
		}
		if (s->deadline_ms < next)
			next = s->deadline_ms;
	}
	return next == UINT64_MAX ? -1 : (int)(next - now);
}

void sessions_close_all(void)
{
	while (live_list)
		session_close(live_list, "moatd stopping", false);
	sessions_reap();
}

const char *session_phase_name(const struct session *s)
{
	return phase_label(s->phase);
}

unsigned sessions_recheck(void)
{
	struct session *s, *n;
	unsigned closed = 0;

	for (s = live_list; s; s = n) {
		struct binding *b = s->binding;
		const char *why;
		int err;

		n = s->next;
		if (s->phase == PHASE_HANDSHAKE || !b->close_disallowed || !s->peer_cert)
			continue;
		if (b->detached) {
			why = "its port left the policy";
		} else {
			err = tls_context_reverify(b->ctx, s->peer_cert, s->peer_chain);
			if (err == X509_V_OK)
				continue;
			why = err == X509_V_ERR_CERT_REVOKED ? "certificate revoked" :
			      err == X509_V_ERR_APPLICATION_VERIFICATION ? "identity no longer allowed" :
			      X509_verify_cert_error_string(err);
		}
		log_warn("close peer=%s port=%u subject=\"%s\": the new policy refuses it: %s",
			 s->peer, b->port, s->subject, why);
		session_abort_client(s);
		session_close(s, "refused by the reloaded policy", true);
		closed++;
	}
	return closed;
}
