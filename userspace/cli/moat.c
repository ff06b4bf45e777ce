// SPDX-License-Identifier: MIT
/* moat: the command-line front end of moatd. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control_proto.h"
#include "log.h"
#include "policy.h"
#include "policy_check.h"
#include "strbuf.h"

static const char usage_text[] =
"Usage: moat COMMAND [OPTIONS]\n"
"\n"
"Put mutual TLS in front of an unmodified TCP service. The service keeps\n"
"listening on its own port; moatd takes over new connections to that port,\n"
"admits only clients whose certificate chains to the given CA (with the\n"
"clientAuth purpose), and relays them to the service over loopback.\n"
"\n"
"Commands:\n"
"  check [DIR|FILE]\n"
"        Validate policy files (default /etc/moat) without touching anything;\n"
"        no moatd needed. Prints file:line: for every error and a warning for\n"
"        an interface file whose interface does not exist yet. Exit 0 when\n"
"        valid, 4 when not.\n"
"  reload\n"
"        Make moatd re-read its policy directory and every certificate, key,\n"
"        CA and CRL file it names. A policy with any error is refused whole\n"
"        and the running one stays in force (exit 4, errors printed). SIGHUP\n"
"        and edits under the policy directory do the same.\n"
"  attach PORT --ca CA.pem --cert SERVER.pem --key SERVER.key [--iface NAME]...\n"
"         [--datapath auto|userspace]\n"
"        Protect PORT at run time (ad hoc; policy files are the lasting way).\n"
"        With no --iface, every interface except lo, present and future.\n"
"        --datapath userspace keeps this port's sessions on the OpenSSL relay\n"
"        even where kTLS is available (default auto: kTLS when possible).\n"
"        Name lo to cover loopback too (moatd's own connections to the\n"
"        app stay exempt; nothing else is). Files are read by moatd; relative\n"
"        paths are resolved here. The attachment lasts until 'moat detach' and\n"
"        survives moatd restarts, not reboots; it is never written to the\n"
"        policy directory. A port the policy files define on an overlapping\n"
"        interface is refused (exit 5).\n"
"  detach PORT [--iface NAME]\n"
"        Lift protection from PORT, or from one of its interfaces. Also removes\n"
"        protection left behind by a moatd that could not restore it.\n"
"  status [--json]\n"
"        Protected ports and interfaces, handshakes accepted and rejected by\n"
"        reason, live sessions and the data path (ktls or userspace) of each.\n"
"  ping  Check that moatd answers.\n"
"\n"
"Options:\n"
"  --socket PATH   moatd's control socket (default $MOAT_RUN_DIR/moatd.sock,\n"
"                  $MOAT_RUN_DIR defaulting to /run/moat)\n"
"  -h, --help      print this help\n"
"\n"
"Exit status:\n"
"  0  success\n"
"  1  other error\n"
"  2  usage error\n"
"  3  moatd is not running or not reachable\n"
"  4  bad input: unreadable or invalid certificate, key or CA file, an\n"
"     encrypted key, a key that does not match the certificate, a CA file\n"
"     holding no CA certificate\n"
"  4  (moat check, moat reload) the policy has errors\n"
"  5  conflict: port already attached, or not attached, or defined by a\n"
"     policy file\n"
"  6  unknown interface\n"
"  7  permission denied (moat must run as root)\n"
"\n"
"Example:\n"
"  moatd -d\n"
"  moat attach 8080 --ca ca.crt --cert server.crt --key server.key\n"
"  curl --cacert ca.crt --cert client.crt --key client.key https://HOST:8080/\n";

static int usage_error(const char *fmt, const char *arg)
{
	fputs("moat: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'moat --help'.\n", stderr);
	return MOAT_EXIT_USAGE;
}

struct words {
	char buf[MOAT_CONTROL_MAX_REQUEST];
	size_t len;
	int overflow;
};

static void add_word(struct words *w, const char *name, const char *value)
{
	int n = snprintf(w->buf + w->len, sizeof(w->buf) - w->len, "%s%s%s", name,
			 value ? "=" : "", value ? value : "");

	if (n < 0 || (size_t)n + 1 > sizeof(w->buf) - w->len) {
		w->overflow = 1;
		return;
	}
	w->len += (size_t)n + 1;
}

static int absolute_path(const char *path, char *out)
{
	if (!realpath(path, out)) {
		fprintf(stderr, "moat: %s: %s\n", path, strerror(errno));
		return MOAT_EXIT_BAD_INPUT;
	}
	return 0;
}

static int call_daemon(const char *socket_path, const struct words *w)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct strbuf reply = { 0 };
	char chunk[4096];
	int fd, code;
	ssize_t n;

	if (strlen(socket_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "moat: socket path too long: %s\n", socket_path);
		return MOAT_EXIT_USAGE;
	}
	strcpy(addr.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = errno;

		fprintf(stderr, "moat: cannot reach moatd at %s: %s\n", socket_path, strerror(err));
		if (err == EACCES || err == EPERM) {
			fprintf(stderr, "moat: permission denied: run moat as root\n");
			return MOAT_EXIT_PERMISSION;
		}
		fprintf(stderr, "moat: is moatd running? Start it with 'moatd -d' "
			"(or 'systemctl start moatd')\n");
		return MOAT_EXIT_NO_DAEMON;
	}
	if (send(fd, w->buf, w->len, MSG_NOSIGNAL) != (ssize_t)w->len || shutdown(fd, SHUT_WR)) {
		fprintf(stderr, "moat: cannot send request to moatd: %s\n", strerror(errno));
		close(fd);
		return MOAT_EXIT_NO_DAEMON;
	}
	while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0 && reply.len < MOAT_CONTROL_MAX_REPLY)
		sb_printf(&reply, "%.*s", (int)n, chunk);
	close(fd);
	if (!reply.data || sscanf(reply.data, "%d", &code) != 1) {
		fprintf(stderr, "moat: moatd closed the connection without an answer\n");
		sb_free(&reply);
		return MOAT_EXIT_NO_DAEMON;
	}
	const char *text = strchr(reply.data, '\n');

	text = text ? text + 1 : "";
	if (*text)
		fputs(text, code == MOAT_EXIT_OK ? stdout : stderr);
	sb_free(&reply);
	return code;
}

static int parse_port_arg(const char *text)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || *end || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

/* moat check: the validator of moatd, run here, touching nothing. */
static int cmd_check(const char *path)
{
	struct diag d = { 0 };
	size_t ports = 0, files = 0;
	int err = policy_check_path(path, &d, &ports, &files);

	if (d.text.data)
		fputs(d.text.data, stderr);
	if (err)
		fprintf(stderr, "%s: %u error(s), %u warning(s)\n", path, d.errors, d.warnings);
	else
		printf("%s: policy OK: %zu port(s) in %zu file(s)%s\n", path, ports, files,
		       d.warnings ? " (with warnings)" : "");
	diag_free(&d);
	return err ? MOAT_EXIT_BAD_INPUT : MOAT_EXIT_OK;
}

enum { OPT_SOCKET = 1000, OPT_CA, OPT_CERT, OPT_KEY, OPT_IFACE, OPT_JSON, OPT_DATAPATH };

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "cert", required_argument, NULL, OPT_CERT },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "iface", required_argument, NULL, OPT_IFACE },
		{ "datapath", required_argument, NULL, OPT_DATAPATH },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct words w;
	char socket_path[PATH_MAX], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
	const char *ca_arg = NULL, *cert_arg = NULL, *key_arg = NULL, *ifaces[64];
	const char *command, *socket_arg = NULL, *datapath_arg = NULL;
	int n_ifaces = 0, json = 0, c, port = 0, err;

	if (argc < 2)
		return usage_error("%s", "missing command");
	command = argv[1];
	if (!strcmp(command, "-h") || !strcmp(command, "--help") || !strcmp(command, "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SOCKET: socket_arg = optarg; break;
		case OPT_CA: ca_arg = optarg; break;
		case OPT_CERT: cert_arg = optarg; break;
		case OPT_KEY: key_arg = optarg; break;
		case OPT_DATAPATH: datapath_arg = optarg; break;
		case OPT_IFACE:
			if (n_ifaces == 64)
				return usage_error("%s", "too many --iface options");
			ifaces[n_ifaces++] = optarg;
			break;
		case OPT_JSON: json = 1; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: return usage_error("%s", "bad option");
		}
	}
	if (socket_arg)
		snprintf(socket_path, sizeof(socket_path), "%s", socket_arg);
	else if (moat_run_path(MOAT_CONTROL_SOCKET, socket_path, sizeof(socket_path)))
		return usage_error("%s", "run directory path too long");

	if (!strcmp(command, "check")) {
		if (optind + 1 < argc)
			return usage_error("unexpected argument '%s'", argv[optind + 1]);
		log_init("moat", LOG_LVL_WARN, false);
		return cmd_check(optind < argc ? argv[optind] : MOAT_DEFAULT_POLICY_DIR);
	}
	add_word(&w, command, NULL);
	if (!strcmp(command, "attach") || !strcmp(command, "detach")) {
		if (optind >= argc)
			return usage_error("%s: missing PORT", command);
		port = parse_port_arg(argv[optind]);
		if (port < 0)
			return usage_error("invalid port '%s': expected 1-65535", argv[optind]);
		if (optind + 1 < argc)
			return usage_error("unexpected argument '%s'", argv[optind + 1]);
		char portbuf[8];

		snprintf(portbuf, sizeof(portbuf), "%d", port);
		add_word(&w, "port", portbuf);
		for (int i = 0; i < n_ifaces; i++)
			add_word(&w, "iface", ifaces[i]);
	} else if (optind < argc) {
		return usage_error("unexpected argument '%s'", argv[optind]);
	}

	if (!strcmp(command, "attach")) {
		if (!ca_arg || !cert_arg || !key_arg)
			return usage_error("%s", "attach needs --ca, --cert and --key");
		if ((err = absolute_path(ca_arg, ca)) || (err = absolute_path(cert_arg, cert)) ||
		    (err = absolute_path(key_arg, key)))
			return err;
		add_word(&w, "ca", ca);
		add_word(&w, "cert", cert);
		add_word(&w, "key", key);
		if (datapath_arg)
			add_word(&w, "datapath", datapath_arg);
	} else if (!strcmp(command, "detach")) {
		if (n_ifaces > 1)
			return usage_error("%s", "detach takes at most one --iface");
	} else if (!strcmp(command, "status")) {
		if (json)
			add_word(&w, "format", "json");
	} else if (strcmp(command, "ping") && strcmp(command, "reload")) {
		return usage_error("unknown command '%s'", command);
	}
	if (w.overflow)
		return usage_error("%s", "arguments too long");
	return call_daemon(socket_path, &w);
}
