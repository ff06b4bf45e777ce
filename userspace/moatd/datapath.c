// SPDX-License-Identifier: MIT
#include "datapath.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "relay_ktls.h"
#include "session.h"

#ifndef TCP_ULP
#define TCP_ULP 31
#endif

#define MAX_FALLBACK_REASONS 16

static bool kernel_ktls;
static struct fallback_count fallbacks[MAX_FALLBACK_REASONS];
static unsigned n_fallbacks;

static struct session **scheduled;
static size_t n_scheduled, cap_scheduled;

/* A connected loopback pair is the only way to ask for the "tls" ULP. */
void datapath_probe(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	int lfd, cfd = -1, afd = -1, err = 0;

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &len))
		goto probe_failed;
	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&addr, sizeof(addr)))
		goto probe_failed;
	afd = accept(lfd, NULL, NULL);
	if (afd < 0)
		goto probe_failed;
	kernel_ktls = setsockopt(afd, IPPROTO_TCP, TCP_ULP, "tls", sizeof("tls")) == 0;
	err = kernel_ktls ? 0 : errno;
	goto close_sockets;

probe_failed:
	err = errno;
close_sockets:
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	if (kernel_ktls)
		log_info("kernel TLS is available: verified sessions move to kTLS (TX and RX)");
	else
		log_warn("kernel TLS is not available on this kernel (TCP_ULP \"tls\": %s); "
			 "falling back to the OpenSSL relay for every session", strerror(err));
}

bool datapath_kernel_has_ktls(void)
{
	return kernel_ktls;
}

static void count_fallback(const char *reason)
{
	unsigned i;

	for (i = 0; i < n_fallbacks; i++) {
		if (strcmp(fallbacks[i].reason, reason) == 0)
			break;
	}
	if (i == n_fallbacks) {
		if (n_fallbacks == MAX_FALLBACK_REASONS)
			i = MAX_FALLBACK_REASONS - 1;
		else
			fallbacks[n_fallbacks++].reason = reason;
	}
	fallbacks[i].count++;
}

const struct fallback_count *datapath_fallbacks(unsigned *n)
{
	*n = n_fallbacks;
	return fallbacks;
}

void datapath_start(struct session *s)
{
	const char *why = "kernel has no kTLS";

	if (kernel_ktls && s->binding->userspace_relay)
		why = "userspace relay chosen for this port";
	else if (kernel_ktls) {
		int err = relay_ktls_start(s, &why);

		if (err == 0)
			return;
		if (err != -EOPNOTSUPP) {
			/* The socket is in an unknown TLS state: nothing safe to fall back to. */
			session_close(s, why, true);
			return;
		}
	}
	count_fallback(why);
	snprintf(s->datapath_why, sizeof(s->datapath_why), "%s", why);
	relay_userspace_start(s);
}

void datapath_on_client(struct session *s, uint32_t events)
{
	if (s->datapath == DATAPATH_KTLS)
		relay_ktls_on_client(s, events);
	else
		relay_userspace_pump(s);
}

void datapath_on_backend(struct session *s, uint32_t events)
{
	if (s->datapath == DATAPATH_KTLS)
		relay_ktls_on_backend(s, events);
	else
		relay_userspace_pump(s);
}

void datapath_release(struct session *s)
{
	if (s->datapath == DATAPATH_KTLS)
		relay_ktls_release(s);
}

void datapath_schedule(struct session *s)
{
	if (s->scheduled)
		return;
	if (n_scheduled == cap_scheduled) {
		size_t cap = cap_scheduled ? cap_scheduled * 2 : 64;
		struct session **grown = realloc(scheduled, cap * sizeof(*grown));

		if (!grown)
			return; /* epoll interest is set; it will come back on its own */
		scheduled = grown;
		cap_scheduled = cap;
	}
	s->scheduled = true;
	scheduled[n_scheduled++] = s;
}

bool datapath_run_scheduled(void)
{
	size_t n = n_scheduled;

	/* Sessions scheduled while running wait for the next round. */
	for (size_t i = 0; i < n; i++) {
		struct session *s = scheduled[i];

		s->scheduled = false;
		if (s->phase == PHASE_RELAY)
			datapath_on_client(s, 0);
	}
	if (n_scheduled > n)
		memmove(scheduled, scheduled + n, (n_scheduled - n) * sizeof(*scheduled));
	n_scheduled -= n;
	return n_scheduled > 0;
}
