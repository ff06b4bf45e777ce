// SPDX-License-Identifier: MIT
/*
 * The kernel TLS data path. After the handshake the client socket gets kTLS
 * TX and RX, the SSL object is freed, and plaintext moves between the client
 * socket and the app's socket by splice() through one pipe per direction:
 * payload never enters moatd's memory. Non-data records (alerts, KeyUpdate)
 * surface as EINVAL from splice and are read with recvmsg.
 * See shared notes kernel-memo.md for the kernel behaviour this relies on.
 */
#include "relay_ktls.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/tls.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "datapath.h"
#include "ktls.h"
#include "log.h"
#include "session.h"
#include "ssl_compat.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

#define RECORD_ALERT 21
#define RECORD_HANDSHAKE 22
#define HANDSHAKE_KEY_UPDATE 24
#define ALERT_CLOSE_NOTIFY 0
#define APP_PIPE_SIZE (256 * 1024)
#define SPLICE_CHUNK (64 * 1024)
/* Splices per wake-up before other sessions get a turn. */
#define KTLS_TURNS 32

struct ktls_relay {
	int to_app[2];    /* client -> app; holds at most one record */
	int to_client[2]; /* app -> client */
	size_t to_app_len, to_client_len;
	bool client_eof, app_eof, client_shut_wr, app_shut_wr, close_notify_seen;
	uint16_t cipher_id;          /* TLS 1.3 suite, 0 for TLS 1.2 */
	const EVP_MD *md;
	uint64_t key_updates;
};

static bool kernel_can_rekey = true; /* until a kernel says EBUSY */

static int pipe_open(int p[2], int size)
{
	if (pipe2(p, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	if (size)
		fcntl(p[1], F_SETPIPE_SZ, size); /* best effort: capped by pipe-max-size */
	return 0;
}

static void pipe_close(int p[2])
{
	for (int i = 0; i < 2; i++) {
		if (p[i] >= 0)
			close(p[i]);
		p[i] = -1;
	}
}

void relay_ktls_release(struct session *s)
{
	if (!s->ktls)
		return;
	pipe_close(s->ktls->to_app);
	pipe_close(s->ktls->to_client);
	free(s->ktls);
	s->ktls = NULL;
}

/* Installs TLS 1.3 RX from the client traffic secret; OpenSSL 3.0 does only TX. */
static int install_tls13_rx(struct session *s, uint16_t cipher_id, const char **why)
{
	union ktls_crypto_info ci;
	int size;

	if (!s->client_secret.len) {
		*why = "client traffic secret not captured";
		return -EOPNOTSUPP;
	}
	/* Bytes OpenSSL already took off the socket would be lost to the kernel. */
	if (SSL_has_pending(s->ssl)) {
		*why = "OpenSSL holds unprocessed bytes";
		return -EOPNOTSUPP;
	}
	size = ktls_tls13_crypto_info(cipher_id, s->ktls->md, &s->client_secret, 0, &ci);
	if (size < 0) {
		*why = size == -EOPNOTSUPP ? "cipher not offloadable" : "key derivation failed";
		return -EOPNOTSUPP;
	}
	/* Read-ahead is off, so OpenSSL consumed exactly through Finished: rec_seq 0. */
	if (setsockopt(s->client.fd, SOL_TLS, TLS_RX, &ci, (socklen_t)size)) {
		OPENSSL_cleanse(&ci, sizeof(ci));
		*why = "kernel refused TLS_RX";
		return -EOPNOTSUPP;
	}
	OPENSSL_cleanse(&ci, sizeof(ci));
	return 0;
}

static void update_interest(struct session *s);

int relay_ktls_start(struct session *s, const char **why)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(s->ssl);
	bool tls13 = SSL_version(s->ssl) == TLS1_3_VERSION;
	struct ktls_relay *k;
	int err;

	if (!moat_bio_ktls_send(SSL_get_wbio(s->ssl))) {
		*why = "OpenSSL did not enable kTLS TX";
		return -EOPNOTSUPP;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		*why = "out of memory";
		return -EOPNOTSUPP;
	}
	k->to_app[0] = k->to_app[1] = k->to_client[0] = k->to_client[1] = -1;
	k->cipher_id = tls13 ? (uint16_t)(SSL_CIPHER_get_id(cipher) & 0xffff) : 0;
	k->md = SSL_CIPHER_get_handshake_digest(cipher);
	s->ktls = k;

	if (!moat_bio_ktls_recv(SSL_get_rbio(s->ssl))) {
		if (!tls13) {
			*why = "OpenSSL did not enable kTLS RX for TLS 1.2";
			relay_ktls_release(s);
			return -EOPNOTSUPP;
		}
		if ((err = install_tls13_rx(s, k->cipher_id, why))) {
			/* TX stays on kTLS; OpenSSL keeps reading in userspace. */
			relay_ktls_release(s);
			return err;
		}
	}
	if ((err = pipe_open(k->to_app, 0)) || (err = pipe_open(k->to_client, APP_PIPE_SIZE))) {
		/* RX is armed now: the OpenSSL relay can no longer read this socket. */
		*why = "cannot create relay pipes";
		relay_ktls_release(s);
		return err;
	}
	/* Handed over: OpenSSL must never touch this socket again. */
	SSL_free(s->ssl);
	s->ssl = NULL;
	if (!tls13)
		OPENSSL_cleanse(&s->client_secret, sizeof(s->client_secret));
	s->datapath = DATAPATH_KTLS;
	snprintf(s->datapath_why, sizeof(s->datapath_why), "kTLS TX+RX%s",
		 tls13 && !MOAT_OPENSSL_KTLS_TLS13_RX ? " (RX installed by moat)" : "");
	update_interest(s);
	return 0;
}

/* Sends one record of the given type through kTLS TX. */
static int send_record(int fd, uint8_t type, const void *data, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(uint8_t))];
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	c->cmsg_level = SOL_TLS;
	c->cmsg_type = TLS_SET_RECORD_TYPE;
	c->cmsg_len = CMSG_LEN(sizeof(uint8_t));
	*CMSG_DATA(c) = type;
	return sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

static void send_close_notify(struct session *s)
{
	static const uint8_t close_notify[2] = { 1, ALERT_CLOSE_NOTIFY };

	send_record(s->client.fd, RECORD_ALERT, close_notify, sizeof(close_notify));
}

static int rekey(struct session *s, int direction, struct traffic_secret *ts)
{
	union ktls_crypto_info ci;
	int size, err = 0;

	if ((err = tls13_next_traffic_secret(s->ktls->md, ts)))
		return err;
	size = ktls_tls13_crypto_info(s->ktls->cipher_id, s->ktls->md, ts, 0, &ci);
	if (size < 0)
		return size;
	if (setsockopt(s->client.fd, SOL_TLS, direction, &ci, (socklen_t)size))
		err = -errno;
	OPENSSL_cleanse(&ci, sizeof(ci));
	return err;
}

/*
 * A KeyUpdate from the client (RFC 8446 4.6.3): new RX key, and when the
 * client asks, our own KeyUpdate under the old TX key, then the new TX key.
 * Kernels before 6.14 cannot replace kTLS keys (EBUSY): close cleanly.
 */
static bool handle_key_update(struct session *s, const uint8_t *msg, size_t len)
{
	static const uint8_t our_update[5] = { HANDSHAKE_KEY_UPDATE, 0, 0, 1, 0 };
	bool peer_wants_update = len >= 5 && msg[4] == 1;
	int err;

	if (len != 5 || msg[1] || msg[2] || msg[3] != 1 || msg[4] > 1) {
		session_close(s, "malformed KeyUpdate from client", true);
		return false;
	}
	err = rekey(s, TLS_RX, &s->client_secret);
	if (err) {
		if (err == -EBUSY && kernel_can_rekey) {
			kernel_can_rekey = false;
			log_warn("this kernel cannot rekey kTLS (needs Linux 6.14+): sessions whose "
				 "client sends a TLS 1.3 KeyUpdate are closed");
		}
		send_close_notify(s);
		session_close(s, err == -EBUSY ? "client KeyUpdate: kernel cannot rekey kTLS, closed"
					       : "client KeyUpdate: rekey failed, closed", false);
		return false;
	}
	if (peer_wants_update) {
		if (send_record(s->client.fd, RECORD_HANDSHAKE, our_update, sizeof(our_update)) ||
		    rekey(s, TLS_TX, &s->server_secret)) {
			session_close(s, "client KeyUpdate: cannot update our sending key", true);
			return false;
		}
	}
	s->ktls->key_updates++;
	log_info("session peer=%s port=%u: client KeyUpdate #%llu, kTLS rekeyed%s", s->peer,
		 s->binding->port, (unsigned long long)s->ktls->key_updates,
		 peer_wants_update ? " both ways" : "");
	return true;
}

/* The record at the head of the queue is not data: read it with its type. */
static bool handle_control_record(struct session *s)
{
	char cbuf[CMSG_SPACE(sizeof(uint8_t))];
	uint8_t buf[64];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			      .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c;
	uint8_t type = 0;
	ssize_t n = recvmsg(s->client.fd, &msg, MSG_DONTWAIT);

	if (n < 0) {
		if (errno == EAGAIN)
			return true;
		session_close(s, "client TLS error", true);
		return false;
	}
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE)
			type = *CMSG_DATA(c);
	if (type == RECORD_ALERT && n >= 2 && buf[1] == ALERT_CLOSE_NOTIFY) {
		s->ktls->client_eof = true;
		s->ktls->close_notify_seen = true;
		return true;
	}
	if (type == RECORD_ALERT) {
		char reason[64];

		snprintf(reason, sizeof(reason), "client sent alert %u", n >= 2 ? buf[1] : 0);
		session_close(s, reason, true);
		return false;
	}
	if (type == RECORD_HANDSHAKE && n >= 1 && buf[0] == HANDSHAKE_KEY_UPDATE)
		return handle_key_update(s, buf, (size_t)n);
	session_close(s, "unexpected TLS record from client", true);
	return false;
}

static bool client_hung_up(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

enum step { STEP_IDLE, STEP_MOVED, STEP_CLOSED };

static enum step client_to_app(struct session *s)
{
	struct ktls_relay *k = s->ktls;
	enum step moved = STEP_IDLE;
	ssize_t n;

	/* Only into an empty pipe: a partial splice out of kTLS could lose bytes. */
	if (!k->to_app_len && !k->client_eof) {
		n = splice(s->client.fd, NULL, k->to_app[1], NULL, SPLICE_CHUNK, SPLICE_F_NONBLOCK);
		if (n > 0) {
			k->to_app_len = (size_t)n;
			moved = STEP_MOVED;
		} else if (n == 0) {
			/* An empty record, or EOF: only a hang-up tells them apart. */
			if (client_hung_up(s->client.fd))
				k->client_eof = true;
			moved = STEP_MOVED;
		} else if (errno == EINVAL) {
			if (!handle_control_record(s))
				return STEP_CLOSED;
			moved = STEP_MOVED;
		} else if (errno != EAGAIN) {
			session_close(s, errno == EBADMSG ? "client record failed to decrypt"
							  : "client connection error", true);
			return STEP_CLOSED;
		}
	}
	if (k->to_app_len) {
		n = splice(k->to_app[0], NULL, s->backend.fd, NULL, k->to_app_len,
			   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			k->to_app_len -= (size_t)n;
			s->bytes_to_app += (uint64_t)n;
			moved = STEP_MOVED;
		} else if (n < 0 && errno != EAGAIN) {
			session_abort_client(s);
			session_close(s, "app reset the connection", false);
			return STEP_CLOSED;
		}
	}
	if (k->client_eof && !k->to_app_len && !k->app_shut_wr) {
		shutdown(s->backend.fd, SHUT_WR);
		k->app_shut_wr = true;
		moved = STEP_MOVED;
	}
	return moved;
}

static enum step app_to_client(struct session *s)
{
	struct ktls_relay *k = s->ktls;
	enum step moved = STEP_IDLE;
	ssize_t n;

	if (!k->to_client_len && !k->app_eof) {
		n = splice(s->backend.fd, NULL, k->to_client[1], NULL, APP_PIPE_SIZE, SPLICE_F_NONBLOCK);
		if (n > 0) {
			k->to_client_len = (size_t)n;
			moved = STEP_MOVED;
		} else if (n == 0) {
			k->app_eof = true;
			moved = STEP_MOVED;
		} else if (errno != EAGAIN) {
			session_abort_client(s);
			session_close(s, "app reset the connection", false);
			return STEP_CLOSED;
		}
	}
	if (k->to_client_len) {
		/* No SPLICE_F_MORE: each splice closes its records and pushes them. */
		n = splice(k->to_client[0], NULL, s->client.fd, NULL, k->to_client_len, SPLICE_F_NONBLOCK);
		if (n > 0) {
			k->to_client_len -= (size_t)n;
			s->bytes_to_client += (uint64_t)n;
			moved = STEP_MOVED;
		} else if (n < 0 && errno != EAGAIN) {
			session_close(s, "client went away", true);
			return STEP_CLOSED;
		}
	}
	if (k->app_eof && !k->to_client_len && !k->client_shut_wr) {
		send_close_notify(s);
		shutdown(s->client.fd, SHUT_WR);
		k->client_shut_wr = true;
		moved = STEP_MOVED;
	}
	return moved;
}

static void update_interest(struct session *s)
{
	struct ktls_relay *k = s->ktls;
	uint32_t client = 0, backend = 0;

	if (!k->to_app_len && !k->client_eof)
		client |= EPOLLIN | EPOLLRDHUP;
	if (k->to_client_len)
		client |= EPOLLOUT;
	if (!k->to_client_len && !k->app_eof)
		backend |= EPOLLIN;
	if (k->to_app_len)
		backend |= EPOLLOUT;
	if (watch_set(&s->client, client) || watch_set(&s->backend, backend))
		session_close(s, "cannot watch sockets", true);
}

static void pump(struct session *s)
{
	for (int turn = 0; turn < KTLS_TURNS; turn++) {
		enum step a = client_to_app(s);

		if (a == STEP_CLOSED)
			return;
		enum step b = app_to_client(s);

		if (b == STEP_CLOSED)
			return;
		struct ktls_relay *k = s->ktls;

		if (k->client_eof && k->app_eof && k->client_shut_wr && k->app_shut_wr) {
			session_close(s, k->close_notify_seen ? "done"
							       : "done (client closed without close_notify)",
				      false);
			return;
		}
		if (a == STEP_IDLE && b == STEP_IDLE) {
			update_interest(s);
			return;
		}
	}
	update_interest(s);
	datapath_schedule(s);
}

void relay_ktls_on_client(struct session *s, uint32_t events)
{
	(void)events;
	pump(s);
}

void relay_ktls_on_backend(struct session *s, uint32_t events)
{
	(void)events;
	pump(s);
}
