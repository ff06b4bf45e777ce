/* SPDX-License-Identifier: MIT */
/*
 * The policy in force and its live reload: SIGHUP, `moat reload` and
 * changes under the policy directory (inotify, debounced) all rebuild the
 * whole policy first and apply it only when every part of it is valid.
 */
#ifndef MOAT_RELOAD_H
#define MOAT_RELOAD_H

#include "strbuf.h"

/* Loads and applies the policy at start; -EINVAL when it is invalid. */
int reload_init(const char *policy_dir);
void reload_fini(void);
/*
 * Rebuilds and applies the policy. On failure nothing changes; report gets
 * the diagnostics. Returns 0 or a negative errno (-EINVAL: invalid policy).
 */
int reload_now(const char *why, struct strbuf *report);
/* The policy directory moatd reads. */
const char *reload_policy_dir(void);

#endif
