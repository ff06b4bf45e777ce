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
	TLS_LOAD_BAD_CRL,      /* unreadable, not PEM, or not signed by a CA of the bundle */
	TLS_LOAD_BAD_OPTION,   /* cipher list or TLS versions OpenSSL refuses */
	TLS_LOAD_INTERNAL,
};

/* Which input a failure is about, so a policy error can carry its line. */
enum tls_input {
	TLS_INPUT_NONE,
	TLS_INPUT_CA,
	TLS_INPUT_CERT,
	TLS_INPUT_KEY,
	TLS_INPUT_CRL,         /* crls[failed_crl] */
	TLS_INPUT_CIPHERS,
	TLS_INPUT_CIPHERSUITES,
	TLS_INPUT_VERSIONS,
};

struct id_rules;

/* Policy knobs beyond the three files; all-zero gives moat's defaults. */
struct tls_options {
	int min_version, max_version;       /* TLS1_2_VERSION...; 0: 1.2 and the highest */
	const char *ciphers, *ciphersuites; /* NULL: kTLS-capable AEADs only */
	bool has_verify_depth;              /* false: 8 */
	int verify_depth;                   /* intermediate CAs allowed */
	const char *const *crls;            /* CRL files: leaf revocation is checked */
	size_t n_crls;
	const struct id_rules *rules;       /* copied into the context; NULL: any client */
	/* out: what failed */
	enum tls_input failed;
	size_t failed_crl;
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

/* The same with policy options; opts->failed says which input was bad. */
SSL_CTX *tls_context_create_ex(const struct tls_files *files, struct tls_options *opts,
			       enum tls_load_error *why, char *msg, size_t msglen);

/* The identity rules a context was built with (NULL: none). */
const struct id_rules *tls_context_rules(const SSL_CTX *ctx);

/*
 * Verifies a client chain again, against ctx's CAs, CRLs and identity rules,
 * as a new handshake would now. Returns X509_V_OK or the X509_V_ERR_* code
 * (X509_V_ERR_APPLICATION_VERIFICATION: identity no longer allowed).
 */
int tls_context_reverify(SSL_CTX *ctx, X509 *leaf, STACK_OF(X509) *chain);

/* RFC 2253-ish one-line subject, "-" when absent. */
void tls_name_oneline(X509_NAME *name, char *out, size_t len);

/* Installs the TLS 1.3 keylog hook that the kTLS path needs for RX keys. */
void tls_context_set_keylog(SSL_CTX *ctx, void (*cb)(const SSL *, const char *));

#endif
