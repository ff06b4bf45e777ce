/* SPDX-License-Identifier: MIT */
/*
 * PROXY protocol v2 header toward the app (HAProxy's doc/proxy-protocol.txt):
 * the client's original addresses plus the TLS facts as TLVs.
 */
#ifndef MOAT_PROXY_V2_H
#define MOAT_PROXY_V2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP2_TYPE_UNIQUE_ID     0x05
#define PP2_TYPE_SSL           0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN     0x22
#define PP2_SUBTYPE_SSL_CIPHER 0x23
/* moat's own TLV (custom range 0xE0-0xEF): the client's first SAN URI, any length. */
#define PP2_TYPE_MOAT_SAN_URI  0xE0
#define PP2_CLIENT_SSL         0x01
#define PP2_CLIENT_CERT_CONN   0x02
#define PP2_CLIENT_CERT_SESS   0x04
/* The spec caps UNIQUE_ID at 128 bytes; longer URIs go only in 0xE0. */
#define PP2_UNIQUE_ID_MAX      128
#define PROXY_V2_MAX_HEADER    2048

struct proxy_v2_info {
	const struct sockaddr_storage *src; /* the client */
	const struct sockaddr_storage *dst; /* the address it dialled */
	const char *tls_version, *cipher, *cn, *san_uri; /* NULL or "": left out */
};

/*
 * Writes a PROXY v2 PROXY-command header into buf. Returns its length, or
 * -ENOSPC. Addresses of mixed or unknown families are sent as v4-mapped
 * IPv6 or, failing that, AF_UNSPEC (LOCAL semantics kept by the app).
 */
int proxy_v2_encode(const struct proxy_v2_info *info, uint8_t *buf, size_t cap);

#endif
