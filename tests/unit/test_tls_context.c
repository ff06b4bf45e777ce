// SPDX-License-Identifier: MIT
/* tls_context: every bad input is refused with the right class and a message naming the file. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tls_context.h"

static char pki[512];

static const char *path(const char *name)
{
	static char bufs[4][600];
	static int next;
	char *p = bufs[next++ % 4];

	snprintf(p, sizeof(bufs[0]), "%s/%s", pki, name);
	return p;
}

static enum tls_load_error load(const char *ca, const char *cert, const char *key, char *msg)
{
	struct tls_files f = { path(ca), path(cert), path(key) };
	enum tls_load_error why;
	SSL_CTX *ctx = tls_context_create(&f, &why, msg, 512);

	if (ctx) {
		CHECK(why == TLS_LOAD_OK, "context returned with error %d", why);
		SSL_CTX_free(ctx);
	}
	return why;
}

static void good_files_load(void)
{
	char msg[512];

	CHECK(load("ca.crt", "server.crt", "server.key", msg) == TLS_LOAD_OK, "%s", msg);
}

static void missing_file_is_unreadable(void)
{
	char msg[512];

	CHECK(load("absent.crt", "server.crt", "server.key", msg) == TLS_LOAD_UNREADABLE, "%s", msg);
	CHECK(strstr(msg, "absent.crt") != NULL, "message does not name the file: %s", msg);
}

static void encrypted_key_needs_passphrase(void)
{
	char msg[512];

	CHECK(load("ca.crt", "server.crt", "server-enc.key", msg) == TLS_LOAD_KEY_ENCRYPTED, "%s", msg);
	CHECK(strstr(msg, "encrypted") != NULL, "%s", msg);
}

static void mismatched_key_refused(void)
{
	char msg[512];

	CHECK(load("ca.crt", "server.crt", "client-ec.key", msg) == TLS_LOAD_KEY_MISMATCH, "%s", msg);
}

static void leaf_is_not_a_ca(void)
{
	char msg[512];

	CHECK(load("client-ec.crt", "server.crt", "server.key", msg) == TLS_LOAD_NOT_A_CA, "%s", msg);
	CHECK(strstr(msg, "no CA") != NULL, "%s", msg);
}

static void expired_server_cert_refused(void)
{
	char msg[512];

	CHECK(load("ca.crt", "client-expired.crt", "client-expired.key", msg) == TLS_LOAD_BAD_CERT,
	      "%s", msg);
	CHECK(strstr(msg, "expired") != NULL, "%s", msg);
}

static void key_as_cert_refused(void)
{
	char msg[512];

	CHECK(load("ca.crt", "server.key", "server.key", msg) == TLS_LOAD_BAD_CERT, "%s", msg);
}

static void name_oneline_escapes_nothing_odd(void)
{
	X509_NAME *n = X509_NAME_new();
	char out[64];

	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"client, one", -1, -1, 0);
	tls_name_oneline(n, out, sizeof(out));
	CHECK(strcmp(out, "CN=client\\, one") == 0, "got '%s'", out);
	tls_name_oneline(NULL, out, sizeof(out));
	CHECK(strcmp(out, "-") == 0, "got '%s'", out);
	X509_NAME_free(n);
}

int main(void)
{
	const char *dir = getenv("MOAT_TEST_PKI");

	snprintf(pki, sizeof(pki), "%s", dir ? dir : "/tmp/moat-test-pki");
	RUN(good_files_load);
	RUN(missing_file_is_unreadable);
	RUN(encrypted_key_needs_passphrase);
	RUN(mismatched_key_refused);
	RUN(leaf_is_not_a_ca);
	RUN(expired_server_cert_refused);
	RUN(key_as_cert_refused);
	RUN(name_oneline_escapes_nothing_odd);
	return HARNESS_EXIT();
}
