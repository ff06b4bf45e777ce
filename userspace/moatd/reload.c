// SPDX-License-Identifier: MIT
#include "reload.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "binding.h"
#include "event_loop.h"
#include "log.h"
#include "policy.h"
#include "policy_check.h"
#include "session.h"

#define DEBOUNCE_MS 300
#define MAX_WATCHED 256

struct watched_name {
	int wd;
	char name[NAME_MAX + 1]; /* "" for the policy directory itself: any *.conf */
};

static char *policy_dir;
static struct policy current;
static struct watch inotify_watch = { .fd = -1 }, debounce = { .fd = -1 };
static struct watched_name watched[MAX_WATCHED];
static size_t n_watched;

const char *reload_policy_dir(void)
{
	return policy_dir;
}

static void fill_spec(const struct policy *p, const struct policy_port *pp, SSL_CTX *ctx,
		      struct binding_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->port = pp->port;
	spec->ca = pp->ca;
	spec->cert = pp->cert;
	spec->key = pp->key;
	spec->slot = -1;
	spec->origin = pp->file;
	spec->ctx = ctx;
	spec->backend = pp->backend;
	spec->proxy_v2 = pp->proxy_protocol;
	spec->close_disallowed = pp->close_disallowed >= 0 ? pp->close_disallowed : p->close_disallowed;
	spec->handshake_timeout_ms = pp->handshake_timeout_ms ? pp->handshake_timeout_ms
							      : p->handshake_timeout_ms;
	spec->max_handshakes = pp->max_handshakes ? pp->max_handshakes : p->max_handshakes;
	if (!pp->all_ifaces) {
		spec->n_ifaces = 1;
		spec->ifaces[0] = pp->iface;
	}
}

/* Runtime attachments win until detached: a policy that overlaps one is refused. */
static void check_attach_conflicts(const struct policy *p, struct diag *d)
{
	for (struct binding *b = bindings_first(); b; b = b->next) {
		const struct policy_port *pp = NULL;

		if (b->origin)
			continue;
		if (b->all_ifaces)
			pp = policy_overlap(p, b->port, NULL);
		for (size_t i = 0; !pp && i < b->n_ifaces; i++)
			pp = policy_overlap(p, b->port, b->ifaces[i].name);
		if (pp)
			diag_error(d, pp->file, pp->lines.section, "port %u is attached at run time with "
				   "'moat attach' on an overlapping interface; 'moat detach %u' first",
				   pp->port, pp->port);
	}
}

static bool in_policy(const struct policy *p, const struct binding *b)
{
	for (size_t i = 0; i < p->n_ports; i++)
		if (p->ports[i].port == b->port && !strcmp(p->ports[i].file, b->origin))
			return true;
	return false;
}

/* Everything is valid here; only system failures (sockets, maps) remain possible. */
static int apply(struct policy *p, struct policy_built *built, unsigned *added, unsigned *updated,
		 unsigned *removed)
{
	struct binding *gone[MOAT_MAX_BINDINGS];
	size_t n_gone = 0;
	int failed = 0;

	for (struct binding *b = bindings_first(); b; b = b->next)
		if (b->origin && !in_policy(p, b) && n_gone < MOAT_MAX_BINDINGS)
			gone[n_gone++] = b;
	for (size_t i = 0; i < n_gone; i++) {
		gone[i]->close_disallowed |= p->close_disallowed;
		log_info("policy: port %u of %s removed", gone[i]->port, gone[i]->origin);
		binding_remove(gone[i]);
		(*removed)++;
	}
	for (size_t i = 0; i < p->n_ports; i++) {
		const struct policy_port *pp = &p->ports[i];
		struct binding *b = binding_find_origin(pp->port, pp->file);
		struct binding_spec spec;
		char msg[1024];

		fill_spec(p, pp, built->ctx[i], &spec);
		if (b) {
			binding_update(b, &spec);
			(*updated)++;
			continue;
		}
		if (binding_attach(&spec, msg, sizeof(msg)) != BINDING_OK) {
			log_error("policy: port %u of %s cannot be served: %s", pp->port, pp->file, msg);
			failed++;
			continue;
		}
		log_info("policy: port %u protected on %s by %s", pp->port,
			 pp->all_ifaces ? "all interfaces except lo" : pp->iface, pp->file);
		(*added)++;
	}
	return failed ? -EIO : 0;
}

static void watch_add(const char *dir, const char *name)
{
	int wd;

	if (n_watched == MAX_WATCHED || inotify_watch.fd < 0)
		return;
	wd = inotify_add_watch(inotify_watch.fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
			       IN_CREATE | IN_DELETE | IN_ATTRIB | IN_ONLYDIR);
	if (wd < 0)
		return;
	for (size_t i = 0; i < n_watched; i++)
		if (watched[i].wd == wd && !strcmp(watched[i].name, name))
			return;
	watched[n_watched].wd = wd;
	snprintf(watched[n_watched].name, sizeof(watched[0].name), "%s", name);
	n_watched++;
}

/* The file's directory, watched for that name: rotation by rename is seen too. */
static void watch_file(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (!slash || (size_t)(slash - path) >= sizeof(dir))
		return;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	watch_add(dir[0] ? dir : "/", slash + 1);
}

static void watches_refresh(void)
{
	for (size_t i = 0; i < n_watched; i++)
		inotify_rm_watch(inotify_watch.fd, watched[i].wd);
	n_watched = 0;
	watch_add(policy_dir, "");
	watch_file(policy_dir); /* a policy directory created later */
	for (size_t i = 0; i < current.n_ports; i++) {
		const struct policy_port *pp = &current.ports[i];

		watch_file(pp->ca);
		watch_file(pp->cert);
		watch_file(pp->key);
		for (size_t j = 0; j < pp->n_crls; j++)
			watch_file(pp->crls[j]);
	}
}

static void log_diag(const struct diag *d, bool errors_as_errors)
{
	const char *line = d->text.data;

	while (line && *line) {
		const char *nl = strchr(line, '\n');
		int len = nl ? (int)(nl - line) : (int)strlen(line);

		if (errors_as_errors && strstr(line, ": error: "))
			log_error("%.*s", len, line);
		else
			log_warn("%.*s", len, line);
		line = nl ? nl + 1 : NULL;
	}
}

int reload_now(const char *why, struct strbuf *report)
{
	struct policy_built built = { 0 };
	struct diag d = { 0 };
	struct policy next;
	unsigned added = 0, updated = 0, removed = 0, closed;
	int err;

	policy_load(policy_dir, &next, &d);
	check_attach_conflicts(&next, &d);
	if (d.errors || (err = policy_check(&next, &built, &d))) {
		log_diag(&d, true);
		log_error("policy reload (%s) refused: %u error(s) in %s; the running policy stays "
			  "in force", why, d.errors, policy_dir);
		if (report)
			sb_printf(report, "%spolicy refused: %u error(s); the running policy stays in force\n",
				  d.text.data ? d.text.data : "", d.errors);
		policy_free(&next);
		diag_free(&d);
		return -EINVAL;
	}
	log_diag(&d, false);
	if (report && d.text.data)
		sb_printf(report, "%s", d.text.data);
	err = apply(&next, &built, &added, &updated, &removed);
	policy_built_free(&built);
	policy_free(&current);
	current = next;
	closed = sessions_recheck();
	watches_refresh();
	log_info("policy loaded (%s): %zu port(s) from %zu file(s) in %s: %u added, %u updated, "
		 "%u removed; %u session(s) closed", why, current.n_ports, current.n_files, policy_dir,
		 added, updated, removed, closed);
	if (report)
		sb_printf(report, "policy loaded: %zu port(s) from %zu file(s); %u added, %u updated, "
			  "%u removed; %u session(s) closed%s\n", current.n_ports, current.n_files,
			  added, updated, removed, closed,
			  err ? " (some ports could not be served: see moatd's log)" : "");
	diag_free(&d);
	return err;
}

static void arm_debounce(void)
{
	struct itimerspec its = { .it_value = { .tv_sec = 0, .tv_nsec = DEBOUNCE_MS * 1000000L } };

	timerfd_settime(debounce.fd, 0, &its, NULL);
}

static bool event_matters(const struct inotify_event *ev)
{
	size_t len;

	if (ev->mask & IN_Q_OVERFLOW)
		return true;
	for (size_t i = 0; i < n_watched; i++) {
		if (watched[i].wd != ev->wd)
			continue;
		/* A watched directory went away (our own refresh drops stale wds first). */
		if (ev->mask & IN_IGNORED)
			return true;
		if (!watched[i].name[0]) {
			len = ev->len ? strlen(ev->name) : 0;
			if (len > 5 && ev->name[0] != '.' && !strcmp(ev->name + len - 5, ".conf"))
				return true;
		} else if (ev->len && !strcmp(watched[i].name, ev->name)) {
			return true;
		}
	}
	return false;
}

static void on_inotify(struct watch *w, uint32_t events)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false;
	ssize_t n;

	(void)events;
	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			changed |= event_matters(ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	/* Editors write in several steps: reload once things settle. */
	if (changed)
		arm_debounce();
}

static void on_debounce(struct watch *w, uint32_t events)
{
	uint64_t expirations;

	(void)events;
	if (read(w->fd, &expirations, sizeof(expirations)) == sizeof(expirations))
		reload_now("policy files changed", NULL);
}

int reload_init(const char *dir)
{
	int err;

	policy_dir = strdup(dir);
	if (!policy_dir)
		return -ENOMEM;
	inotify_watch.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	debounce.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	inotify_watch.on_event = on_inotify;
	debounce.on_event = on_debounce;
	if (inotify_watch.fd < 0 || debounce.fd < 0 || watch_set(&inotify_watch, EPOLLIN) ||
	    watch_set(&debounce, EPOLLIN))
		log_warn("cannot watch %s for changes (%s); reload with SIGHUP or 'moat reload'",
			 policy_dir, strerror(errno));
	err = reload_now("start", NULL);
	return err == -EINVAL ? err : 0;
}

void reload_fini(void)
{
	struct watch *ws[2] = { &inotify_watch, &debounce };

	for (int i = 0; i < 2; i++) {
		watch_remove(ws[i]);
		if (ws[i]->fd >= 0)
			close(ws[i]->fd);
		ws[i]->fd = -1;
	}
	n_watched = 0;
	policy_free(&current);
	free(policy_dir);
	policy_dir = NULL;
}
