// SPDX-License-Identifier: MIT
/*
 * The connection from moatd to the app for a verified session: the address,
 * the loopback exemption when lo is covered, and the PROXY v2 header that
 * must reach the app before any client byte.
 */
#include "app_connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath.h"
#include "identity.h"
#include "log.h"
#include "proxy_v2.h"
#include "session.h"
#include "sockaddr_text.h"
#include "steering.h"

#define CONNECT_TIMEOUT_MS 10000

static struct steering *steer;

void app_connect_init(struct steering *st)
{
	steer = st;
}

/* The app: the binding's backend, else 127.0.0.1 on the port the client dialled. */
static socklen_t backend_addr(const struct session *s, struct sockaddr_storage *out)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;

	if (s->binding->backend.ss_family == AF_INET6) {
		*out = s->binding->backend;
		return sizeof(struct sockaddr_in6);
	}
	if (s->binding->backend.ss_family == AF_INET) {
		*out = s->binding->backend;
		return sizeof(struct sockaddr_in);
	}
	memset(out, 0, sizeof(*out));
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a4->sin_port = htons(sockaddr_port(&s->local));
	return sizeof(struct sockaddr_in);
}

/*
 * lo is covered: exempt exactly this socket's 4-tuple. We hold the source
 * port bound, so no other process can produce that tuple.
 */
static int exempt_backend(struct session *s, int fd, const struct sockaddr_storage *app)
{
	struct sockaddr_storage src;
	socklen_t len = sizeof(src);
	int err;

	memset(&src, 0, sizeof(src));
	src.ss_family = app->ss_family;
	if (app->ss_family == AF_INET)
		((struct sockaddr_in *)&src)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&src)->sin6_addr = in6addr_loopback;
	if (bind(fd, (struct sockaddr *)&src, app->ss_family == AF_INET ? sizeof(struct sockaddr_in)
									  : sizeof(struct sockaddr_in6)) ||
	    getsockname(fd, (struct sockaddr *)&src, &len))
		return -errno;
	memset(&s->exempt, 0, sizeof(s->exempt));
	s->exempt.family = app->ss_family;
	if (app->ss_family == AF_INET) {
		s->exempt.src_addr[0] = ((struct sockaddr_in *)&src)->sin_addr.s_addr;
		s->exempt.dst_addr[0] = ((const struct sockaddr_in *)app)->sin_addr.s_addr;
	} else {
		memcpy(s->exempt.src_addr, &((struct sockaddr_in6 *)&src)->sin6_addr, 16);
		memcpy(s->exempt.dst_addr, &((const struct sockaddr_in6 *)app)->sin6_addr, 16);
	}
	s->exempt.src_port = sockaddr_port(&src);
	s->exempt.dst_port = sockaddr_port(app);
	if ((err = steering_exempt_add(steer, &s->exempt)))
		return err;
	s->exempt_set = true;
	return 0;
}

void app_connect_start(struct session *s)
{
	struct sockaddr_storage app;
	socklen_t app_len = backend_addr(s, &app);
	char app_text[INET6_ADDRSTRLEN + 8];
	int fd, one = 1, err;

	fd = socket(app.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	s->backend.fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->binding->covers_loopback && (err = exempt_backend(s, fd, &app))) {
		errno = -err;
		goto fail;
	}
	s->phase = PHASE_CONNECTING;
	s->deadline_ms = now_ms() + CONNECT_TIMEOUT_MS;
	watch_set(&s->client, 0);
	if (connect(fd, (struct sockaddr *)&app, app_len) == 0) {
		app_connect_finish(s);
		return;
	}
	if (errno != EINPROGRESS)
		goto fail;
	watch_set(&s->backend, EPOLLOUT);
	return;

fail:
	err = errno;
	sockaddr_text(&app, "?", app_text, sizeof(app_text));
	log_warn("session peer=%s port=%u: cannot connect to the app at %s: %s",
		 s->peer, s->binding->port, app_text, strerror(err));
	session_close(s, NULL, false);
}

void app_connect_clear_exemption(struct session *s)
{
	if (s->exempt_set) {
		steering_exempt_del(steer, &s->exempt);
		s->exempt_set = false;
	}
}

/* The PROXY v2 header for this session: addresses and what the handshake proved. */
static int proxy_header_build(struct session *s)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(peer);
	char cn[256] = "", uri[1024] = "";
	uint8_t buf[PROXY_V2_MAX_HEADER];
	struct proxy_v2_info info = { .src = &peer, .dst = &s->local,
				      .tls_version = s->tls_version, .cipher = s->cipher,
				      .cn = cn, .san_uri = uri };
	int n;

	if (getpeername(s->client.fd, (struct sockaddr *)&peer, &len))
		return -errno;
	if (s->peer_cert) {
		id_subject_cn(s->peer_cert, cn, sizeof(cn));
		id_first_uri(s->peer_cert, uri, sizeof(uri));
	}
	n = proxy_v2_encode(&info, buf, sizeof(buf));
	if (n < 0)
		return n;
	s->proxy_hdr = malloc((size_t)n);
	if (!s->proxy_hdr)
		return -ENOMEM;
	memcpy(s->proxy_hdr, buf, (size_t)n);
	s->proxy_len = (uint16_t)n;
	s->proxy_off = 0;
	return 0;
}

/* Writes what is left of the header; 1 when all of it is out, 0 to wait for EPOLLOUT. */
static int proxy_header_send(struct session *s)
{
	while (s->proxy_off < s->proxy_len) {
		ssize_t n = send(s->backend.fd, s->proxy_hdr + s->proxy_off,
				 s->proxy_len - s->proxy_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (n <= 0)
			return -errno;
		s->proxy_off += (uint16_t)n;
	}
	free(s->proxy_hdr);
	s->proxy_hdr = NULL;
	return 1;
}

void app_connect_finish(struct session *s)
{
	int err = 0, sent;
	socklen_t len = sizeof(err);

	if (!s->backend_connected) {
		app_connect_clear_exemption(s);
		if (getsockopt(s->backend.fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err) {
			log_warn("session peer=%s port=%u: the app refused the connection: %s",
				 s->peer, s->binding->port, strerror(err));
			session_close(s, NULL, false);
			return;
		}
		s->backend_connected = true;
		if (s->binding->proxy_v2 && (err = proxy_header_build(s))) {
			log_warn("session peer=%s port=%u: cannot build the PROXY header: %s",
				 s->peer, s->binding->port, strerror(-err));
			session_close(s, NULL, true);
			return;
		}
	}
	/* The header goes first, whole, before any client byte: retry on EPOLLOUT. */
	if (s->proxy_hdr && (sent = proxy_header_send(s)) <= 0) {
		if (sent == 0) {
			watch_set(&s->backend, EPOLLOUT);
			return;
		}
		log_warn("session peer=%s port=%u: cannot send the PROXY header: %s",
			 s->peer, s->binding->port, strerror(-sent));
		session_close(s, NULL, true);
		return;
	}
	s->phase = PHASE_RELAY;
	datapath_start(s);
}
