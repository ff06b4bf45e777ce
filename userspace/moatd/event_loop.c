// SPDX-License-Identifier: MIT
#include "event_loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

static int epoll_fd = -1;

int event_loop_init(void)
{
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	return epoll_fd < 0 ? -errno : 0;
}

void event_loop_fini(void)
{
	if (epoll_fd >= 0)
		close(epoll_fd);
	epoll_fd = -1;
}

int watch_set(struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	int op;

	if (events == w->events)
		return 0;
	if (!events) {
		watch_remove(w);
		return 0;
	}
	op = w->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(epoll_fd, op, w->fd, &ev))
		return -errno;
	w->events = events;
	return 0;
}

void watch_remove(struct watch *w)
{
	if (w->events && w->fd >= 0)
		epoll_ctl(epoll_fd, EPOLL_CTL_DEL, w->fd, NULL);
	w->events = 0;
}

int event_loop_run_once(int timeout_ms)
{
	struct epoll_event evs[64];
	int n = epoll_wait(epoll_fd, evs, 64, timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;

		/* An earlier handler in this round may have dropped the watch. */
		if (w && w->events)
			w->on_event(w, evs[i].events);
	}
	return n;
}

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
