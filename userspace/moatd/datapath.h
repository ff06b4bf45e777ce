/* SPDX-License-Identifier: MIT */
/*
 * After the handshake a session moves bytes on one of two data paths:
 * kernel TLS (relay_ktls.c) when the kernel and cipher allow it, else the
 * OpenSSL relay (relay_userspace.c). This is the switch between them.
 */
#ifndef MOAT_DATAPATH_H
#define MOAT_DATAPATH_H

#include <stdbool.h>
#include <stdint.h>

struct session;

/* Probes once whether this kernel offers kTLS; logs the answer. */
void datapath_probe(void);
bool datapath_kernel_has_ktls(void);

void datapath_start(struct session *s);
void datapath_on_client(struct session *s, uint32_t events);
void datapath_on_backend(struct session *s, uint32_t events);
void datapath_release(struct session *s);

/* Sessions that stopped short of EAGAIN to let others run get another turn. */
void datapath_schedule(struct session *s);
bool datapath_run_scheduled(void);

/* Why sessions could not use kTLS, for `moat status`. */
struct fallback_count {
	const char *reason;
	uint64_t count;
};
const struct fallback_count *datapath_fallbacks(unsigned *n);

/* userspace relay */
void relay_userspace_start(struct session *s);
void relay_userspace_pump(struct session *s);

#endif
