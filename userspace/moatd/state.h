/* SPDX-License-Identifier: MIT */
/*
 * Runtime attachments made with `moat attach`, kept under the run
 * directory so a restarted moatd serves them again. Like the BPF pins they
 * live in tmpfs and end at reboot.
 */
#ifndef MOAT_STATE_H
#define MOAT_STATE_H

#include <stdint.h>

struct binding;

int state_save(const struct binding *b);
int state_forget(uint16_t port);
void state_forget_all(void);
/* Re-attaches every saved binding; returns how many failed. */
int state_restore(void);

#endif
