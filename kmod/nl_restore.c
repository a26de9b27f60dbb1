// SPDX-License-Identifier: GPL-2.0
/*
 * AMBER_CMD_RESTORE: the request, checked against the policies of
 * netlink.c, turned into a struct amber_restore_args. Part of the netlink
 * layer: nothing is refused here (every bound and every consistency check
 * is restore.c's and the resource files'), so that refusals keep their
 * order and their messages.
 */
#include <linux/slab.h>
#include <linux/string.h>
#include <net/genetlink.h>
#include <net/netlink.h>

#include <linux/amber.h>

#include "netlink.h"
#include "restore_args.h"

static void amber_nl_get_u32(struct amber_nl_u32 *v, const struct nlattr *nla)
{
	v->nla = nla;
	v->val = nla ? nla_get_u32(nla) : 0;
}

static void amber_nl_get_u64(struct amber_nl_u64 *v, const struct nlattr *nla)
{
	v->nla = nla;
	v->val = nla ? nla_get_u64(nla) : 0;
}

/* The attribute stream of the request (the family has no user header). */
static struct nlattr *amber_nl_attrs(struct genl_info *info, int *len)
{
	*len = nlmsg_len(info->nlhdr) - GENL_HDRLEN;
	return (struct nlattr *)((u8 *)nlmsg_data(info->nlhdr) + GENL_HDRLEN);
}

/* Entries of every top-level @type nest: VMAS and THREADS may repeat (64 KiB each). */
static unsigned int amber_nl_count(struct genl_info *info, int type)
{
	const struct nlattr *a, *e;
	unsigned int n = 0;
	int len, rem, rem2;

	nla_for_each_attr(a, amber_nl_attrs(info, &len), len, rem) {
		if (nla_type(a) != type)
			continue;
		nla_for_each_nested(e, a, rem2)
			n++;
	}
	return n;
}

static int amber_nl_fd_list(const struct nlattr *attr, unsigned int max,
			    struct amber_fd_list_args *l)
{
	const struct nlattr *nla;
	int rem;

	l->nla = attr;
	if (!attr)
		return 0;
	nla_for_each_nested(nla, attr, rem)
		l->nr++;
	if (l->nr > max)
		return 0;
	l->fd = kcalloc(l->nr, sizeof(*l->fd), GFP_KERNEL);
	if (!l->fd)
		return -ENOMEM;
	l->nr = 0;
	nla_for_each_nested(nla, attr, rem)
		amber_nl_get_u32(&l->fd[l->nr++], nla);
	return 0;
}

static int amber_nl_regs(const struct nlattr *regs, const struct nlattr *fpu,
			 struct amber_regs_args *a, struct netlink_ext_ack *extack)
{
	struct nlattr *tb[AMBER_REG_MAX + 1];
	int i, err;

	a->fpu = fpu;
	if (fpu) {
		a->xsave = nla_data(fpu);
		a->xsave_len = nla_len(fpu);
	}
	a->nla = regs;
	if (!regs)
		return 0;
	err = nla_parse_nested(tb, AMBER_REG_MAX, regs, NULL, extack);
	if (err)
		return err;
	for (i = AMBER_REG_R15; i <= AMBER_REG_MAX; i++)
		amber_nl_get_u64(&a->reg[i], tb[i]);
	return 0;
}

static void amber_nl_regn(struct nlattr **tb, const struct amber_regn_types *t,
			  const struct nlattr *parent, struct amber_regn_args *a)
{
	amber_nl_get_u64(&a->rseq, tb[t->rseq]);
	amber_nl_get_u32(&a->rseq_len, tb[t->rseq_len]);
	amber_nl_get_u32(&a->rseq_sig, tb[t->rseq_sig]);
	amber_nl_get_u64(&a->clear_child_tid, tb[t->clear_child_tid]);
	amber_nl_get_u64(&a->robust_list, tb[t->robust_list]);
	amber_nl_get_u64(&a->robust_list_len, tb[t->robust_list_len]);
	amber_nl_get_u64(&a->sas_sp, tb[t->sas_sp]);
	amber_nl_get_u64(&a->sas_size, tb[t->sas_size]);
	amber_nl_get_u32(&a->sas_flags, tb[t->sas_flags]);
	a->parent = parent;
}

static int amber_nl_creds(struct nlattr **tb, struct amber_creds_args *a)
{
	const struct nlattr *nla;
	int i, rem;

	for (i = 0; i < ARRAY_SIZE(a->id); i++)
		amber_nl_get_u32(&a->id[i], tb[AMBER_TASK_UID + i]);
	for (i = 0; i < ARRAY_SIZE(a->cap); i++)
		amber_nl_get_u64(&a->cap[i], tb[AMBER_TASK_CAP_INH + i]);
	a->groups = tb[AMBER_TASK_GROUPS];
	if (!a->groups)
		return 0;
	nla_for_each_nested(nla, a->groups, rem)
		a->nr_groups++;
	a->group = kcalloc(a->nr_groups, sizeof(*a->group), GFP_KERNEL);
	if (!a->group)
		return -ENOMEM;
	a->nr_groups = 0;
	nla_for_each_nested(nla, a->groups, rem)
		amber_nl_get_u32(&a->group[a->nr_groups++], nla);
	return 0;
}

static int amber_nl_task(const struct nlattr *task, struct amber_task_args *a,
			 struct netlink_ext_ack *extack)
{
	struct nlattr *tb[AMBER_TASK_MAX + 1] = {};
	int err;

	a->nla = task;
	if (task) {
		err = nla_parse_nested(tb, AMBER_TASK_MAX, task, NULL, extack);
		if (err)
			return err;
	}
	amber_nl_regn(tb, &amber_task_regn_types, task, &a->regn);
	amber_nl_get_u32(&a->personality, tb[AMBER_TASK_PERSONALITY]);
	amber_nl_get_u32(&a->dumpable, tb[AMBER_TASK_DUMPABLE]);
	amber_nl_get_u32(&a->no_new_privs, tb[AMBER_TASK_NO_NEW_PRIVS]);
	return amber_nl_creds(tb, &a->creds);
}

static int amber_nl_signals(const struct nlattr *attr, struct amber_sig_args *a,
			    struct netlink_ext_ack *extack)
{
	struct nlattr *tb[AMBER_SIG_MAX + 1] = {};
	int err;

	a->nla = attr;
	if (attr) {
		err = nla_parse_nested(tb, AMBER_SIG_MAX, attr, NULL, extack);
		if (err)
			return err;
	}
	amber_nl_get_u64(&a->blocked, tb[AMBER_SIG_BLOCKED]);
	return 0;
}

static int amber_nl_mm(const struct nlattr *attr, struct amber_mm_args *a,
		       struct netlink_ext_ack *extack)
{
	struct nlattr *tb[AMBER_MM_MAX + 1];
	int i, err;

	a->nla = attr;
	if (!attr)
		return 0;
	err = nla_parse_nested(tb, AMBER_MM_MAX, attr, NULL, extack);
	if (err)
		return err;
	for (i = AMBER_MM_START_CODE; i <= AMBER_MM_ENV_END; i++)
		amber_nl_get_u64(&a->field[i], tb[i]);
	amber_nl_get_u64(&a->vdso, tb[AMBER_MM_VDSO]);
	a->auxv = tb[AMBER_MM_AUXV];
	if (a->auxv) {
		a->auxv_data = nla_data(a->auxv);
		a->auxv_len = nla_len(a->auxv);
	}
	return 0;
}

/* One AMBER_A_VMA into @elem, a struct amber_vma_args. */
static int amber_nl_vma(const struct nlattr *nla, void *elem,
			struct netlink_ext_ack *extack)
{
	struct amber_vma_args *v = elem;
	struct nlattr *tb[AMBER_VMA_MAX + 1];
	int err;

	err = nla_parse_nested(tb, AMBER_VMA_MAX, nla, NULL, extack);
	if (err)
		return err;
	v->nla = nla;
	amber_nl_get_u64(&v->start, tb[AMBER_VMA_START]);
	amber_nl_get_u64(&v->end, tb[AMBER_VMA_END]);
	amber_nl_get_u64(&v->pgoff, tb[AMBER_VMA_PGOFF]);
	amber_nl_get_u32(&v->prot, tb[AMBER_VMA_PROT]);
	amber_nl_get_u32(&v->flags, tb[AMBER_VMA_FLAGS]);
	amber_nl_get_u32(&v->file_fd, tb[AMBER_VMA_FILE_FD]);
	return 0;
}

/* One AMBER_A_THREAD into @elem, a struct amber_thread_args. */
static int amber_nl_thread(const struct nlattr *nla, void *elem,
			   struct netlink_ext_ack *extack)
{
	struct amber_thread_args *t = elem;
	struct nlattr *tb[AMBER_THREAD_MAX + 1];
	int err;

	err = nla_parse_nested(tb, AMBER_THREAD_MAX, nla, NULL, extack);
	if (err)
		return err;
	t->nla = nla;
	amber_nl_get_u32(&t->tid, tb[AMBER_THREAD_TID]);
	err = amber_nl_regs(tb[AMBER_THREAD_REGS], tb[AMBER_THREAD_FPU], &t->regs, extack);
	if (err)
		return err;
	amber_nl_regn(tb, &amber_thread_regn_types, nla, &t->regn);
	amber_nl_get_u64(&t->blocked, tb[AMBER_THREAD_BLOCKED]);
	if (tb[AMBER_THREAD_COMM]) {
		nla_strscpy(t->comm, tb[AMBER_THREAD_COMM], sizeof(t->comm));
		t->has_comm = true;
	}
	/*
	 * AMBER_THREAD_PENDING is the stub's job, as SIGNALS' pending
	 * signals are: it queues them to the thread (rt_tgsigqueueinfo)
	 * while the thread still blocks everything.
	 */
	return 0;
}

/*
 * Every entry of every top-level @type nest, in order: @parse fills the
 * @size-byte element @i of *@out from it. No array past @max entries.
 */
static int amber_nl_list(struct genl_info *info, int type, unsigned int max,
			 size_t size, void **out, unsigned int *nr,
			 int (*parse)(const struct nlattr *nla, void *elem,
				      struct netlink_ext_ack *extack))
{
	const struct nlattr *a, *nla;
	unsigned int n, i = 0;
	int len, rem, rem2, err;
	u8 *arr;

	n = amber_nl_count(info, type);
	*nr = n;
	if (!n || n > max)
		return 0;
	arr = kvcalloc(n, size, GFP_KERNEL_ACCOUNT);
	if (!arr)
		return -ENOMEM;
	*out = arr;
	nla_for_each_attr(a, amber_nl_attrs(info, &len), len, rem) {
		if (nla_type(a) != type)
			continue;
		nla_for_each_nested(nla, a, rem2) {
			err = parse(nla, arr + size * i++, info->extack);
			if (err)
				return err;
		}
	}
	return 0;
}

int amber_nl_restore_parse(struct genl_info *info, struct amber_restore_args *a)
{
	struct nlattr **attrs = info->attrs;
	struct netlink_ext_ack *extack = info->extack;
	int err;

	a->portid = info->snd_portid;
	a->net = genl_info_net(info);
	if (attrs[AMBER_A_FLAGS])
		a->flags = nla_get_u32(attrs[AMBER_A_FLAGS]);
	amber_nl_get_u32(&a->exe_fd, attrs[AMBER_A_EXE_FD]);
	a->vmas_nla = attrs[AMBER_A_VMAS];
	a->threads_nla = attrs[AMBER_A_THREADS];

	err = amber_nl_task(attrs[AMBER_A_TASK], &a->task, extack);
	if (!err)
		err = amber_nl_mm(attrs[AMBER_A_MM], &a->mm, extack);
	if (!err)
		err = amber_nl_regs(attrs[AMBER_A_REGS], attrs[AMBER_A_FPU], &a->regs, extack);
	if (!err)
		err = amber_nl_signals(attrs[AMBER_A_SIGNALS], &a->sig, extack);
	if (!err)
		err = amber_nl_fd_list(attrs[AMBER_A_PAGE_FDS], AMBER_RESTORE_MAX_PAGE_FILES,
				       &a->page_fds);
	if (!err)
		err = amber_nl_fd_list(attrs[AMBER_A_CLOSE_FDS], UINT_MAX, &a->close_fds);
	if (!err)
		err = amber_nl_list(info, AMBER_A_VMAS, AMBER_RESTORE_MAX_VMAS,
				    sizeof(*a->vmas), (void **)&a->vmas, &a->nr_vmas,
				    amber_nl_vma);
	if (!err && a->threads_nla)
		err = amber_nl_list(info, AMBER_A_THREADS, UINT_MAX, sizeof(*a->threads),
				    (void **)&a->threads, &a->nr_threads,
				    amber_nl_thread);
	return err;
}

void amber_nl_restore_free(struct amber_restore_args *a)
{
	kfree(a->task.creds.group);
	kfree(a->page_fds.fd);
	kfree(a->close_fds.fd);
	kvfree(a->vmas);
	kvfree(a->threads);
}
