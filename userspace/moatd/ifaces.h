/* SPDX-License-Identifier: MIT */
/* Follows network interfaces over rtnetlink (libnl-route cache manager). */
#ifndef MOAT_IFACES_H
#define MOAT_IFACES_H

#include <stdint.h>

int ifaces_init(void);
void ifaces_fini(void);
/* The cache manager's socket, for the event loop. */
int ifaces_fd(void);
/* Applies pending link events: bindings_link_update() for each. */
void ifaces_on_ready(void);
uint32_t ifaces_index_of(const char *name);

#endif
