/* SPDX-License-Identifier: MIT */
/* Single-threaded epoll loop: every fd moatd watches is a struct watch. */
#ifndef MOAT_EVENT_LOOP_H
#define MOAT_EVENT_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct watch;
typedef void (*watch_fn)(struct watch *w, uint32_t events);

struct watch {
	int fd;
	uint32_t events; /* current interest; 0 when not registered */
	watch_fn on_event;
};

int event_loop_init(void);
void event_loop_fini(void);
/* Sets interest to exactly `events`, adding or removing the fd as needed. */
int watch_set(struct watch *w, uint32_t events);
void watch_remove(struct watch *w);
/* Runs one round of events, waiting at most timeout_ms. */
int event_loop_run_once(int timeout_ms);
uint64_t now_ms(void);

#endif
