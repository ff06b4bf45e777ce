// SPDX-License-Identifier: MIT
#include "ktls.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>
#include <string.h>

#include "session.h"

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void capture(struct traffic_secret *ts, const char *hex)
{
	size_t n = strlen(hex) / 2;

	if (n > sizeof(ts->bytes))
		return;
	for (size_t i = 0; i < n; i++) {
		int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			OPENSSL_cleanse(ts, sizeof(*ts));
			return;
		}
		ts->bytes[i] = (uint8_t)(hi << 4 | lo);
	}
	ts->len = (uint8_t)n;
}

void ktls_keylog(const SSL *ssl, const char *line)
{
	struct session *s = SSL_get_app_data(ssl);
	static const char client[] = "CLIENT_TRAFFIC_SECRET_0 ", server[] = "SERVER_TRAFFIC_SECRET_0 ";
	const char *secret;

	if (!s)
		return;
	/* "LABEL <client random hex> <secret hex>" */
	if (!strncmp(line, client, sizeof(client) - 1) && (secret = strrchr(line, ' ')))
		capture(&s->client_secret, secret + 1);
	else if (!strncmp(line, server, sizeof(server) - 1) && (secret = strrchr(line, ' ')))
		capture(&s->server_secret, secret + 1);
}

int tls13_hkdf_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
			    const char *label, uint8_t *out, size_t out_len)
{
	uint8_t info[2 + 1 + 255 + 1];
	size_t label_len = strlen(label), info_len;
	OSSL_PARAM params[5], *p = params;
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY, ret = -EINVAL;
	EVP_KDF_CTX *kctx;
	EVP_KDF *kdf;

	if (label_len + 6 > 255 || out_len > 0xffff)
		return -EINVAL;
	/* struct { uint16 length; opaque label<7..255> = "tls13 " + label; opaque context<0..255>; } */
	info[0] = (uint8_t)(out_len >> 8);
	info[1] = (uint8_t)out_len;
	info[2] = (uint8_t)(6 + label_len);
	memcpy(info + 3, "tls13 ", 6);
	memcpy(info + 9, label, label_len);
	info[9 + label_len] = 0;
	info_len = 10 + label_len;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return -ENOSYS;
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!kctx)
		return -ENOMEM;
	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)EVP_MD_get0_name(md), 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) == 1)
		ret = 0;
	EVP_KDF_CTX_free(kctx);
	return ret;
}

static void put_be64(uint8_t out[8], uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		out[i] = (uint8_t)v;
}

int ktls_tls13_crypto_info(uint16_t cipher_id, const EVP_MD *md, const struct traffic_secret *ts,
			   uint64_t rec_seq, union ktls_crypto_info *ci)
{
	uint8_t key[32], iv[12];
	size_t key_len;
	int err, size;

	switch (cipher_id) {
	case 0x1301: key_len = 16; break; /* TLS_AES_128_GCM_SHA256 */
	case 0x1302: key_len = 32; break; /* TLS_AES_256_GCM_SHA384 */
	case 0x1303: key_len = 32; break; /* TLS_CHACHA20_POLY1305_SHA256 */
	default: return -EOPNOTSUPP;
	}
	if (!ts->len)
		return -ENOKEY;
	if ((err = tls13_hkdf_expand_label(md, ts->bytes, ts->len, "key", key, key_len)) ||
	    (err = tls13_hkdf_expand_label(md, ts->bytes, ts->len, "iv", iv, sizeof(iv))))
		goto wipe;

	memset(ci, 0, sizeof(*ci));
	ci->base.version = TLS_1_3_VERSION;
	/* The kernel builds each nonce as (salt || iv) XOR rec_seq. */
	if (cipher_id == 0x1303) {
		ci->base.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
		memcpy(ci->chacha.key, key, 32);
		memcpy(ci->chacha.iv, iv, 12);
		put_be64(ci->chacha.rec_seq, rec_seq);
		size = sizeof(ci->chacha);
	} else if (key_len == 16) {
		ci->base.cipher_type = TLS_CIPHER_AES_GCM_128;
		memcpy(ci->aes128.key, key, 16);
		memcpy(ci->aes128.salt, iv, 4);
		memcpy(ci->aes128.iv, iv + 4, 8);
		put_be64(ci->aes128.rec_seq, rec_seq);
		size = sizeof(ci->aes128);
	} else {
		ci->base.cipher_type = TLS_CIPHER_AES_GCM_256;
		memcpy(ci->aes256.key, key, 32);
		memcpy(ci->aes256.salt, iv, 4);
		memcpy(ci->aes256.iv, iv + 4, 8);
		put_be64(ci->aes256.rec_seq, rec_seq);
		size = sizeof(ci->aes256);
	}
	err = size;
wipe:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return err;
}

int tls13_next_traffic_secret(const EVP_MD *md, struct traffic_secret *ts)
{
	uint8_t next[KTLS_MAX_SECRET];
	int err = tls13_hkdf_expand_label(md, ts->bytes, ts->len, "traffic upd", next, ts->len);

	if (!err)
		memcpy(ts->bytes, next, ts->len);
	OPENSSL_cleanse(next, sizeof(next));
	return err;
}
