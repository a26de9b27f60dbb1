// SPDX-License-Identifier: GPL-2.0
/*
 * Credentials: uids, gids, supplementary groups and capability sets. The
 * capture keeps a reference on current's cred; the reply maps it to the
 * caller's user namespace.
 */
#include <linux/cred.h>
#include <linux/errno.h>

#include "creds.h"

/* Keeps the TASK nest of the reply under the 64 KiB an attribute can hold. */
#define AMBER_MAX_GROUPS	4096

int amber_creds_capture(const struct cred **cred, struct amber_err *e)
{
	*cred = get_current_cred();
	if ((*cred)->group_info->ngroups > AMBER_MAX_GROUPS)
		return amber_fail(e, -E2BIG,
				  "more than 4096 supplementary groups are not supported");
	return 0;
}

void amber_creds_free(const struct cred **cred)
{
	if (*cred)
		put_cred(*cred);
	*cred = NULL;
}
