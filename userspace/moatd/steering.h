/* SPDX-License-Identifier: MIT */
/* Kernel side of moat: the pinned sk_lookup program and its maps. */
#ifndef MOAT_STEERING_H
#define MOAT_STEERING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moat_abi.h"

struct moat_steer_bpf;

struct steering {
	struct moat_steer_bpf *skel;
	int ports_fd;
	int listeners_fd;
	int exempt_fd;
	int stats_fd;
	char pin_dir[PATH_MAX];
};

/* "<bpffs>/moat/<netns inode>": one pin set per network namespace. */
int steering_pin_dir(const char *bpffs, char *out, size_t len);

/*
 * Loads the program, reusing pinned maps and the pinned link when present
 * (the program in a pinned link is replaced atomically), else attaches to
 * this network namespace and pins everything. Protection then outlives moatd.
 */
int steering_open(struct steering *st, const char *bpffs);
/* Closes moatd's handles only; pins, and so protection, stay. */
void steering_close(struct steering *st);
/* Opens the pinned maps of an existing installation without loading anything. */
int steering_open_pinned(struct steering *st, const char *bpffs);
/* Lifts all protection in this namespace: unpins link and maps. */
int steering_remove_pins(const char *bpffs);

int steering_port_set(struct steering *st, uint16_t port, uint32_t ifindex, uint32_t slot);
int steering_port_del(struct steering *st, uint16_t port, uint32_t ifindex);
int steering_listener_set(struct steering *st, uint32_t slot, int listen_fd);
int steering_listener_del(struct steering *st, uint32_t slot);
int steering_exempt_add(struct steering *st, const struct moat_exempt_key *key);
int steering_exempt_del(struct steering *st, const struct moat_exempt_key *key);
int steering_stats_read(struct steering *st, uint64_t out[MOAT_STAT_MAX]);

typedef void (*steering_port_cb)(const struct moat_port_key *key,
				 const struct moat_port_value *val, void *arg);
int steering_ports_foreach(struct steering *st, steering_port_cb cb, void *arg);

#endif
