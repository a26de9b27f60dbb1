// SPDX-License-Identifier: GPL-2.0
/*
 * Credentials: uids, gids, supplementary groups and capability sets. The
 * capture keeps a reference on current's cred; the reply maps it to the
 * caller's user namespace. A restore may only set what setresuid(),
 * setgroups() and capset() would let the caller set.
 */
#include <linux/capability.h>
#include <linux/cred.h>
#include <linux/errno.h>
#include <linux/uidgid.h>
#include <linux/user_namespace.h>

#include "creds.h"
#include "restore.h"

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

/* ---- restore ---- */

static int amber_restore_ids(struct amber_restore *r, const struct amber_creds_args *a,
			     const struct nlattr *task, struct cred *new)
{
	const struct cred *old = current_cred();
	struct user_namespace *ns = old->user_ns;
	bool setuid = ns_capable(ns, CAP_SETUID), setgid = ns_capable(ns, CAP_SETGID);
	kuid_t *uids[] = { &new->uid, &new->euid, &new->suid, &new->fsuid };
	kgid_t *gids[] = { &new->gid, &new->egid, &new->sgid, &new->fsgid };
	int i;

	for (i = AMBER_TASK_UID; i <= AMBER_TASK_FSGID; i++) {
		if (!a->id[i - AMBER_TASK_UID].nla) {
			NL_SET_ERR_ATTR_MISS(r->extack, task, i);
			amber_restore_err(r, task,
					  "credentials need all of uid..fsgid (%d missing)", i);
			return -EINVAL;
		}
	}
	for (i = 0; i < 4; i++) {
		const struct amber_nl_u32 *id = &a->id[i];
		kuid_t k = make_kuid(ns, id->val);

		if (!uid_valid(k)) {
			amber_restore_err(r, id->nla, "uid %u is not mapped", id->val);
			return -EINVAL;
		}
		/* As setresuid(): without CAP_SETUID only the old real, effective or saved id. */
		if (!setuid && !uid_eq(k, old->uid) && !uid_eq(k, old->euid) &&
		    !uid_eq(k, old->suid)) {
			amber_restore_err(r, id->nla, "uid %u needs CAP_SETUID", id->val);
			return -EPERM;
		}
		*uids[i] = k;
	}
	for (i = 0; i < 4; i++) {
		const struct amber_nl_u32 *id = &a->id[AMBER_TASK_GID - AMBER_TASK_UID + i];
		kgid_t k = make_kgid(ns, id->val);

		if (!gid_valid(k)) {
			amber_restore_err(r, id->nla, "gid %u is not mapped", id->val);
			return -EINVAL;
		}
		if (!setgid && !gid_eq(k, old->gid) && !gid_eq(k, old->egid) &&
		    !gid_eq(k, old->sgid)) {
			amber_restore_err(r, id->nla, "gid %u needs CAP_SETGID", id->val);
			return -EPERM;
		}
		*gids[i] = k;
	}
	return 0;
}

static bool amber_groups_equal(const struct group_info *a, const struct group_info *b)
{
	int i;

	if (a->ngroups != b->ngroups)
		return false;
	for (i = 0; i < a->ngroups; i++) {
		if (!gid_eq(a->gid[i], b->gid[i]))
			return false;
	}
	return true;
}

static int amber_restore_groups(struct amber_restore *r, const struct amber_creds_args *a,
				struct cred *new)
{
	struct user_namespace *ns = current_user_ns();
	const struct nlattr *attr = a->groups;
	struct group_info *gi;
	int n = a->nr_groups, i, err = 0;

	if (n > NGROUPS_MAX) {
		amber_restore_err(r, attr, "%d supplementary groups, at most %d", n, NGROUPS_MAX);
		return -EINVAL;
	}
	gi = groups_alloc(n);
	if (!gi)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		kgid_t k = make_kgid(ns, a->group[i].val);

		if (!gid_valid(k)) {
			amber_restore_err(r, a->group[i].nla, "group %u is not mapped",
					  a->group[i].val);
			err = -EINVAL;
			goto out;
		}
		gi->gid[i] = k;
	}
	groups_sort(gi);
	if (!ns_capable(ns, CAP_SETGID) && !amber_groups_equal(gi, current_cred()->group_info)) {
		amber_restore_err(r, attr, "changing supplementary groups needs CAP_SETGID");
		err = -EPERM;
		goto out;
	}
	set_groups(new, gi);
out:
	put_group_info(gi);
	return err;
}

static int amber_cap_get(struct amber_restore *r, const struct amber_nl_u64 *a, kernel_cap_t *c)
{
	u64 v = a->val;

	if (v & ~GENMASK_ULL(CAP_LAST_CAP, 0)) {
		amber_restore_err(r, a->nla, "capability set 0x%llx has unknown bits", v);
		return -EINVAL;
	}
	amber_cap_from_u64(c, v);
	return 0;
}

/* The restored sets may only be subsets of what the caller holds. */
static int amber_restore_caps(struct amber_restore *r, const struct amber_creds_args *a,
			      const struct nlattr *task, struct cred *new)
{
	const struct cred *old = current_cred();
	kernel_cap_t *sets[] = {
		&new->cap_inheritable, &new->cap_permitted, &new->cap_effective,
		&new->cap_bset, &new->cap_ambient,
	};
	int i, err;

	for (i = 0; i < ARRAY_SIZE(sets); i++) {
		if (!a->cap[i].nla) {
			NL_SET_ERR_ATTR_MISS(r->extack, task, AMBER_TASK_CAP_INH + i);
			amber_restore_err(r, task, "capabilities need all five sets");
			return -EINVAL;
		}
		err = amber_cap_get(r, &a->cap[i], sets[i]);
		if (err)
			return err;
	}
	if (!cap_issubset(new->cap_permitted, old->cap_permitted) ||
	    !cap_issubset(new->cap_inheritable,
			  cap_combine(old->cap_inheritable, old->cap_permitted)) ||
	    !cap_issubset(new->cap_effective, new->cap_permitted) ||
	    !cap_issubset(new->cap_bset, old->cap_bset) ||
	    !cap_issubset(new->cap_ambient,
			  cap_intersect(new->cap_permitted, new->cap_inheritable))) {
		amber_restore_err(r, a->cap[AMBER_TASK_CAP_PRM - AMBER_TASK_CAP_INH].nla,
				  "capabilities exceed the caller's own");
		return -EPERM;
	}
	return 0;
}

/* The ids, groups and capabilities of AMBER_A_TASK, as a cred to commit. */
int amber_restore_creds_prepare(struct amber_restore *r)
{
	const struct amber_creds_args *a = &r->args->task.creds;
	const struct nlattr *task = r->args->task.nla;
	int i, ids = 0, caps = 0, err = 0;
	struct cred *new;

	for (i = 0; i < ARRAY_SIZE(a->id); i++)
		ids += !!a->id[i].nla;
	for (i = 0; i < ARRAY_SIZE(a->cap); i++)
		caps += !!a->cap[i].nla;
	if (!ids && !caps && !a->groups)
		return 0;

	new = prepare_creds();
	if (!new)
		return -ENOMEM;
	if (ids)
		err = amber_restore_ids(r, a, task, new);
	if (!err && a->groups)
		err = amber_restore_groups(r, a, new);
	if (!err && caps)
		err = amber_restore_caps(r, a, task, new);
	/*
	 * setresuid() clears the capability sets of a process that leaves uid 0:
	 * never hand the caller's capabilities to the image's ids, or the image's
	 * capabilities to the caller's ids. Checked after the parts, so each
	 * part's own error wins.
	 */
	if (!err && (ids != AMBER_TASK_FSGID - AMBER_TASK_UID + 1 ||
		     caps != AMBER_TASK_CAP_AMB - AMBER_TASK_CAP_INH + 1 ||
		     !a->groups)) {
		amber_restore_err(r, task,
				  "credentials need all uids, gids, groups and the five capability sets together");
		err = -EINVAL;
	}
	if (err) {
		abort_creds(new);
		return err;
	}
	r->cred = new;
	return 0;
}

/* Phase B: the credentials amber_restore_creds_prepare() made, if any. */
void amber_restore_creds_commit(struct amber_restore *r)
{
	if (r->cred) {
		commit_creds(r->cred);
		r->cred = NULL;
		r->cred_changed = true;
	}
}

void amber_restore_creds_release(struct amber_restore *r)
{
	if (r->cred)
		abort_creds(r->cred);
	r->cred = NULL;
}
