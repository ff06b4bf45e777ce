/* SPDX-License-Identifier: MIT */
/* Kernel TLS data path: offload after the handshake, then splice through pipes. */
#ifndef MOAT_RELAY_KTLS_H
#define MOAT_RELAY_KTLS_H

#include <stdint.h>

struct session;

/*
 * Moves a verified session to kTLS TX+RX and starts the splice relay.
 * 0: done. -EOPNOTSUPP: not possible for this session, *why says why, and
 * the session is untouched (the userspace relay takes it). Other errors:
 * the socket may be half-configured and the session must be closed.
 */
int relay_ktls_start(struct session *s, const char **why);
void relay_ktls_on_client(struct session *s, uint32_t events);
void relay_ktls_on_backend(struct session *s, uint32_t events);
void relay_ktls_release(struct session *s);

#endif
