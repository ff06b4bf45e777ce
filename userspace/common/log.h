/* SPDX-License-Identifier: MIT */
/* The one logging module: moatd, moat, libbpf and OpenSSL all report here. */
#ifndef MOAT_LOG_H
#define MOAT_LOG_H

#include <stdbool.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *ident, enum log_level level, bool to_syslog);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
int log_level_from_name(const char *name, enum log_level *out);

__attribute__((format(printf, 2, 3)))
void log_msg(enum log_level level, const char *fmt, ...);

/* Drains OpenSSL's error queue into one line, prefixed by what failed. */
__attribute__((format(printf, 1, 2)))
void log_openssl_errors(const char *fmt, ...);

/* Writes OpenSSL's queued errors as "reason; reason" into buf, clearing the queue. */
void openssl_errors_to_string(char *buf, unsigned long len);

/* Routes libbpf's own messages through log_msg. */
void log_route_libbpf(void);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
