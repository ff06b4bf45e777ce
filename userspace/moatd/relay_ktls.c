// SPDX-License-Identifier: MIT
#include "relay_ktls.h"

#include <errno.h>

#include "session.h"

int relay_ktls_start(struct session *s, const char **why)
{
	(void)s;
	*why = "kTLS relay not built";
	return -EOPNOTSUPP;
}

void relay_ktls_on_client(struct session *s, uint32_t events)
{
	(void)s; (void)events;
}

void relay_ktls_on_backend(struct session *s, uint32_t events)
{
	(void)s; (void)events;
}

void relay_ktls_release(struct session *s)
{
	(void)s;
}
