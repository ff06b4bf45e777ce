/* SPDX-License-Identifier: MIT */
/* Renders `moat status`, as text for people or JSON for tools. */
#ifndef MOAT_STATUS_H
#define MOAT_STATUS_H

#include <stdbool.h>

#include "strbuf.h"

struct steering;

void status_render(struct steering *st, bool json, struct strbuf *out);
void status_set_started(void);

#endif
