// SPDX-License-Identifier: MIT
#include "ifaces.h"

#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "binding.h"
#include "log.h"

static struct nl_cache_mngr *mngr;
static struct nl_cache *links;

static void on_link_change(struct nl_cache *cache, struct nl_object *obj, int action, void *arg)
{
	struct rtnl_link *link = (struct rtnl_link *)obj;
	const char *name = rtnl_link_get_name(link);
	int ifindex = rtnl_link_get_ifindex(link);

	(void)cache;
	(void)arg;
	if (!name || ifindex <= 0)
		return;
	log_debug("link %s index %d %s", name, ifindex,
		  action == NL_ACT_DEL ? "deleted" : action == NL_ACT_NEW ? "added" : "changed");
	bindings_link_update(name, (uint32_t)ifindex, action != NL_ACT_DEL);
}

int ifaces_init(void)
{
	int err;

	err = nl_cache_mngr_alloc(NULL, NETLINK_ROUTE, NL_AUTO_PROVIDE, &mngr);
	if (err < 0) {
		log_error("libnl: cannot create cache manager: %s", nl_geterror(err));
		return -EIO;
	}
	err = nl_cache_mngr_add(mngr, "route/link", on_link_change, NULL, &links);
	if (err < 0) {
		log_error("libnl: cannot follow links: %s", nl_geterror(err));
		nl_cache_mngr_free(mngr);
		mngr = NULL;
		return -EIO;
	}
	return 0;
}

void ifaces_fini(void)
{
	if (mngr)
		nl_cache_mngr_free(mngr);
	mngr = NULL;
	links = NULL;
}

int ifaces_fd(void)
{
	return mngr ? nl_cache_mngr_get_fd(mngr) : -1;
}

void ifaces_on_ready(void)
{
	int err = nl_cache_mngr_data_ready(mngr);

	if (err < 0) {
		/* Lost events (ENOBUFS): resync the whole cache rather than guess. */
		struct nl_sock *sk = nl_socket_alloc();

		log_warn("libnl: %s; resynchronising links", nl_geterror(err));
		if (sk && nl_connect(sk, NETLINK_ROUTE) == 0)
			nl_cache_resync(sk, links, on_link_change, NULL);
		if (sk)
			nl_socket_free(sk);
	}
}

uint32_t ifaces_index_of(const char *name)
{
	int idx = 0;

	if (links)
		idx = rtnl_link_name2i(links, name);
	if (idx <= 0)
		idx = (int)if_nametoindex(name);
	return idx > 0 ? (uint32_t)idx : 0;
}
