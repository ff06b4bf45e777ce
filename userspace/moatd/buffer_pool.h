/* SPDX-License-Identifier: MIT */
/* Relay buffers are borrowed only while data is in flight: idle sessions hold none. */
#ifndef MOAT_BUFFER_POOL_H
#define MOAT_BUFFER_POOL_H

/* One TLS record's worth of plaintext. */
#define RELAY_BUF_SIZE 16384

char *buffer_pool_get(void);
void buffer_pool_put(char *buf);
void buffer_pool_drain(void);

#endif
