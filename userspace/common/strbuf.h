/* SPDX-License-Identifier: MIT */
/* Growable text buffer for replies and JSON. */
#ifndef MOAT_STRBUF_H
#define MOAT_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *data;
	size_t len, cap;
	bool failed; /* an allocation failed; contents are truncated */
};

__attribute__((format(printf, 2, 3)))
void sb_printf(struct strbuf *sb, const char *fmt, ...);
/* Appends s as a JSON string literal, quotes included. */
void sb_json_string(struct strbuf *sb, const char *s);
void sb_free(struct strbuf *sb);

#endif
