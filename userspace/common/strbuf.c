// SPDX-License-Identifier: MIT
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static bool sb_reserve(struct strbuf *sb, size_t extra)
{
	size_t cap;
	char *grown;

	if (sb->failed)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	cap = sb->cap ? sb->cap : 256;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	grown = realloc(sb->data, cap);
	if (!grown) {
		sb->failed = true;
		return false;
	}
	sb->data = grown;
	sb->cap = cap;
	return true;
}

void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !sb_reserve(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void sb_json_string(struct strbuf *sb, const char *s)
{
	sb_printf(sb, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_printf(sb, "\\%c", *p);
		else if (*p < 0x20)
			sb_printf(sb, "\\u%04x", *p);
		else
			sb_printf(sb, "%c", *p);
	}
	sb_printf(sb, "\"");
}

void sb_free(struct strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}
