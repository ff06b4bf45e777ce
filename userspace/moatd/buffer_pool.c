// SPDX-License-Identifier: MIT
#include "buffer_pool.h"

#include <stdlib.h>

#define POOL_KEEP 64

static char *pool[POOL_KEEP];
static unsigned pool_len;

char *buffer_pool_get(void)
{
	if (pool_len)
		return pool[--pool_len];
	return malloc(RELAY_BUF_SIZE);
}

void buffer_pool_put(char *buf)
{
	if (!buf)
		return;
	if (pool_len < POOL_KEEP)
		pool[pool_len++] = buf;
	else
		free(buf);
}

void buffer_pool_drain(void)
{
	while (pool_len)
		free(pool[--pool_len]);
}
