// SPDX-License-Identifier: MIT
/* TLS 1.3 key schedule for kTLS, against RFC 8448 section 3 vectors. */
#include <errno.h>
#include <string.h>

#include "harness.h"
#include "ktls.h"

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

static struct traffic_secret secret_of(const char *hex)
{
	struct traffic_secret ts = { .len = (uint8_t)(strlen(hex) / 2) };

	unhex(hex, ts.bytes, ts.len);
	return ts;
}

/* RFC 8448: server_application_traffic_secret_0 -> key, iv */
#define SERVER_AP "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
#define CLIENT_AP "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"

static void hkdf_expand_label_matches_rfc8448(void)
{
	struct traffic_secret ts = secret_of(SERVER_AP);
	uint8_t key[16], iv[12], want_key[16], want_iv[12];

	unhex("9f02283b6c9c07efc26bb9f2ac92e356", want_key, 16);
	unhex("cf782b88dd83549aadf1e984", want_iv, 12);
	CHECK(tls13_hkdf_expand_label(EVP_sha256(), ts.bytes, ts.len, "key", key, 16) == 0, "key");
	CHECK(tls13_hkdf_expand_label(EVP_sha256(), ts.bytes, ts.len, "iv", iv, 12) == 0, "iv");
	CHECK(memcmp(key, want_key, 16) == 0, "server application key differs from RFC 8448");
	CHECK(memcmp(iv, want_iv, 12) == 0, "server application iv differs from RFC 8448");
}

static void aes128_crypto_info_layout(void)
{
	struct traffic_secret ts = secret_of(CLIENT_AP);
	union ktls_crypto_info ci;
	uint8_t want_key[16], iv[12];
	int size = ktls_tls13_crypto_info(0x1301, EVP_sha256(), &ts, 0, &ci);

	unhex("17422dda596ed5d9acd890e3c63f5051", want_key, 16);
	tls13_hkdf_expand_label(EVP_sha256(), ts.bytes, ts.len, "iv", iv, 12);
	CHECK(size == (int)sizeof(ci.aes128), "size %d", size);
	CHECK(ci.base.version == TLS_1_3_VERSION && ci.base.cipher_type == TLS_CIPHER_AES_GCM_128,
	      "version %x cipher %u", ci.base.version, ci.base.cipher_type);
	CHECK(memcmp(ci.aes128.key, want_key, 16) == 0, "client application key differs from RFC 8448");
	/* kernel nonce = salt(4) || iv(8): the 12-byte TLS 1.3 iv split */
	CHECK(memcmp(ci.aes128.salt, iv, 4) == 0 && memcmp(ci.aes128.iv, iv + 4, 8) == 0, "iv split");
	CHECK(memcmp(ci.aes128.rec_seq, "\0\0\0\0\0\0\0\0", 8) == 0, "rec_seq must start at 0");
}

static void chacha_and_aes256_and_rec_seq(void)
{
	struct traffic_secret ts = secret_of(CLIENT_AP);
	union ktls_crypto_info ci;
	uint8_t iv[12];

	CHECK(ktls_tls13_crypto_info(0x1303, EVP_sha256(), &ts, 0x0102, &ci) == (int)sizeof(ci.chacha),
	      "chacha size");
	tls13_hkdf_expand_label(EVP_sha256(), ts.bytes, ts.len, "iv", iv, 12);
	CHECK(ci.base.cipher_type == TLS_CIPHER_CHACHA20_POLY1305, "cipher %u", ci.base.cipher_type);
	CHECK(memcmp(ci.chacha.iv, iv, 12) == 0, "chacha takes the whole 12-byte iv");
	CHECK(ci.chacha.rec_seq[6] == 1 && ci.chacha.rec_seq[7] == 2, "rec_seq is big-endian");
	CHECK(ktls_tls13_crypto_info(0x1302, EVP_sha384(), &ts, 0, &ci) == (int)sizeof(ci.aes256),
	      "aes256 size");
	CHECK(ci.base.cipher_type == TLS_CIPHER_AES_GCM_256, "cipher %u", ci.base.cipher_type);
	CHECK(ktls_tls13_crypto_info(0x1304, EVP_sha256(), &ts, 0, &ci) == -EOPNOTSUPP,
	      "AES-CCM must be refused (kept in userspace)");
	struct traffic_secret empty = { 0 };

	CHECK(ktls_tls13_crypto_info(0x1301, EVP_sha256(), &empty, 0, &ci) == -ENOKEY, "no secret");
}

static void key_update_moves_secret(void)
{
	struct traffic_secret ts = secret_of(CLIENT_AP), before = ts;
	uint8_t want[32];

	CHECK(tls13_next_traffic_secret(EVP_sha256(), &ts) == 0, "derive");
	tls13_hkdf_expand_label(EVP_sha256(), before.bytes, 32, "traffic upd", want, 32);
	CHECK(memcmp(ts.bytes, want, 32) == 0 && memcmp(ts.bytes, before.bytes, 32) != 0,
	      "application_traffic_secret_N+1");
}

int main(void)
{
	RUN(hkdf_expand_label_matches_rfc8448);
	RUN(aes128_crypto_info_layout);
	RUN(chacha_and_aes256_and_rec_seq);
	RUN(key_update_moves_secret);
	return HARNESS_EXIT();
}
