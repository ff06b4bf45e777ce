/* SPDX-License-Identifier: MIT */
/*
 * Client identity rules of a policy port: which verified certificates may
 * connect, by SAN URI, SAN DNS, subject CN and OU, or SHA-256 pins.
 */
#ifndef MOAT_IDENTITY_H
#define MOAT_IDENTITY_H

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum id_kind {
	ID_URI,        /* SAN URI, e.g. a SPIFFE ID                     */
	ID_DNS,        /* SAN DNS name, case-insensitive                 */
	ID_CN,         /* subject commonName                            */
	ID_OU,         /* subject organizationalUnitName (any of them)  */
	ID_CERT_SHA256, /* SHA-256 of the DER certificate               */
	ID_SPKI_SHA256, /* SHA-256 of the DER SubjectPublicKeyInfo      */
	ID_KIND_MAX,
};

struct id_rule {
	enum id_kind kind;
	char *pattern;          /* text kinds */
	uint8_t digest[32];     /* pin kinds */
};

/* No rules: any certificate the CA verifies is allowed. */
struct id_rules {
	struct id_rule *v;
	size_t n;
};

/*
 * Glob match: '*' matches any run of characters except sep (0: any), '**'
 * also crosses sep. fold: ASCII case-insensitive.
 */
bool id_glob_match(const char *pattern, const char *text, char sep, bool fold);

/* Parses 64 hex digits, colons allowed between bytes. */
int id_parse_sha256(const char *text, uint8_t out[32]);

int id_rules_add(struct id_rules *r, enum id_kind kind, const char *value);
void id_rules_free(struct id_rules *r);
int id_rules_copy(struct id_rules *dst, const struct id_rules *src);

/* True when there are no rules or one of them matches cert. */
bool id_rules_allow(const struct id_rules *r, X509 *cert);

/* First SAN URI and subject CN of cert, "" when absent. */
void id_first_uri(X509 *cert, char *out, size_t len);
void id_subject_cn(X509 *cert, char *out, size_t len);

const char *id_kind_key(enum id_kind kind);

#endif
