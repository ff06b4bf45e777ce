// SPDX-License-Identifier: MIT
/*
 * mb-splice: a plaintext TCP relay that moves bytes with splice(2) only.
 *
 * It is the "no-crypto bound" of the benchmark: what a proxy that does no TLS
 * at all costs on this machine. Single-threaded, level-triggered epoll.
 * Pipes are taken from a small pool only while a direction has bytes in
 * flight, so an idle session holds just its two sockets (9,000 sessions fit
 * under a 20,000 open-file limit).
 *
 *   mb-splice -l 10.0.0.1:8444 -c 127.0.0.1:8400 [-p PIPE_BYTES]
 */
#define _GNU_SOURCE
#include "mb_common.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_MAX 64
#define PUMP_ROUNDS 16

enum kind { K_LISTENER, K_END };

struct pipe_ent {
	int r, w;
	struct pipe_ent *next;
};

struct sess;

struct end {
	enum kind kind;
	struct sess *s;
	int fd;
	uint32_t events;
	bool added;
};

struct dir {
	struct pipe_ent *p;
	size_t inpipe;
	bool eof;
	bool shut;
};

/* e[0] is the client side, e[1] the backend; d[i] carries e[i] -> e[1-i]. */
struct sess {
	struct end e[2];
	struct dir d[2];
	bool connecting;
	bool dead;
	struct sess *next_dead;
	struct sess *prev, *next;	/* all live sessions, freed at exit */
};

static volatile sig_atomic_t g_stop;
static struct pipe_ent *g_pool;
static int g_pool_len;
static int g_pipe_size = 256 << 10;
static struct sockaddr_in g_backend;
/* Sessions that failed during one epoll batch, freed after it. */
static struct sess *g_dead;
static struct sess *g_sessions;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static struct pipe_ent *pipe_get(void)
{
	struct pipe_ent *p = g_pool;
	int fds[2];

	if (p) {
		g_pool = p->next;
		g_pool_len--;
		return p;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return NULL;
	/* Best effort: a larger pipe means fewer splice calls per MiB. */
	fcntl(fds[1], F_SETPIPE_SZ, g_pipe_size);
	p = malloc(sizeof(*p));
	if (!p) {
		close(fds[0]);
		close(fds[1]);
		return NULL;
	}
	p->r = fds[0];
	p->w = fds[1];
	return p;
}

static void pipe_put(struct pipe_ent *p)
{
	if (g_pool_len >= POOL_MAX) {
		close(p->r);
		close(p->w);
		free(p);
		return;
	}
	p->next = g_pool;
	g_pool = p;
	g_pool_len++;
}

/* Move bytes for direction i. 0 when blocked or done, <0 on error. */
static int pump(struct sess *s, int i)
{
	struct dir *d = &s->d[i];
	int src = s->e[i].fd, dst = s->e[1 - i].fd;

	for (int round = 0; round < PUMP_ROUNDS; round++) {
		ssize_t n;

		if (d->inpipe > 0) {
			n = splice(d->p->r, NULL, dst, NULL, d->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n < 0)
				return errno == EAGAIN ? 0 : -errno;
			d->inpipe -= (size_t)n;
			continue;
		}
		if (d->p) {
			pipe_put(d->p);
			d->p = NULL;
		}
		if (d->eof) {
			if (!d->shut) {
				shutdown(dst, SHUT_WR);
				d->shut = true;
			}
			return 0;
		}
		d->p = pipe_get();
		if (!d->p)
			return -ENOMEM;
		n = splice(src, NULL, d->p->w, NULL, (size_t)g_pipe_size,
			   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n == 0) {
			d->eof = true;
			continue;
		}
		if (n < 0) {
			int err = errno;

			pipe_put(d->p);
			d->p = NULL;
			return err == EAGAIN ? 0 : -err;
		}
		d->inpipe = (size_t)n;
	}
	return 0;
}

static uint32_t end_want(const struct sess *s, int k)
{
	uint32_t ev = 0;

	if (s->connecting)
		return k == 1 ? EPOLLOUT : 0;
	if (!s->d[k].eof && s->d[k].inpipe == 0)
		ev |= EPOLLIN;
	if (s->d[1 - k].inpipe > 0)
		ev |= EPOLLOUT;
	return ev;
}

static int end_update(int ep, struct end *e, uint32_t want)
{
	struct epoll_event ev = { .events = want, .data.ptr = e };

	if (e->added && want == e->events)
		return 0;
	if (epoll_ctl(ep, e->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, e->fd, &ev) < 0)
		return -errno;
	e->added = true;
	e->events = want;
	return 0;
}

static void sess_link(struct sess *s)
{
	s->next = g_sessions;
	if (g_sessions)
		g_sessions->prev = s;
	g_sessions = s;
}

static void sess_free(struct sess *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (g_sessions == s)
		g_sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	for (int k = 0; k < 2; k++) {
		if (s->e[k].fd >= 0)
			close(s->e[k].fd);	/* also drops it from epoll */
		if (s->d[k].p) {
			/* A pipe holding stale bytes cannot go back to the pool. */
			close(s->d[k].p->r);
			close(s->d[k].p->w);
			free(s->d[k].p);
		}
	}
	free(s);
}

/* Run a session after an event; returns <0 when it must be freed. */
static int sess_step(int ep, struct sess *s)
{
	int err;

	if (s->connecting) {
		int soerr = 0;
		socklen_t len = sizeof(soerr);

		if (getsockopt(s->e[1].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			return -errno;
		if (soerr == EINPROGRESS || soerr == EALREADY)
			return 0;
		if (soerr)
			return -soerr;
		s->connecting = false;
	}
	for (int i = 0; i < 2; i++) {
		err = pump(s, i);
		if (err)
			return err;
	}
	if (s->d[0].shut && s->d[1].shut)
		return -ECONNRESET;
	for (int k = 0; k < 2; k++) {
		err = end_update(ep, &s->e[k], end_want(s, k));
		if (err)
			return err;
	}
	return 0;
}

static void accept_all(int ep, int lfd)
{
	static bool warned;

	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct sess *s;
		int bfd;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && !warned) {
				fprintf(stderr, "mb-splice: accept: %s\n", strerror(errno));
				warned = true;
			}
			return;
		}
		s = calloc(1, sizeof(*s));
		if (!s) {
			close(fd);
			continue;
		}
		sess_link(s);
		s->e[0] = (struct end){ .kind = K_END, .s = s, .fd = fd };
		s->e[1] = (struct end){ .kind = K_END, .s = s, .fd = -1 };
		mb_set_nodelay(fd);
		bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (bfd < 0)
			goto drop;
		s->e[1].fd = bfd;
		mb_set_nodelay(bfd);
		if (connect(bfd, (struct sockaddr *)&g_backend, sizeof(g_backend)) < 0) {
			if (errno != EINPROGRESS)
				goto drop;
			s->connecting = true;
		}
		if (end_update(ep, &s->e[0], end_want(s, 0)) < 0 ||
		    end_update(ep, &s->e[1], end_want(s, 1)) < 0)
			goto drop;
		if (!s->connecting && sess_step(ep, s) < 0)
			goto drop;
		continue;
drop:
		sess_free(s);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: mb-splice -l LISTEN_ADDR:PORT -c BACKEND_ADDR:PORT [-p PIPE_BYTES]\n");
}

int main(int argc, char **argv)
{
	struct sockaddr_in laddr;
	struct epoll_event evs[256];
	struct end lend = { .kind = K_LISTENER, .fd = -1 };
	struct sigaction sa;
	bool have_l = false, have_c = false;
	int ep = -1, opt, rc = 1;

	while ((opt = getopt(argc, argv, "l:c:p:h")) != -1) {
		uint64_t v;

		switch (opt) {
		case 'l':
			have_l = mb_parse_addr(optarg, &laddr) == 0;
			break;
		case 'c':
			have_c = mb_parse_addr(optarg, &g_backend) == 0;
			break;
		case 'p':
			if (mb_parse_size(optarg, &v) < 0 || v < 4096 || v > (1u << 30)) {
				usage();
				goto cleanup;
			}
			g_pipe_size = (int)v;
			break;
		default:
			usage();
			goto cleanup;
		}
	}
	if (!have_l || !have_c) {
		usage();
		goto cleanup;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lend.fd = mb_listen(&laddr, 4096);
	if (lend.fd < 0) {
		fprintf(stderr, "mb-splice: listen: %s\n", strerror(-lend.fd));
		goto cleanup;
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0 || end_update(ep, &lend, EPOLLIN) < 0) {
		perror("mb-splice: epoll");
		goto cleanup;
	}
	printf("ready\n");
	fflush(stdout);

	while (!g_stop) {
		int n = epoll_wait(ep, evs, (int)(sizeof(evs) / sizeof(evs[0])), 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("mb-splice: epoll_wait");
			goto cleanup;
		}
		for (int i = 0; i < n; i++) {
			struct end *e = evs[i].data.ptr;

			if (e->kind == K_LISTENER) {
				accept_all(ep, e->fd);
				continue;
			}
			if (e->s->dead)
				continue;
			if (sess_step(ep, e->s) < 0) {
				e->s->dead = true;
				e->s->next_dead = g_dead;
				g_dead = e->s;
			}
		}
		while (g_dead) {
			struct sess *s = g_dead;

			g_dead = s->next_dead;
			sess_free(s);
		}
	}
	rc = 0;
cleanup:
	while (g_sessions)
		sess_free(g_sessions);
	while (g_pool) {
		struct pipe_ent *p = g_pool;

		g_pool = p->next;
		close(p->r);
		close(p->w);
		free(p);
	}
	if (ep >= 0)
		close(ep);
	if (lend.fd >= 0)
		close(lend.fd);
	return rc;
}
