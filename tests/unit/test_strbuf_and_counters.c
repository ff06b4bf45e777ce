// SPDX-License-Identifier: MIT
/* Pure helpers: JSON escaping and rejection counters. */
#include <string.h>

#include "binding.h"
#include "harness.h"
#include "strbuf.h"

static void json_escapes_quotes_and_controls(void)
{
	struct strbuf sb = { 0 };

	sb_json_string(&sb, "CN=\"a\\b\"\n\x01");
	CHECK(sb.data && strcmp(sb.data, "\"CN=\\\"a\\\\b\\\"\\u000a\\u0001\"") == 0, "got %s", sb.data);
	sb_free(&sb);
}

static void printf_grows(void)
{
	struct strbuf sb = { 0 };

	for (int i = 0; i < 1000; i++)
		sb_printf(&sb, "%04d", i);
	CHECK(sb.len == 4000 && !sb.failed, "len %zu", sb.len);
	CHECK(strncmp(sb.data + 3996, "0999", 4) == 0, "tail %s", sb.data + 3996);
	sb_free(&sb);
}

static void reject_counts_by_reason_with_overflow_bucket(void)
{
	static struct binding b;
	char reason[32];

	binding_count_reject(&b, "no_client_cert");
	binding_count_reject(&b, "no_client_cert");
	binding_count_reject(&b, "cert_expired");
	CHECK(b.n_reasons == 2 && b.rejected[0].count == 2 && b.rejected[1].count == 1,
	      "n %zu", b.n_reasons);
	for (int i = 0; i < 100; i++) {
		snprintf(reason, sizeof(reason), "r%d", i);
		binding_count_reject(&b, reason);
	}
	uint64_t total = 0;

	for (size_t i = 0; i < b.n_reasons; i++)
		total += b.rejected[i].count;
	CHECK(b.n_reasons == BINDING_MAX_REASONS, "n %zu", b.n_reasons);
	CHECK(total == 103, "counts lost: %llu", (unsigned long long)total);
	CHECK(strcmp(b.rejected[BINDING_MAX_REASONS - 1].reason, "other") == 0, "last bucket %s",
	      b.rejected[BINDING_MAX_REASONS - 1].reason);
}

int main(void)
{
	RUN(json_escapes_quotes_and_controls);
	RUN(printf_grows);
	RUN(reject_counts_by_reason_with_overflow_bucket);
	return HARNESS_EXIT();
}
