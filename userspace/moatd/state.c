// SPDX-License-Identifier: MIT
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "binding.h"
#include "control_proto.h"
#include "log.h"
#include "moat_abi.h"

#define STATE_DIR "attach.d"

static int state_path(uint16_t port, const char *suffix, char *out, size_t len)
{
	char name[64];

	snprintf(name, sizeof(name), STATE_DIR "/%u.conf%s", port, suffix);
	return moat_run_path(name, out, len);
}

int state_save(const struct binding *b)
{
	char dir[4096], path[4096], tmp[4096];
	FILE *f;

	if (moat_run_path(STATE_DIR, dir, sizeof(dir)) || state_path(b->port, "", path, sizeof(path)) ||
	    state_path(b->port, ".tmp", tmp, sizeof(tmp)))
		return -ENAMETOOLONG;
	if (mkdir(dir, 0700) && errno != EEXIST)
		return -errno;
	f = fopen(tmp, "w");
	if (!f)
		return -errno;
	fprintf(f, "# written by moatd for 'moat attach'; removed by 'moat detach'\n");
	fprintf(f, "port %u\nslot %u\nca %s\ncert %s\nkey %s\n", b->port, b->slot, b->ca_path,
		b->cert_path, b->key_path);
	if (b->userspace_relay)
		fprintf(f, "datapath userspace\n");
	for (size_t i = 0; i < b->n_ifaces; i++)
		fprintf(f, "iface %s\n", b->ifaces[i].name);
	if (fflush(f) || fsync(fileno(f))) {
		int err = -errno;

		fclose(f);
		unlink(tmp);
		return err;
	}
	fclose(f);
	return rename(tmp, path) ? -errno : 0;
}

int state_forget(uint16_t port)
{
	char path[4096];

	if (state_path(port, "", path, sizeof(path)))
		return -ENAMETOOLONG;
	return unlink(path) && errno != ENOENT ? -errno : 0;
}

struct saved {
	unsigned port, slot;
	char ca[4096], cert[4096], key[4096];
	char ifaces[BINDING_MAX_IFACES][32];
	size_t n_ifaces;
	bool userspace_relay;
};

static int parse_saved(const char *path, struct saved *sv)
{
	char line[4200];
	FILE *f = fopen(path, "r");
	int lineno = 0;

	if (!f)
		return -errno;
	memset(sv, 0, sizeof(*sv));
	sv->slot = (unsigned)-1;
	while (fgets(line, sizeof(line), f)) {
		char *val;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		val = strchr(line, ' ');
		if (!val)
			goto bad_line;
		*val++ = '\0';
		if (!strcmp(line, "port"))
			sv->port = (unsigned)strtoul(val, NULL, 10);
		else if (!strcmp(line, "slot"))
			sv->slot = (unsigned)strtoul(val, NULL, 10);
		else if (!strcmp(line, "ca"))
			snprintf(sv->ca, sizeof(sv->ca), "%s", val);
		else if (!strcmp(line, "cert"))
			snprintf(sv->cert, sizeof(sv->cert), "%s", val);
		else if (!strcmp(line, "key"))
			snprintf(sv->key, sizeof(sv->key), "%s", val);
		else if (!strcmp(line, "datapath"))
			sv->userspace_relay = !strcmp(val, "userspace");
		else if (!strcmp(line, "iface") && sv->n_ifaces < BINDING_MAX_IFACES)
			snprintf(sv->ifaces[sv->n_ifaces++], sizeof(sv->ifaces[0]), "%s", val);
		else
			goto bad_line;
	}
	fclose(f);
	if (!sv->port || sv->port > 65535 || sv->slot >= MOAT_MAX_LISTENERS || !sv->ca[0]) {
		log_error("%s: incomplete attachment record", path);
		return -EINVAL;
	}
	return 0;

bad_line:
	log_error("%s:%d: unreadable attachment record line", path, lineno);
	fclose(f);
	return -EINVAL;
}

int state_restore(void)
{
	char dir[4096];
	struct dirent *de;
	int failed = 0;
	DIR *d;

	if (moat_run_path(STATE_DIR, dir, sizeof(dir)))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		struct binding_spec spec;
		struct saved *sv;
		char path[8192], msg[512];

		if (n < 6 || strcmp(de->d_name + n - 5, ".conf"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		sv = malloc(sizeof(*sv));
		if (!sv || parse_saved(path, sv)) {
			free(sv);
			failed++;
			continue;
		}
		memset(&spec, 0, sizeof(spec));
		spec.port = (uint16_t)sv->port;
		spec.slot = (int)sv->slot;
		spec.ca = sv->ca;
		spec.cert = sv->cert;
		spec.key = sv->key;
		spec.n_ifaces = sv->n_ifaces;
		spec.userspace_relay = sv->userspace_relay;
		for (size_t i = 0; i < sv->n_ifaces; i++)
			spec.ifaces[i] = sv->ifaces[i];
		if (binding_attach(&spec, msg, sizeof(msg)) != BINDING_OK) {
			/* Its keys stay pinned: the port keeps refusing until detached. */
			log_error("cannot restore port %u from %s: %s; the port stays closed "
				  "until 'moat detach %u'", sv->port, path, msg, sv->port);
			failed++;
		} else {
			log_info("restored port %u from %s", sv->port, path);
		}
		free(sv);
	}
	closedir(d);
	return failed;
}

void state_forget_all(void)
{
	char dir[4096], path[8192];
	struct dirent *de;
	DIR *d;

	if (moat_run_path(STATE_DIR, dir, sizeof(dir)) || !(d = opendir(dir)))
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
}
