// SPDX-License-Identifier: MIT
/*
 * mb-client: load generator for the moat benchmark.
 *
 *   mb-client MODE -a ADDR:PORT [--tls --ca CA [--cert CERT --key KEY]] [options]
 *
 * Modes (protocol in mb_common.h):
 *   probe      one connection, one ping; prints verdict=accepted|rejected|error.
 *              In TLS 1.3 the client's handshake returns before the server has
 *              judged the client certificate, so the verdict comes from the
 *              read that follows: the backend's byte means accepted; an alert,
 *              EOF or reset means rejected; nothing within --timeout is an error.
 *   bulk-up    send --bytes to the sink, wait for its count
 *   bulk-down  receive --bytes from the source
 *   latency    --count round trips of --size bytes over one connection
 *   rate       full connections (connect, handshake, ping, close) for --seconds
 *              with --concurrency in flight, never resuming a session
 *   idle       holds up to --count sessions, each up end to end (pinged);
 *              commands on stdin: "open N" (until N are open), "check", "quit"
 *
 * With --wait-go, bulk, latency and rate print "ready" and wait for a line on
 * stdin before the measured part (bulk and latency connect and handshake
 * first), so the caller can sample CPU counters exactly around it. Results
 * are one line starting with "result" followed by key=value pairs.
 */
#define _GNU_SOURCE
#include "mb_common.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define BULK_CHUNK (256u << 10)

struct opts {
	const char *mode;
	struct sockaddr_in addr;
	bool have_addr;
	bool tls;
	const char *ca, *cert, *key, *groups, *suites;
	uint64_t bytes;
	int concurrency;
	double seconds;
	long count;
	size_t size;
	double timeout;
	bool wait_go;
	bool no_verify;
};

struct stream {
	int fd;
	SSL *ssl;
};

/* ------------------------------------------------------------------ */
/* TLS setup and error text                                           */

/* Results are key=value pairs split on spaces: keep values in one token. */
static const char *tok(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == ' ' || *p == '=' || *p == '\n')
			*p = '_';
	return s;
}

static void ssl_err_text(char *buf, size_t size)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, size);
	else
		snprintf(buf, size, "none");
	ERR_clear_error();
	tok(buf);
}

static int tls_ctx_new(const struct opts *o, SSL_CTX **out)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int err = -EINVAL;

	if (!ctx)
		return -ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (o->groups && SSL_CTX_set1_groups_list(ctx, o->groups) != 1) {
		fprintf(stderr, "mb-client: bad groups %s\n", o->groups);
		goto fail;
	}
	if (o->suites && SSL_CTX_set_ciphersuites(ctx, o->suites) != 1) {
		fprintf(stderr, "mb-client: bad ciphersuites %s\n", o->suites);
		goto fail;
	}
	if (!o->ca || SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1) {
		fprintf(stderr, "mb-client: cannot load CA %s\n", o->ca ? o->ca : "(none)");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, o->no_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	if (o->cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, o->cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, o->key, SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			fprintf(stderr, "mb-client: cannot load client cert %s / key %s\n",
				o->cert, o->key ? o->key : "(none)");
			goto fail;
		}
	}
	*out = ctx;
	return 0;
fail:
	ERR_print_errors_fp(stderr);
	SSL_CTX_free(ctx);
	return err;
}

/* ------------------------------------------------------------------ */
/* Blocking streams (probe, bulk, latency)                            */

static int set_timeouts(int fd, double secs)
{
	struct timeval tv = {
		.tv_sec = (time_t)secs,
		.tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6),
	};

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

/* Connect (and handshake). On failure *stage names the step. */
static int stream_open(const struct opts *o, SSL_CTX *ctx, struct stream *s,
		       const char **stage, char *detail, size_t dsize)
{
	int err;

	s->ssl = NULL;
	*stage = "connect";
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	err = set_timeouts(s->fd, o->timeout);
	if (err)
		goto fail;
	mb_set_nodelay(s->fd);
	if (connect(s->fd, (const struct sockaddr *)&o->addr, sizeof(o->addr)) < 0) {
		err = -errno;
		snprintf(detail, dsize, "%s", strerror(errno));
		goto fail;
	}
	if (!ctx)
		return 0;
	*stage = "handshake";
	s->ssl = SSL_new(ctx);
	if (!s->ssl) {
		err = -ENOMEM;
		goto fail;
	}
	SSL_set_fd(s->ssl, s->fd);
	if (SSL_connect(s->ssl) != 1) {
		ssl_err_text(detail, dsize);
		if (strcmp(detail, "none") == 0)
			snprintf(detail, dsize, "%s", errno ? strerror(errno) : "eof");
		err = -EPROTO;
		goto fail;
	}
	return 0;
fail:
	SSL_free(s->ssl);
	s->ssl = NULL;
	close(s->fd);
	s->fd = -1;
	return err;
}

static void stream_close(struct stream *s)
{
	if (s->ssl) {
		SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
	}
	if (s->fd >= 0)
		close(s->fd);
	s->ssl = NULL;
	s->fd = -1;
}

/* Returns bytes (>0), 0 on EOF, <0 on error (detail filled). */
static ssize_t stream_read(struct stream *s, void *buf, size_t len, char *detail, size_t dsize)
{
	if (!s->ssl) {
		ssize_t n;

		do
			n = recv(s->fd, buf, len, 0);
		while (n < 0 && errno == EINTR);
		if (n < 0) {
			int e = errno;

			snprintf(detail, dsize, "%s", e == EAGAIN ? "timeout" : strerror(e));
			return -e;
		}
		return n;
	}
	int n = SSL_read(s->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));

	if (n > 0)
		return n;
	switch (SSL_get_error(s->ssl, n)) {
	case SSL_ERROR_ZERO_RETURN:
		snprintf(detail, dsize, "close_notify");
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 || n == 0) {
			snprintf(detail, dsize, "eof");
			ERR_clear_error();
			return 0;
		}
		snprintf(detail, dsize, "%s", errno == EAGAIN ? "timeout" : strerror(errno));
		ERR_clear_error();
		return errno == EAGAIN ? -EAGAIN : -EIO;
	default:
		ssl_err_text(detail, dsize);
		return -EPROTO;
	}
}

static int stream_write_all(struct stream *s, const void *buf, size_t len, char *detail, size_t dsize)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n;

		if (s->ssl) {
			int r = SSL_write(s->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));

			if (r <= 0) {
				ssl_err_text(detail, dsize);
				return -EIO;
			}
			n = r;
		} else {
			n = send(s->fd, p, len, MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				snprintf(detail, dsize, "%s", strerror(errno));
				return -errno;
			}
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int stream_read_full(struct stream *s, void *buf, size_t len, char *detail, size_t dsize)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = stream_read(s, p, len, detail, dsize);

		if (n == 0)
			return -ECONNRESET;
		if (n < 0)
			return (int)n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int wait_go(const struct opts *o)
{
	char line[64];

	if (!o->wait_go)
		return 0;
	printf("ready\n");
	fflush(stdout);
	return mb_read_line(line, sizeof(line)) > 0 ? 0 : -EPIPE;
}

static void print_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	printf(" client_user_s=%.3f client_sys_s=%.3f",
	       (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
}

static void print_session(const struct stream *s)
{
	if (!s->ssl)
		return;
	int nid = SSL_get_negotiated_group(s->ssl);
	const char *g = nid > 0 ? OBJ_nid2sn(nid & ~TLSEXT_nid_unknown) : NULL;

	printf(" proto=%s cipher=%s group=%s", SSL_get_version(s->ssl),
	       SSL_get_cipher_name(s->ssl), g ? g : "unknown");
}

/* ------------------------------------------------------------------ */
/* probe                                                              */

static int run_probe(const struct opts *o, SSL_CTX *ctx)
{
	char detail[256] = "";
	const char *stage;
	struct stream s;
	uint8_t hdr[MB_HDR_LEN], b;
	ssize_t n;
	int err;

	err = stream_open(o, ctx, &s, &stage, detail, sizeof(detail));
	if (err) {
		/* A refused TCP connection is not a TLS verdict. */
		if (!detail[0])
			snprintf(detail, sizeof(detail), "%s", strerror(-err));
		printf("result verdict=%s stage=%s detail=%s\n",
		       strcmp(stage, "handshake") == 0 ? "rejected" : "error", stage, tok(detail));
		return 0;
	}
	mb_hdr_build(hdr, MB_MODE_PING, 0);
	err = stream_write_all(&s, hdr, sizeof(hdr), detail, sizeof(detail));
	if (err) {
		printf("result verdict=rejected stage=write detail=%s\n", tok(detail));
		goto out;
	}
	n = stream_read(&s, &b, 1, detail, sizeof(detail));
	if (n == 1 && b == 'K') {
		printf("result verdict=accepted stage=read");
		print_session(&s);
		printf("\n");
	} else if (n == -EAGAIN) {
		printf("result verdict=error stage=read detail=no_verdict_within_%.0fs\n", o->timeout);
	} else if (n == 1) {
		printf("result verdict=error stage=read detail=unexpected_byte_0x%02x\n", b);
	} else {
		printf("result verdict=rejected stage=read detail=%s\n", tok(detail));
	}
out:
	stream_close(&s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* bulk                                                               */

static int run_bulk(const struct opts *o, SSL_CTX *ctx, bool up)
{
	char detail[256] = "";
	const char *stage;
	struct stream s = { .fd = -1 };
	uint8_t hdr[MB_HDR_LEN], ack[8];
	uint8_t *buf = NULL;
	uint64_t done = 0, t0, t1;
	int err;

	buf = malloc(BULK_CHUNK);
	if (!buf)
		return -ENOMEM;
	memset(buf, 0xa5, BULK_CHUNK);
	err = stream_open(o, ctx, &s, &stage, detail, sizeof(detail));
	if (err) {
		fprintf(stderr, "mb-client: %s failed: %s\n", stage, detail);
		goto cleanup;
	}
	err = wait_go(o);
	if (err)
		goto cleanup;
	t0 = mb_now_ns();
	mb_hdr_build(hdr, up ? MB_MODE_SINK : MB_MODE_SOURCE, o->bytes);
	err = stream_write_all(&s, hdr, sizeof(hdr), detail, sizeof(detail));
	if (err)
		goto io_fail;
	if (up) {
		while (done < o->bytes) {
			size_t n = o->bytes - done < BULK_CHUNK ? (size_t)(o->bytes - done) : BULK_CHUNK;

			err = stream_write_all(&s, buf, n, detail, sizeof(detail));
			if (err)
				goto io_fail;
			done += n;
		}
		err = stream_read_full(&s, ack, sizeof(ack), detail, sizeof(detail));
		if (err)
			goto io_fail;
		if (mb_get_be64(ack) != o->bytes) {
			fprintf(stderr, "mb-client: sink counted %llu bytes, sent %llu\n",
				(unsigned long long)mb_get_be64(ack), (unsigned long long)o->bytes);
			err = -EPROTO;
			goto cleanup;
		}
	} else {
		while (done < o->bytes) {
			uint64_t want = o->bytes - done;
			ssize_t n = stream_read(&s, buf, want < BULK_CHUNK ? (size_t)want : BULK_CHUNK,
						detail, sizeof(detail));

			if (n <= 0) {
				err = n == 0 ? -ECONNRESET : (int)n;
				goto io_fail;
			}
			done += (uint64_t)n;
		}
	}
	t1 = mb_now_ns();
	{
		double secs = (double)(t1 - t0) / 1e9;

		printf("result bytes=%llu seconds=%.6f gbps=%.4f", (unsigned long long)o->bytes,
		       secs, (double)o->bytes * 8.0 / secs / 1e9);
		print_session(&s);
		print_cpu();
		printf("\n");
	}
	err = 0;
	goto cleanup;
io_fail:
	fprintf(stderr, "mb-client: bulk %s failed after %llu bytes: %s\n", up ? "up" : "down",
		(unsigned long long)done, detail);
	if (!err)
		err = -EIO;
cleanup:
	stream_close(&s);
	free(buf);
	return err;
}

/* ------------------------------------------------------------------ */
/* latency                                                            */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, long n, double p)
{
	long i = (long)(p * (double)(n - 1) + 0.5);

	if (i >= n)
		i = n - 1;
	return (double)v[i] / 1e3;
}

static int run_latency(const struct opts *o, SSL_CTX *ctx)
{
	char detail[256] = "";
	const char *stage;
	struct stream s = { .fd = -1 };
	uint8_t hdr[MB_HDR_LEN];
	uint8_t *req = NULL, *rsp = NULL;
	uint64_t *lat = NULL, sum = 0;
	long warm = o->count / 10 + 10;
	int err;

	req = calloc(1, o->size);
	rsp = calloc(1, o->size);
	lat = calloc((size_t)o->count, sizeof(*lat));
	if (!req || !rsp || !lat) {
		err = -ENOMEM;
		goto cleanup;
	}
	memset(req, 'q', o->size);
	err = stream_open(o, ctx, &s, &stage, detail, sizeof(detail));
	if (err) {
		fprintf(stderr, "mb-client: %s failed: %s\n", stage, detail);
		goto cleanup;
	}
	mb_hdr_build(hdr, MB_MODE_ECHO, 0);
	err = stream_write_all(&s, hdr, sizeof(hdr), detail, sizeof(detail));
	for (long i = 0; !err && i < warm; i++) {
		err = stream_write_all(&s, req, o->size, detail, sizeof(detail));
		if (!err)
			err = stream_read_full(&s, rsp, o->size, detail, sizeof(detail));
	}
	if (err)
		goto io_fail;
	err = wait_go(o);
	if (err)
		goto cleanup;
	for (long i = 0; i < o->count; i++) {
		uint64_t t0 = mb_now_ns();

		err = stream_write_all(&s, req, o->size, detail, sizeof(detail));
		if (!err)
			err = stream_read_full(&s, rsp, o->size, detail, sizeof(detail));
		if (err)
			goto io_fail;
		lat[i] = mb_now_ns() - t0;
		sum += lat[i];
	}
	qsort(lat, (size_t)o->count, sizeof(*lat), cmp_u64);
	printf("result count=%ld size=%zu mean_us=%.2f p50_us=%.2f p90_us=%.2f p99_us=%.2f "
	       "p999_us=%.2f max_us=%.2f", o->count, o->size,
	       (double)sum / (double)o->count / 1e3, pct(lat, o->count, 0.50),
	       pct(lat, o->count, 0.90), pct(lat, o->count, 0.99), pct(lat, o->count, 0.999),
	       (double)lat[o->count - 1] / 1e3);
	print_session(&s);
	print_cpu();
	printf("\n");
	err = 0;
	goto cleanup;
io_fail:
	fprintf(stderr, "mb-client: latency exchange failed: %s\n", detail);
	if (!err)
		err = -EIO;
cleanup:
	stream_close(&s);
	free(req);
	free(rsp);
	free(lat);
	return err;
}

/* ------------------------------------------------------------------ */
/* Asynchronous connections (rate, idle)                              */

enum ac_state { AC_FREE, AC_CONNECT, AC_HANDSHAKE, AC_SEND, AC_RECV, AC_IDLE };

enum ac_fail { F_CONNECT, F_HANDSHAKE, F_SEND, F_RECV, F_TIMEOUT, F_LOST, F_NR };

static const char *const fail_names[F_NR] = {
	"connect", "handshake", "send", "recv", "timeout", "lost",
};

struct aconn {
	int fd;
	SSL *ssl;
	enum ac_state state;
	uint32_t events;
	size_t sent;
	uint64_t t0;
};

struct engine {
	const struct opts *o;
	SSL_CTX *ctx;
	int ep;
	uint64_t fails[F_NR];
	char first_err[256];
};

static void ac_close(struct engine *en, struct aconn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(en->ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->fd = -1;
	c->state = AC_FREE;
	c->events = 0;
}

static void ac_fail(struct engine *en, struct aconn *c, enum ac_fail why, const char *detail)
{
	en->fails[why]++;
	if (!en->first_err[0]) {
		snprintf(en->first_err, sizeof(en->first_err), "%s:%s", fail_names[why], detail);
		tok(en->first_err);
	}
	ac_close(en, c);
}

static int ac_want(struct engine *en, struct aconn *c, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = c };

	if (want == c->events)
		return 0;
	if (epoll_ctl(en->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return -errno;
	c->events = want;
	return 0;
}

static int ac_start(struct engine *en, struct aconn *c)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };

	c->ssl = NULL;
	c->sent = 0;
	c->t0 = mb_now_ns();
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		en->fails[F_CONNECT]++;
		if (!en->first_err[0]) {
			snprintf(en->first_err, sizeof(en->first_err), "socket:%s", strerror(errno));
			tok(en->first_err);
		}
		return -errno;
	}
	mb_set_nodelay(c->fd);
	if (connect(c->fd, (const struct sockaddr *)&en->o->addr, sizeof(en->o->addr)) < 0 &&
	    errno != EINPROGRESS) {
		char d[64];

		snprintf(d, sizeof(d), "%s", strerror(errno));
		ac_fail(en, c, F_CONNECT, d);
		return -ECONNREFUSED;
	}
	if (epoll_ctl(en->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		ac_fail(en, c, F_CONNECT, "epoll_ctl");
		return -errno;
	}
	c->events = EPOLLOUT;
	c->state = AC_CONNECT;
	return 0;
}

/* Map an SSL result to "wait" (0, interest set) or failure (<0). */
static int ac_ssl_wait(struct engine *en, struct aconn *c, int r, enum ac_fail why)
{
	char d[256];

	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return ac_want(en, c, EPOLLIN);
	case SSL_ERROR_WANT_WRITE:
		return ac_want(en, c, EPOLLOUT);
	case SSL_ERROR_ZERO_RETURN:
		snprintf(d, sizeof(d), "close_notify");
		break;
	case SSL_ERROR_SYSCALL:
		snprintf(d, sizeof(d), "%s", errno ? strerror(errno) : "eof");
		ERR_clear_error();
		break;
	default:
		ssl_err_text(d, sizeof(d));
		break;
	}
	ac_fail(en, c, why, d);
	return -EPROTO;
}

/*
 * Advance one connection. Returns 1 when the ping came back (the session is
 * established end to end), 0 while in progress, <0 after a failure (closed).
 */
static int ac_step(struct engine *en, struct aconn *c)
{
	uint8_t hdr[MB_HDR_LEN];
	int r;

	for (;;) {
		switch (c->state) {
		case AC_CONNECT: {
			int soerr = 0;
			socklen_t len = sizeof(soerr);

			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
			if (soerr) {
				ac_fail(en, c, F_CONNECT, strerror(soerr));
				return -soerr;
			}
			if (en->ctx) {
				c->ssl = SSL_new(en->ctx);
				if (!c->ssl) {
					ac_fail(en, c, F_HANDSHAKE, "SSL_new");
					return -ENOMEM;
				}
				SSL_set_fd(c->ssl, c->fd);
				SSL_set_connect_state(c->ssl);
				c->state = AC_HANDSHAKE;
			} else {
				c->state = AC_SEND;
			}
			continue;
		}
		case AC_HANDSHAKE:
			r = SSL_connect(c->ssl);
			if (r != 1)
				return ac_ssl_wait(en, c, r, F_HANDSHAKE);
			c->state = AC_SEND;
			continue;
		case AC_SEND:
			mb_hdr_build(hdr, MB_MODE_PING, 0);
			if (c->ssl) {
				/* A retried SSL_write must repeat the same arguments. */
				r = SSL_write(c->ssl, hdr, MB_HDR_LEN);
				if (r <= 0)
					return ac_ssl_wait(en, c, r, F_SEND);
			} else {
				ssize_t n = send(c->fd, hdr + c->sent, MB_HDR_LEN - c->sent, MSG_NOSIGNAL);

				if (n < 0) {
					if (errno == EAGAIN)
						return ac_want(en, c, EPOLLOUT);
					ac_fail(en, c, F_SEND, strerror(errno));
					return -EIO;
				}
				c->sent += (size_t)n;
				if (c->sent < MB_HDR_LEN)
					continue;
			}
			c->state = AC_RECV;
			continue;
		case AC_RECV: {
			uint8_t b;

			if (c->ssl) {
				r = SSL_read(c->ssl, &b, 1);
				if (r <= 0)
					return ac_ssl_wait(en, c, r, F_RECV);
			} else {
				ssize_t n = recv(c->fd, &b, 1, 0);

				if (n < 0 && errno == EAGAIN)
					return ac_want(en, c, EPOLLIN);
				if (n <= 0) {
					ac_fail(en, c, F_RECV, n == 0 ? "eof" : strerror(errno));
					return -EIO;
				}
			}
			if (b != 'K') {
				ac_fail(en, c, F_RECV, "unexpected_byte");
				return -EPROTO;
			}
			c->state = AC_IDLE;
			ac_want(en, c, EPOLLIN | EPOLLRDHUP);
			return 1;
		}
		case AC_IDLE:
		case AC_FREE:
			return 0;
		}
	}
}

static int engine_init(struct engine *en, const struct opts *o, SSL_CTX *ctx)
{
	memset(en, 0, sizeof(*en));
	en->o = o;
	en->ctx = ctx;
	en->ep = epoll_create1(EPOLL_CLOEXEC);
	return en->ep < 0 ? -errno : 0;
}

static void print_fails(const struct engine *en)
{
	uint64_t total = 0;

	for (int i = 0; i < F_NR; i++) {
		total += en->fails[i];
		if (en->fails[i])
			printf(" fail_%s=%llu", fail_names[i], (unsigned long long)en->fails[i]);
	}
	printf(" failed=%llu", (unsigned long long)total);
	if (en->first_err[0])
		printf(" first_error=%s", en->first_err);
}

static int run_rate(const struct opts *o, SSL_CTX *ctx)
{
	struct engine en;
	struct aconn *cs = NULL;
	uint64_t *lat = NULL;
	size_t nlat = 0, cap = 1 << 16;
	uint64_t t_start, t_end, ok = 0, tmo = (uint64_t)(o->timeout * 1e9);
	struct epoll_event evs[256];
	int err, active = 0;

	err = engine_init(&en, o, ctx);
	if (err)
		return err;
	cs = calloc((size_t)o->concurrency, sizeof(*cs));
	lat = malloc(cap * sizeof(*lat));
	if (!cs || !lat) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (int i = 0; i < o->concurrency; i++)
		cs[i].fd = -1;
	err = wait_go(o);
	if (err)
		goto cleanup;
	t_start = mb_now_ns();
	t_end = t_start + (uint64_t)(o->seconds * 1e9);
	for (int i = 0; i < o->concurrency; i++)
		if (ac_start(&en, &cs[i]) == 0)
			active++;
	/* Connections still in flight at the deadline are not counted. */
	while (active > 0 && mb_now_ns() < t_end) {
		int n = epoll_wait(en.ep, evs, 256, 50);
		uint64_t now = mb_now_ns();

		if (n < 0 && errno != EINTR) {
			err = -errno;
			goto cleanup;
		}
		for (int i = 0; i < n; i++) {
			struct aconn *c = evs[i].data.ptr;
			int r;

			if (c->state == AC_FREE)
				continue;
			r = ac_step(&en, c);
			if (r == 0)
				continue;
			if (r == 1) {
				if (now <= t_end) {
					ok++;
					if (nlat == cap) {
						uint64_t *nl = realloc(lat, 2 * cap * sizeof(*lat));

						if (nl) {
							lat = nl;
							cap *= 2;
						}
					}
					if (nlat < cap)
						lat[nlat++] = now - c->t0;
				}
				/* Polite close: close_notify, then FIN. */
				if (c->ssl)
					SSL_shutdown(c->ssl);
				ac_close(&en, c);
			}
			active--;
			if (now < t_end && ac_start(&en, c) == 0)
				active++;
		}
		now = mb_now_ns();
		for (int i = 0; i < o->concurrency; i++) {
			if (cs[i].state != AC_FREE && now > cs[i].t0 && now - cs[i].t0 > tmo) {
				ac_fail(&en, &cs[i], F_TIMEOUT, "no_progress");
				active--;
				if (now < t_end && ac_start(&en, &cs[i]) == 0)
					active++;
			}
		}
	}
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	printf("result conns=%llu seconds=%.3f conns_per_s=%.1f concurrency=%d",
	       (unsigned long long)ok, o->seconds, (double)ok / o->seconds, o->concurrency);
	if (nlat)
		printf(" conn_p50_ms=%.3f conn_p99_ms=%.3f", pct(lat, (long)nlat, 0.5) / 1e3,
		       pct(lat, (long)nlat, 0.99) / 1e3);
	print_fails(&en);
	print_cpu();
	printf("\n");
	err = 0;
cleanup:
	if (cs)
		for (int i = 0; i < o->concurrency; i++)
			if (cs[i].state != AC_FREE)
				ac_close(&en, &cs[i]);
	free(cs);
	free(lat);
	close(en.ep);
	return err;
}

/* Open sessions in slots [*nopen, target) until each is up or has failed. */
static int idle_open(struct engine *en, struct aconn *cs, long *nopen, long target)
{
	struct epoll_event evs[256];
	uint64_t tmo = (uint64_t)(en->o->timeout * 1e9);
	long first = *nopen, next = *nopen, pending = 0;

	for (;;) {
		while (pending < en->o->concurrency && next < target) {
			if (ac_start(en, &cs[next]) == 0)
				pending++;
			next++;
		}
		if (pending == 0)
			break;
		int n = epoll_wait(en->ep, evs, 256, 50);

		if (n < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; i < n; i++) {
			struct aconn *c = evs[i].data.ptr;

			if (c->state == AC_IDLE) {
				/* An established session became readable: closed by the peer. */
				ac_fail(en, c, F_LOST, "closed_by_peer");
				continue;
			}
			if (c->state == AC_FREE)
				continue;
			if (ac_step(en, c) != 0)
				pending--;
		}
		uint64_t now = mb_now_ns();

		for (long i = first; i < next; i++) {
			struct aconn *c = &cs[i];

			if (c->state != AC_FREE && c->state != AC_IDLE && now > c->t0 &&
			    now - c->t0 > tmo) {
				ac_fail(en, c, F_TIMEOUT, "no_progress");
				pending--;
			}
		}
	}
	*nopen = next;
	return 0;
}

static long idle_alive(struct engine *en, struct aconn *cs, long nopen)
{
	struct epoll_event evs[256];
	long alive = 0;
	int n;

	/* Any event on an idle session means it was closed (or sent junk). */
	while ((n = epoll_wait(en->ep, evs, 256, 0)) > 0) {
		for (int i = 0; i < n; i++) {
			struct aconn *c = evs[i].data.ptr;

			if (c->state == AC_IDLE)
				ac_fail(en, c, F_LOST, "closed_by_peer");
			else if (c->state != AC_FREE)
				ac_close(en, c);
		}
	}
	for (long i = 0; i < nopen; i++)
		alive += cs[i].state == AC_IDLE;
	return alive;
}

/* Sessions live in one array of --count slots; epoll points into it. */
static int run_idle(const struct opts *o, SSL_CTX *ctx)
{
	struct engine en;
	struct aconn *cs = NULL;
	long nopen = 0;
	char line[128];
	int err;

	err = engine_init(&en, o, ctx);
	if (err)
		return err;
	cs = calloc((size_t)o->count, sizeof(*cs));
	if (!cs) {
		err = -ENOMEM;
		goto cleanup;
	}
	for (long i = 0; i < o->count; i++)
		cs[i].fd = -1;
	printf("ready\n");
	while (mb_read_line(line, sizeof(line)) > 0) {
		long target;

		if (sscanf(line, "open %ld", &target) == 1) {
			uint64_t t0 = mb_now_ns();

			if (target > o->count || target < nopen) {
				printf("error bad_target max=%ld open=%ld\n", o->count, nopen);
				continue;
			}
			err = idle_open(&en, cs, &nopen, target);
			if (err)
				goto cleanup;
			printf("opened target=%ld alive=%ld seconds=%.3f", target,
			       idle_alive(&en, cs, nopen), (double)(mb_now_ns() - t0) / 1e9);
			print_fails(&en);
			printf("\n");
		} else if (strcmp(line, "check") == 0) {
			printf("alive=%ld", idle_alive(&en, cs, nopen));
			print_fails(&en);
			printf("\n");
		} else if (strcmp(line, "quit") == 0) {
			break;
		} else {
			printf("error unknown_command\n");
		}
	}
	err = 0;
cleanup:
	for (long i = 0; i < nopen; i++)
		if (cs[i].state != AC_FREE)
			ac_close(&en, &cs[i]);
	free(cs);
	close(en.ep);
	return err;
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr,
		"usage: mb-client probe|bulk-up|bulk-down|latency|rate|idle -a ADDR:PORT\n"
		"       [--tls --ca CA [--cert CERT --key KEY]] [--groups LIST]\n"
		"       [--ciphersuites LIST] [--no-verify]\n"
		"       [--bytes N[K|M|G]] [--concurrency N] [--seconds S] [--count N]\n"
		"       [--size N] [--timeout S] [--wait-go]\n");
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "tls", no_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'A' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "groups", required_argument, NULL, 'g' },
		{ "ciphersuites", required_argument, NULL, 'S' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "count", required_argument, NULL, 'n' },
		{ "size", required_argument, NULL, 'z' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "wait-go", no_argument, NULL, 'w' },
		{ "no-verify", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = {
		.bytes = 1ull << 30,
		.concurrency = 32,
		.seconds = 3,
		.count = 20000,
		.size = 64,
		.timeout = 5,
	};
	SSL_CTX *ctx = NULL;
	int opt, err = -EINVAL;
	uint64_t v;

	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage();
		return 2;
	}
	o.mode = argv[1];
	optind = 2;
	while ((opt = getopt_long(argc, argv, "a:", lopts, NULL)) != -1) {
		switch (opt) {
		case 'a':
			o.have_addr = mb_parse_addr(optarg, &o.addr) == 0;
			break;
		case 't':
			o.tls = true;
			break;
		case 'A':
			o.ca = optarg;
			break;
		case 'C':
			o.cert = optarg;
			break;
		case 'K':
			o.key = optarg;
			break;
		case 'g':
			o.groups = optarg;
			break;
		case 'S':
			o.suites = optarg;
			break;
		case 'b':
			if (mb_parse_size(optarg, &o.bytes) < 0 || o.bytes == 0)
				goto bad;
			break;
		case 'c':
			o.concurrency = atoi(optarg);
			break;
		case 's':
			o.seconds = atof(optarg);
			break;
		case 'n':
			o.count = atol(optarg);
			break;
		case 'z':
			if (mb_parse_size(optarg, &v) < 0 || v == 0 || v > (1u << 20))
				goto bad;
			o.size = (size_t)v;
			break;
		case 'T':
			o.timeout = atof(optarg);
			break;
		case 'w':
			o.wait_go = true;
			break;
		case 'V':
			o.no_verify = true;
			break;
		default:
			goto bad;
		}
	}
	if (!o.have_addr || o.concurrency < 1 || o.seconds <= 0 || o.count < 1 ||
	    o.timeout <= 0 || (o.cert && !o.key))
		goto bad;
	if (o.tls) {
		err = tls_ctx_new(&o, &ctx);
		if (err)
			return 1;
	}
	if (strcmp(o.mode, "probe") == 0)
		err = run_probe(&o, ctx);
	else if (strcmp(o.mode, "bulk-up") == 0)
		err = run_bulk(&o, ctx, true);
	else if (strcmp(o.mode, "bulk-down") == 0)
		err = run_bulk(&o, ctx, false);
	else if (strcmp(o.mode, "latency") == 0)
		err = run_latency(&o, ctx);
	else if (strcmp(o.mode, "rate") == 0)
		err = run_rate(&o, ctx);
	else if (strcmp(o.mode, "idle") == 0)
		err = run_idle(&o, ctx);
	else
		goto bad;
	SSL_CTX_free(ctx);
	if (err)
		fprintf(stderr, "mb-client: %s: %s\n", o.mode, strerror(-err));
	return err ? 1 : 0;
bad:
	usage();
	SSL_CTX_free(ctx);
	return 2;
}
