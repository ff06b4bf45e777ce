/* SPDX-License-Identifier: MIT */
/* moatd's control socket: attach, detach, status for the `moat` CLI. */
#ifndef MOAT_CONTROL_H
#define MOAT_CONTROL_H

struct steering;

int control_open(struct steering *st);
void control_close(void);

#endif
