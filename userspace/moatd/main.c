// SPDX-License-Identifier: MIT
/* moatd: the mutual-TLS daemon behind moat's sk_lookup steering. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "binding.h"
#include "buffer_pool.h"
#include "control.h"
#include "control_proto.h"
#include "datapath.h"
#include "event_loop.h"
#include "ifaces.h"
#include "log.h"
#include "policy.h"
#include "policy_check.h"
#include "reload.h"
#include "session.h"
#include "ssl_compat.h"
#include "state.h"
#include "status.h"
#include "steering.h"

#define MOAT_VERSION "0.1.0"
/* sk_lookup came in 5.9; its ingress_ifindex, which per-interface policy needs, in 5.17. */
#define MIN_KERNEL_MAJOR 5
#define MIN_KERNEL_MINOR 17

static const char usage_text[] =
"Usage: moatd [OPTIONS]\n"
"\n"
"moatd enforces mutual TLS in front of unmodified TCP services. An eBPF\n"
"sk_lookup program steers new connections for protected ports to moatd,\n"
"which requires and verifies a client certificate, then relays plaintext to\n"
"the application on the same port over loopback, through kernel TLS where\n"
"the kernel has it and through OpenSSL where it does not.\n"
"\n"
"Protection outlives moatd: the program and its maps are pinned in bpffs,\n"
"so while moatd is stopped, crashed or restarting, protected ports refuse\n"
"connections instead of exposing the application. Only 'moat detach' or\n"
"'moatd --cleanup' lifts it.\n"
"\n"
"Options:\n"
"  -f, --foreground     stay in the foreground, log to stderr (default)\n"
"  -d, --daemon         detach from the terminal and log to syslog\n"
"      --cleanup        remove moat's BPF program and maps from this network\n"
"                       namespace and forget 'moat attach' records, lifting\n"
"                       all protection, then exit\n"
"      --handshake-timeout MS\n"
"                       drop a client that has not completed its handshake\n"
"                       within MS milliseconds (default 10000)\n"
"      --max-handshakes N\n"
"                       per port, refuse new clients while N handshakes are\n"
"                       in progress (default 1024)\n"
"      --policy-dir DIR policy files: DIR/<interface>.conf, DIR/all.conf and\n"
"                       DIR/moat.conf (default /etc/moat; see README \"Policy\n"
"                       files\"). An invalid policy stops moatd from starting.\n"
"  -n, --check          check the policy files and exit (0: valid, 1: not),\n"
"                       printing file:line: for every error\n"
"      --bpffs DIR      bpffs mount point (default /sys/fs/bpf; mounted if absent)\n"
"      --run-dir DIR    control socket, pid file and attachment records\n"
"                       (default $MOAT_RUN_DIR or /run/moat)\n"
"  -l, --log-level L    error, warn, info (default) or debug\n"
"  -v, --verbose        same as --log-level debug\n"
"  -V, --version        print version and exit\n"
"  -h, --help           print this help and exit\n"
"\n"
"Signals: SIGTERM/SIGINT stop moatd (ports stay protected and refuse).\n"
"SIGHUP reloads the policy, as do 'moat reload' and any change to a policy\n"
"file or to a certificate, key, CA or CRL file it names (seen by inotify).\n"
"A policy with any error is refused whole; the running one stays in force.\n"
"\n"
"Files:\n"
"  RUN_DIR/moatd.sock      control socket for the 'moat' command (root only)\n"
"  RUN_DIR/moatd.pid       pid file, locked while moatd runs\n"
"  RUN_DIR/attach.d/       attachments to restore on restart\n"
"  POLICY_DIR/*.conf       policy files (INI)\n"
"  BPFFS/moat/<netns>/     pinned sk_lookup link and maps\n"
"\n"
"Requirements: Linux " "5.17" " or newer with BPF sk_lookup; OpenSSL " MOAT_MIN_OPENSSL_TEXT
" or newer;\n"
"kernel TLS (CONFIG_TLS) for the in-kernel data path (optional). Run as root.\n"
"\n"
"Exit status: 0 on a clean stop, 1 on a startup error, 2 on bad usage.\n";

struct options {
	bool daemonize;
	bool cleanup;
	bool check_only;
	const char *bpffs;
	char policy_dir[4096];
	enum log_level level;
	unsigned long handshake_timeout_ms;
	unsigned long max_handshakes;
};

static int parse_count(const char *text, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(text, &end, 10);
	return errno || *end || !*text || *out == 0 || *out > max ? -1 : 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "daemon", no_argument, NULL, 'd' },
		{ "cleanup", no_argument, NULL, 'C' },
		{ "bpffs", required_argument, NULL, 'B' },
		{ "policy-dir", required_argument, NULL, 'P' },
		{ "check", no_argument, NULL, 'n' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "handshake-timeout", required_argument, NULL, 'T' },
		{ "max-handshakes", required_argument, NULL, 'M' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	o->bpffs = "/sys/fs/bpf";
	snprintf(o->policy_dir, sizeof(o->policy_dir), "%s", MOAT_DEFAULT_POLICY_DIR);
	o->level = LOG_LVL_INFO;
	o->handshake_timeout_ms = 10000;
	o->max_handshakes = 1024;
	while ((c = getopt_long(argc, argv, "fdnl:vVh", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': o->daemonize = false; break;
		case 'd': o->daemonize = true; break;
		case 'C': o->cleanup = true; break;
		case 'B': o->bpffs = optarg; break;
		case 'n': o->check_only = true; break;
		case 'P': {
			char cwd[2048];

			/* Absolute: daemon() moves to / and reloads must find the same files. */
			if (optarg[0] != '/' && getcwd(cwd, sizeof(cwd)))
				snprintf(o->policy_dir, sizeof(o->policy_dir), "%s/%s", cwd, optarg);
			else
				snprintf(o->policy_dir, sizeof(o->policy_dir), "%s", optarg);
			break;
		}
		case 'R': setenv(MOAT_RUN_DIR_ENV, optarg, 1); break;
		case 'l':
			if (log_level_from_name(optarg, &o->level)) {
				fprintf(stderr, "moatd: unknown log level '%s'\n", optarg);
				return 2;
			}
			break;
		case 'v': o->level = LOG_LVL_DEBUG; break;
		case 'T':
			if (parse_count(optarg, 3600000, &o->handshake_timeout_ms)) {
				fprintf(stderr, "moatd: --handshake-timeout wants 1-3600000 ms\n");
				return 2;
			}
			break;
		case 'M':
			if (parse_count(optarg, 1000000, &o->max_handshakes)) {
				fprintf(stderr, "moatd: --max-handshakes wants 1-1000000\n");
				return 2;
			}
			break;
		case 'V': printf("moatd " MOAT_VERSION " (%s)\n", OpenSSL_version(OPENSSL_VERSION)); return 0;
		case 'h': fputs(usage_text, stdout); return 0;
		default:
			fputs("Try 'moatd --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "moatd: unexpected argument '%s'\nTry 'moatd --help'.\n", argv[optind]);
		return 2;
	}
	return -1;
}

static int check_platform(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) == 0 && sscanf(u.release, "%d.%d", &major, &minor) == 2 &&
	    (major < MIN_KERNEL_MAJOR || (major == MIN_KERNEL_MAJOR && minor < MIN_KERNEL_MINOR))) {
		log_error("this kernel is %s; moat needs Linux %d.%d or newer "
			  "(BPF sk_lookup with ingress_ifindex)", u.release, MIN_KERNEL_MAJOR,
			  MIN_KERNEL_MINOR);
		return -ENOTSUP;
	}
	if (OpenSSL_version_num() < 0x30000000L) {
		log_error("OpenSSL %s is too old; moat needs " MOAT_MIN_OPENSSL_TEXT " or newer",
			  OpenSSL_version(OPENSSL_VERSION));
		return -ENOTSUP;
	}
	if (geteuid() != 0)
		log_warn("not running as root: loading BPF needs CAP_BPF and CAP_NET_ADMIN");
	return 0;
}

/* Holds an exclusive lock on the pid file for moatd's lifetime. */
static int take_pid_lock(void)
{
	char path[4096], pid[32];
	int fd;

	if (mkdir(moat_run_dir(), 0755) && errno != EEXIST) {
		log_error("cannot create run directory %s: %s", moat_run_dir(), strerror(errno));
		return -errno;
	}
	if (moat_run_path("moatd.pid", path, sizeof(path)))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		log_error("cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		ssize_t n = read(fd, pid, sizeof(pid) - 1);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		log_error("another moatd is running with run directory %s (pid %s)", moat_run_dir(),
			  pid[0] ? pid : "unknown");
		close(fd);
		return -EBUSY;
	}
	return fd;
}

static void write_pid(int fd)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", getpid());

	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("cannot write pid file");
}

static volatile bool stopping;

static void on_signal(struct watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	while (read(w->fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			log_info("signal %u: stopping; protected ports refuse connections until moatd returns",
				 si.ssi_signo);
			stopping = true;
		} else if (si.ssi_signo == SIGHUP) {
			reload_now("SIGHUP", NULL);
		}
	}
}

static void on_links(struct watch *w, uint32_t events)
{
	(void)w;
	(void)events;
	ifaces_on_ready();
}

static int open_signals(struct watch *w)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		return -errno;
	w->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->fd < 0)
		return -errno;
	w->on_event = on_signal;
	return watch_set(w, EPOLLIN);
}

static void run_loop(void)
{
	while (!stopping) {
		int timeout = sessions_expire();

		if (event_loop_run_once(datapath_run_scheduled() ? 0 : timeout) < 0 && errno != EINTR) {
			log_error("event loop: %s", strerror(errno));
			break;
		}
		sessions_reap();
	}
}

int main(int argc, char **argv)
{
	struct watch signals = { .fd = -1 }, links = { .fd = -1 };
	struct steering steer;
	struct options opts = { 0 };
	int ret, pid_fd, err, exit_code = 1;

	ret = parse_options(argc, argv, &opts);
	if (ret >= 0)
		return ret;
	log_init("moatd", opts.level, false);
	log_route_libbpf();
	signal(SIGPIPE, SIG_IGN);

	if (opts.check_only) {
		struct diag d = { 0 };
		size_t ports, files;
		int err = policy_check_path(opts.policy_dir, &d, &ports, &files);

		if (d.text.data)
			fputs(d.text.data, stderr);
		if (!err)
			printf("%s: policy OK: %zu port(s) in %zu file(s)\n", opts.policy_dir, ports, files);
		diag_free(&d);
		return err ? 1 : 0;
	}
	if (opts.cleanup) {
		ret = steering_remove_pins(opts.bpffs);
		if (ret < 0) {
			log_error("cleanup failed: %s", strerror(-ret));
			return 1;
		}
		state_forget_all();
		log_info("removed %d pin(s): no port in this network namespace is protected any more", ret);
		return 0;
	}
	if (check_platform())
		return 1;
	pid_fd = take_pid_lock();
	if (pid_fd < 0)
		return 1;
	if ((err = event_loop_init()) || (err = open_signals(&signals))) {
		log_error("cannot set up event loop: %s", strerror(-err));
		goto close_pid;
	}
	if (steering_open(&steer, opts.bpffs))
		goto close_loop;
	if (ifaces_init())
		goto close_steering;
	links.fd = ifaces_fd();
	links.on_event = on_links;
	if ((err = watch_set(&links, EPOLLIN))) {
		log_error("cannot watch rtnetlink: %s", strerror(-err));
		goto close_ifaces;
	}
	datapath_probe();
	bindings_init(&steer, sessions_on_listener);
	bindings_set_defaults((uint32_t)opts.handshake_timeout_ms, (uint32_t)opts.max_handshakes);
	sessions_init(&steer);
	status_set_started();
	if (reload_init(opts.policy_dir)) {
		log_error("refusing to start: the policy in %s is invalid (check it with "
			  "'moat check %s')", opts.policy_dir, opts.policy_dir);
		goto close_bindings;
	}
	ret = state_restore();
	if (ret > 0)
		log_warn("%d attachment(s) could not be restored; those ports refuse connections", ret);
	if (control_open(&steer))
		goto close_bindings;
	if (opts.daemonize) {
		if (daemon(0, 0)) {
			log_error("cannot daemonize: %s", strerror(errno));
			goto close_control;
		}
		log_init("moatd", opts.level, true);
	}
	write_pid(pid_fd);
	log_info("moatd " MOAT_VERSION " ready (pid %d, pins in %s, control %s/" MOAT_CONTROL_SOCKET ")",
		 getpid(), steer.pin_dir, moat_run_dir());
	run_loop();
	exit_code = 0;

close_control:
	control_close();
close_bindings:
	sessions_close_all();
	bindings_shutdown();
	reload_fini();
close_ifaces:
	ifaces_fini();
close_steering:
	steering_close(&steer);
close_loop:
	watch_remove(&signals);
	if (signals.fd >= 0)
		close(signals.fd);
	event_loop_fini();
	buffer_pool_drain();
close_pid:
	close(pid_fd);
	return exit_code;
}
