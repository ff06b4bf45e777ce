// SPDX-License-Identifier: MIT
#include "status.h"

#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "binding.h"
#include "datapath.h"
#include "session.h"
#include "steering.h"
#include "event_loop.h"

static uint64_t started_ms;

void status_set_started(void)
{
	started_ms = now_ms();
}

struct orphans {
	struct strbuf *out;
	bool json;
	int count;
};

static bool key_is_served(const struct moat_port_key *key)
{
	return bindings_serve_key(key->port, key->ifindex);
}

static void list_orphan(const struct moat_port_key *key, const struct moat_port_value *val, void *arg)
{
	struct orphans *o = arg;

	if (key_is_served(key))
		return;
	if (o->json)
		sb_printf(o->out, "%s{\"port\":%u,\"ifindex\":%u,\"slot\":%u}", o->count ? "," : "",
			  key->port, key->ifindex, val->listener_slot);
	else
		sb_printf(o->out, "  port %u ifindex %u: protected but not served (connections refused); "
			  "'moat detach %u' lifts it\n", key->port, key->ifindex, key->port);
	o->count++;
}

static void ifaces_text(const struct binding *b, char *out, size_t len)
{
	size_t used = 0;

	if (b->all_ifaces) {
		snprintf(out, len, "all (except lo)");
		return;
	}
	out[0] = '\0';
	for (size_t i = 0; i < b->n_ifaces && used < len; i++)
		used += (size_t)snprintf(out + used, len - used, "%s%s%s", i ? "," : "",
					 b->ifaces[i].name, b->ifaces[i].ifindex ? "" : "(absent)");
}

static uint64_t rejected_total(const struct binding *b)
{
	uint64_t n = 0;

	for (size_t i = 0; i < b->n_reasons; i++)
		n += b->rejected[i].count;
	return n;
}

static void render_json(struct steering *st, struct strbuf *out)
{
	uint64_t stats[MOAT_STAT_MAX] = { 0 };
	struct orphans orphans = { out, true, 0 };
	unsigned n_fb;
	const struct fallback_count *fb = datapath_fallbacks(&n_fb);
	bool first = true;

	steering_stats_read(st, stats);
	sb_printf(out, "{\"pid\":%d,\"uptime_ms\":%llu,\"ktls_available\":%s,\"pin_dir\":", getpid(),
		  (unsigned long long)(now_ms() - started_ms),
		  datapath_kernel_has_ktls() ? "true" : "false");
	sb_json_string(out, st->pin_dir);
	sb_printf(out, ",\"steering\":{\"steered\":%llu,\"refused_no_listener\":%llu,"
		  "\"refused_assign\":%llu,\"backend_exempt\":%llu}",
		  (unsigned long long)stats[MOAT_STAT_STEERED],
		  (unsigned long long)stats[MOAT_STAT_DROP_NO_LISTENER],
		  (unsigned long long)stats[MOAT_STAT_DROP_ASSIGN],
		  (unsigned long long)stats[MOAT_STAT_EXEMPT_BACKEND]);
	sb_printf(out, ",\"fallbacks\":{");
	for (unsigned i = 0; i < n_fb; i++) {
		sb_printf(out, "%s", i ? "," : "");
		sb_json_string(out, fb[i].reason);
		sb_printf(out, ":%llu", (unsigned long long)fb[i].count);
	}
	sb_printf(out, "},\"ports\":[");
	for (struct binding *b = bindings_first(); b; b = b->next) {
		sb_printf(out, "%s{\"port\":%u,\"all_interfaces\":%s,\"interfaces\":[", first ? "" : ",",
			  b->port, b->all_ifaces ? "true" : "false");
		first = false;
		for (size_t i = 0; i < b->n_ifaces; i++) {
			sb_printf(out, "%s{\"name\":", i ? "," : "");
			sb_json_string(out, b->ifaces[i].name);
			sb_printf(out, ",\"ifindex\":%u}", b->ifaces[i].ifindex);
		}
		sb_printf(out, "],\"ca\":");
		sb_json_string(out, b->ca_path);
		sb_printf(out, ",\"cert\":");
		sb_json_string(out, b->cert_path);
		sb_printf(out, ",\"origin\":");
		if (b->origin)
			sb_json_string(out, b->origin);
		else
			sb_printf(out, "\"attach\"");
		sb_printf(out, ",\"proxy_protocol\":%s,\"close_disallowed_sessions\":%s",
			  b->proxy_v2 ? "true" : "false", b->close_disallowed ? "true" : "false");
		sb_printf(out, ",\"accepted\":%llu,\"rejected_total\":%llu,\"rejected\":{",
			  (unsigned long long)b->accepted, (unsigned long long)rejected_total(b));
		for (size_t i = 0; i < b->n_reasons; i++) {
			sb_printf(out, "%s", i ? "," : "");
			sb_json_string(out, b->rejected[i].reason);
			sb_printf(out, ":%llu", (unsigned long long)b->rejected[i].count);
		}
		sb_printf(out, "},\"datapath\":\"%s\",\"handshaking\":%u,\"sessions\":%u}",
			  b->userspace_relay ? "userspace" : "auto", b->handshakes_now,
			  b->live_sessions);
	}
	sb_printf(out, "],\"orphaned_keys\":[");
	steering_ports_foreach(st, list_orphan, &orphans);
	sb_printf(out, "],\"sessions\":[");
	first = true;
	for (struct session *s = sessions_first(); s; s = s->next) {
		sb_printf(out, "%s{\"peer\":", first ? "" : ",");
		first = false;
		sb_json_string(out, s->peer);
		sb_printf(out, ",\"port\":%u,\"iface\":", s->binding->port);
		sb_json_string(out, s->ifname);
		sb_printf(out, ",\"phase\":\"%s\",\"subject\":", session_phase_name(s));
		sb_json_string(out, s->subject);
		sb_printf(out, ",\"tls\":\"%s\",\"cipher\":\"%s\",\"datapath\":\"%s\",\"why\":",
			  s->tls_version, s->cipher, datapath_name(s->datapath));
		sb_json_string(out, s->datapath_why);
		sb_printf(out, ",\"to_app\":%llu,\"to_client\":%llu,\"age_ms\":%llu}",
			  (unsigned long long)s->bytes_to_app, (unsigned long long)s->bytes_to_client,
			  (unsigned long long)(now_ms() - s->started_ms));
	}
	sb_printf(out, "]}\n");
}

static void render_text(struct steering *st, struct strbuf *out)
{
	uint64_t stats[MOAT_STAT_MAX] = { 0 };
	struct orphans orphans = { out, false, 0 };
	unsigned n_fb;
	const struct fallback_count *fb = datapath_fallbacks(&n_fb);

	steering_stats_read(st, stats);
	sb_printf(out, "moatd pid %d, up %llus; kernel TLS: %s\n", getpid(),
		  (unsigned long long)((now_ms() - started_ms) / 1000),
		  datapath_kernel_has_ktls() ? "available" : "not available (OpenSSL relay)");
	sb_printf(out, "steering: pins in %s; steered %llu, refused %llu (no listener) + %llu (assign)\n",
		  st->pin_dir, (unsigned long long)stats[MOAT_STAT_STEERED],
		  (unsigned long long)stats[MOAT_STAT_DROP_NO_LISTENER],
		  (unsigned long long)stats[MOAT_STAT_DROP_ASSIGN]);
	for (unsigned i = 0; i < n_fb; i++)
		sb_printf(out, "fallback to userspace relay: %llu session(s): %s\n",
			  (unsigned long long)fb[i].count, fb[i].reason);

	sb_printf(out, "\n%-6s %-24s %9s %9s %11s %8s  %s\n", "PORT", "INTERFACES", "ACCEPTED",
		  "REJECTED", "HANDSHAKING", "SESSIONS", "CA");
	if (!bindings_first())
		sb_printf(out, "(no ports attached)\n");
	for (struct binding *b = bindings_first(); b; b = b->next) {
		char ifs[256];

		ifaces_text(b, ifs, sizeof(ifs));
		sb_printf(out, "%-6u %-24s %9llu %9llu %11u %8u  %s\n", b->port, ifs,
			  (unsigned long long)b->accepted, (unsigned long long)rejected_total(b),
			  b->handshakes_now, b->live_sessions, b->ca_path);
		if (b->origin)
			sb_printf(out, "       policy: %s%s\n", b->origin, b->proxy_v2 ? " (PROXY v2)" : "");
		if (b->n_reasons) {
			sb_printf(out, "       rejected:");
			for (size_t i = 0; i < b->n_reasons; i++)
				sb_printf(out, " %s=%llu", b->rejected[i].reason,
					  (unsigned long long)b->rejected[i].count);
			sb_printf(out, "\n");
		}
	}
	steering_ports_foreach(st, list_orphan, &orphans);

	sb_printf(out, "\n%-24s %-6s %-10s %-10s %-10s %12s %12s  %s\n", "PEER", "PORT", "IFACE",
		  "PHASE", "DATAPATH", "TO_APP", "TO_CLIENT", "SUBJECT / WHY");
	if (!sessions_first())
		sb_printf(out, "(no sessions)\n");
	for (struct session *s = sessions_first(); s; s = s->next)
		sb_printf(out, "%-24s %-6u %-10s %-10s %-10s %12llu %12llu  %s%s%s\n", s->peer,
			  s->binding->port, s->ifname, session_phase_name(s), datapath_name(s->datapath),
			  (unsigned long long)s->bytes_to_app, (unsigned long long)s->bytes_to_client,
			  s->subject[0] ? s->subject : "-", s->datapath_why[0] ? " / " : "",
			  s->datapath_why);
}

void status_render(struct steering *st, bool json, struct strbuf *out)
{
	if (json)
		render_json(st, out);
	else
		render_text(st, out);
}
