// SPDX-License-Identifier: MIT
#include "tls_context.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ssl_compat.h"

/* Only what kTLS can carry, so a session never fails offload on its cipher. */
#define MOAT_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define MOAT_TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int verify_outcome_idx = -1;

int tls_verify_outcome_index(void)
{
	if (verify_outcome_idx < 0)
		verify_outcome_idx = SSL_get_ex_new_index(0, "moat verify outcome", NULL, NULL, NULL);
	return verify_outcome_idx;
}

void tls_name_oneline(X509_NAME *name, char *out, size_t len)
{
	BIO *mem;
	int n;

	snprintf(out, len, "-");
	if (!name || !(mem = BIO_new(BIO_s_mem())))
		return;
	if (X509_NAME_print_ex(mem, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_read(mem, out, (int)len - 1);
		if (n > 0)
			out[n] = '\0';
	}
	BIO_free(mem);
}

/* Records the first failure with its depth and subject; never overrides it. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct verify_outcome *out = ssl ? SSL_get_ex_data(ssl, tls_verify_outcome_index()) : NULL;

	if (preverify_ok || !out || out->error != X509_V_OK)
		return preverify_ok;
	out->error = X509_STORE_CTX_get_error(store);
	out->depth = X509_STORE_CTX_get_error_depth(store);
	tls_name_oneline(X509_get_subject_name(X509_STORE_CTX_get_current_cert(store)),
			 out->subject, sizeof(out->subject));
	return 0;
}

static int file_readable(const char *path, enum tls_load_error *why, char *msg, size_t msglen,
			 const char *what)
{
	FILE *f = fopen(path, "r");

	if (!f) {
		*why = TLS_LOAD_UNREADABLE;
		snprintf(msg, msglen, "%s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	fclose(f);
	return 0;
}

static int no_passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	(void)buf; (void)size; (void)rwflag;
	*(int *)u = 1;
	return -1; /* no passphrase: an encrypted key must fail, not prompt */
}

static EVP_PKEY *load_key(const char *path, enum tls_load_error *why, char *msg, size_t msglen)
{
	int asked_passphrase = 0;
	EVP_PKEY *key;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		*why = TLS_LOAD_UNREADABLE;
		snprintf(msg, msglen, "key %s: %s", path, strerror(errno));
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, no_passphrase_cb, &asked_passphrase);
	fclose(f);
	if (key)
		return key;
	ERR_clear_error();
	if (asked_passphrase) {
		*why = TLS_LOAD_KEY_ENCRYPTED;
		snprintf(msg, msglen, "key %s is encrypted and moat has no passphrase for it "
			 "(decrypt it with 'openssl pkey -in KEY -out KEY.plain')", path);
	} else {
		*why = TLS_LOAD_BAD_KEY;
		snprintf(msg, msglen, "key %s: no PEM private key found", path);
	}
	return NULL;
}

/* Loads every certificate of a PEM bundle into the store; counts the CAs. */
static int load_ca_bundle(SSL_CTX *ctx, const char *path, enum tls_load_error *why,
			  char *msg, size_t msglen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_NAME) *names;
	int certs = 0, cas = 0;
	X509 *x;
	FILE *f;

	f = fopen(path, "r");
	if (!f) {
		*why = TLS_LOAD_UNREADABLE;
		snprintf(msg, msglen, "CA bundle %s: %s", path, strerror(errno));
		return -errno;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		certs++;
		if (X509_check_ca(x) >= 1) {
			cas++;
			X509_STORE_add_cert(store, x);
		}
		X509_free(x);
	}
	fclose(f);
	ERR_clear_error();
	if (!certs) {
		*why = TLS_LOAD_BAD_CERT;
		snprintf(msg, msglen, "CA bundle %s: no PEM certificate found", path);
		return -EINVAL;
	}
	if (!cas) {
		*why = TLS_LOAD_NOT_A_CA;
		snprintf(msg, msglen, "CA bundle %s holds %d certificate(s) but no CA "
			 "(none has basicConstraints CA:TRUE)", path, certs);
		return -EINVAL;
	}
	/* Tells clients which CA we want, so curl and browsers pick the right cert. */
	names = SSL_load_client_CA_file(path);
	if (names)
		SSL_CTX_set_client_CA_list(ctx, names);
	ERR_clear_error();
	return 0;
}

static int load_server_cert(SSL_CTX *ctx, const char *path, enum tls_load_error *why,
			    char *msg, size_t msglen)
{
	X509 *leaf;

	if (file_readable(path, why, msg, msglen, "certificate"))
		return -ENOENT;
	if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
		ERR_clear_error();
		*why = TLS_LOAD_BAD_CERT;
		snprintf(msg, msglen, "certificate %s: no PEM certificate found", path);
		return -EINVAL;
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (leaf && X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
		*why = TLS_LOAD_BAD_CERT;
		snprintf(msg, msglen, "certificate %s has expired", path);
		return -EINVAL;
	}
	return 0;
}

SSL_CTX *tls_context_create(const struct tls_files *files, enum tls_load_error *why,
			    char *msg, size_t msglen)
{
	X509_VERIFY_PARAM *param;
	EVP_PKEY *key;
	SSL_CTX *ctx;

	*why = TLS_LOAD_OK;
	msg[0] = '\0';
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto internal_error;

	if (load_ca_bundle(ctx, files->ca, why, msg, msglen) ||
	    load_server_cert(ctx, files->cert, why, msg, msglen))
		goto free_ctx;
	key = load_key(files->key, why, msg, msglen);
	if (!key)
		goto free_ctx;
	if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
		EVP_PKEY_free(key);
		ERR_clear_error();
		*why = TLS_LOAD_KEY_MISMATCH;
		snprintf(msg, msglen, "key %s does not match certificate %s", files->key, files->cert);
		goto free_ctx;
	}
	EVP_PKEY_free(key);

	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (SSL_CTX_set_ciphersuites(ctx, MOAT_TLS13_SUITES) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, MOAT_TLS12_CIPHERS) != 1)
		goto internal_error_free;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_verify_depth(ctx, 8);
	param = SSL_CTX_get0_param(ctx);
	if (X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT) != 1)
		goto internal_error_free;
	/*
	 * No resumption: every session proves its certificate against the policy
	 * in force now (a resumed one would skip a CRL or rule added since).
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;

internal_error_free:
	SSL_CTX_free(ctx);
internal_error:
	*why = TLS_LOAD_INTERNAL;
	openssl_errors_to_string(msg, msglen);
	return NULL;
free_ctx:
	SSL_CTX_free(ctx);
	return NULL;
}

void tls_context_set_keylog(SSL_CTX *ctx, void (*cb)(const SSL *, const char *))
{
	SSL_CTX_set_keylog_callback(ctx, cb);
}
