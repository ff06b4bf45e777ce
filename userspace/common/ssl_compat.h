/* SPDX-License-Identifier: MIT */
/* Every OpenSSL version test in moat lives here. */
#ifndef MOAT_SSL_COMPAT_H
#define MOAT_SSL_COMPAT_H

#include <openssl/bio.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>

/* 3.0 is the first release with SSL_OP_ENABLE_KTLS and provider-based KDFs. */
#define MOAT_MIN_OPENSSL_TEXT "3.0.0"
#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "moat needs OpenSSL 3.0 or newer (kTLS support and EVP_KDF)"
#endif

#ifndef SSL_OP_ENABLE_KTLS
#define SSL_OP_ENABLE_KTLS 0
#define MOAT_OPENSSL_HAS_KTLS 0
#else
#define MOAT_OPENSSL_HAS_KTLS 1
#endif

/* 3.2 added TLS 1.3 receive offload; before it moat installs TLS_RX itself. */
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
#define MOAT_OPENSSL_KTLS_TLS13_RX 1
#else
#define MOAT_OPENSSL_KTLS_TLS13_RX 0
#endif

static inline int moat_bio_ktls_send(BIO *b)
{
#if MOAT_OPENSSL_HAS_KTLS
	return BIO_get_ktls_send(b) > 0;
#else
	(void)b;
	return 0;
#endif
}

static inline int moat_bio_ktls_recv(BIO *b)
{
#if MOAT_OPENSSL_HAS_KTLS
	return BIO_get_ktls_recv(b) > 0;
#else
	(void)b;
	return 0;
#endif
}

#endif
