// SPDX-License-Identifier: MIT
/* proxy_v2: byte layout of the header per HAProxy's doc/proxy-protocol.txt. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "harness.h"
#include "proxy_v2.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static void v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
	a->sin_port = htons(port);
}

/* Finds a TLV of type in [p, end); returns its value and length. */
static const uint8_t *tlv(const uint8_t *p, const uint8_t *end, uint8_t type, size_t *len)
{
	while (p + 3 <= end) {
		size_t n = (size_t)p[1] << 8 | p[2];

		if (p + 3 + n > end)
			return NULL;
		if (p[0] == type) {
			*len = n;
			return p + 3;
		}
		p += 3 + n;
	}
	return NULL;
}

static void ipv4_with_ssl_tlvs(void)
{
	struct sockaddr_storage src, dst;
	uint8_t buf[PROXY_V2_MAX_HEADER];
	struct proxy_v2_info info = { &src, &dst, "TLSv1.3", "TLS_AES_128_GCM_SHA256", "client-ec",
				      "spiffe://example.org/ns/prod/web" };
	const uint8_t *ssl, *v, *end;
	size_t n;
	int len;

	v4(&src, "10.200.0.2", 50000);
	v4(&dst, "10.200.0.1", 8443);
	len = proxy_v2_encode(&info, buf, sizeof(buf));
	CHECK(len > 28, "length %d", len);
	CHECK(!memcmp(buf, sig, 12), "signature");
	CHECK(buf[12] == 0x21 && buf[13] == 0x11, "ver/cmd %02x fam %02x", buf[12], buf[13]);
	CHECK((buf[14] << 8 | buf[15]) == len - 16, "length field");
	CHECK(!memcmp(buf + 16, "\x0a\xc8\x00\x02", 4) && !memcmp(buf + 20, "\x0a\xc8\x00\x01", 4),
	      "addresses");
	CHECK((buf[24] << 8 | buf[25]) == 50000 && (buf[26] << 8 | buf[27]) == 8443, "ports");
	end = buf + len;
	v = tlv(buf + 28, end, PP2_TYPE_UNIQUE_ID, &n);
	CHECK(v && n == 32 && !memcmp(v, "spiffe://example.org/ns/prod/web", n), "unique id");
	v = tlv(buf + 28, end, PP2_TYPE_MOAT_SAN_URI, &n);
	CHECK(v && n == 32, "custom SAN URI TLV");
	ssl = tlv(buf + 28, end, PP2_TYPE_SSL, &n);
	CHECK(ssl && n >= 5, "SSL TLV");
	if (!ssl)
		return;
	CHECK(ssl[0] == (PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS), "client %02x", ssl[0]);
	CHECK(!memcmp(ssl + 1, "\0\0\0\0", 4), "verify");
	v = tlv(ssl + 5, ssl + n, PP2_SUBTYPE_SSL_VERSION, &n);
	CHECK(v && n == 7 && !memcmp(v, "TLSv1.3", 7), "version");
	ssl = tlv(buf + 28, end, PP2_TYPE_SSL, &n);
	v = tlv(ssl + 5, ssl + n, PP2_SUBTYPE_SSL_CN, &n);
	CHECK(v && n == 9 && !memcmp(v, "client-ec", 9), "CN");
	ssl = tlv(buf + 28, end, PP2_TYPE_SSL, &n);
	v = tlv(ssl + 5, ssl + n, PP2_SUBTYPE_SSL_CIPHER, &n);
	CHECK(v && n == 22, "cipher");
}

static void ipv6_and_mixed(void)
{
	struct sockaddr_storage src, dst;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&src;
	uint8_t buf[PROXY_V2_MAX_HEADER];
	struct proxy_v2_info info = { &src, &dst, NULL, NULL, NULL, NULL };
	int len;

	memset(&src, 0, sizeof(src));
	a6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "fd00:200::2", &a6->sin6_addr);
	a6->sin6_port = htons(1234);
	v4(&dst, "10.200.0.1", 443);
	len = proxy_v2_encode(&info, buf, sizeof(buf));
	CHECK(buf[13] == 0x21, "family %02x", buf[13]);
	CHECK(buf[16] == 0xfd && buf[32 + 10] == 0xff && buf[32 + 11] == 0xff, "v4 mapped dst");
	CHECK(len == 16 + 36 + 3 + 5, "len %d", len);

	/* A v4-mapped client on a v6 socket is still sent as IPv4. */
	inet_pton(AF_INET6, "::ffff:10.200.0.2", &a6->sin6_addr);
	len = proxy_v2_encode(&info, buf, sizeof(buf));
	CHECK(buf[13] == 0x11 && buf[16] == 10 && buf[19] == 2, "mapped as v4");
}

static void too_small_buffer(void)
{
	struct sockaddr_storage src, dst;
	struct proxy_v2_info info = { &src, &dst, "TLSv1.2", NULL, NULL, NULL };
	uint8_t buf[20];

	v4(&src, "1.2.3.4", 1);
	v4(&dst, "1.2.3.5", 2);
	CHECK(proxy_v2_encode(&info, buf, sizeof(buf)) < 0, "overflow not reported");
}

static void long_uri_skips_unique_id(void)
{
	struct sockaddr_storage src, dst;
	char uri[300];
	uint8_t buf[PROXY_V2_MAX_HEADER];
	struct proxy_v2_info info = { &src, &dst, NULL, NULL, NULL, uri };
	size_t n;
	int len;

	memset(uri, 'a', sizeof(uri) - 1);
	uri[sizeof(uri) - 1] = '\0';
	v4(&src, "1.2.3.4", 1);
	v4(&dst, "1.2.3.5", 2);
	len = proxy_v2_encode(&info, buf, sizeof(buf));
	CHECK(len > 0 && !tlv(buf + 28, buf + len, PP2_TYPE_UNIQUE_ID, &n), "unique id over 128");
	CHECK(tlv(buf + 28, buf + len, PP2_TYPE_MOAT_SAN_URI, &n) && n == 299, "custom TLV");
}

int main(void)
{
	RUN(ipv4_with_ssl_tlvs);
	RUN(ipv6_and_mixed);
	RUN(too_small_buffer);
	RUN(long_uri_skips_unique_id);
	return HARNESS_EXIT();
}
