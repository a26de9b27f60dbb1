// SPDX-License-Identifier: GPL-2.0
/*
 * Address space, restore side (mm.c captures it): validation of the VMA
 * list, the mm layout fields, the exe file and the chain of pages files
 * (before the point of no return), then unmapping the caller, mapping the
 * image's VMAs, filling them from the pages files and setting the mm
 * fields and exe file.
 */
#include <linux/file.h>
#include <linux/fcntl.h>
#include <linux/fs.h>
#include <linux/ksm.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/shmem_fs.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "mm.h"
#include "restore.h"

#define AMBER_MAX_VMAS		AMBER_RESTORE_MAX_VMAS
#define AMBER_BOUNCE_SIZE	(256 * 1024)
#define AMBER_MAX_PAGE_FILES	AMBER_RESTORE_MAX_PAGE_FILES

#define AMBER_VMA_F_NOMAP	(AMBER_VMA_F_VDSO | AMBER_VMA_F_VVAR)

static bool amber_rvma_shared(const struct amber_rvma *v)
{
	return v->flags & (AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM);
}

/* Find current's vvar and vDSO: they stay where they are. */
static void amber_restore_find_vdso(struct amber_restore *r)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct vma_iterator vmi;

	vma_iter_init(&vmi, mm, 0);
	mmap_read_lock(mm);
	if (mm->context.vdso && mm->context.vdso_image) {
		r->vdso_start = (unsigned long)mm->context.vdso;
		r->vdso_end = r->vdso_start + mm->context.vdso_image->size;
	}
	for_each_vma(vmi, vma) {
		const char *name;

		if (!vma->vm_ops || !vma->vm_ops->name)
			continue;
		name = vma->vm_ops->name(vma);
		if (name && !strcmp(name, "[vvar]")) {
			r->vvar_start = vma->vm_start;
			r->vvar_end = vma->vm_end;
			break;
		}
	}
	mmap_read_unlock(mm);
}

static bool amber_overlaps(unsigned long s1, unsigned long e1,
			   unsigned long s2, unsigned long e2)
{
	return s1 < e2 && s2 < e1;
}

static int amber_rvma_check_special(struct amber_restore *r, struct amber_rvma *v)
{
	bool vdso = v->flags & AMBER_VMA_F_VDSO;
	unsigned long s = vdso ? r->vdso_start : r->vvar_start;
	unsigned long e = vdso ? r->vdso_end : r->vvar_end;

	if ((v->flags & AMBER_VMA_F_NOMAP) == AMBER_VMA_F_NOMAP || v->file) {
		amber_restore_err(r, v->nla, "VMA 0x%lx-0x%lx: bad vdso/vvar flags",
				  v->start, v->end);
		return -EINVAL;
	}
	if (v->start != s || v->end != e) {
		amber_restore_err(r, v->nla,
				  "%s at 0x%lx-0x%lx, image expects 0x%lx-0x%lx",
				  vdso ? "vdso" : "vvar", s, e, v->start, v->end);
		return -EINVAL;
	}
	return 0;
}

/*
 * A SHMEM VMA given a VMA_FILE_FD: the tool created and filled the shared
 * object (a memfd, one per object shared by the processes of a tree); the
 * VMA maps it shared at its pgoff, and its pages are not taken from the
 * pages files.
 */
static int amber_rvma_check_shmem(struct amber_restore *r, struct amber_rvma *v,
				  const struct amber_nl_u32 *file_fd)
{
	const struct nlattr *fd_attr = file_fd->nla;
	u32 fd = file_fd->val;
	unsigned int seals;

	v->file = fget(fd);
	if (!v->file) {
		amber_restore_err(r, fd_attr, "shared anonymous VMA 0x%lx-0x%lx: fd %u is not open",
				  v->start, v->end, fd);
		return -EBADF;
	}
	if (!shmem_file(v->file)) {
		amber_restore_err(r, fd_attr,
				  "shared anonymous VMA 0x%lx-0x%lx: fd %u is not a shmem file (memfd)",
				  v->start, v->end, fd);
		return -EINVAL;
	}
	if (!(v->file->f_mode & FMODE_READ) ||
	    ((v->prot & PROT_WRITE) && !(v->file->f_mode & FMODE_WRITE))) {
		amber_restore_err(r, fd_attr,
				  "shared anonymous VMA 0x%lx-0x%lx: fd %u lacks %s access",
				  v->start, v->end, fd,
				  v->file->f_mode & FMODE_READ ? "write" : "read");
		return -EACCES;
	}
	/* memfd_file_seals() is not exported; shmem_file() made SHMEM_I() valid. */
	seals = READ_ONCE(SHMEM_I(file_inode(v->file))->seals);
	if (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) {
		amber_restore_err(r, fd_attr,
				  "shared anonymous VMA 0x%lx-0x%lx: fd %u is sealed against writing",
				  v->start, v->end, fd);
		return -EPERM;
	}
	if (v->pgoff > (ULONG_MAX >> PAGE_SHIFT) - ((v->end - v->start) >> PAGE_SHIFT)) {
		amber_restore_err(r, v->nla, "VMA 0x%lx-0x%lx: file offset overflows",
				  v->start, v->end);
		return -EOVERFLOW;
	}
	return 0;
}

static int amber_rvma_check_file(struct amber_restore *r, struct amber_rvma *v,
				 const struct amber_nl_u32 *file_fd)
{
	const struct nlattr *fd_attr = file_fd->nla;
	u32 fd = file_fd->val;

	if (v->flags & AMBER_VMA_F_SHMEM)
		return amber_rvma_check_shmem(r, v, file_fd);
	if (v->flags & AMBER_VMA_F_ANON) {
		amber_restore_err(r, fd_attr,
				  "VMA 0x%lx-0x%lx: anonymous VMA with a file fd",
				  v->start, v->end);
		return -EINVAL;
	}
	v->file = fget(fd);
	if (!v->file) {
		amber_restore_err(r, fd_attr, "VMA 0x%lx-0x%lx: fd %u is not open",
				  v->start, v->end, fd);
		return -EBADF;
	}
	if (!S_ISREG(file_inode(v->file)->i_mode) || !v->file->f_op->mmap) {
		amber_restore_err(r, fd_attr,
				  "VMA 0x%lx-0x%lx: fd %u is not a mappable regular file",
				  v->start, v->end, fd);
		return -EINVAL;
	}
	if (!(v->file->f_mode & FMODE_READ) ||
	    (amber_rvma_shared(v) && (v->prot & PROT_WRITE) &&
	     !(v->file->f_mode & FMODE_WRITE))) {
		amber_restore_err(r, fd_attr,
				  "VMA 0x%lx-0x%lx: fd %u lacks %s access",
				  v->start, v->end, fd,
				  v->file->f_mode & FMODE_READ ? "write" : "read");
		return -EACCES;
	}
	if (v->pgoff > (ULONG_MAX >> PAGE_SHIFT) - ((v->end - v->start) >> PAGE_SHIFT)) {
		amber_restore_err(r, v->nla, "VMA 0x%lx-0x%lx: file offset overflows",
				  v->start, v->end);
		return -EOVERFLOW;
	}
	return 0;
}

/*
 * A PREFILLED VMA is kept as the caller mapped it, which must be private
 * anonymous memory with the VMA's protection and nothing special, without
 * holes (it may be several VMAs: the kernel merges and splits them).
 * With @lazy (AMBER_RESTORE_F_LAZY) it may be registered with a userfaultfd
 * for missing pages: the caller fills it on first touch.
 * Returns 0, or -EINVAL with *bad the first address that is not.
 */
static int amber_rvma_check_prefilled(const struct amber_rvma *v, bool lazy,
				      unsigned long *bad)
{
	const unsigned long odd = VM_SHARED | VM_MAYSHARE | VM_GROWSDOWN | VM_GROWSUP |
				  VM_LOCKED | VM_IO | VM_PFNMAP | VM_MIXEDMAP | VM_HUGETLB |
				  VM_DONTCOPY | VM_WIPEONFORK | VM_UFFD_WP |
				  (lazy ? 0 : VM_UFFD_MISSING);
	const unsigned long cmp = VM_READ | VM_WRITE | VM_EXEC | VM_ACCOUNT;
	unsigned long want = calc_vm_prot_bits(v->prot, 0);
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long addr = v->start;
	int err = 0;

	if ((v->prot & PROT_READ) && (current->personality & READ_IMPLIES_EXEC))
		want |= VM_EXEC;
	if (v->flags & AMBER_VMA_F_ACCOUNT)
		want |= VM_ACCOUNT;
	mmap_read_lock(mm);
	while (addr < v->end) {
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start > addr || !vma_is_anonymous(vma) ||
		    (vma->vm_flags & odd) || (vma->vm_flags & cmp) != want) {
			*bad = addr;
			err = -EINVAL;
			break;
		}
		addr = vma->vm_end;
	}
	mmap_read_unlock(mm);
	return err;
}

/* The advice flags a VMA can carry together, as madvise() and mlock2() allow. */
static int amber_rvma_check_advice(struct amber_restore *r, const struct amber_rvma *v)
{
	const u32 shared = AMBER_VMA_F_SHARED | AMBER_VMA_F_SHMEM;
	const char *why = NULL;

	if ((v->flags & AMBER_VMA_F_SEQ_READ) && (v->flags & AMBER_VMA_F_RAND_READ))
		why = "SEQ_READ and RAND_READ";
	else if ((v->flags & AMBER_VMA_F_HUGEPAGE) && (v->flags & AMBER_VMA_F_NOHUGEPAGE))
		why = "HUGEPAGE and NOHUGEPAGE";
	else if ((v->flags & AMBER_VMA_F_WIPEONFORK) &&
		 (!(v->flags & AMBER_VMA_F_ANON) || (v->flags & shared)))
		why = "WIPEONFORK on memory that is not private anonymous";
	else if ((v->flags & AMBER_VMA_F_MERGEABLE) && (v->flags & shared))
		why = "MERGEABLE on shared memory";
	else if ((v->flags & AMBER_VMA_F_LOCKONFAULT) && !(v->flags & AMBER_VMA_F_LOCKED))
		why = "LOCKONFAULT without LOCKED";
	else if ((v->flags & AMBER_VMA_F_ACCOUNT) && (v->flags & shared))
		why = "ACCOUNT on a shared mapping";
	if (!why)
		return 0;
	amber_restore_err(r, v->nla, "VMA 0x%lx-0x%lx: VMA_FLAGS has %s", v->start, v->end, why);
	return -EINVAL;
}

/* Parse and check one AMBER_A_VMA; @prev_end is the previous VMA's end. */
static int amber_rvma_parse(struct amber_restore *r, const struct amber_vma_args *a,
			    struct amber_rvma *v, unsigned long prev_end)
{
	const struct nlattr *nla = a->nla;
	const struct {
		int type;
		const struct nlattr *nla;
	} required[] = {
		{ AMBER_VMA_START, a->start.nla }, { AMBER_VMA_END, a->end.nla },
		{ AMBER_VMA_PROT, a->prot.nla }, { AMBER_VMA_FLAGS, a->flags.nla },
	};
	int i, err;

	for (i = 0; i < ARRAY_SIZE(required); i++) {
		if (!required[i].nla) {
			NL_SET_ERR_ATTR_MISS(r->extack, nla, required[i].type);
			amber_restore_err(r, nla, "VMA lacks attribute %d", required[i].type);
			return -EINVAL;
		}
	}
	v->nla = nla;
	v->start = a->start.val;
	v->end = a->end.val;
	v->pgoff = a->pgoff.val;
	v->prot = a->prot.val;
	v->flags = a->flags.val;

	if (!PAGE_ALIGNED(v->start) || !PAGE_ALIGNED(v->end) ||
	    v->start >= v->end || v->end > TASK_SIZE) {
		amber_restore_err(r, nla, "VMA 0x%lx-0x%lx is not a page-aligned user range",
				  v->start, v->end);
		return -EINVAL;
	}
	if (v->start < prev_end) {
		amber_restore_err(r, nla,
				  "VMA 0x%lx-0x%lx is not sorted or overlaps the previous one",
				  v->start, v->end);
		return -EINVAL;
	}
	if (v->flags & AMBER_VMA_F_NOMAP)
		return amber_rvma_check_special(r, v);

	if (amber_overlaps(v->start, v->end, r->vvar_start, r->vvar_end) ||
	    amber_overlaps(v->start, v->end, r->vdso_start, r->vdso_end)) {
		amber_restore_err(r, nla,
				  "VMA 0x%lx-0x%lx overlaps vvar/vdso at 0x%lx-0x%lx",
				  v->start, v->end, r->vvar_start ?: r->vdso_start,
				  r->vdso_end ?: r->vvar_end);
		return -EINVAL;
	}
	err = amber_rvma_check_advice(r, v);
	if (err)
		return err;
	if (v->flags & AMBER_VMA_F_PREFILLED) {
		const u32 plain = AMBER_VMA_F_ANON | AMBER_VMA_F_HEAP | AMBER_VMA_F_MAYWRITE |
				  AMBER_VMA_F_ACCOUNT | AMBER_VMA_F_PREFILLED;
		unsigned long bad = 0;

		if (a->file_fd.nla || !(v->flags & AMBER_VMA_F_ANON) ||
		    (v->flags & ~plain)) {
			amber_restore_err(r, nla, "VMA 0x%lx-0x%lx: PREFILLED is only for plain private anonymous memory",
					  v->start, v->end);
			return -EINVAL;
		}
		/* Checked before the point of no return: unmapping keeps it. */
		err = amber_rvma_check_prefilled(v, r->flags & AMBER_RESTORE_F_LAZY, &bad);
		if (err)
			amber_restore_err(r, nla,
					  "prefilled VMA 0x%lx-0x%lx: the caller's memory at 0x%lx is not private anonymous memory with prot %u",
					  v->start, v->end, bad, v->prot);
		return err;
	}
	if (a->file_fd.nla)
		return amber_rvma_check_file(r, v, &a->file_fd);
	if (!(v->flags & (AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM))) {
		amber_restore_err(r, nla, "VMA 0x%lx-0x%lx: file mapping without VMA_FILE_FD",
				  v->start, v->end);
		return -EINVAL;
	}
	return 0;
}

/*
 * AMBER_A_VMAS may be given several times (a nest holds at most 64 KiB):
 * the VMAs of all of them, in order, form the list.
 */
int amber_restore_vmas_prepare(struct amber_restore *r)
{
	const struct amber_restore_args *a = r->args;
	unsigned long prev_end = 0;
	unsigned int n, i;
	int err;

	if (!a->vmas_nla) {
		NL_SET_ERR_ATTR_MISS(r->extack, NULL, AMBER_A_VMAS);
		amber_restore_err(r, NULL, "the VMA list (AMBER_A_VMAS) is missing");
		return -EINVAL;
	}
	amber_restore_find_vdso(r);

	n = a->nr_vmas;
	if (!n || n > AMBER_MAX_VMAS) {
		amber_restore_err(r, a->vmas_nla,
				  "%u VMAs, expected 1 to %u", n, AMBER_MAX_VMAS);
		return -EINVAL;
	}
	r->vmas = kvcalloc(n, sizeof(*r->vmas), GFP_KERNEL_ACCOUNT);
	if (!r->vmas)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		r->nr_vmas = i + 1;	/* so that release sees its file */
		err = amber_rvma_parse(r, &a->vmas[i], &r->vmas[i], prev_end);
		if (err)
			return err;
		prev_end = r->vmas[i].end;
	}
	return 0;
}

static int amber_restore_auxv_check(struct amber_restore *r, const struct amber_mm_args *a)
{
	const struct nlattr *attr = a->auxv;
	unsigned int len = a->auxv_len;
	const u64 *auxv = a->auxv_data;

	if (!len || len % (2 * sizeof(u64)) || len > sizeof(r->mm.auxv) ||
	    auxv[len / sizeof(u64) - 2] != AT_NULL) {
		amber_restore_err(r, attr,
				  "auxv must be pairs of u64 ending with AT_NULL, at most %zu bytes",
				  sizeof(r->mm.auxv));
		return -EINVAL;
	}
	memcpy(r->mm.auxv, auxv, len);
	r->mm.auxv_len = len;
	return 0;
}

/* The checks of validate_prctl_map_addr() (kernel/sys.c). */
static int amber_restore_mm_check(struct amber_restore *r, const struct nlattr *attr)
{
	const struct amber_rmm *m = &r->mm;
	const unsigned long addrs[] = {
		m->start_code, m->end_code, m->start_data, m->end_data,
		m->start_brk, m->brk, m->start_stack,
		m->arg_start, m->arg_end, m->env_start, m->env_end,
	};
	const char *msg;
	int i;

	for (i = 0; i < ARRAY_SIZE(addrs); i++) {
		if (addrs[i] >= TASK_SIZE) {
			amber_restore_err(r, attr, "mm field %d (0x%lx) is not a user address",
					  AMBER_MM_START_CODE + i, addrs[i]);
			return -EINVAL;
		}
	}
	if (m->start_code >= m->end_code || m->start_data > m->end_data ||
	    m->start_brk > m->brk || m->arg_start > m->arg_end ||
	    m->env_start > m->env_end) {
		amber_restore_err(r, attr,
				  "mm layout out of order (code, data, brk, arg or env)");
		return -EINVAL;
	}
	msg = amber_mm_data_check(rlimit(RLIMIT_DATA), m->brk, m->start_brk, m->end_data,
				  m->start_data);
	if (msg) {
		amber_restore_err(r, attr, "%s", msg);
		return -ENOSPC;
	}
	return 0;
}

int amber_restore_mm_prepare(struct amber_restore *r)
{
	const struct amber_mm_args *a = &r->args->mm;
	const struct nlattr *attr = a->nla;
	unsigned long *fields[] = {
		&r->mm.start_code, &r->mm.end_code, &r->mm.start_data,
		&r->mm.end_data, &r->mm.start_brk, &r->mm.brk, &r->mm.start_stack,
		&r->mm.arg_start, &r->mm.arg_end, &r->mm.env_start, &r->mm.env_end,
	};
	int i, err;

	BUILD_BUG_ON(ARRAY_SIZE(fields) != AMBER_MM_ENV_END);
	if (!attr)
		return 0;

	if (a->vdso.nla && a->vdso.val != r->vdso_start) {
		amber_restore_err(r, a->vdso.nla, "vdso at 0x%lx, image expects 0x%llx",
				  r->vdso_start, a->vdso.val);
		return -EINVAL;
	}
	if (a->auxv) {
		err = amber_restore_auxv_check(r, a);
		if (err)
			return err;
	}
	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		const struct amber_nl_u64 *f = &a->field[AMBER_MM_START_CODE + i];

		if (!f->nla) {
			NL_SET_ERR_ATTR_MISS(r->extack, attr, AMBER_MM_START_CODE + i);
			amber_restore_err(r, attr, "mm field %d is missing",
					  AMBER_MM_START_CODE + i);
			return -EINVAL;
		}
		*fields[i] = f->val;
	}
	err = amber_restore_mm_check(r, attr);
	if (err)
		return err;
	r->mm.present = true;
	return 0;
}

static int amber_restore_exe_prepare(struct amber_restore *r, const struct amber_nl_u32 *exe_fd)
{
	const struct nlattr *attr = exe_fd->nla;
	u32 fd = exe_fd->val;
	struct file *file;
	int err;

	file = fget(fd);
	if (!file) {
		amber_restore_err(r, attr, "exe fd %u is not open", fd);
		return -EBADF;
	}
	/* The checks of prctl(PR_SET_MM_EXE_FILE). */
	err = -EACCES;
	if (!S_ISREG(file_inode(file)->i_mode) ||
	    amber_file_permission(file, MAY_EXEC)) {
		amber_restore_err(r, attr, "exe fd %u is not an executable regular file", fd);
		goto err_put;
	}
	err = deny_write_access(file);
	if (err) {
		amber_restore_err(r, attr, "exe fd %u: the file is open for writing", fd);
		goto err_put;
	}
	r->exe = file;
	return 0;

err_put:
	fput(file);
	return err;
}

/*
 * Pages files (AMBER_A_PAGE_FDS: a chain, oldest first, the last one is the
 * checkpoint restored) and the exe file (AMBER_A_EXE_FD).
 */
int amber_restore_files_prepare(struct amber_restore *r)
{
	const struct amber_fd_list_args *l = &r->args->page_fds;
	const struct nlattr *attr = l->nla;
	unsigned int n = l->nr, i;

	if (r->args->exe_fd.nla) {
		int err = amber_restore_exe_prepare(r, &r->args->exe_fd);

		if (err)
			return err;
	}
	if (!attr)
		return 0;
	if (n > AMBER_MAX_PAGE_FILES) {
		amber_restore_err(r, attr, "%u pages files, at most %u (a chain of %u checkpoints)",
				  n, AMBER_MAX_PAGE_FILES, AMBER_MAX_PAGE_FILES);
		return -E2BIG;
	}
	r->page_files = kcalloc(n, sizeof(*r->page_files), GFP_KERNEL);
	r->page_nlas = kcalloc(n, sizeof(*r->page_nlas), GFP_KERNEL);
	if (!r->page_files || !r->page_nlas)
		return -ENOMEM;

	for (i = 0; i < n; i++) {
		const struct nlattr *nla = l->fd[i].nla;
		u32 fd = l->fd[i].val;
		struct file *file = fget(fd);

		if (!file) {
			amber_restore_err(r, nla, "pages fd %u is not open", fd);
			return -EBADF;
		}
		r->page_nlas[r->nr_page_files] = nla;
		r->page_files[r->nr_page_files++] = file;
		if (!S_ISREG(file_inode(file)->i_mode) || !(file->f_mode & FMODE_READ)) {
			amber_restore_err(r, nla, "pages fd %u is not a readable regular file", fd);
			return -EBADF;
		}
	}
	return 0;
}

void amber_restore_mm_release(struct amber_restore *r)
{
	unsigned int i;

	for (i = 0; i < r->nr_vmas; i++) {
		if (r->vmas[i].file)
			fput(r->vmas[i].file);
	}
	kvfree(r->vmas);
	for (i = 0; i < r->nr_page_files; i++)
		fput(r->page_files[i]);
	kfree(r->page_files);
	kfree(r->page_nlas);
	if (r->exe) {
		allow_write_access(r->exe);
		fput(r->exe);
	}
}

/* ---- past the point of no return ---- */

/* Unmaps [*lo, start) if not empty; everything below end is then done. */
static int amber_unmap_upto(unsigned long *lo, unsigned long start, unsigned long end)
{
	int err = 0;

	if (start > *lo)
		err = vm_munmap(*lo, start - *lo);
	*lo = max(*lo, end);
	return err;
}

/* Unmaps the caller but for vvar, vDSO and the PREFILLED VMAs (sorted). */
static int amber_restore_unmap(struct amber_restore *r)
{
	struct { unsigned long start, end; } keep[2] = {
		{ r->vvar_start, r->vvar_end }, { r->vdso_start, r->vdso_end },
	};
	unsigned long lo = 0;
	unsigned int i = 0, k = 0;
	int err = 0;

	if (keep[0].start > keep[1].start)
		swap(keep[0], keep[1]);
	while (!err) {
		while (i < r->nr_vmas && !(r->vmas[i].flags & AMBER_VMA_F_PREFILLED))
			i++;
		while (k < 2 && keep[k].start == keep[k].end)
			k++;
		if (i < r->nr_vmas && (k == 2 || r->vmas[i].start < keep[k].start)) {
			err = amber_unmap_upto(&lo, r->vmas[i].start, r->vmas[i].end);
			i++;
		} else if (k < 2) {
			err = amber_unmap_upto(&lo, keep[k].start, keep[k].end);
			k++;
		} else {
			break;
		}
	}
	if (err || lo >= TASK_SIZE)
		return err;
	return vm_munmap(lo, TASK_SIZE - lo);
}

/*
 * A read-only private VMA charged to the commit limit (AMBER_VMA_F_ACCOUNT):
 * mapped writable, so that mmap() charges it and sets VM_ACCOUNT, then made
 * read-only as mprotect() would (no page is mapped yet, so no PTE keeps the
 * write bit).
 */
static bool amber_rvma_unwrite(const struct amber_rvma *v)
{
	return (v->flags & AMBER_VMA_F_ACCOUNT) && !(v->prot & PROT_WRITE);
}

static int amber_rvma_drop_write(struct amber_rvma *v)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	int err = 0;

	mmap_write_lock(mm);
	vma = find_vma(mm, v->start);
	if (!vma || vma->vm_start != v->start || vma->vm_end != v->end ||
	    !(vma->vm_flags & VM_ACCOUNT)) {
		err = -EEXIST;
	} else {
		amber_vm_flags_clear(vma, VM_WRITE);
		vma->vm_page_prot = vm_get_page_prot(vma->vm_flags);
	}
	mmap_write_unlock(mm);
	return err;
}

static int amber_rvma_mmap(struct amber_rvma *v)
{
	unsigned long flags = MAP_FIXED, ret;
	unsigned long prot = v->prot;

	flags |= amber_rvma_shared(v) ? MAP_SHARED : MAP_PRIVATE;
	if (!v->file)
		flags |= MAP_ANONYMOUS;
	if (v->flags & AMBER_VMA_F_GROWSDOWN)
		flags |= MAP_GROWSDOWN;
	if (v->flags & AMBER_VMA_F_LOCKED)
		flags |= MAP_LOCKED;	/* mlock()ed: needs RLIMIT_MEMLOCK or CAP_IPC_LOCK */
	if (v->flags & AMBER_VMA_F_NORESERVE)
		flags |= MAP_NORESERVE;
	if (amber_rvma_unwrite(v))
		prot |= PROT_WRITE;
	ret = vm_mmap(v->file, v->start, v->end - v->start, prot, flags,
		      v->file ? v->pgoff << PAGE_SHIFT : 0);
	if (ret != v->start)
		return IS_ERR_VALUE(ret) ? (int)ret : -EFAULT;
	if (prot == v->prot || !amber_rvma_drop_write(v))
		return 0;
	/*
	 * It merged with a writable neighbour (only possible next to memory
	 * the caller prefilled). Mapped again read-only: correct but for the
	 * commit charge, rather than a failed restore.
	 */
	pr_debug("VMA 0x%lx-0x%lx merged, mapped without VM_ACCOUNT\n", v->start, v->end);
	ret = vm_mmap(v->file, v->start, v->end - v->start, v->prot, flags,
		      v->file ? v->pgoff << PAGE_SHIFT : 0);
	if (ret == v->start)
		return 0;
	return IS_ERR_VALUE(ret) ? (int)ret : -EFAULT;
}

/*
 * What madvise() would do for the advice flags, on a VMA that is exactly
 * [start, end): such VMAs are mapped before all others, so they cannot have
 * merged with a neighbour (a mapped neighbour either carries advice flags
 * already or is not mapped yet).
 */
static int amber_rvma_advise(struct amber_rvma *v)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	unsigned long set = 0;
	int err = 0;

	if (v->flags & AMBER_VMA_F_DONTFORK)
		set |= VM_DONTCOPY;
	if (v->flags & AMBER_VMA_F_DONTDUMP)
		set |= VM_DONTDUMP;
	if (v->flags & AMBER_VMA_F_HUGEPAGE)
		set |= VM_HUGEPAGE;
	else if (v->flags & AMBER_VMA_F_NOHUGEPAGE)
		set |= VM_NOHUGEPAGE;
	if (v->flags & AMBER_VMA_F_SEQ_READ)
		set |= VM_SEQ_READ;
	else if (v->flags & AMBER_VMA_F_RAND_READ)
		set |= VM_RAND_READ;
	if (v->flags & AMBER_VMA_F_WIPEONFORK)
		set |= VM_WIPEONFORK;	/* checked: private anonymous */
	/* Mapped with MAP_LOCKED, so populated and VM_LOCKED already. */
	if (v->flags & AMBER_VMA_F_LOCKONFAULT)
		set |= VM_LOCKONFAULT;

	mmap_write_lock(mm);
	vma = find_vma(mm, v->start);
	if (!vma || vma->vm_start != v->start || vma->vm_end != v->end) {
		err = -EEXIST;
		goto out;
	}
	if (v->flags & AMBER_VMA_F_MERGEABLE) {
		unsigned long f = vma->vm_flags;

		/* Registers the mm with KSM (__ksm_enter()) as madvise() does. */
		err = ksm_madvise(vma, vma->vm_start, vma->vm_end, MADV_MERGEABLE, &f);
		if (!err && !(f & VM_MERGEABLE))
			err = -EINVAL;	/* KSM ignored it (a special mapping) */
		if (err)
			goto out;
		set |= VM_MERGEABLE;
	}
	amber_vm_flags_set(vma, set);
out:
	mmap_write_unlock(mm);
	return err;
}

int amber_restore_map(struct amber_restore *r)
{
	unsigned int pass, i;
	int err;

	err = amber_restore_unmap(r);
	if (err) {
		amber_restore_err(r, NULL, "unmapping the stub failed (%d)", err);
		return err;
	}
	/*
	 * Pass 0 maps the VMAs whose flags are set after mmap() (advice,
	 * VM_ACCOUNT of a read-only one), pass 1 the others: a VMA of pass 0
	 * cannot merge with a neighbour mapped before it, whose flags are
	 * final already and differ (or the two would be one VMA).
	 */
	for (pass = 0; pass < 2; pass++) {
		bool want_first = !pass;

		for (i = 0; i < r->nr_vmas; i++) {
			struct amber_rvma *v = &r->vmas[i];
			bool advice = v->flags & AMBER_VMA_F_ADVICE;

			if ((v->flags & AMBER_VMA_F_NOMAP) ||
			    (advice || amber_rvma_unwrite(v)) != want_first)
				continue;
			if (v->flags & AMBER_VMA_F_PREFILLED)
				continue;	/* kept, checked when parsed */
			err = amber_rvma_mmap(v);
			if (!err && advice)
				err = amber_rvma_advise(v);
			if (err) {
				amber_restore_err(r, v->nla, "mapping VMA 0x%lx-0x%lx failed (%d)",
						  v->start, v->end, err);
				return err;
			}
		}
	}
	return 0;
}

/* The image VMA holding @addr, or NULL. */
static struct amber_rvma *amber_rvma_find(struct amber_restore *r, unsigned long addr)
{
	unsigned int lo = 0, hi = r->nr_vmas;

	while (lo < hi) {
		unsigned int mid = lo + (hi - lo) / 2;
		struct amber_rvma *v = &r->vmas[mid];

		if (addr < v->start)
			hi = mid;
		else if (addr >= v->end)
			lo = mid + 1;
		else
			return v;
	}
	return NULL;
}

/* Write into a read-only shared anonymous VMA through its shmem file. */
static int amber_restore_poke_shmem(unsigned long addr, const void *buf, size_t len)
{
	struct mm_struct *mm = current->mm;
	struct vm_area_struct *vma;
	struct file *file = NULL;
	loff_t pos = 0;
	ssize_t n;

	mmap_read_lock(mm);
	vma = find_vma(mm, addr);
	if (vma && vma->vm_start <= addr && vma->vm_file) {
		file = get_file(vma->vm_file);
		pos = ((loff_t)vma->vm_pgoff << PAGE_SHIFT) + addr - vma->vm_start;
	}
	mmap_read_unlock(mm);
	if (!file)
		return -EFAULT;
	n = kernel_write(file, buf, len, &pos);
	fput(file);
	return n == len ? 0 : n < 0 ? n : -EIO;
}

static int amber_read_full(struct file *file, void *buf, size_t len, loff_t *pos)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = kernel_read(file, buf + done, len - done, pos);

		if (n < 0)
			return n;
		if (!n)
			break;
		done += n;
	}
	return done;
}

/*
 * Chains of pages files. The last file is the checkpoint to restore; an
 * AMBER_RUN_F_PARENT run of file k stands for pages that file k - 1 holds,
 * in a data run or (recursively) in a parent run of its own. The runs of
 * the last file are taken in ascending order, so every older file is asked
 * for ascending, non-overlapping ranges: one forward-only cursor per file
 * resolves them, reading run headers at explicit positions and skipping
 * unneeded page data by position arithmetic.
 */

/* Where the reader of one pages file is. */
struct amber_pcur {
	loff_t pos;		/* of the next run header */
	loff_t size;		/* of the file when the walk began */
	loff_t data_pos;	/* of the current run's data */
	u64 start, end;		/* pages of the current run (end 0: none read yet) */
	u64 want;		/* end of the range asked of this file */
	u32 flags;		/* of the current run */
	bool eof;
};

static int amber_pcur_init(struct amber_restore *r, unsigned int idx, struct amber_pcur *c)
{
	const struct nlattr *nla = r->page_nlas[idx];
	struct file *file = r->page_files[idx];
	struct amber_pages_hdr hdr;
	loff_t pos = 0;
	int n;

	n = amber_read_full(file, &hdr, sizeof(hdr), &pos);
	if (n != sizeof(hdr) || hdr.magic != AMBER_PAGES_MAGIC || hdr.page_size != PAGE_SIZE) {
		amber_restore_err(r, nla, "pages file %u: bad header", idx);
		return n < 0 ? n : -EINVAL;
	}
	if (hdr.version != AMBER_PAGES_VERSION) {
		amber_restore_err(r, nla, "pages file %u: version %u, this module reads version %u",
				  idx, hdr.version, AMBER_PAGES_VERSION);
		return -EINVAL;
	}
	memset(c, 0, sizeof(*c));
	c->pos = pos;
	c->size = i_size_read(file_inode(file));
	return 0;
}

/* Read and check the next run header of pages file @idx. */
static int amber_pcur_next(struct amber_restore *r, unsigned int idx, struct amber_pcur *c)
{
	const struct nlattr *nla = r->page_nlas[idx];
	struct amber_page_run run;
	loff_t pos = c->pos;
	u64 len;
	int n;

	n = amber_read_full(r->page_files[idx], &run, sizeof(run), &pos);
	if (!n) {
		c->eof = true;
		return 0;
	}
	if (n != sizeof(run)) {
		amber_restore_err(r, nla, "pages file %u: truncated at offset %lld", idx, c->pos);
		return n < 0 ? n : -EINVAL;
	}
	if (!PAGE_ALIGNED(run.addr) || run.addr >= TASK_SIZE || !run.nr_pages ||
	    run.nr_pages > (TASK_SIZE - run.addr) >> PAGE_SHIFT) {
		amber_restore_err(r, nla,
				  "pages file %u: run at offset %lld (0x%llx, %u pages) is not a user range",
				  idx, c->pos, run.addr, run.nr_pages);
		return -EINVAL;
	}
	if (run.flags & ~__AMBER_RUN_F_ALL) {
		amber_restore_err(r, nla, "pages file %u: run at 0x%llx has unknown flags 0x%x",
				  idx, run.addr, run.flags);
		return -EINVAL;
	}
	if (run.addr < c->end) {
		amber_restore_err(r, nla,
				  "pages file %u: run at 0x%llx is not sorted or overlaps the run before",
				  idx, run.addr);
		return -EINVAL;
	}
	if ((run.flags & AMBER_RUN_F_PARENT) && !idx) {
		amber_restore_err(r, nla,
				  "pages file 0: run at 0x%llx refers to a parent, but the oldest file has none",
				  run.addr);
		return -EINVAL;
	}
	len = run.flags & AMBER_RUN_F_PARENT ? 0 : (u64)run.nr_pages << PAGE_SHIFT;
	if (pos > c->size || len > c->size - pos) {
		amber_restore_err(r, nla, "pages file %u: run at 0x%llx is truncated",
				  idx, run.addr);
		return -EINVAL;
	}
	c->start = run.addr;
	c->end = run.addr + ((u64)run.nr_pages << PAGE_SHIFT);
	c->flags = run.flags;
	c->data_pos = pos;
	c->pos = pos + len;
	return 0;
}

/*
 * A shmem VMA mapped from the tool's file, or a PREFILLED one: its pages in
 * the pages files are skipped.
 */
static bool amber_rvma_skips_pages(const struct amber_rvma *v)
{
	return (v->file && (v->flags & AMBER_VMA_F_SHMEM)) || (v->flags & AMBER_VMA_F_PREFILLED);
}

/* The image VMA that page data may be written to (or skipped) at @addr, or NULL. */
static struct amber_rvma *amber_rvma_fillable(struct amber_restore *r, unsigned long addr)
{
	struct amber_rvma *v = amber_rvma_find(r, addr);

	if (!v || (v->flags & AMBER_VMA_F_NOMAP) ||
	    (v->file && amber_rvma_shared(v) && !amber_rvma_skips_pages(v)))
		return NULL;
	return v;
}

static bool amber_range_fillable(struct amber_restore *r, unsigned long addr, unsigned long end)
{
	while (addr < end) {
		struct amber_rvma *v = amber_rvma_fillable(r, addr);

		if (!v)
			return false;
		addr = v->end;
	}
	return true;
}

/* Copy @len bytes of page data to @addr, which may span image VMAs. */
static int amber_restore_poke(struct amber_restore *r, unsigned long addr,
			      const u8 *buf, size_t len)
{
	while (len) {
		struct amber_rvma *v = amber_rvma_fillable(r, addr);
		size_t n;
		int err = 0;

		if (!v)
			return -ERANGE;
		n = min_t(size_t, len, v->end - addr);
		if (amber_rvma_skips_pages(v)) {
			/* the tool filled the file */
		} else if (v->prot & PROT_WRITE) {
			if (copy_to_user((void __user *)addr, buf, n))
				err = -EFAULT;
		} else if (amber_rvma_shared(v)) {
			err = amber_restore_poke_shmem(addr, buf, n);
		} else if (access_process_vm(current, addr, (void *)buf, n,
					     FOLL_WRITE | FOLL_FORCE) != n) {
			err = -EFAULT;
		}
		if (err)
			return err;
		addr += n;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Write [addr, end) from the data of the current run of pages file @idx. */
static int amber_fill_data(struct amber_restore *r, unsigned int idx,
			   const struct amber_pcur *c, u64 addr, u64 end, void *buf)
{
	const struct nlattr *nla = r->page_nlas[idx];
	loff_t pos = c->data_pos + (addr - c->start);

	while (addr < end) {
		struct amber_rvma *v = amber_rvma_find(r, addr);
		size_t chunk = min_t(u64, end - addr, AMBER_BOUNCE_SIZE);
		int n, err;

		if (fatal_signal_pending(current))
			return -EINTR;
		if (v && amber_rvma_skips_pages(v)) {
			/* Not even read: the cursor moves past the skipped pages. */
			u64 skip = min_t(u64, end, v->end) - addr;

			addr += skip;
			pos += skip;
			continue;
		}
		n = amber_read_full(r->page_files[idx], buf, chunk, &pos);
		if (n != chunk) {
			amber_restore_err(r, nla, "pages file %u: run at 0x%llx is truncated",
					  idx, c->start);
			return n < 0 ? n : -EINVAL;
		}
		err = amber_restore_poke(r, addr, buf, chunk);
		if (err) {
			amber_restore_err(r, nla, "pages file %u: pages at 0x%llx-0x%llx %s",
					  idx, addr, addr + chunk, err == -ERANGE ?
					  "are outside the image's private or anonymous VMAs" :
					  "could not be written");
			return err == -ERANGE ? -EINVAL : err;
		}
		addr += chunk;
		cond_resched();
	}
	return 0;
}

/* Move the cursor of pages file @idx to the first run ending after @addr. */
static int amber_pcur_seek(struct amber_restore *r, unsigned int idx,
			   struct amber_pcur *c, u64 addr)
{
	int err;

	while (!c->eof && c->end <= addr) {
		if (fatal_signal_pending(current))
			return -EINTR;
		err = amber_pcur_next(r, idx, c);
		if (err)
			return err;
		cond_resched();
	}
	return 0;
}

/*
 * Fill [addr, end), a parent run of pages file @top, from the older files.
 * Iterative: cur[k].want is the end of what file k was asked for, and the
 * address reached is shared by all levels (each asks for ascending ranges).
 */
static int amber_fill_parent(struct amber_restore *r, struct amber_pcur *cur,
			     unsigned int top, u64 addr, u64 end, void *buf)
{
	unsigned int k = top - 1;
	int err;

	cur[k].want = end;
	while (k < top) {
		struct amber_pcur *c = &cur[k];
		u64 seg_end;

		if (addr == c->want) {
			k++;
			continue;
		}
		err = amber_pcur_seek(r, k, c, addr);
		if (err)
			return err;
		if (c->eof || c->start > addr) {
			u64 gap_end = c->eof ? c->want : min(c->want, c->start);

			amber_restore_err(r, r->page_nlas[k + 1],
					  "pages file %u: pages at 0x%llx-0x%llx are missing from its parent, pages file %u",
					  k + 1, addr, gap_end, k);
			return -EINVAL;
		}
		seg_end = min(c->want, c->end);
		if (c->flags & AMBER_RUN_F_PARENT) {
			if (WARN_ON_ONCE(!k))	/* amber_pcur_next() refuses them */
				return -EINVAL;
			cur[--k].want = seg_end;
			continue;
		}
		if (buf) {
			err = amber_fill_data(r, k, c, addr, seg_end, buf);
			if (err)
				return err;
		}
		addr = seg_end;
	}
	return 0;
}

/*
 * Walk the runs of the last pages file and resolve them through the chain:
 * with @buf, write every page (each exactly once); without, only check the
 * files and that the last file's pages lie in the image's VMAs.
 */
static int amber_restore_walk(struct amber_restore *r, void *buf)
{
	unsigned int i, top = r->nr_page_files - 1;
	struct amber_pcur *cur, *c;
	int err = 0;

	cur = kcalloc(r->nr_page_files, sizeof(*cur), GFP_KERNEL);
	if (!cur)
		return -ENOMEM;
	for (i = 0; i < r->nr_page_files && !err; i++)
		err = amber_pcur_init(r, i, &cur[i]);
	for (c = &cur[top]; !err; ) {
		err = amber_pcur_next(r, top, c);
		if (err || c->eof)
			break;
		if (!buf && !amber_range_fillable(r, c->start, c->end)) {
			amber_restore_err(r, r->page_nlas[top],
					  "pages file %u: run at 0x%llx (%llu pages) is outside the image's private or anonymous VMAs",
					  top, c->start, (c->end - c->start) >> PAGE_SHIFT);
			err = -EINVAL;
			break;
		}
		if (c->flags & AMBER_RUN_F_PARENT)
			err = amber_fill_parent(r, cur, top, c->start, c->end, buf);
		else if (buf)
			err = amber_fill_data(r, top, c, c->start, c->end, buf);
		if (!err && fatal_signal_pending(current))
			err = -EINTR;
		cond_resched();
	}
	kfree(cur);
	return err;
}

/* Check the pages files before the point of no return (reads run headers only). */
int amber_restore_pages_prepare(struct amber_restore *r)
{
	int err;

	if (!r->nr_page_files)
		return 0;
	err = amber_restore_walk(r, NULL);
	if (err == -EINTR)
		amber_restore_err(r, NULL, "killed while checking the pages files");
	return err;
}

/* Fill memory from the chain of pages files. */
int amber_restore_pages(struct amber_restore *r)
{
	void *buf;
	int err;

	if (!r->nr_page_files)
		return 0;
	buf = kvmalloc(AMBER_BOUNCE_SIZE, GFP_KERNEL);
	if (!buf) {
		amber_restore_err(r, NULL, "no memory for the page buffer");
		return -ENOMEM;
	}
	err = amber_restore_walk(r, buf);
	kvfree(buf);
	if (err == -EINTR)
		amber_restore_err(r, NULL, "killed while filling memory");
	return err;
}

/* replace_mm_exe_file() (kernel/fork.c), which is not exported. */
static void amber_restore_set_exe(struct mm_struct *mm, struct file *exe)
{
	struct file *old = xchg(&mm->exe_file, exe);

	if (old) {
		/* Do not race with dup_mmap() getting the file. */
		mmap_read_lock(mm);
		allow_write_access(old);
		fput(old);
		mmap_read_unlock(mm);
	}
}

/* mm layout fields, auxv and exe file (prctl_set_mm_map() does the same). */
void amber_restore_mm_commit(struct amber_restore *r)
{
	struct mm_struct *mm = current->mm;
	const struct amber_rmm *m = &r->mm;

	if (m->present) {
		mmap_write_lock(mm);
		spin_lock(&mm->arg_lock);
		mm->start_code = m->start_code;
		mm->end_code = m->end_code;
		mm->start_data = m->start_data;
		mm->end_data = m->end_data;
		mm->start_brk = m->start_brk;
		mm->brk = m->brk;
		mm->start_stack = m->start_stack;
		mm->arg_start = m->arg_start;
		mm->arg_end = m->arg_end;
		mm->env_start = m->env_start;
		mm->env_end = m->env_end;
		spin_unlock(&mm->arg_lock);
		if (m->auxv_len) {
			memset(mm->saved_auxv, 0, sizeof(mm->saved_auxv));
			memcpy(mm->saved_auxv, m->auxv, m->auxv_len);
		}
		mmap_write_unlock(mm);
	}
	if (r->exe) {
		amber_restore_set_exe(mm, r->exe);
		r->exe = NULL;		/* its reference and denied write moved to mm */
	}
}
