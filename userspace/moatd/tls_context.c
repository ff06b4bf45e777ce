// SPDX-License-Identifier: MIT
#include "tls_context.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "log.h"
#include "ssl_compat.h"

/* Only what kTLS can carry, so a session never fails offload on its cipher. */
#define MOAT_TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define MOAT_TLS12_CIPHERS "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static int verify_outcome_idx = -1;
static int rules_idx = -1;

static void rules_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent; (void)ad; (void)idx; (void)argl; (void)argp;
	if (ptr) {
		id_rules_free(ptr);
		free(ptr);
	}
}

/* Rules live in the context's ex_data, so a handshake and its rules never part. */
static int rules_index(void)
{
	if (rules_idx < 0)
		rules_idx = SSL_CTX_get_ex_new_index(0, "moat identity rules", NULL, NULL, rules_free);
	return rules_idx;
}

const struct id_rules *tls_context_rules(const SSL_CTX *ctx)
{
	return rules_idx < 0 ? NULL : SSL_CTX_get_ex_data(ctx, rules_idx);
}

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

	if (preverify_ok && ssl && X509_STORE_CTX_get_error_depth(store) == 0 &&
	    !id_rules_allow(tls_context_rules(SSL_get_SSL_CTX(ssl)),
			    X509_STORE_CTX_get_current_cert(store))) {
		/* A good chain whose identity the port's rules do not name. */
		X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
		preverify_ok = 0;
	}
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

/* Is crl signed by one of the CAs already in the store? */
static bool crl_signed_by_store(X509_STORE *store, X509_CRL *crl)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *ca = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (ca && !X509_NAME_cmp(X509_get_subject_name(ca), X509_CRL_get_issuer(crl)) &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			return true;
	}
	ERR_clear_error();
	return false;
}

static int load_crls(SSL_CTX *ctx, struct tls_options *o, const char *ca_path,
		     enum tls_load_error *why, char *msg, size_t msglen)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);

	for (size_t i = 0; i < o->n_crls; i++) {
		const char *path = o->crls[i];
		FILE *f = fopen(path, "r");
		X509_CRL *crl;
		int n = 0;

		o->failed = TLS_INPUT_CRL;
		o->failed_crl = i;
		*why = TLS_LOAD_BAD_CRL;
		if (!f) {
			snprintf(msg, msglen, "CRL %s: %s", path, strerror(errno));
			return -ENOENT;
		}
		while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
			bool signed_ok = crl_signed_by_store(store, crl);

			n++;
			if (!signed_ok || X509_STORE_add_crl(store, crl) != 1) {
				char issuer[256];

				tls_name_oneline(X509_CRL_get_issuer(crl), issuer, sizeof(issuer));
				X509_CRL_free(crl);
				fclose(f);
				ERR_clear_error();
				snprintf(msg, msglen, "CRL %s (issuer \"%s\") is not signed by a CA of %s",
					 path, issuer, ca_path);
				return -EINVAL;
			}
			X509_CRL_free(crl);
		}
		fclose(f);
		ERR_clear_error();
		if (!n) {
			snprintf(msg, msglen, "CRL %s: no PEM X509 CRL found", path);
			return -EINVAL;
		}
	}
	o->failed = TLS_INPUT_NONE;
	*why = TLS_LOAD_OK;
	if (o->n_crls)
		X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	return 0;
}

static int apply_options(SSL_CTX *ctx, struct tls_options *o, enum tls_load_error *why,
			 char *msg, size_t msglen)
{
	*why = TLS_LOAD_BAD_OPTION;
	o->failed = TLS_INPUT_VERSIONS;
	if (SSL_CTX_set_min_proto_version(ctx, o->min_version ? o->min_version : TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, o->max_version) != 1) {
		ERR_clear_error();
		snprintf(msg, msglen, "TLS versions refused by OpenSSL");
		return -EINVAL;
	}
	o->failed = TLS_INPUT_CIPHERSUITES;
	if (SSL_CTX_set_ciphersuites(ctx, o->ciphersuites ? o->ciphersuites : MOAT_TLS13_SUITES) != 1) {
		ERR_clear_error();
		snprintf(msg, msglen, "no usable TLS 1.3 suite in '%s'", o->ciphersuites);
		return -EINVAL;
	}
	o->failed = TLS_INPUT_CIPHERS;
	if (SSL_CTX_set_cipher_list(ctx, o->ciphers ? o->ciphers : MOAT_TLS12_CIPHERS) != 1) {
		ERR_clear_error();
		snprintf(msg, msglen, "no usable TLS 1.2 cipher in '%s'", o->ciphers);
		return -EINVAL;
	}
	o->failed = TLS_INPUT_NONE;
	*why = TLS_LOAD_OK;
	return 0;
}

static int attach_rules(SSL_CTX *ctx, const struct id_rules *rules)
{
	struct id_rules *copy;

	if (!rules || !rules->n)
		return 0;
	copy = calloc(1, sizeof(*copy));
	if (!copy || id_rules_copy(copy, rules)) {
		free(copy);
		return -ENOMEM;
	}
	if (SSL_CTX_set_ex_data(ctx, rules_index(), copy) != 1) {
		id_rules_free(copy);
		free(copy);
		return -ENOMEM;
	}
	return 0;
}

SSL_CTX *tls_context_create_ex(const struct tls_files *files, struct tls_options *opts,
			       enum tls_load_error *why, char *msg, size_t msglen)
{
	X509_VERIFY_PARAM *param;
	EVP_PKEY *key;
	SSL_CTX *ctx;

	*why = TLS_LOAD_OK;
	opts->failed = TLS_INPUT_NONE;
	msg[0] = '\0';
	rules_index();
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto internal_error;

	opts->failed = TLS_INPUT_CA;
	if (load_ca_bundle(ctx, files->ca, why, msg, msglen))
		goto free_ctx;
	opts->failed = TLS_INPUT_CERT;
	if (load_server_cert(ctx, files->cert, why, msg, msglen))
		goto free_ctx;
	opts->failed = TLS_INPUT_KEY;
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
	opts->failed = TLS_INPUT_NONE;
	if (load_crls(ctx, opts, files->ca, why, msg, msglen) ||
	    apply_options(ctx, opts, why, msg, msglen))
		goto free_ctx;

	SSL_CTX_set_options(ctx, SSL_OP_ENABLE_KTLS | SSL_OP_NO_RENEGOTIATION |
			    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_cb);
	SSL_CTX_set_verify_depth(ctx, opts->has_verify_depth ? opts->verify_depth : 8);
	param = SSL_CTX_get0_param(ctx);
	if (X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT) != 1 ||
	    attach_rules(ctx, opts->rules))
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

SSL_CTX *tls_context_create(const struct tls_files *files, enum tls_load_error *why,
			    char *msg, size_t msglen)
{
	struct tls_options opts = { 0 };

	return tls_context_create_ex(files, &opts, why, msg, msglen);
}

int tls_context_reverify(SSL_CTX *ctx, X509 *leaf, STACK_OF(X509) *chain)
{
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	int err = X509_V_ERR_OUT_OF_MEM;

	if (!sc)
		return err;
	if (X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx), leaf, chain) == 1) {
		X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(sc), SSL_CTX_get0_param(ctx));
		X509_STORE_CTX_set_purpose(sc, X509_PURPOSE_SSL_CLIENT);
		if (X509_verify_cert(sc) == 1)
			err = id_rules_allow(tls_context_rules(ctx), leaf) ? X509_V_OK
									   : X509_V_ERR_APPLICATION_VERIFICATION;
		else
			err = X509_STORE_CTX_get_error(sc);
	}
	X509_STORE_CTX_free(sc);
	ERR_clear_error();
	return err;
}

void tls_context_set_keylog(SSL_CTX *ctx, void (*cb)(const SSL *, const char *))
{
	SSL_CTX_set_keylog_callback(ctx, cb);
}
