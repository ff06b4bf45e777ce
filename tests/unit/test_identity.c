// SPDX-License-Identifier: MIT
/* identity: wildcard matching of SAN URI/DNS, CN/OU, and SHA-256 pin parsing. */
#include <string.h>

#include "harness.h"
#include "identity.h"

static void uri_star_stays_in_one_segment(void)
{
	const char *p = "spiffe://example.org/ns/prod/*";

	CHECK(id_glob_match(p, "spiffe://example.org/ns/prod/web", '/', false), "prod/web");
	CHECK(!id_glob_match(p, "spiffe://example.org/ns/prod/web/extra", '/', false), "crossed '/'");
	CHECK(!id_glob_match(p, "spiffe://example.org/ns/dev/web", '/', false), "dev matched");
	CHECK(!id_glob_match(p, "spiffe://example.org/ns/prod", '/', false), "parent matched");
	CHECK(id_glob_match(p, "spiffe://example.org/ns/prod/", '/', false), "empty segment");
	CHECK(!id_glob_match(p, "SPIFFE://example.org/ns/prod/web", '/', false), "URI case folded");
}

static void double_star_crosses_segments(void)
{
	const char *p = "spiffe://example.org/**";

	CHECK(id_glob_match(p, "spiffe://example.org/ns/prod/web", '/', false), "deep path");
	CHECK(!id_glob_match(p, "spiffe://example.com/ns", '/', false), "other trust domain");
	CHECK(id_glob_match("spiffe://*.org/ns/*/web", "spiffe://example.org/ns/prod/web", '/', false),
	      "two stars");
}

static void dns_label_and_case(void)
{
	CHECK(id_glob_match("*.prod.example.org", "API.prod.example.org", '.', true), "case");
	CHECK(!id_glob_match("*.prod.example.org", "a.b.prod.example.org", '.', true), "two labels");
	CHECK(!id_glob_match("*.prod.example.org", "prod.example.org", '.', true), "bare domain");
	CHECK(id_glob_match("api.prod.example.org", "api.prod.example.org", '.', true), "exact");
}

static void exact_and_any(void)
{
	CHECK(id_glob_match("client-ec", "client-ec", 0, false), "exact");
	CHECK(!id_glob_match("client-ec", "client-ec2", 0, false), "prefix only");
	CHECK(id_glob_match("client-*", "client-a/b.c", 0, false), "no separator");
	CHECK(id_glob_match("*", "", 0, false), "star matches empty");
	CHECK(!id_glob_match("", "x", 0, false), "empty pattern");
	CHECK(id_glob_match("a*b*c", "aXXbYYc", 0, false), "backtracking");
	CHECK(!id_glob_match("a*b*c", "aXXbYY", 0, false), "backtracking fails");
}

static void sha256_pins(void)
{
	uint8_t d[32];
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191A1B1C1D1E1F";
	char colons[128] = "";

	CHECK(id_parse_sha256(hex, d) == 0 && d[0] == 0 && d[31] == 0x1f, "plain hex");
	for (int i = 0; i < 32; i++)
		snprintf(colons + strlen(colons), sizeof(colons) - strlen(colons), "%s%02x",
			 i ? ":" : "", i);
	CHECK(id_parse_sha256(colons, d) == 0 && d[16] == 16, "colon hex");
	CHECK(id_parse_sha256("abcd", d) != 0, "short accepted");
	CHECK(id_parse_sha256("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", d) != 0,
	      "non-hex accepted");
}

static void empty_rules_allow_everyone(void)
{
	struct id_rules r = { 0 };

	CHECK(id_rules_allow(&r, NULL), "empty rules refused");
	CHECK(id_rules_add(&r, ID_CN, "x") == 0 && r.n == 1, "add");
	CHECK(id_rules_add(&r, ID_CERT_SHA256, "nothex") != 0, "bad pin added");
	id_rules_free(&r);
}

int main(void)
{
	RUN(uri_star_stays_in_one_segment);
	RUN(double_star_crosses_segments);
	RUN(dns_label_and_case);
	RUN(exact_and_any);
	RUN(sha256_pins);
	RUN(empty_rules_allow_everyone);
	return HARNESS_EXIT();
}
