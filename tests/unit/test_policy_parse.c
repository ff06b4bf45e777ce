// SPDX-License-Identifier: MIT
/* policy: INI parsing, line-numbered diagnostics, file naming rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "policy.h"

static char dir[] = "/tmp/moat-policy-unit.XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

/* Parses text as file name; returns diagnostics (static). */
static const char *parse(const char *name, const char *text, struct policy *p, int *rc)
{
	static char out[8192];
	struct diag d = { 0 };

	memset(p, 0, sizeof(*p));
	*rc = policy_parse_file(write_file(name, text), p, &d);
	snprintf(out, sizeof(out), "%s", d.text.data ? d.text.data : "");
	diag_free(&d);
	return out;
}

static void good_file(void)
{
	struct policy p;
	int rc;
	const char *out = parse("vs0.conf",
		"; comment\n"
		"[port 8443]\n"
		"  ca = /pki/ca.crt   ; inline comment\n"
		"cert = server.crt\n"
		"key = /pki/server.key\n"
		"allow_uri = spiffe://example.org/ns/prod/*\n"
		"allow_uri = spiffe://example.org/ns/test/*\n"
		"allow_cn = client-*\n"
		"crl = /pki/ca.crl\n"
		"min_tls = 1.3\n"
		"handshake_timeout = 2s\n"
		"backend = [::1]:9000\n"
		"proxy_protocol = yes\n"
		"[port 9000]\nca=a\ncert=b\nkey=c\n", &p, &rc);

	CHECK(rc == 0, "rc %d: %s", rc, out);
	CHECK(p.n_ports == 2, "ports %zu", p.n_ports);
	if (p.n_ports == 2) {
		CHECK(p.ports[0].port == 8443 && !strcmp(p.ports[0].iface, "vs0"), "port/iface");
		CHECK(!strcmp(p.ports[0].ca, "/pki/ca.crt"), "ca '%s'", p.ports[0].ca);
		CHECK(strstr(p.ports[0].cert, dir) != NULL, "relative path not resolved: %s", p.ports[0].cert);
		CHECK(p.ports[0].rules.n == 3, "rules %zu", p.ports[0].rules.n);
		CHECK(p.ports[0].n_crls == 1 && p.ports[0].lines.crl[0] == 9, "crl line");
		CHECK(p.ports[0].handshake_timeout_ms == 2000, "timeout");
		CHECK(p.ports[0].backend.ss_family == AF_INET6 && p.ports[0].proxy_protocol, "backend");
		CHECK(p.ports[0].lines.section == 2 && p.ports[1].lines.section == 14, "section lines");
	}
	policy_free(&p);
}

static void errors_carry_lines(void)
{
	struct policy p;
	int rc;
	const char *out = parse("all.conf",
		"[port 443]\n"                 /* 1 */
		"ca = a\n"                      /* 2 */
		"cert = b\n"                    /* 3 */
		"key = c\n"                     /* 4 */
		"colour = blue\n"               /* 5 */
		"min_tls = 1.1\n"               /* 6 */
		"allow_spki_sha256 = abc\n"     /* 7 */
		"ca = again\n"                  /* 8 */
		"[port 70000]\n"                /* 9 */
		"ca = x\n"                      /* 10 */
		"[port 443]\n"                  /* 11 */
		"[port 80]\n"                   /* 12 */
		"backend = localhost:80\n"      /* 13 */
		"this is not ini\n"             /* 14 */
		"[moat]\n",                     /* 15 */
		&p, &rc);

	CHECK(rc != 0, "errors not reported");
	CHECK(strstr(out, "all.conf:5: error: unknown key 'colour'"), "%s", out);
	CHECK(strstr(out, "all.conf:6: error: min_tls wants 1.2 or 1.3"), "%s", out);
	CHECK(strstr(out, "all.conf:7: error: allow_spki_sha256 wants 64 hex"), "%s", out);
	CHECK(strstr(out, "all.conf:8: error: 'ca' given twice (first on line 2)"), "%s", out);
	CHECK(strstr(out, "all.conf:9: error: bad port '70000'"), "%s", out);
	CHECK(strstr(out, "all.conf:11: error: [port 443] is already defined on line 1"), "%s", out);
	CHECK(strstr(out, "all.conf:12: error: [port 80] has no 'ca'"), "%s", out);
	CHECK(strstr(out, "all.conf:13: error: bad backend"), "%s", out);
	CHECK(strstr(out, "all.conf:14: error: syntax error"), "%s", out);
	CHECK(strstr(out, "all.conf:15: error: [moat] belongs in moat.conf"), "%s", out);
	policy_free(&p);
}

static void global_file_and_names(void)
{
	struct policy p;
	int rc;
	const char *out = parse("moat.conf", "[moat]\nclose_disallowed_sessions = yes\n"
				"max_handshakes = 10\nbogus = 1\n", &p, &rc);

	CHECK(p.close_disallowed && p.max_handshakes == 10, "global values");
	CHECK(strstr(out, "moat.conf:4: error: unknown key 'bogus' in [moat]"), "%s", out);
	policy_free(&p);
	out = parse("moat.conf", "[port 1]\nca=a\n", &p, &rc);
	CHECK(strstr(out, "moat.conf:1: error: ports belong in all.conf"), "%s", out);
	policy_free(&p);
	out = parse("averyveryverylongname.conf", "[port 1]\n", &p, &rc);
	CHECK(rc != 0 && strstr(out, "policy file names are"), "%s", out);
	policy_free(&p);
	out = parse("lo.conf", "key = outside\n", &p, &rc);
	CHECK(strstr(out, "lo.conf:1: error: 'key' outside a section"), "%s", out);
	policy_free(&p);
}

static void overlap_rules(void)
{
	struct policy p;
	int rc;

	parse("eth7.conf", "[port 443]\nca=a\ncert=b\nkey=c\n", &p, &rc);
	CHECK(policy_overlap(&p, 443, "eth7"), "same iface");
	CHECK(!policy_overlap(&p, 443, "eth8"), "other iface");
	CHECK(policy_overlap(&p, 443, NULL), "all ifaces");
	CHECK(!policy_overlap(&p, 444, NULL), "other port");
	policy_free(&p);
	parse("all.conf", "[port 443]\nca=a\ncert=b\nkey=c\n", &p, &rc);
	CHECK(policy_overlap(&p, 443, "eth8") && !policy_overlap(&p, 443, "lo"), "all but lo");
	policy_free(&p);
}

static void missing_dir_is_empty(void)
{
	struct policy p;
	struct diag d = { 0 };

	CHECK(policy_load("/nonexistent/moat-policy", &p, &d) == 0 && p.n_ports == 0, "missing dir");
	policy_free(&p);
	diag_free(&d);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	RUN(good_file);
	RUN(errors_carry_lines);
	RUN(global_file_and_names);
	RUN(overlap_rules);
	RUN(missing_dir_is_empty);
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return 1;
	return HARNESS_EXIT();
}
