// SPDX-License-Identifier: MIT
#include "policy.h"
#include "sockaddr_text.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define POLICY_MAX_LINE 4096
#define POLICY_MAX_PORTS 1024

static void diag_add(struct diag *d, const char *kind, const char *file, int line,
		     const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	if (line > 0)
		sb_printf(&d->text, "%s:%d: %s: %s\n", file, line, kind, text);
	else
		sb_printf(&d->text, "%s: %s: %s\n", file, kind, text);
}

void diag_error(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(d, "error", file, line, fmt, ap);
	va_end(ap);
	d->errors++;
}

void diag_warn(struct diag *d, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_add(d, "warning", file, line, fmt, ap);
	va_end(ap);
	d->warnings++;
}

void diag_free(struct diag *d)
{
	sb_free(&d->text);
	d->errors = d->warnings = 0;
}

int policy_parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(text, yes[i]))
			return *out = true, 0;
		if (!strcasecmp(text, no[i]))
			return *out = false, 0;
	}
	return -EINVAL;
}

static int parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (!isdigit((unsigned char)*text))
		return -EINVAL;
	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno || *end || *out < min || *out > max ? -EINVAL : 0;
}

/* Milliseconds, with an optional "ms" or "s" suffix. */
static int parse_ms(const char *text, unsigned long *out)
{
	char num[32];
	size_t n = strspn(text, "0123456789");
	unsigned long mult = 1;

	if (!n || n >= sizeof(num))
		return -EINVAL;
	if (!strcmp(text + n, "s"))
		mult = 1000;
	else if (text[n] && strcmp(text + n, "ms"))
		return -EINVAL;
	memcpy(num, text, n);
	num[n] = '\0';
	if (parse_uint(num, 1, 3600000, out) || *out * mult > 3600000)
		return -EINVAL;
	*out *= mult;
	return 0;
}

static int parse_tls_version(const char *text)
{
	if (!strcasecmp(text, "1.2") || !strcasecmp(text, "TLSv1.2"))
		return TLS1_2_VERSION;
	if (!strcasecmp(text, "1.3") || !strcasecmp(text, "TLSv1.3"))
		return TLS1_3_VERSION;
	return -EINVAL;
}

int policy_parse_backend(const char *text, struct sockaddr_storage *out)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	unsigned long port;

	memset(out, 0, sizeof(*out));
	if (!strchr(text, ':')) {
		if (parse_uint(text, 1, 65535, &port))
			return -EINVAL;
		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a4->sin_port = htons((uint16_t)port);
		return 0;
	}
	colon = strrchr(text, ':');
	if ((size_t)(colon - text) >= sizeof(host) || parse_uint(colon + 1, 1, 65535, &port))
		return -EINVAL;
	memcpy(host, text, (size_t)(colon - text));
	host[colon - text] = '\0';
	if (host[0] == '[') {
		size_t n = strlen(host);

		if (n < 3 || host[n - 1] != ']')
			return -EINVAL;
		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
			return -EINVAL;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
		return -EINVAL;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	return 0;
}

void policy_backend_text(const struct sockaddr_storage *ss, char *out, size_t len)
{
	sockaddr_text(ss, "127.0.0.1:(same port)", out, len);
}

enum file_kind { FILE_GLOBAL, FILE_ALL, FILE_IFACE };

struct parse_ctx {
	struct policy *p;
	struct diag *d;
	const char *file;
	char dir[PATH_MAX];
	enum file_kind kind;
	char iface[IFNAMSIZ];
	FILE *f;
	int line;
	size_t first_port;      /* this file's ports start here in p->ports */
	struct policy_port *cur;
	bool in_moat, in_bad_section;
	int moat_lines[3];
};

static void port_free(struct policy_port *pp)
{
	free(pp->file);
	free(pp->ca);
	free(pp->cert);
	free(pp->key);
	for (size_t i = 0; i < pp->n_crls; i++)
		free(pp->crls[i]);
	free(pp->ciphers);
	free(pp->ciphersuites);
	id_rules_free(&pp->rules);
}

void policy_free(struct policy *p)
{
	for (size_t i = 0; i < p->n_ports; i++)
		port_free(&p->ports[i]);
	free(p->ports);
	free(p->dir);
	memset(p, 0, sizeof(*p));
}

static void finish_section(struct parse_ctx *c)
{
	struct policy_port *pp = c->cur;

	c->cur = NULL;
	if (!pp)
		return;
	if (!pp->ca)
		diag_error(c->d, c->file, pp->lines.section, "[port %u] has no 'ca'", pp->port);
	if (!pp->cert)
		diag_error(c->d, c->file, pp->lines.section, "[port %u] has no 'cert'", pp->port);
	if (!pp->key)
		diag_error(c->d, c->file, pp->lines.section, "[port %u] has no 'key'", pp->port);
	if (pp->min_tls && pp->max_tls && pp->min_tls > pp->max_tls)
		diag_error(c->d, c->file, pp->lines.max_tls, "max_tls is below min_tls");
}

static void start_section(struct parse_ctx *c, const char *name)
{
	unsigned long port;
	struct policy_port *grown;

	finish_section(c);
	c->in_moat = c->in_bad_section = false;
	if (!strcmp(name, "moat")) {
		if (c->kind != FILE_GLOBAL) {
			diag_error(c->d, c->file, c->line, "[moat] belongs in " POLICY_GLOBAL_FILE);
			c->in_bad_section = true;
		}
		c->in_moat = true;
		return;
	}
	if (strncmp(name, "port", 4) || !isspace((unsigned char)name[4])) {
		diag_error(c->d, c->file, c->line, "unknown section [%s]: expected [port N]%s", name,
			   c->kind == FILE_GLOBAL ? " or [moat]" : "");
		c->in_bad_section = true;
		return;
	}
	name += 5;
	while (isspace((unsigned char)*name))
		name++;
	if (parse_uint(name, 1, 65535, &port)) {
		diag_error(c->d, c->file, c->line, "bad port '%s': expected 1-65535", name);
		c->in_bad_section = true;
		return;
	}
	if (c->kind == FILE_GLOBAL) {
		diag_error(c->d, c->file, c->line, "ports belong in all.conf or <interface>.conf, "
			   "not in " POLICY_GLOBAL_FILE);
		c->in_bad_section = true;
		return;
	}
	for (size_t i = c->first_port; i < c->p->n_ports; i++) {
		if (c->p->ports[i].port == port) {
			diag_error(c->d, c->file, c->line, "[port %lu] is already defined on line %d",
				   port, c->p->ports[i].lines.section);
			c->in_bad_section = true;
			return;
		}
	}
	if (c->p->n_ports == POLICY_MAX_PORTS ||
	    !(grown = realloc(c->p->ports, (c->p->n_ports + 1) * sizeof(*grown)))) {
		diag_error(c->d, c->file, c->line, "too many ports or out of memory");
		c->in_bad_section = true;
		return;
	}
	c->p->ports = grown;
	c->cur = &grown[c->p->n_ports++];
	memset(c->cur, 0, sizeof(*c->cur));
	c->cur->file = strdup(c->file);
	c->cur->port = (uint16_t)port;
	c->cur->all_ifaces = c->kind == FILE_ALL;
	snprintf(c->cur->iface, sizeof(c->cur->iface), "%s", c->iface);
	c->cur->close_disallowed = -1;
	c->cur->verify_depth = -1;
	c->cur->lines.section = c->line;
}

/* fgets for inih that counts lines and spots section headers for line numbers. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	char *s = fgets(str, num, c->f), *end;
	size_t n;

	if (!s)
		return NULL;
	c->line++;
	n = strlen(s);
	if (n == (size_t)num - 1 && s[n - 1] != '\n' && !feof(c->f)) {
		int ch;

		while ((ch = fgetc(c->f)) != EOF && ch != '\n')
			;
		diag_error(c->d, c->file, c->line, "line longer than %d characters", num - 2);
		s[0] = '\0';
		return s;
	}
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '[' && (end = strchr(s, ']'))) {
		char name[256];
		size_t len = (size_t)(end - s - 1);

		if (len >= sizeof(name))
			len = sizeof(name) - 1;
		memcpy(name, s + 1, len);
		name[len] = '\0';
		start_section(c, name);
	}
	return str;
}

static char *resolve_path(const struct parse_ctx *c, const char *value)
{
	char *out;

	if (value[0] == '/' || asprintf(&out, "%s/%s", c->dir, value) < 0)
		return strdup(value);
	return out;
}

static bool set_once(struct parse_ctx *c, int *line_slot, const char *key)
{
	if (*line_slot) {
		diag_error(c->d, c->file, c->line, "'%s' given twice (first on line %d)", key, *line_slot);
		return false;
	}
	*line_slot = c->line;
	return true;
}

static void set_path(struct parse_ctx *c, char **slot, int *line_slot, const char *key,
		     const char *value)
{
	if (!*value) {
		diag_error(c->d, c->file, c->line, "'%s' needs a file path", key);
		return;
	}
	if (set_once(c, line_slot, key))
		*slot = resolve_path(c, value);
}

static int moat_key(struct parse_ctx *c, const char *name, const char *value)
{
	unsigned long v;

	if (!strcmp(name, "close_disallowed_sessions")) {
		if (set_once(c, &c->moat_lines[0], name) &&
		    policy_parse_bool(value, &c->p->close_disallowed))
			diag_error(c->d, c->file, c->line, "%s wants yes or no, not '%s'", name, value);
	} else if (!strcmp(name, "handshake_timeout")) {
		if (set_once(c, &c->moat_lines[1], name)) {
			if (parse_ms(value, &v))
				diag_error(c->d, c->file, c->line, "bad handshake_timeout '%s': "
					   "milliseconds 1-3600000 (or Ns)", value);
			else
				c->p->handshake_timeout_ms = (uint32_t)v;
		}
	} else if (!strcmp(name, "max_handshakes")) {
		if (set_once(c, &c->moat_lines[2], name)) {
			if (parse_uint(value, 1, 1000000, &v))
				diag_error(c->d, c->file, c->line, "bad max_handshakes '%s': 1-1000000", value);
			else
				c->p->max_handshakes = (uint32_t)v;
		}
	} else {
		diag_error(c->d, c->file, c->line, "unknown key '%s' in [moat]", name);
	}
	return 1;
}

static int id_key(const char *name)
{
	for (int k = 0; k < ID_KIND_MAX; k++)
		if (!strcmp(name, id_kind_key(k)))
			return k;
	return -1;
}

static void port_key(struct parse_ctx *c, struct policy_port *pp, const char *name,
		     const char *value)
{
	unsigned long v;
	bool b;
	int k;

	if (!strcmp(name, "ca")) {
		set_path(c, &pp->ca, &pp->lines.ca, name, value);
	} else if (!strcmp(name, "cert")) {
		set_path(c, &pp->cert, &pp->lines.cert, name, value);
	} else if (!strcmp(name, "key")) {
		set_path(c, &pp->key, &pp->lines.key, name, value);
	} else if (!strcmp(name, "crl")) {
		if (pp->n_crls == POLICY_MAX_CRLS)
			diag_error(c->d, c->file, c->line, "at most %d crl files", POLICY_MAX_CRLS);
		else if (!*value)
			diag_error(c->d, c->file, c->line, "'crl' needs a file path");
		else {
			pp->lines.crl[pp->n_crls] = c->line;
			pp->crls[pp->n_crls++] = resolve_path(c, value);
		}
	} else if ((k = id_key(name)) >= 0) {
		int err = id_rules_add(&pp->rules, (enum id_kind)k, value);

		if (err == -EINVAL && (k == ID_CERT_SHA256 || k == ID_SPKI_SHA256))
			diag_error(c->d, c->file, c->line, "%s wants 64 hex digits (colons allowed), "
				   "not '%s'", name, value);
		else if (err)
			diag_error(c->d, c->file, c->line, "%s needs a value", name);
	} else if (!strcmp(name, "verify_depth")) {
		if (!set_once(c, &pp->lines.verify_depth, name))
			return;
		if (parse_uint(value, 0, 16, &v))
			diag_error(c->d, c->file, c->line, "bad verify_depth '%s': 0-16", value);
		else
			pp->verify_depth = (int)v;
	} else if (!strcmp(name, "min_tls") || !strcmp(name, "max_tls")) {
		int ver = parse_tls_version(value);
		bool min = name[1] == 'i';

		if (set_once(c, min ? &pp->lines.min_tls : &pp->lines.max_tls, name)) {
			if (ver < 0)
				diag_error(c->d, c->file, c->line, "%s wants 1.2 or 1.3, not '%s'", name, value);
			else
				*(min ? &pp->min_tls : &pp->max_tls) = ver;
		}
	} else if (!strcmp(name, "ciphers")) {
		if (set_once(c, &pp->lines.ciphers, name))
			pp->ciphers = strdup(value);
	} else if (!strcmp(name, "ciphersuites")) {
		if (set_once(c, &pp->lines.ciphersuites, name))
			pp->ciphersuites = strdup(value);
	} else if (!strcmp(name, "handshake_timeout")) {
		if (parse_ms(value, &v))
			diag_error(c->d, c->file, c->line, "bad handshake_timeout '%s': "
				   "milliseconds 1-3600000 (or Ns)", value);
		else
			pp->handshake_timeout_ms = (uint32_t)v;
	} else if (!strcmp(name, "max_handshakes")) {
		if (parse_uint(value, 1, 1000000, &v))
			diag_error(c->d, c->file, c->line, "bad max_handshakes '%s': 1-1000000", value);
		else
			pp->max_handshakes = (uint32_t)v;
	} else if (!strcmp(name, "backend")) {
		if (policy_parse_backend(value, &pp->backend))
			diag_error(c->d, c->file, c->line, "bad backend '%s': expected PORT, IPV4:PORT "
				   "or [IPV6]:PORT", value);
	} else if (!strcmp(name, "proxy_protocol")) {
		if (!strcasecmp(value, "v2"))
			pp->proxy_protocol = true;
		else if (policy_parse_bool(value, &pp->proxy_protocol))
			diag_error(c->d, c->file, c->line, "proxy_protocol wants yes, v2 or no, not '%s'",
				   value);
	} else if (!strcmp(name, "close_disallowed_sessions")) {
		if (policy_parse_bool(value, &b))
			diag_error(c->d, c->file, c->line, "%s wants yes or no, not '%s'", name, value);
		else
			pp->close_disallowed = b;
	} else {
		diag_error(c->d, c->file, c->line, "unknown key '%s'", name);
	}
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct parse_ctx *c = user;

	(void)section;
	if (c->in_bad_section)
		return 1; /* its header already has an error */
	if (c->in_moat)
		return moat_key(c, name, value);
	if (!c->cur) {
		diag_error(c->d, c->file, c->line, "'%s' outside a section", name);
		return 1;
	}
	port_key(c, c->cur, name, value);
	return 1;
}

/* Interface names as the kernel takes them: 1-15 bytes, no '/', ':' or spaces. */
static bool valid_ifname(const char *name, size_t len)
{
	if (!len || len >= IFNAMSIZ || (len == 1 && name[0] == '.') ||
	    (len == 2 && !strncmp(name, "..", 2)))
		return false;
	for (size_t i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == ':' || isspace((unsigned char)name[i]))
			return false;
	return true;
}

int policy_parse_file(const char *path, struct policy *p, struct diag *d)
{
	struct parse_ctx c = { .p = p, .d = d, .file = path, .first_port = p->n_ports };
	const char *base = strrchr(path, '/');
	unsigned before = d->errors;
	char copy[PATH_MAX];
	size_t n;
	int ret;

	base = base ? base + 1 : path;
	n = strlen(base);
	if (!strcmp(base, POLICY_GLOBAL_FILE)) {
		c.kind = FILE_GLOBAL;
	} else if (!strcmp(base, POLICY_ALL_FILE)) {
		c.kind = FILE_ALL;
	} else if (n > 5 && !strcmp(base + n - 5, ".conf") && valid_ifname(base, n - 5)) {
		c.kind = FILE_IFACE;
		memcpy(c.iface, base, n - 5);
		c.iface[n - 5] = '\0';
	} else {
		diag_error(d, path, 0, "policy file names are all.conf, " POLICY_GLOBAL_FILE
			   " or <interface>.conf with an interface name of at most %d characters",
			   IFNAMSIZ - 1);
		return -EINVAL;
	}
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(c.dir, sizeof(c.dir), "%s", dirname(copy));
	c.f = fopen(path, "r");
	if (!c.f) {
		diag_error(d, path, 0, "cannot read: %s", strerror(errno));
		return -errno;
	}
	/* Indented lines are keys, not continuations; long paths fit. */
	ini_allow_multiline = false;
	ini_use_stack = false;
	ini_allow_realloc = false;
	ini_max_line = POLICY_MAX_LINE;
	ini_initial_alloc = POLICY_MAX_LINE;
	ret = ini_parse_stream(read_line, &c, on_key, &c);
	finish_section(&c);
	fclose(c.f);
	if (ret > 0) {
		/* inih reports its first syntax error; handler errors are ours already. */
		diag_error(d, path, ret, "syntax error: expected [section], key = value or a comment");
	} else if (ret < 0) {
		diag_error(d, path, 0, "cannot parse: %s", ret == -2 ? "out of memory" : "read error");
	}
	p->n_files++;
	return d->errors > before ? -EINVAL : 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int policy_load(const char *path, struct policy *p, struct diag *d)
{
	struct dirent *de;
	struct stat st;
	char **names = NULL;
	size_t n = 0;
	int err = 0;
	DIR *dir;

	memset(p, 0, sizeof(*p));
	p->dir = strdup(path);
	if (!p->dir)
		return -ENOMEM;
	if (stat(path, &st)) {
		if (errno == ENOENT)
			return 0; /* no policy directory: nothing protected by files */
		diag_error(d, path, 0, "%s", strerror(errno));
		return -errno;
	}
	if (S_ISREG(st.st_mode))
		return policy_parse_file(path, p, d);
	dir = opendir(path);
	if (!dir) {
		diag_error(d, path, 0, "%s", strerror(errno));
		return -errno;
	}
	while ((de = readdir(dir)) != NULL) {
		size_t len = strlen(de->d_name);
		char **grown;

		/* Editors' temporaries and backups are not policy. */
		if (de->d_name[0] == '.' || len < 6 || strcmp(de->d_name + len - 5, ".conf"))
			continue;
		grown = realloc(names, (n + 1) * sizeof(*names));
		if (!grown) {
			err = -ENOMEM;
			break;
		}
		names = grown;
		if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
			err = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(dir);
	/* moat.conf, then the rest in name order: stable diagnostics. */
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (int pass = 0; pass < 2 && !err; pass++) {
		for (size_t i = 0; i < n; i++) {
			const char *base = strrchr(names[i], '/') + 1;

			if ((pass == 0) == !strcmp(base, POLICY_GLOBAL_FILE))
				policy_parse_file(names[i], p, d);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (err)
		diag_error(d, path, 0, "%s", strerror(-err));
	return d->errors ? -EINVAL : err;
}

const struct policy_port *policy_overlap(const struct policy *p, uint16_t port, const char *iface)
{
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct policy_port *pp = &p->ports[i];

		if (pp->port != port)
			continue;
		if (!iface) {
			if (strcmp(pp->iface, "lo"))
				return pp; /* all but lo overlaps every other file */
			continue;
		}
		if (pp->all_ifaces ? strcmp(iface, "lo") != 0 : strcmp(pp->iface, iface) == 0)
			return pp;
	}
	return NULL;
}
