// SPDX-License-Identifier: MIT
#include "control_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

const char *moat_run_dir(void)
{
	const char *dir = getenv(MOAT_RUN_DIR_ENV);

	return dir && *dir ? dir : MOAT_DEFAULT_RUN_DIR;
}

int moat_run_path(const char *name, char *out, size_t len)
{
	if (snprintf(out, len, "%s/%s", moat_run_dir(), name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}
