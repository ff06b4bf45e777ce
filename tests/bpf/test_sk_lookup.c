// SPDX-License-Identifier: MIT
/*
 * Drives bpf/moat_steer.bpf.c with BPF_PROG_TEST_RUN: no traffic, real
 * verifier and maps. Covers steering, fail-closed drops, pass-through and
 * the backend exemption, the way selftests/bpf/prog_tests/sk_lookup.c does.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../unit/harness.h"
#include "moat_abi.h"
#include "moat_steer.skel.h"

static struct moat_steer_bpf *skel;
static int listener4 = -1, listener6 = -1;
static __u64 cookie4, cookie6;

static int make_listener(int family, __u64 *cookie)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(*cookie);
	int fd = socket(family, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	if ((family == AF_INET ? bind(fd, (void *)&a4, sizeof(a4)) : bind(fd, (void *)&a6, sizeof(a6))) ||
	    listen(fd, 1) || getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void set_port(__u16 port, __u32 ifindex, __u32 slot)
{
	struct moat_port_key k = { .port = port, .ifindex = ifindex };
	struct moat_port_value v = { .listener_slot = slot };

	bpf_map__update_elem(skel->maps.moat_ports, &k, sizeof(k), &v, sizeof(v), BPF_ANY);
}

static void del_port(__u16 port, __u32 ifindex)
{
	struct moat_port_key k = { .port = port, .ifindex = ifindex };

	bpf_map__delete_elem(skel->maps.moat_ports, &k, sizeof(k), 0);
}

static void set_listener(__u32 index, int fd)
{
	__u64 v = (__u64)fd;

	bpf_map__update_elem(skel->maps.moat_listeners, &index, sizeof(index), &v, sizeof(v), BPF_ANY);
}

static void del_listener(__u32 index)
{
	bpf_map__delete_elem(skel->maps.moat_listeners, &index, sizeof(index), 0);
}

struct verdict {
	int err;
	__u32 retval;
	__u64 cookie;
};

static struct verdict run(int family, int protocol, const char *src, __u16 sport, const char *dst,
			  __u16 dport)
{
	struct bpf_sk_lookup ctx;
	struct verdict v = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx),
		    .ctx_out = &ctx, .ctx_size_out = sizeof(ctx));

	memset(&ctx, 0, sizeof(ctx));
	ctx.family = (__u32)family;
	ctx.protocol = (__u32)protocol;
	ctx.remote_port = htons(sport);
	ctx.local_port = dport;
	if (family == AF_INET) {
		inet_pton(AF_INET, src, &ctx.remote_ip4);
		inet_pton(AF_INET, dst, &ctx.local_ip4);
	} else {
		inet_pton(AF_INET6, src, ctx.remote_ip6);
		inet_pton(AF_INET6, dst, ctx.local_ip6);
	}
	v.err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.moat_steer), &opts);
	if (v.err)
		v.err = -errno;
	v.retval = opts.retval;
	v.cookie = ctx.cookie;
	return v;
}

static __u64 stat_of(__u32 which)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 vals[ncpu > 0 ? ncpu : 1], sum = 0;

	if (bpf_map__lookup_elem(skel->maps.moat_stats, &which, sizeof(which), vals,
				 sizeof(__u64) * (size_t)ncpu, 0))
		return (__u64)-1;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

static void unprotected_port_passes_untouched(void)
{
	struct verdict v = run(AF_INET, IPPROTO_TCP, "10.0.0.2", 40000, "10.0.0.1", 80);

	CHECK(v.err == 0, "test_run: %d", v.err);
	CHECK(v.retval == SK_PASS && v.cookie == 0, "retval %u cookie %llu", v.retval,
	      (unsigned long long)v.cookie);
}

static void protected_port_steers_to_family_listener(void)
{
	struct verdict v4, v6;

	set_port(8443, MOAT_IFINDEX_ANY, 3);
	set_listener(MOAT_LISTENER_INDEX(3, 0), listener4);
	set_listener(MOAT_LISTENER_INDEX(3, 1), listener6);
	v4 = run(AF_INET, IPPROTO_TCP, "10.0.0.2", 40000, "10.0.0.1", 8443);
	v6 = run(AF_INET6, IPPROTO_TCP, "fd00::2", 40000, "fd00::1", 8443);
	CHECK(v4.err == 0 && v4.retval == SK_PASS && v4.cookie == cookie4,
	      "v4: err %d retval %u cookie %llu want %llu", v4.err, v4.retval,
	      (unsigned long long)v4.cookie, (unsigned long long)cookie4);
	CHECK(v6.err == 0 && v6.retval == SK_PASS && v6.cookie == cookie6,
	      "v6: err %d retval %u cookie %llu want %llu", v6.err, v6.retval,
	      (unsigned long long)v6.cookie, (unsigned long long)cookie6);
}

static void missing_listener_drops(void)
{
	__u64 before = stat_of(MOAT_STAT_DROP_NO_LISTENER);
	struct verdict v;

	set_port(8443, MOAT_IFINDEX_ANY, 3);
	del_listener(MOAT_LISTENER_INDEX(3, 0));
	v = run(AF_INET, IPPROTO_TCP, "10.0.0.2", 40000, "10.0.0.1", 8443);
	CHECK(v.err == 0 && v.retval == SK_DROP, "err %d retval %u: a protected port without "
	      "moatd's listener must be dropped", v.err, v.retval);
	CHECK(stat_of(MOAT_STAT_DROP_NO_LISTENER) == before + 1, "drop not counted");
	set_listener(MOAT_LISTENER_INDEX(3, 0), listener4);
}

static void family_mismatch_drops(void)
{
	struct verdict v;

	/* An IPv4 lookup whose slot holds only the IPv6-only listener. */
	set_port(9000, MOAT_IFINDEX_ANY, 5);
	set_listener(MOAT_LISTENER_INDEX(5, 0), listener6);
	v = run(AF_INET, IPPROTO_TCP, "10.0.0.2", 40000, "10.0.0.1", 9000);
	CHECK(v.err == 0 && v.retval == SK_DROP, "err %d retval %u", v.err, v.retval);
	CHECK(stat_of(MOAT_STAT_DROP_ASSIGN) >= 1, "assign failure not counted");
	del_port(9000, MOAT_IFINDEX_ANY);
	del_listener(MOAT_LISTENER_INDEX(5, 0));
}

static void udp_is_never_steered(void)
{
	struct verdict v = run(AF_INET, IPPROTO_UDP, "10.0.0.2", 40000, "10.0.0.1", 8443);

	CHECK(v.err == 0 && v.retval == SK_PASS && v.cookie == 0, "err %d retval %u", v.err, v.retval);
}

static void backend_exemption_matches_exact_tuple(void)
{
	struct moat_exempt_key k;
	__u8 one = 1;
	struct verdict exempt, other_port, other_src;

	memset(&k, 0, sizeof(k));
	k.family = AF_INET;
	inet_pton(AF_INET, "127.0.0.1", &k.src_addr[0]);
	inet_pton(AF_INET, "127.0.0.1", &k.dst_addr[0]);
	k.src_port = 41000;
	k.dst_port = 8443;
	bpf_map__update_elem(skel->maps.moat_backend_exempt, &k, sizeof(k), &one, 1, BPF_ANY);
	exempt = run(AF_INET, IPPROTO_TCP, "127.0.0.1", 41000, "127.0.0.1", 8443);
	other_port = run(AF_INET, IPPROTO_TCP, "127.0.0.1", 41001, "127.0.0.1", 8443);
	other_src = run(AF_INET, IPPROTO_TCP, "127.0.0.2", 41000, "127.0.0.1", 8443);
	CHECK(exempt.retval == SK_PASS && exempt.cookie == 0, "exempt tuple: retval %u cookie %llu",
	      exempt.retval, (unsigned long long)exempt.cookie);
	CHECK(other_port.cookie == cookie4, "another source port must be steered, cookie %llu",
	      (unsigned long long)other_port.cookie);
	CHECK(other_src.cookie == cookie4, "another source address must be steered");
	bpf_map__delete_elem(skel->maps.moat_backend_exempt, &k, sizeof(k), 0);
	exempt = run(AF_INET, IPPROTO_TCP, "127.0.0.1", 41000, "127.0.0.1", 8443);
	CHECK(exempt.cookie == cookie4, "after removal the tuple must be steered again");
}

static void ingress_interface_keys(void)
{
	struct verdict v;

	/*
	 * BPF_PROG_TEST_RUN leaves ingress_ifindex 0, which is the wildcard key:
	 * without a wildcard entry, a port keyed only to one interface passes.
	 */
	del_port(8443, MOAT_IFINDEX_ANY);
	set_port(8443, 7, 3);
	v = run(AF_INET, IPPROTO_TCP, "10.0.0.2", 40000, "10.0.0.1", 8443);
	CHECK(v.err == 0 && v.retval == SK_PASS && v.cookie == 0,
	      "a port keyed to ifindex 7 must not match another interface: retval %u cookie %llu",
	      v.retval, (unsigned long long)v.cookie);
	del_port(8443, 7);
}

int main(void)
{
	int err;

	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	skel = moat_steer_bpf__open_and_load();
	if (!skel) {
		printf("not ok 1 - load: %s\n", strerror(errno));
		return 1;
	}
	listener4 = make_listener(AF_INET, &cookie4);
	listener6 = make_listener(AF_INET6, &cookie6);
	if (listener4 < 0 || listener6 < 0) {
		printf("not ok 1 - listeners: %s\n", strerror(errno));
		return 1;
	}
	RUN(unprotected_port_passes_untouched);
	RUN(protected_port_steers_to_family_listener);
	RUN(missing_listener_drops);
	RUN(family_mismatch_drops);
	RUN(udp_is_never_steered);
	RUN(backend_exemption_matches_exact_tuple);
	RUN(ingress_interface_keys);
	err = HARNESS_EXIT();
	close(listener4);
	close(listener6);
	moat_steer_bpf__destroy(skel);
	return err;
}
