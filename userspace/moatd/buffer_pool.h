/* SPDX-License-Identifier: MIT */
/* Relay buffers are borrowed only while data is in flight: idle sessions hold none. */
#ifndef MOAT_BUFFER_POOL_H
#define MOAT_BUFFER_POOL_H

/* Four TLS records of plaintext: fewer send()/recv() calls per byte. */
#define RELAY_BUF_SIZE (64 * 1024)

char *buffer_pool_get(void);
void buffer_pool_put(char *buf);
void buffer_pool_drain(void);

#endif
