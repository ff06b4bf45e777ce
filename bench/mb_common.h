/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the moat benchmark tools (bench/).
 *
 * Wire protocol between the bench client and the bench backend, carried
 * unchanged through every proxy: the client opens with a 16-byte header
 *
 *   bytes 0..3   magic "MBH1"
 *   byte  4      mode: 'S' sink, 'G' source, 'E' echo, 'P' ping
 *   bytes 5..7   zero
 *   bytes 8..15  length, big endian (sink/source only)
 *
 *   'S' the backend reads LEN bytes, then answers with 8 bytes (the count,
 *       big endian) and waits for EOF;
 *   'G' the backend writes LEN bytes and waits for EOF;
 *   'E' the backend echoes everything until EOF;
 *   'P' the backend answers one byte 'K' and waits for EOF.
 */
#ifndef MB_COMMON_H
#define MB_COMMON_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define MB_HDR_LEN 16
#define MB_MAGIC "MBH1"

enum mb_mode {
	MB_MODE_SINK = 'S',
	MB_MODE_SOURCE = 'G',
	MB_MODE_ECHO = 'E',
	MB_MODE_PING = 'P',
};

/* Fill a 16-byte header. */
void mb_hdr_build(uint8_t hdr[MB_HDR_LEN], enum mb_mode mode, uint64_t len);
/* Parse a header; returns 0 or -EPROTO. */
int mb_hdr_parse(const uint8_t hdr[MB_HDR_LEN], enum mb_mode *mode, uint64_t *len);

void mb_put_be64(uint8_t *p, uint64_t v);
uint64_t mb_get_be64(const uint8_t *p);

/* "A.B.C.D:PORT" -> sockaddr_in; returns 0 or -EINVAL. */
int mb_parse_addr(const char *s, struct sockaddr_in *out);

/* Parse an unsigned decimal with optional K/M/G (binary) suffix; 0 or -EINVAL. */
int mb_parse_size(const char *s, uint64_t *out);

uint64_t mb_now_ns(void);

int mb_set_nonblock(int fd);
int mb_set_nodelay(int fd);

/* Listening TCP socket (SO_REUSEADDR, nonblocking); fd or -errno. */
int mb_listen(const struct sockaddr_in *sa, int backlog);

/* Read a full line from stdin into buf (without newline); length, 0 on EOF, -errno. */
int mb_read_line(char *buf, size_t size);

#endif
