// SPDX-License-Identifier: MIT
#include "proxy_v2.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

static const uint8_t pp2_signature[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
					   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

struct writer {
	uint8_t *buf;
	size_t cap, len;
	int err;
};

static void put(struct writer *w, const void *data, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = -ENOSPC;
		return;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
}

static void put_u8(struct writer *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put_be16(struct writer *w, uint16_t v)
{
	v = htons(v);
	put(w, &v, 2);
}

static void put_tlv(struct writer *w, uint8_t type, const char *value, size_t n)
{
	if (n > 0xffff) {
		w->err = -ENOSPC;
		return;
	}
	put_u8(w, type);
	put_be16(w, (uint16_t)n);
	put(w, value, n);
}

static bool present(const char *s)
{
	return s && *s;
}

/* Both addresses as IPv6, v4 ones mapped, when the families differ. */
static void as_v6(const struct sockaddr_storage *ss, struct in6_addr *a, uint16_t *port)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)ss;

		*a = s6->sin6_addr;
		*port = s6->sin6_port;
	} else {
		const struct sockaddr_in *s4 = (const void *)ss;

		memset(a, 0, sizeof(*a));
		a->s6_addr[10] = a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &s4->sin_addr, 4);
		*port = s4->sin_port;
	}
}

static bool is_v4ish(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return true;
	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static void v4_of(const struct sockaddr_storage *ss, struct in_addr *a, uint16_t *port)
{
	if (ss->ss_family == AF_INET) {
		*a = ((const struct sockaddr_in *)ss)->sin_addr;
		*port = ((const struct sockaddr_in *)ss)->sin_port;
	} else {
		memcpy(a, &((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr[12], 4);
		*port = ((const struct sockaddr_in6 *)ss)->sin6_port;
	}
}

int proxy_v2_encode(const struct proxy_v2_info *info, uint8_t *buf, size_t cap)
{
	struct writer w = { .buf = buf, .cap = cap };
	const struct sockaddr_storage *src = info->src, *dst = info->dst;
	bool known = src && dst && (src->ss_family == AF_INET || src->ss_family == AF_INET6) &&
		     (dst->ss_family == AF_INET || dst->ss_family == AF_INET6);
	size_t len_at, ssl_len_at, ssl_start;
	uint32_t verify_ok = 0; /* 0: the client certificate was verified */

	put(&w, pp2_signature, sizeof(pp2_signature));
	put_u8(&w, 0x21); /* version 2, PROXY command */
	if (!known) {
		put_u8(&w, 0x00); /* AF_UNSPEC, UNSPEC */
	} else if (is_v4ish(src) && is_v4ish(dst)) {
		put_u8(&w, 0x11); /* TCP over IPv4 */
	} else {
		put_u8(&w, 0x21); /* TCP over IPv6 */
	}
	len_at = w.len;
	put_be16(&w, 0); /* filled in below */
	if (known && is_v4ish(src) && is_v4ish(dst)) {
		struct in_addr s, d;
		uint16_t sp, dp;

		v4_of(src, &s, &sp);
		v4_of(dst, &d, &dp);
		put(&w, &s, 4);
		put(&w, &d, 4);
		put(&w, &sp, 2);
		put(&w, &dp, 2);
	} else if (known) {
		struct in6_addr s, d;
		uint16_t sp, dp;

		as_v6(src, &s, &sp);
		as_v6(dst, &d, &dp);
		put(&w, &s, 16);
		put(&w, &d, 16);
		put(&w, &sp, 2);
		put(&w, &dp, 2);
	}

	if (present(info->san_uri) && strlen(info->san_uri) <= PP2_UNIQUE_ID_MAX)
		put_tlv(&w, PP2_TYPE_UNIQUE_ID, info->san_uri, strlen(info->san_uri));

	/* PP2_TYPE_SSL: client flags, verify result, then sub-TLVs. */
	put_u8(&w, PP2_TYPE_SSL);
	ssl_len_at = w.len;
	put_be16(&w, 0);
	ssl_start = w.len;
	put_u8(&w, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
	put(&w, &verify_ok, 4);
	if (present(info->tls_version))
		put_tlv(&w, PP2_SUBTYPE_SSL_VERSION, info->tls_version, strlen(info->tls_version));
	if (present(info->cn))
		put_tlv(&w, PP2_SUBTYPE_SSL_CN, info->cn, strlen(info->cn));
	if (present(info->cipher))
		put_tlv(&w, PP2_SUBTYPE_SSL_CIPHER, info->cipher, strlen(info->cipher));
	if (!w.err) {
		uint16_t n = htons((uint16_t)(w.len - ssl_start));

		memcpy(buf + ssl_len_at, &n, 2);
	}
	if (present(info->san_uri))
		put_tlv(&w, PP2_TYPE_MOAT_SAN_URI, info->san_uri, strlen(info->san_uri));

	if (w.err)
		return w.err;
	if (w.len - 16 > 0xffff)
		return -ENOSPC;
	uint16_t total = htons((uint16_t)(w.len - 16));

	memcpy(buf + len_at, &total, 2);
	return (int)w.len;
}
