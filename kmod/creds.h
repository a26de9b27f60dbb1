/* SPDX-License-Identifier: GPL-2.0 */
/* Credentials: ids, groups, capabilities. */
#ifndef _AMBER_CREDS_H
#define _AMBER_CREDS_H

#include "msg.h"

struct cred;

/* Takes a reference on current's credentials into *@cred, even on failure. */
int amber_creds_capture(const struct cred **cred, struct amber_err *e);
void amber_creds_free(const struct cred **cred);

struct amber_restore;

/* Phase A: r->cred from AMBER_A_TASK's ids, groups and capabilities. */
int amber_restore_creds_prepare(struct amber_restore *r);
/* Phase B: commits r->cred. */
void amber_restore_creds_commit(struct amber_restore *r);
void amber_restore_creds_release(struct amber_restore *r);

#endif /* _AMBER_CREDS_H */
