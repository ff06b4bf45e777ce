// SPDX-License-Identifier: MIT
#include "log.h"

#include <bpf/libbpf.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

static const char *log_ident = "moat";
static enum log_level log_threshold = LOG_LVL_INFO;
static bool log_syslog;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error",
	[LOG_LVL_WARN] = "warn",
	[LOG_LVL_INFO] = "info",
	[LOG_LVL_DEBUG] = "debug",
};

void log_init(const char *ident, enum log_level level, bool to_syslog)
{
	log_ident = ident;
	log_threshold = level;
	log_syslog = to_syslog;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

enum log_level log_get_level(void)
{
	return log_threshold;
}

int log_level_from_name(const char *name, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

static void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const int syslog_prio[] = {
		[LOG_LVL_ERROR] = LOG_ERR,
		[LOG_LVL_WARN] = LOG_WARNING,
		[LOG_LVL_INFO] = LOG_INFO,
		[LOG_LVL_DEBUG] = LOG_DEBUG,
	};
	char line[2048];
	size_t len;

	if (level > log_threshold)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len && line[len - 1] == '\n')
		line[--len] = '\0';
	if (log_syslog) {
		syslog(syslog_prio[level], "%s: %s", level_names[level], line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s[%s]: %s\n", stamp, ts.tv_nsec / 1000000,
		log_ident, level_names[level], line);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void openssl_errors_to_string(char *buf, unsigned long len)
{
	unsigned long err;
	size_t used = 0;

	buf[0] = '\0';
	while ((err = ERR_get_error()) != 0) {
		char one[256];

		ERR_error_string_n(err, one, sizeof(one));
		/* Keep only the reason: "error:0A000086:SSL routines::reason". */
		const char *reason = strrchr(one, ':');
		reason = reason ? reason + 1 : one;
		if (used + strlen(reason) + 3 >= len)
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? "; " : "", reason);
	}
	if (!used)
		snprintf(buf, len, "no OpenSSL detail");
}

void log_openssl_errors(const char *fmt, ...)
{
	char what[512], detail[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	openssl_errors_to_string(detail, sizeof(detail));
	log_error("%s: %s", what, detail);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	enum log_level mapped = level == LIBBPF_WARN ? LOG_LVL_WARN
			      : level == LIBBPF_INFO ? LOG_LVL_DEBUG : LOG_LVL_DEBUG;
	char line[1024];

	if (mapped > log_threshold)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	log_msg(mapped, "%s", line);
	return 0;
}

void log_route_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}
