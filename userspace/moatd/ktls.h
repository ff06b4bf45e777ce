/* SPDX-License-Identifier: MIT */
/*
 * Kernel TLS key installation. OpenSSL 3.0 turns on kTLS TX (and RX for
 * TLS 1.2) itself; for TLS 1.3 RX, and for rekeying after a KeyUpdate,
 * moat derives the keys from the traffic secrets (RFC 8446 7.1-7.3) that
 * the keylog callback hands over, and installs them with setsockopt.
 */
#ifndef MOAT_KTLS_H
#define MOAT_KTLS_H

#include <linux/tls.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#define KTLS_MAX_SECRET 48 /* SHA-384 */

struct traffic_secret {
	uint8_t bytes[KTLS_MAX_SECRET];
	uint8_t len; /* 0 until captured */
};

union ktls_crypto_info {
	struct tls_crypto_info base;
	struct tls12_crypto_info_aes_gcm_128 aes128;
	struct tls12_crypto_info_aes_gcm_256 aes256;
	struct tls12_crypto_info_chacha20_poly1305 chacha;
};

/* Keylog callback: stores CLIENT/SERVER_TRAFFIC_SECRET_0 in the session. */
void ktls_keylog(const SSL *ssl, const char *line);

/* HKDF-Expand-Label(secret, label, "", out_len) from RFC 8446 7.1. */
int tls13_hkdf_expand_label(const EVP_MD *md, const uint8_t *secret, size_t secret_len,
			    const char *label, uint8_t *out, size_t out_len);

/*
 * Fills the kernel's crypto_info for a TLS 1.3 traffic secret, record
 * sequence rec_seq. cipher_id is the IANA suite (0x1301..0x1303).
 * Returns its size, or -EOPNOTSUPP for a suite kTLS does not carry.
 */
int ktls_tls13_crypto_info(uint16_t cipher_id, const EVP_MD *md, const struct traffic_secret *ts,
			   uint64_t rec_seq, union ktls_crypto_info *ci);

/* application_traffic_secret_N+1 (RFC 8446 7.2), in place. */
int tls13_next_traffic_secret(const EVP_MD *md, struct traffic_secret *ts);

#endif
