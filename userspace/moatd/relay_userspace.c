// SPDX-License-Identifier: MIT
/*
 * The OpenSSL relay: used where the kernel has no kTLS (or a session cannot
 * be offloaded). Each direction holds at most one record of plaintext.
 */
#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "buffer_pool.h"
#include "datapath.h"
#include "log.h"
#include "session.h"

/* Turns per wake-up before yielding to other sessions. */
#define PUMP_TURNS 16

enum pump_result { PUMP_IDLE, PUMP_MOVED, PUMP_CLOSED };

static bool buf_ready(struct relay_buf *b)
{
	if (!b->data)
		b->data = buffer_pool_get();
	return b->data != NULL;
}

static void buf_release_if_empty(struct relay_buf *b)
{
	if (b->len == 0 && b->data) {
		buffer_pool_put(b->data);
		b->data = NULL;
		b->off = 0;
	}
}

static bool is_unexpected_eof(void)
{
	unsigned long e = ERR_peek_error();

	return ERR_GET_LIB(e) == ERR_LIB_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

static enum pump_result client_to_app(struct session *s)
{
	enum pump_result moved = PUMP_IDLE;

	if (!s->to_app.len && !s->client_eof) {
		if (!buf_ready(&s->to_app)) {
			session_close(s, "out of memory", true);
			return PUMP_CLOSED;
		}
		s->to_app.off = 0;
		s->ssl_read_wants_write = false;
		/* Gather records until the buffer is full or the socket is drained. */
		while (s->to_app.len + SSL3_RT_MAX_PLAIN_LENGTH <= RELAY_BUF_SIZE) {
			ERR_clear_error();
			int n = SSL_read(s->ssl, s->to_app.data + s->to_app.len,
					 RELAY_BUF_SIZE - (int)s->to_app.len);

			if (n > 0) {
				s->to_app.len += (uint32_t)n;
				moved = PUMP_MOVED;
				continue;
			}
			int err = SSL_get_error(s->ssl, n);

			if (err == SSL_ERROR_WANT_WRITE) {
				s->ssl_read_wants_write = true;
			} else if (err == SSL_ERROR_ZERO_RETURN) {
				s->client_eof = true;
				moved = PUMP_MOVED;
			} else if (err != SSL_ERROR_WANT_READ) {
				if ((err == SSL_ERROR_SYSCALL && errno == 0) || is_unexpected_eof()) {
					/* TCP FIN without close_notify: pass the EOF on, note it. */
					s->client_eof = true;
					s->truncated = true;
					ERR_clear_error();
					moved = PUMP_MOVED;
				} else {
					char why[256], reason[300];

					openssl_errors_to_string(why, sizeof(why));
					if (err == SSL_ERROR_SYSCALL)
						snprintf(why, sizeof(why), "%s", errno ? strerror(errno) : "eof");
					snprintf(reason, sizeof(reason), "client error: %s", why);
					session_close(s, reason, true);
					return PUMP_CLOSED;
				}
			}
			break;
		}
		buf_release_if_empty(&s->to_app);
	}
	if (s->to_app.len) {
		ssize_t n = send(s->backend.fd, s->to_app.data + s->to_app.off, s->to_app.len,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			s->to_app.off += (uint32_t)n;
			s->to_app.len -= (uint32_t)n;
			s->bytes_to_app += (uint64_t)n;
			buf_release_if_empty(&s->to_app);
			moved = PUMP_MOVED;
		} else if (errno != EAGAIN && errno != EINTR) {
			session_abort_client(s);
			session_close(s, "app reset the connection", false);
			return PUMP_CLOSED;
		}
	}
	if (s->client_eof && !s->to_app.len && !s->app_shut_wr) {
		shutdown(s->backend.fd, SHUT_WR);
		s->app_shut_wr = true;
		moved = PUMP_MOVED;
	}
	return moved;
}

static enum pump_result app_to_client(struct session *s)
{
	enum pump_result moved = PUMP_IDLE;

	if (!s->to_client.len && !s->app_eof) {
		if (!buf_ready(&s->to_client)) {
			session_close(s, "out of memory", true);
			return PUMP_CLOSED;
		}
		ssize_t n = recv(s->backend.fd, s->to_client.data, RELAY_BUF_SIZE, MSG_DONTWAIT);

		if (n > 0) {
			s->to_client.off = 0;
			s->to_client.len = (uint32_t)n;
			moved = PUMP_MOVED;
		} else if (n == 0) {
			s->app_eof = true;
			moved = PUMP_MOVED;
		} else if (errno != EAGAIN && errno != EINTR) {
			session_abort_client(s);
			session_close(s, "app reset the connection", false);
			return PUMP_CLOSED;
		}
		buf_release_if_empty(&s->to_client);
	}
	if (s->to_client.len) {
		ERR_clear_error();
		int n = SSL_write(s->ssl, s->to_client.data + s->to_client.off, (int)s->to_client.len);

		s->ssl_write_wants_read = false;
		if (n > 0) {
			s->to_client.off += (uint32_t)n;
			s->to_client.len -= (uint32_t)n;
			s->bytes_to_client += (uint64_t)n;
			buf_release_if_empty(&s->to_client);
			moved = PUMP_MOVED;
		} else {
			int err = SSL_get_error(s->ssl, n);

			if (err == SSL_ERROR_WANT_READ) {
				s->ssl_write_wants_read = true;
			} else if (err != SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				session_close(s, "client went away", true);
				return PUMP_CLOSED;
			}
		}
	}
	if (s->app_eof && !s->to_client.len && !s->client_shut_wr) {
		/* close_notify, then FIN; we keep reading: TLS 1.3 allows half-close. */
		ERR_clear_error();
		SSL_shutdown(s->ssl);
		ERR_clear_error();
		shutdown(s->client.fd, SHUT_WR);
		s->client_shut_wr = true;
		moved = PUMP_MOVED;
	}
	return moved;
}

static void update_interest(struct session *s)
{
	uint32_t client = 0, backend = 0;

	if ((!s->client_eof && !s->to_app.len && !s->ssl_read_wants_write) ||
	    (s->to_client.len && s->ssl_write_wants_read))
		client |= EPOLLIN;
	if ((s->to_client.len && !s->ssl_write_wants_read) || s->ssl_read_wants_write)
		client |= EPOLLOUT;
	if (!s->app_eof && !s->to_client.len)
		backend |= EPOLLIN;
	if (s->to_app.len)
		backend |= EPOLLOUT;
	if (watch_set(&s->client, client) || watch_set(&s->backend, backend))
		session_close(s, "cannot watch sockets", true);
}

void relay_userspace_pump(struct session *s)
{
	for (int turn = 0; turn < PUMP_TURNS; turn++) {
		enum pump_result a = client_to_app(s);

		if (a == PUMP_CLOSED)
			return;
		enum pump_result b = app_to_client(s);

		if (b == PUMP_CLOSED)
			return;
		if (s->client_eof && s->app_eof && s->client_shut_wr && s->app_shut_wr) {
			session_close(s, s->truncated ? "done (client closed without close_notify)"
						      : "done", false);
			return;
		}
		if (a == PUMP_IDLE && b == PUMP_IDLE) {
			update_interest(s);
			return;
		}
	}
	/* Still busy: let other sessions run, then come back without waiting for epoll. */
	update_interest(s);
	datapath_schedule(s);
}

void relay_userspace_start(struct session *s)
{
	/*
	 * Read-ahead halves read() calls (no separate header read). It stays off
	 * during the handshake because the kTLS path needs OpenSSL to have read
	 * exactly through Finished.
	 */
	SSL_set_read_ahead(s->ssl, 1);
	s->datapath = DATAPATH_USERSPACE;
	relay_userspace_pump(s);
}
