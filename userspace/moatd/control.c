// SPDX-License-Identifier: MIT
#include "control.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "binding.h"
#include "control_proto.h"
#include "event_loop.h"
#include "log.h"
#include "reload.h"
#include "state.h"
#include "status.h"
#include "strbuf.h"

#define MAX_WORDS 64

static struct watch control_watch = { .fd = -1 };
static struct steering *steer;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

struct request {
	const char *words[MAX_WORDS];
	int n;
};

/* The value of the first "name=value" word, or NULL. */
static const char *arg_value(const struct request *rq, const char *name)
{
	size_t len = strlen(name);

	for (int i = 1; i < rq->n; i++)
		if (!strncmp(rq->words[i], name, len) && rq->words[i][len] == '=')
			return rq->words[i] + len + 1;
	return NULL;
}

static int parse_port(const char *text, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!text || !*text)
		return -EINVAL;
	errno = 0;
	v = strtoul(text, &end, 10);
	if (errno || *end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

static int exit_code_of(enum binding_error err)
{
	switch (err) {
	case BINDING_OK: return MOAT_EXIT_OK;
	case BINDING_ERR_INPUT: return MOAT_EXIT_BAD_INPUT;
	case BINDING_ERR_CONFLICT: return MOAT_EXIT_CONFLICT;
	case BINDING_ERR_IFACE: return MOAT_EXIT_NO_IFACE;
	default: return MOAT_EXIT_ERROR;
	}
}

static int cmd_attach(const struct request *rq, struct strbuf *reply)
{
	struct binding_spec spec = { .slot = -1 };
	enum binding_error err;
	char msg[1024];
	struct binding *b;
	int saved;

	if (parse_port(arg_value(rq, "port"), &spec.port)) {
		sb_printf(reply, "invalid port '%s': expected 1-65535\n", arg_value(rq, "port") ?: "");
		return MOAT_EXIT_USAGE;
	}
	spec.ca = arg_value(rq, "ca");
	if (arg_value(rq, "datapath")) {
		if (strcmp(arg_value(rq, "datapath"), "userspace") &&
		    strcmp(arg_value(rq, "datapath"), "auto")) {
			sb_printf(reply, "datapath must be 'auto' or 'userspace'\n");
			return MOAT_EXIT_USAGE;
		}
		spec.userspace_relay = !strcmp(arg_value(rq, "datapath"), "userspace");
	}
	spec.cert = arg_value(rq, "cert");
	spec.key = arg_value(rq, "key");
	if (!spec.ca || !spec.cert || !spec.key) {
		sb_printf(reply, "attach needs ca=, cert= and key=\n");
		return MOAT_EXIT_USAGE;
	}
	for (int i = 1; i < rq->n; i++) {
		if (strncmp(rq->words[i], "iface=", 6))
			continue;
		if (spec.n_ifaces == BINDING_MAX_IFACES) {
			sb_printf(reply, "at most %d interfaces per port\n", BINDING_MAX_IFACES);
			return MOAT_EXIT_USAGE;
		}
		spec.ifaces[spec.n_ifaces++] = rq->words[i] + 6;
	}
	err = binding_attach(&spec, msg, sizeof(msg));
	if (err != BINDING_OK) {
		log_warn("attach port %u refused: %s", spec.port, msg);
		sb_printf(reply, "%s\n", msg);
		return exit_code_of(err);
	}
	b = binding_find_attached(spec.port);
	saved = state_save(b);
	if (saved)
		log_warn("port %u: cannot record attachment for restarts: %s", spec.port, strerror(-saved));
	log_info("attached port %u (CA %s, cert %s)", spec.port, spec.ca, spec.cert);
	sb_printf(reply, "port %u is protected by mutual TLS on %s\n", spec.port,
		  spec.n_ifaces ? "the named interface(s)" : "all interfaces except lo");
	return MOAT_EXIT_OK;
}

static int cmd_detach(const struct request *rq, struct strbuf *reply)
{
	const char *iface = arg_value(rq, "iface");
	enum binding_error err;
	struct binding *b;
	uint16_t port;
	char msg[512];

	if (parse_port(arg_value(rq, "port"), &port)) {
		sb_printf(reply, "invalid port '%s': expected 1-65535\n", arg_value(rq, "port") ?: "");
		return MOAT_EXIT_USAGE;
	}
	err = binding_detach(port, iface, msg, sizeof(msg));
	if (err != BINDING_OK) {
		sb_printf(reply, "%s\n", msg);
		return exit_code_of(err);
	}
	b = binding_find_attached(port);
	if (b)
		state_save(b);
	else
		state_forget(port);
	log_info("detached port %u%s%s", port, iface ? " from " : "", iface ?: "");
	sb_printf(reply, "%s\n", msg[0] ? msg : "detached");
	return MOAT_EXIT_OK;
}

static int dispatch(const struct request *rq, struct strbuf *reply)
{
	const char *cmd = rq->n ? rq->words[0] : "";

	if (!strcmp(cmd, "ping")) {
		sb_printf(reply, "pong\n");
		return MOAT_EXIT_OK;
	}
	if (!strcmp(cmd, "attach"))
		return cmd_attach(rq, reply);
	if (!strcmp(cmd, "detach"))
		return cmd_detach(rq, reply);
	if (!strcmp(cmd, "reload")) {
		int err = reload_now("moat reload", reply);

		return !err ? MOAT_EXIT_OK : err == -EINVAL ? MOAT_EXIT_BAD_INPUT : MOAT_EXIT_ERROR;
	}
	if (!strcmp(cmd, "status")) {
		status_render(steer, arg_value(rq, "format") && !strcmp(arg_value(rq, "format"), "json"),
			      reply);
		return MOAT_EXIT_OK;
	}
	sb_printf(reply, "unknown command '%s'\n", cmd);
	return MOAT_EXIT_USAGE;
}

static void send_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

/* Requests are tiny and callers are root: served inline, bounded by timeouts. */
static void serve_client(int fd)
{
	struct timeval tv = { .tv_sec = 2 };
	struct strbuf reply = { 0 };
	struct request rq = { .n = 0 };
	char *buf = NULL, header[16];
	struct ucred cred;
	socklen_t len = sizeof(cred);
	size_t used = 0;
	int code;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) ||
	    (cred.uid != 0 && cred.uid != geteuid())) {
		log_warn("control: refused request from uid %u pid %d", cred.uid, cred.pid);
		sb_printf(&reply, "permission denied: moat needs root\n");
		code = MOAT_EXIT_PERMISSION;
		goto respond;
	}
	buf = malloc(MOAT_CONTROL_MAX_REQUEST + 1);
	if (!buf)
		goto close_fd;
	for (;;) {
		ssize_t n = recv(fd, buf + used, MOAT_CONTROL_MAX_REQUEST - used, 0);

		if (n == 0)
			break;
		if (n < 0 || (used += (size_t)n) == MOAT_CONTROL_MAX_REQUEST) {
			sb_printf(&reply, "request too large or incomplete\n");
			code = MOAT_EXIT_USAGE;
			goto respond;
		}
	}
	buf[used] = '\0';
	for (size_t off = 0; off < used && rq.n < MAX_WORDS; off += strlen(buf + off) + 1)
		rq.words[rq.n++] = buf + off;
	code = dispatch(&rq, &reply);

respond:
	snprintf(header, sizeof(header), "%d\n", code);
	send_all(fd, header, strlen(header));
	if (reply.data)
		send_all(fd, reply.data, reply.len);
close_fd:
	sb_free(&reply);
	free(buf);
	close(fd);
}

static void on_control(struct watch *w, uint32_t events)
{
	(void)events;
	for (;;) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0)
			return;
		serve_client(fd);
	}
}

int control_open(struct steering *st)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, err;

	steer = st;
	if (moat_run_path(MOAT_CONTROL_SOCKET, socket_path, sizeof(socket_path)))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, socket_path, sizeof(socket_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* We hold the pid lock, so a socket file here is a dead moatd's. */
	unlink(socket_path);
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) || chmod(socket_path, 0600) ||
	    listen(fd, 16)) {
		err = -errno;
		close(fd);
		log_error("control socket %s: %s", socket_path, strerror(-err));
		return err;
	}
	control_watch.fd = fd;
	control_watch.on_event = on_control;
	return watch_set(&control_watch, EPOLLIN);
}

void control_close(void)
{
	if (control_watch.fd < 0)
		return;
	watch_remove(&control_watch);
	close(control_watch.fd);
	control_watch.fd = -1;
	unlink(socket_path);
}
