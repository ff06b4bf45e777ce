/* SPDX-License-Identifier: MIT */
/* Per-binding OpenSSL server context: loading and checking CA, cert and key. */
#ifndef MOAT_TLS_CONTEXT_H
#define MOAT_TLS_CONTEXT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/* What was wrong with the input, for the CLI's exit code. */
enum tls_load_error {
	TLS_LOAD_OK = 0,
	TLS_LOAD_UNREADABLE,   /* missing file, permissions */
	TLS_LOAD_BAD_CERT,     /* not PEM, expired server cert, no cert in file */
	TLS_LOAD_KEY_ENCRYPTED,
	TLS_LOAD_BAD_KEY,
	TLS_LOAD_KEY_MISMATCH,
	TLS_LOAD_NOT_A_CA,
	TLS_LOAD_INTERNAL,
};

struct tls_files {
	const char *ca;
	const char *cert;
	const char *key;
};

/* Why the client was refused, filled by the verify callback. */
struct verify_outcome {
	int error;       /* X509_V_OK when the chain was accepted */
	int depth;
	char subject[256];
};

/* Index for a struct verify_outcome * in SSL ex_data. */
int tls_verify_outcome_index(void);

/*
 * Builds a server context that requires a client certificate chaining to
 * the CA bundle with the clientAuth purpose. On failure returns NULL, sets
 * *why and writes a one-line explanation naming the file into msg.
 */
SSL_CTX *tls_context_create(const struct tls_files *files, enum tls_load_error *why,
			    char *msg, size_t msglen);

/* RFC 2253-ish one-line subject, "-" when absent. */
void tls_name_oneline(X509_NAME *name, char *out, size_t len);

/* Installs the TLS 1.3 keylog hook that the kTLS path needs for RX keys. */
void tls_context_set_keylog(SSL_CTX *ctx, void (*cb)(const SSL *, const char *));

#endif
