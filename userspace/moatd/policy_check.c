// SPDX-License-Identifier: MIT
#include "policy_check.h"

#include <errno.h>
#include <net/if.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tls_context.h"

static int line_of(const struct policy_port *pp, const struct tls_options *o)
{
	switch (o->failed) {
	case TLS_INPUT_CA: return pp->lines.ca;
	case TLS_INPUT_CERT: return pp->lines.cert;
	case TLS_INPUT_KEY: return pp->lines.key;
	case TLS_INPUT_CRL: return pp->lines.crl[o->failed_crl];
	case TLS_INPUT_CIPHERS: return pp->lines.ciphers;
	case TLS_INPUT_CIPHERSUITES: return pp->lines.ciphersuites;
	case TLS_INPUT_VERSIONS: return pp->lines.min_tls ? pp->lines.min_tls : pp->lines.max_tls;
	default: return pp->lines.section;
	}
}

/* A CRL past its nextUpdate makes OpenSSL refuse every client of that CA. */
static void warn_stale_crls(const struct policy_port *pp, struct diag *d)
{
	for (size_t i = 0; i < pp->n_crls; i++) {
		FILE *f = fopen(pp->crls[i], "r");
		X509_CRL *crl;

		if (!f)
			continue;
		while ((crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
			const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);

			if (next && X509_cmp_current_time(next) < 0)
				diag_warn(d, pp->file, pp->lines.crl[i], "CRL %s is past its nextUpdate: "
					  "every client of its CA will be refused until it is renewed",
					  pp->crls[i]);
			X509_CRL_free(crl);
		}
		ERR_clear_error();
		fclose(f);
	}
}

static SSL_CTX *check_port(const struct policy_port *pp, struct diag *d)
{
	struct tls_files files = { pp->ca, pp->cert, pp->key };
	struct tls_options o = {
		.min_version = pp->min_tls, .max_version = pp->max_tls,
		.ciphers = pp->ciphers, .ciphersuites = pp->ciphersuites,
		.has_verify_depth = pp->verify_depth >= 0, .verify_depth = pp->verify_depth,
		.crls = (const char *const *)pp->crls, .n_crls = pp->n_crls,
		.rules = &pp->rules,
	};
	enum tls_load_error why;
	char msg[1024];
	SSL_CTX *ctx;

	if (!pp->ca || !pp->cert || !pp->key)
		return NULL; /* already reported by the parser */
	ctx = tls_context_create_ex(&files, &o, &why, msg, sizeof(msg));
	if (!ctx) {
		diag_error(d, pp->file, line_of(pp, &o), "[port %u] %s", pp->port, msg);
		return NULL;
	}
	warn_stale_crls(pp, d);
	return ctx;
}

int policy_check(const struct policy *p, struct policy_built *out, struct diag *d)
{
	unsigned before = d->errors;
	SSL_CTX **ctx = calloc(p->n_ports ? p->n_ports : 1, sizeof(*ctx));

	if (!ctx) {
		diag_error(d, p->dir ? p->dir : "policy", 0, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct policy_port *pp = &p->ports[i];

		ctx[i] = check_port(pp, d);
		/* Policy follows the name: a file may wait for its interface. */
		if (!pp->all_ifaces && pp->iface[0] && !if_nametoindex(pp->iface) &&
		    (i == 0 || strcmp(p->ports[i - 1].file, pp->file)))
			diag_warn(d, pp->file, 0, "interface %s does not exist (yet); its ports are "
				  "protected from the moment it appears", pp->iface);
	}
	if (out && d->errors == before) {
		out->n = p->n_ports;
		out->ctx = ctx;
		return 0;
	}
	for (size_t i = 0; i < p->n_ports; i++)
		SSL_CTX_free(ctx[i]);
	free(ctx);
	return d->errors > before ? -EINVAL : 0;
}

void policy_built_free(struct policy_built *b)
{
	for (size_t i = 0; i < b->n; i++)
		SSL_CTX_free(b->ctx[i]);
	free(b->ctx);
	b->ctx = NULL;
	b->n = 0;
}

int policy_check_path(const char *path, struct diag *d, size_t *n_ports, size_t *n_files)
{
	struct policy p;
	int err;

	policy_load(path, &p, d);
	err = policy_check(&p, NULL, d);
	*n_ports = p.n_ports;
	*n_files = p.n_files;
	policy_free(&p);
	return d->errors ? -EINVAL : err;
}
