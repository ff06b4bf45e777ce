/* SPDX-License-Identifier: MIT */
/*
 * Validates a parsed policy the way moatd would load it: every port's
 * SSL_CTX is built (CA, cert, key, CRLs, versions, ciphers), so `moat check`,
 * `moatd --check`, start-up and reload agree on what is valid.
 */
#ifndef MOAT_POLICY_CHECK_H
#define MOAT_POLICY_CHECK_H

#include <openssl/ssl.h>

#include "policy.h"

/* One SSL_CTX per policy port, same order as policy->ports. */
struct policy_built {
	size_t n;
	SSL_CTX **ctx;
};

/*
 * Checks p; with out, keeps the contexts for the caller (else frees them).
 * Errors and warnings go to d. Returns 0, or -EINVAL if d gained errors.
 */
int policy_check(const struct policy *p, struct policy_built *out, struct diag *d);
void policy_built_free(struct policy_built *b);

/* Parse and check in one go: what `moat check` and `moatd --check` run. */
int policy_check_path(const char *path, struct diag *d, size_t *n_ports, size_t *n_files);

#endif
