/* SPDX-License-Identifier: MIT */
/*
 * moat <-> moatd control protocol over a unix stream socket. The client
 * sends NUL-separated words ("attach", "port=443", ...), then shuts down its
 * write side; moatd answers "<exit code>\n<text>" and closes.
 */
#ifndef MOAT_CONTROL_PROTO_H
#define MOAT_CONTROL_PROTO_H

#include <stddef.h>

#define MOAT_DEFAULT_RUN_DIR "/run/moat"
#define MOAT_RUN_DIR_ENV "MOAT_RUN_DIR"
#define MOAT_CONTROL_SOCKET "moatd.sock"
#define MOAT_CONTROL_MAX_REQUEST 16384
#define MOAT_CONTROL_MAX_REPLY (1 << 20)

/* Exit codes of `moat`, documented in its --help. */
enum moat_exit {
	MOAT_EXIT_OK = 0,
	MOAT_EXIT_ERROR = 1,         /* anything not below */
	MOAT_EXIT_USAGE = 2,
	MOAT_EXIT_NO_DAEMON = 3,     /* moatd not running or not reachable */
	MOAT_EXIT_BAD_INPUT = 4,     /* unreadable/invalid cert, key or CA file */
	MOAT_EXIT_CONFLICT = 5,      /* port already attached / not attached */
	MOAT_EXIT_NO_IFACE = 6,      /* unknown interface */
	MOAT_EXIT_PERMISSION = 7,    /* caller not allowed */
};

/* The run directory: $MOAT_RUN_DIR or /run/moat. */
const char *moat_run_dir(void);
/* "<run dir>/<name>" into out; -ENAMETOOLONG if it does not fit. */
int moat_run_path(const char *name, char *out, size_t len);

#endif
