// SPDX-License-Identifier: MIT
#include "steering.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "log.h"
#include "moat_steer.skel.h"

static int ensure_bpffs(const char *bpffs)
{
	struct statfs sfs;

	if (statfs(bpffs, &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mkdir(bpffs, 0700) && errno != EEXIST)
		return -errno;
	log_warn("%s is not a bpffs; mounting one there so protection outlives moatd", bpffs);
	if (mount("bpf", bpffs, "bpf", 0, "mode=0700"))
		return -errno;
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) && errno != EEXIST)
		return -errno;
	return 0;
}

int steering_pin_dir(const char *bpffs, char *out, size_t len)
{
	struct stat ns;

	if (stat("/proc/self/ns/net", &ns))
		return -errno;
	if (snprintf(out, len, "%s/%s/%llu", bpffs, MOAT_PIN_ROOT,
		     (unsigned long long)ns.st_ino) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int pin_path(const struct steering *st, const char *name, char *out, size_t len)
{
	if (snprintf(out, len, "%s/%s", st->pin_dir, name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static void steering_reset(struct steering *st)
{
	st->skel = NULL;
	st->ports_fd = st->listeners_fd = st->exempt_fd = st->stats_fd = -1;
}

/* Pins the link under a temporary name, then renames it into place (bpffs forbids dots in names). */
static int pin_link_atomically(struct steering *st, struct bpf_link *link)
{
	char final[PATH_MAX], tmp[PATH_MAX];
	int err;

	if ((err = pin_path(st, MOAT_PIN_LINK, final, sizeof(final))) ||
	    (err = pin_path(st, MOAT_PIN_LINK "_new", tmp, sizeof(tmp))))
		return err;
	unlink(tmp);
	err = bpf_link__pin(link, tmp);
	if (err)
		return err;
	if (rename(tmp, final)) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	return 0;
}

static int attach_or_update_link(struct steering *st)
{
	char path[PATH_MAX];
	int prog_fd = bpf_program__fd(st->skel->progs.moat_steer);
	int link_fd, netns_fd, err;
	struct bpf_link *link;

	if ((err = pin_path(st, MOAT_PIN_LINK, path, sizeof(path))))
		return err;
	link_fd = bpf_obj_get(path);
	if (link_fd >= 0) {
		/* Replace the program in place: no window without steering. */
		err = bpf_link_update(link_fd, prog_fd, NULL);
		close(link_fd);
		if (err) {
			log_error("cannot update pinned sk_lookup link %s: %s", path, strerror(-err));
			return err;
		}
		log_debug("updated program of pinned link %s", path);
		return 0;
	}

	netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (netns_fd < 0)
		return -errno;
	link = bpf_program__attach_netns(st->skel->progs.moat_steer, netns_fd);
	close(netns_fd);
	if (!link) {
		err = -errno;
		log_error("cannot attach sk_lookup program to this network namespace: %s",
			  strerror(-err));
		return err;
	}
	err = pin_link_atomically(st, link);
	if (err)
		log_error("cannot pin sk_lookup link at %s: %s", path, strerror(-err));
	/* The pin holds the attachment; our handle can go either way. */
	bpf_link__destroy(link);
	return err;
}

static void take_map_fds(struct steering *st)
{
	st->ports_fd = bpf_map__fd(st->skel->maps.moat_ports);
	st->listeners_fd = bpf_map__fd(st->skel->maps.moat_listeners);
	st->exempt_fd = bpf_map__fd(st->skel->maps.moat_backend_exempt);
	st->stats_fd = bpf_map__fd(st->skel->maps.moat_stats);
}

int steering_open(struct steering *st, const char *bpffs)
{
	struct bpf_map *map;
	int err;

	steering_reset(st);
	if ((err = ensure_bpffs(bpffs))) {
		log_error("cannot mount bpffs at %s: %s", bpffs, strerror(-err));
		return err;
	}
	if ((err = steering_pin_dir(bpffs, st->pin_dir, sizeof(st->pin_dir))) ||
	    (err = mkdir_p(st->pin_dir, 0700))) {
		log_error("cannot create pin directory %s: %s", st->pin_dir, strerror(-err));
		return err;
	}

	st->skel = moat_steer_bpf__open();
	if (!st->skel) {
		err = -errno;
		log_error("cannot open BPF object: %s", strerror(-err));
		return err;
	}
	bpf_object__for_each_map(map, st->skel->obj) {
		char path[PATH_MAX];

		if ((err = pin_path(st, bpf_map__name(map), path, sizeof(path))))
			goto destroy_skel;
		/* libbpf reuses a compatible pinned map, or pins the new one. */
		if ((err = bpf_map__set_pin_path(map, path)))
			goto destroy_skel;
	}
	err = moat_steer_bpf__load(st->skel);
	if (err) {
		log_error("cannot load BPF program (pinned maps from another moat version in %s? "
			  "run 'moatd --cleanup'): %s", st->pin_dir, strerror(-err));
		goto destroy_skel;
	}
	if ((err = attach_or_update_link(st)))
		goto destroy_skel;
	take_map_fds(st);
	return 0;

destroy_skel:
	moat_steer_bpf__destroy(st->skel);
	steering_reset(st);
	return err;
}

int steering_open_pinned(struct steering *st, const char *bpffs)
{
	char path[PATH_MAX];
	int *fds[] = { &st->ports_fd, &st->listeners_fd, &st->exempt_fd, &st->stats_fd };
	const char *names[] = { MOAT_PIN_PORTS, MOAT_PIN_LISTENERS, MOAT_PIN_EXEMPT, MOAT_PIN_STATS };
	int err;

	steering_reset(st);
	if ((err = steering_pin_dir(bpffs, st->pin_dir, sizeof(st->pin_dir))))
		return err;
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if ((err = pin_path(st, names[i], path, sizeof(path))))
			goto close_fds;
		*fds[i] = bpf_obj_get(path);
		if (*fds[i] < 0) {
			err = -errno;
			goto close_fds;
		}
	}
	return 0;

close_fds:
	steering_close(st);
	return err;
}

void steering_close(struct steering *st)
{
	if (st->skel) {
		moat_steer_bpf__destroy(st->skel);
	} else {
		int fds[] = { st->ports_fd, st->listeners_fd, st->exempt_fd, st->stats_fd };

		for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	steering_reset(st);
}

int steering_remove_pins(const char *bpffs)
{
	char dir[PATH_MAX], path[PATH_MAX];
	const char *names[] = { MOAT_PIN_LINK, MOAT_PIN_LINK "_new", MOAT_PIN_PORTS,
				MOAT_PIN_LISTENERS, MOAT_PIN_EXEMPT, MOAT_PIN_STATS };
	int err, removed = 0;

	if ((err = steering_pin_dir(bpffs, dir, sizeof(dir))))
		return err;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir, names[i]) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		if (unlink(path) == 0)
			removed++;
		else if (errno != ENOENT)
			return -errno;
	}
	if (rmdir(dir) && errno != ENOENT)
		return -errno;
	return removed;
}

static struct moat_port_key port_key(uint16_t port, uint32_t ifindex)
{
	struct moat_port_key key;

	memset(&key, 0, sizeof(key));
	key.port = port;
	key.ifindex = ifindex;
	return key;
}

int steering_port_set(struct steering *st, uint16_t port, uint32_t ifindex, uint32_t slot)
{
	struct moat_port_key key = port_key(port, ifindex);
	struct moat_port_value val = { .listener_slot = slot };

	return bpf_map_update_elem(st->ports_fd, &key, &val, BPF_ANY) ? -errno : 0;
}

int steering_port_del(struct steering *st, uint16_t port, uint32_t ifindex)
{
	struct moat_port_key key = port_key(port, ifindex);

	if (bpf_map_delete_elem(st->ports_fd, &key) && errno != ENOENT)
		return -errno;
	return 0;
}

int steering_listener_set(struct steering *st, uint32_t slot, int listen_fd)
{
	uint64_t val = (uint64_t)listen_fd;

	return bpf_map_update_elem(st->listeners_fd, &slot, &val, BPF_ANY) ? -errno : 0;
}

int steering_listener_del(struct steering *st, uint32_t slot)
{
	if (bpf_map_delete_elem(st->listeners_fd, &slot) && errno != ENOENT)
		return -errno;
	return 0;
}

int steering_exempt_add(struct steering *st, const struct moat_exempt_key *key)
{
	uint8_t one = 1;

	return bpf_map_update_elem(st->exempt_fd, key, &one, BPF_ANY) ? -errno : 0;
}

int steering_exempt_del(struct steering *st, const struct moat_exempt_key *key)
{
	if (bpf_map_delete_elem(st->exempt_fd, key) && errno != ENOENT)
		return -errno;
	return 0;
}

int steering_stats_read(struct steering *st, uint64_t out[MOAT_STAT_MAX])
{
	int ncpu = libbpf_num_possible_cpus();

	if (ncpu <= 0)
		return ncpu ? ncpu : -EINVAL;
	uint64_t per_cpu[ncpu];

	for (uint32_t i = 0; i < MOAT_STAT_MAX; i++) {
		out[i] = 0;
		if (bpf_map_lookup_elem(st->stats_fd, &i, per_cpu))
			return -errno;
		for (int c = 0; c < ncpu; c++)
			out[i] += per_cpu[c];
	}
	return 0;
}

int steering_ports_foreach(struct steering *st, steering_port_cb cb, void *arg)
{
	struct moat_port_key key, next;
	struct moat_port_value val;
	void *prev = NULL;

	while (bpf_map_get_next_key(st->ports_fd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(st->ports_fd, &next, &val) == 0)
			cb(&next, &val, arg);
		key = next;
		prev = &key;
	}
	return errno == ENOENT ? 0 : -errno;
}
