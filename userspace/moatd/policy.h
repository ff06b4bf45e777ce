/* SPDX-License-Identifier: MIT */
/*
 * Policy files: POLICY_DIR/<iface>.conf, all.conf (every interface but lo)
 * and moat.conf (the [moat] section), INI parsed by libinih. This module
 * turns files into a struct policy and reports "file:line: message"
 * diagnostics; policy_check.c validates what needs OpenSSL.
 */
#ifndef MOAT_POLICY_H
#define MOAT_POLICY_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "identity.h"
#include "strbuf.h"

#define MOAT_DEFAULT_POLICY_DIR "/etc/moat"
#define POLICY_ALL_FILE "all.conf"
#define POLICY_GLOBAL_FILE "moat.conf"
#define POLICY_MAX_CRLS 16

/* Collected diagnostics, one "file:line: error: text" line each. */
struct diag {
	struct strbuf text;
	unsigned errors, warnings;
};

__attribute__((format(printf, 4, 5)))
void diag_error(struct diag *d, const char *file, int line, const char *fmt, ...);
__attribute__((format(printf, 4, 5)))
void diag_warn(struct diag *d, const char *file, int line, const char *fmt, ...);
void diag_free(struct diag *d);

/* Line numbers of a port's keys, for errors found after parsing. */
struct policy_lines {
	int section, ca, cert, key, ciphers, ciphersuites, min_tls, max_tls, verify_depth;
	int crl[POLICY_MAX_CRLS];
};

struct policy_port {
	char *file;              /* the policy file's path */
	uint16_t port;
	bool all_ifaces;         /* from all.conf */
	char iface[IFNAMSIZ];    /* from <iface>.conf */
	char *ca, *cert, *key;
	size_t n_crls;
	char *crls[POLICY_MAX_CRLS];
	int verify_depth;        /* intermediate CAs allowed; -1: default (8) */
	int min_tls, max_tls;    /* TLS1_2_VERSION ...; 0: default */
	char *ciphers, *ciphersuites;
	uint32_t handshake_timeout_ms, max_handshakes; /* 0: the [moat] or daemon default */
	struct sockaddr_storage backend; /* AF_UNSPEC: 127.0.0.1, same port */
	bool proxy_protocol;
	int close_disallowed;    /* -1: the [moat] setting */
	struct id_rules rules;
	struct policy_lines lines;
};

struct policy {
	char *dir;
	size_t n_ports;
	struct policy_port *ports;
	bool close_disallowed;   /* [moat] close_disallowed_sessions */
	uint32_t handshake_timeout_ms, max_handshakes; /* [moat]; 0: daemon default */
	size_t n_files;
};

/*
 * Parses every policy file of dir (or one file when path is a regular
 * file). A missing directory is an empty policy. Returns 0, or -EINVAL when
 * d gained errors, or another negative errno.
 */
int policy_load(const char *path, struct policy *p, struct diag *d);
/* Parses one file into p (its name gives its interface). */
int policy_parse_file(const char *path, struct policy *p, struct diag *d);
void policy_free(struct policy *p);

/* Whether a port of the policy overlaps (port, iface); iface NULL: all but lo. */
const struct policy_port *policy_overlap(const struct policy *p, uint16_t port, const char *iface);

/* "127.0.0.1:8080"-style text of a backend address. */
void policy_backend_text(const struct sockaddr_storage *ss, char *out, size_t len);
/* Parses "HOST:PORT", "[V6]:PORT" or "PORT" (numeric hosts only). */
int policy_parse_backend(const char *text, struct sockaddr_storage *out);
int policy_parse_bool(const char *text, bool *out);

#endif
