// SPDX-License-Identifier: MIT
#include "identity.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_keys[ID_KIND_MAX] = {
	[ID_URI] = "allow_uri", [ID_DNS] = "allow_dns", [ID_CN] = "allow_cn",
	[ID_OU] = "allow_ou", [ID_CERT_SHA256] = "allow_cert_sha256",
	[ID_SPKI_SHA256] = "allow_spki_sha256",
};

const char *id_kind_key(enum id_kind kind)
{
	return kind < ID_KIND_MAX ? kind_keys[kind] : "?";
}

static bool char_eq(char a, char b, bool fold)
{
	return fold ? tolower((unsigned char)a) == tolower((unsigned char)b) : a == b;
}

bool id_glob_match(const char *p, const char *t, char sep, bool fold)
{
	while (*p) {
		if (*p == '*') {
			bool cross = p[1] == '*' || !sep;

			while (*p == '*')
				p++;
			/* Try every split point; patterns are short, recursion is shallow. */
			for (const char *s = t;; s++) {
				if (id_glob_match(p, s, sep, fold))
					return true;
				if (!*s || (!cross && *s == sep))
					return false;
			}
		}
		if (!*t || !char_eq(*p, *t, fold))
			return false;
		p++;
		t++;
	}
	return *t == '\0';
}

int id_parse_sha256(const char *text, uint8_t out[32])
{
	size_t n = 0;

	while (*text) {
		unsigned v;

		if (*text == ':' && n) {
			text++;
			continue;
		}
		if (n == 32 || !isxdigit((unsigned char)text[0]) || !isxdigit((unsigned char)text[1]) ||
		    sscanf(text, "%2x", &v) != 1)
			return -EINVAL;
		out[n++] = (uint8_t)v;
		text += 2;
	}
	return n == 32 ? 0 : -EINVAL;
}

int id_rules_add(struct id_rules *r, enum id_kind kind, const char *value)
{
	struct id_rule rule = { .kind = kind }, *grown;

	if (kind == ID_CERT_SHA256 || kind == ID_SPKI_SHA256) {
		if (id_parse_sha256(value, rule.digest))
			return -EINVAL;
	} else if (!*value) {
		return -EINVAL;
	} else if (!(rule.pattern = strdup(value))) {
		return -ENOMEM;
	}
	grown = realloc(r->v, (r->n + 1) * sizeof(*r->v));
	if (!grown) {
		free(rule.pattern);
		return -ENOMEM;
	}
	r->v = grown;
	r->v[r->n++] = rule;
	return 0;
}

void id_rules_free(struct id_rules *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].pattern);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

int id_rules_copy(struct id_rules *dst, const struct id_rules *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->n)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++, dst->n++) {
		dst->v[i] = src->v[i];
		if (src->v[i].pattern && !(dst->v[i].pattern = strdup(src->v[i].pattern))) {
			id_rules_free(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

/* An ASN1 string as C text; NUL inside it (a forged name) never matches. */
static bool asn1_text(const ASN1_STRING *s, char *out, size_t len)
{
	int n = ASN1_STRING_length(s);

	if (n < 0 || (size_t)n >= len || memchr(ASN1_STRING_get0_data(s), 0, (size_t)n))
		return false;
	memcpy(out, ASN1_STRING_get0_data(s), (size_t)n);
	out[n] = '\0';
	return true;
}

static bool san_matches(X509 *cert, int gen_type, const char *pattern, char sep, bool fold)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	bool hit = false;
	char text[1024];

	for (int i = 0; names && !hit && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type != gen_type)
			continue;
		if (asn1_text(gen_type == GEN_URI ? g->d.uniformResourceIdentifier : g->d.dNSName,
			      text, sizeof(text)))
			hit = id_glob_match(pattern, text, sep, fold);
	}
	GENERAL_NAMES_free(names);
	return hit;
}

static bool subject_matches(X509 *cert, int nid, const char *pattern)
{
	X509_NAME *name = X509_get_subject_name(cert);
	char text[1024];

	for (int i = -1; (i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0;) {
		const ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
		unsigned char *utf8 = NULL;
		int n = ASN1_STRING_to_UTF8(&utf8, s);
		bool ok = n >= 0 && (size_t)n < sizeof(text) && !memchr(utf8, 0, (size_t)n);

		if (ok) {
			memcpy(text, utf8, (size_t)n);
			text[n] = '\0';
		}
		OPENSSL_free(utf8);
		if (ok && id_glob_match(pattern, text, 0, false))
			return true;
	}
	return false;
}

static bool digest_matches(X509 *cert, enum id_kind kind, const uint8_t want[32])
{
	unsigned char md[EVP_MAX_MD_SIZE], *der = NULL;
	unsigned int mdlen = 0;
	bool ok = false;

	if (kind == ID_CERT_SHA256) {
		ok = X509_digest(cert, EVP_sha256(), md, &mdlen) == 1;
	} else {
		int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);

		ok = n > 0 && EVP_Digest(der, (size_t)n, md, &mdlen, EVP_sha256(), NULL) == 1;
		OPENSSL_free(der);
	}
	return ok && mdlen == 32 && CRYPTO_memcmp(md, want, 32) == 0;
}

static bool rule_matches(const struct id_rule *r, X509 *cert)
{
	switch (r->kind) {
	case ID_URI: return san_matches(cert, GEN_URI, r->pattern, '/', false);
	case ID_DNS: return san_matches(cert, GEN_DNS, r->pattern, '.', true);
	case ID_CN: return subject_matches(cert, NID_commonName, r->pattern);
	case ID_OU: return subject_matches(cert, NID_organizationalUnitName, r->pattern);
	case ID_CERT_SHA256:
	case ID_SPKI_SHA256: return digest_matches(cert, r->kind, r->digest);
	default: return false;
	}
}

bool id_rules_allow(const struct id_rules *r, X509 *cert)
{
	if (!r || !r->n)
		return true;
	for (size_t i = 0; i < r->n; i++)
		if (rule_matches(&r->v[i], cert))
			return true;
	return false;
}

void id_first_uri(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);

	out[0] = '\0';
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);

		if (g->type == GEN_URI && asn1_text(g->d.uniformResourceIdentifier, out, len))
			break;
		out[0] = '\0';
	}
	GENERAL_NAMES_free(names);
}

void id_subject_cn(X509 *cert, char *out, size_t len)
{
	X509_NAME *name = X509_get_subject_name(cert);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n;

	out[0] = '\0';
	if (i < 0)
		return;
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n >= 0 && (size_t)n < len && !memchr(utf8, 0, (size_t)n)) {
		memcpy(out, utf8, (size_t)n);
		out[n] = '\0';
	}
	OPENSSL_free(utf8);
}
