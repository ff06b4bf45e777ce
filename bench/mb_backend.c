// SPDX-License-Identifier: MIT
/*
 * mb-backend: the plaintext application behind every benchmark target.
 *
 * A single-threaded epoll server speaking the small protocol described in
 * mb_common.h (sink, source, echo, ping). It listens on every address given
 * with -l and prints "ready" on stdout once all listeners are bound.
 *
 *   mb-backend -l 127.0.0.1:8400 -l 0.0.0.0:8445
 */
#define _GNU_SOURCE
#include "mb_common.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_LISTENERS 8
#define IO_BUF (1u << 20)
#define ECHO_BUF (64u << 10)

enum kind { K_LISTENER, K_CONN };

enum cstate { ST_HDR, ST_SINK, ST_SOURCE, ST_ECHO, ST_WAIT_EOF };

struct listener {
	enum kind kind;
	int fd;
};

struct conn {
	enum kind kind;
	int fd;
	uint32_t events;
	enum cstate state;
	uint8_t hdr[MB_HDR_LEN];
	size_t hdr_got;
	uint64_t len, done;
	uint8_t obuf[8];	/* small pending reply: ack or ping byte */
	size_t olen, ooff;
	uint8_t *ebuf;		/* echo buffer */
	size_t elen, eoff;
	struct conn *prev, *next;	/* all connections, freed at exit */
};

static volatile sig_atomic_t g_stop;
static uint8_t g_buf[IO_BUF];
static struct conn *g_conns;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static int conn_flush_small(struct conn *c)
{
	while (c->ooff < c->olen) {
		ssize_t n = send(c->fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);

		if (n < 0)
			return errno == EAGAIN ? 0 : -errno;
		c->ooff += (size_t)n;
	}
	return 0;
}

static void conn_queue_small(struct conn *c, const uint8_t *p, size_t n)
{
	memcpy(c->obuf, p, n);
	c->olen = n;
	c->ooff = 0;
}

static int conn_start_mode(struct conn *c)
{
	enum mb_mode mode;
	int err = mb_hdr_parse(c->hdr, &mode, &c->len);

	if (err)
		return err;
	c->done = 0;
	switch (mode) {
	case MB_MODE_SINK:
		c->state = ST_SINK;
		break;
	case MB_MODE_SOURCE:
		c->state = ST_SOURCE;
		break;
	case MB_MODE_ECHO:
		c->ebuf = malloc(ECHO_BUF);
		if (!c->ebuf)
			return -ENOMEM;
		c->state = ST_ECHO;
		break;
	case MB_MODE_PING:
		conn_queue_small(c, (const uint8_t *)"K", 1);
		c->state = ST_WAIT_EOF;
		break;
	}
	return 0;
}

/* Make as much progress as possible. Returns 0 to keep, <0 to close. */
static int conn_run(struct conn *c)
{
	ssize_t n;
	int err;

	for (;;) {
		err = conn_flush_small(c);
		if (err)
			return err;
		switch (c->state) {
		case ST_HDR:
			n = recv(c->fd, c->hdr + c->hdr_got, MB_HDR_LEN - c->hdr_got, 0);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			c->hdr_got += (size_t)n;
			if (c->hdr_got == MB_HDR_LEN) {
				err = conn_start_mode(c);
				if (err)
					return err;
			}
			continue;
		case ST_SINK: {
			uint64_t want = c->len - c->done;

			if (want == 0) {
				uint8_t ack[8];

				mb_put_be64(ack, c->done);
				conn_queue_small(c, ack, sizeof(ack));
				c->state = ST_WAIT_EOF;
				continue;
			}
			n = recv(c->fd, g_buf, want < IO_BUF ? (size_t)want : IO_BUF, 0);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			c->done += (uint64_t)n;
			continue;
		}
		case ST_SOURCE: {
			uint64_t want = c->len - c->done;

			if (want == 0) {
				c->state = ST_WAIT_EOF;
				continue;
			}
			n = send(c->fd, g_buf, want < IO_BUF ? (size_t)want : IO_BUF, MSG_NOSIGNAL);
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			c->done += (uint64_t)n;
			continue;
		}
		case ST_ECHO:
			if (c->eoff < c->elen) {
				n = send(c->fd, c->ebuf + c->eoff, c->elen - c->eoff, MSG_NOSIGNAL);
				if (n < 0)
					return errno == EAGAIN ? 0 : -errno;
				c->eoff += (size_t)n;
				continue;
			}
			n = recv(c->fd, c->ebuf, ECHO_BUF, 0);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			c->elen = (size_t)n;
			c->eoff = 0;
			continue;
		case ST_WAIT_EOF:
			if (c->ooff < c->olen)
				return 0;
			n = recv(c->fd, g_buf, IO_BUF, 0);
			if (n == 0)
				return -ECONNRESET;
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			continue;
		}
	}
}

/* EOF shows up as EPOLLIN in the states that read; errors always wake us. */
static uint32_t conn_want(const struct conn *c)
{
	if (c->ooff < c->olen)
		return EPOLLOUT;
	switch (c->state) {
	case ST_SOURCE:
		return EPOLLOUT;
	case ST_ECHO:
		return c->eoff < c->elen ? EPOLLOUT : EPOLLIN;
	default:
		return EPOLLIN;
	}
}

static void conn_free(int ep, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		g_conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->ebuf);
	free(c);
}

static int conn_update(int ep, struct conn *c)
{
	uint32_t want = conn_want(c);
	struct epoll_event ev = { .events = want, .data.ptr = c };

	if (want == c->events)
		return 0;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		return -errno;
	c->events = want;
	return 0;
}

static void accept_all(int ep, struct listener *l)
{
	static bool warned;

	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		struct epoll_event ev;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && !warned) {
				fprintf(stderr, "mb-backend: accept: %s\n", strerror(errno));
				warned = true;
			}
			return;
		}
		mb_set_nodelay(fd);
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->kind = K_CONN;
		c->fd = fd;
		c->state = ST_HDR;
		c->events = EPOLLIN;
		ev.events = c->events;
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = g_conns;
		if (g_conns)
			g_conns->prev = c;
		g_conns = c;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: mb-backend -l ADDR:PORT [-l ADDR:PORT ...]\n");
}

int main(int argc, char **argv)
{
	struct listener ls[MAX_LISTENERS];
	struct epoll_event evs[256];
	struct sigaction sa;
	int nl = 0, ep = -1, opt, rc = 1;

	while ((opt = getopt(argc, argv, "l:h")) != -1) {
		struct sockaddr_in addr;

		switch (opt) {
		case 'l':
			if (nl == MAX_LISTENERS || mb_parse_addr(optarg, &addr) < 0) {
				fprintf(stderr, "mb-backend: bad or too many -l: %s\n", optarg);
				goto cleanup;
			}
			ls[nl].kind = K_LISTENER;
			ls[nl].fd = mb_listen(&addr, 4096);
			if (ls[nl].fd < 0) {
				fprintf(stderr, "mb-backend: listen %s: %s\n", optarg,
					strerror(-ls[nl].fd));
				goto cleanup;
			}
			nl++;
			break;
		default:
			usage();
			goto cleanup;
		}
	}
	if (nl == 0) {
		usage();
		goto cleanup;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("mb-backend: epoll_create1");
		goto cleanup;
	}
	for (int i = 0; i < nl; i++) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &ls[i] };

		if (epoll_ctl(ep, EPOLL_CTL_ADD, ls[i].fd, &ev) < 0) {
			perror("mb-backend: epoll_ctl");
			goto cleanup;
		}
	}
	memset(g_buf, 0x5a, sizeof(g_buf));
	printf("ready\n");
	fflush(stdout);

	while (!g_stop) {
		int n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("mb-backend: epoll_wait");
			goto cleanup;
		}
		for (int i = 0; i < n; i++) {
			enum kind *k = evs[i].data.ptr;
			struct conn *c;

			if (*k == K_LISTENER) {
				accept_all(ep, (struct listener *)k);
				continue;
			}
			c = (struct conn *)k;
			if (conn_run(c) < 0 || conn_update(ep, c) < 0)
				conn_free(ep, c);
		}
	}
	rc = 0;
cleanup:
	while (g_conns)
		conn_free(ep, g_conns);
	if (ep >= 0)
		close(ep);
	for (int i = 0; i < nl; i++)
		close(ls[i].fd);
	return rc;
}
