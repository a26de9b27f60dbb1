// SPDX-License-Identifier: GPL-2.0
/*
 * Address space of current: mm layout fields, auxv, VMAs, and the pages file.
 *
 * Pages that hold data are found by walking the page tables under
 * mmap_read_lock (follow_pte() cannot be used: it does not handle
 * transparent huge pages, and nothing here may fault memory in). A page
 * holds data if its PTE is present (the zero page excepted) or a swap entry;
 * a transparent huge PMD counts as all of its pages. In private file
 * mappings only anonymous (copied-on-write) pages count, the file holds the
 * rest. Shared anonymous memory is saved from its shmem page cache. Shared
 * file mappings, vvar and the vDSO are not saved. The runs are collected
 * under the lock, then the lock is dropped and the pages file's contents are
 * copied with copy_from_user() into a kernel memory arena (VMAs that are not
 * readable through access_process_vm(FOLL_FORCE)), so the target's pause
 * costs a memcpy, not file I/O. The requester writes the arena to the pages
 * file after the target has resumed (see arena.c).
 *
 * Dirty tracking (see track.c and Documentation/design.md): a tracking
 * checkpoint walks under mmap_write_lock and, in the same pass, classifies
 * each page with data as dirty or clean and clears its soft-dirty bit and
 * write-protects it, as /proc/PID/clear_refs does, in private VMAs. An
 * incremental checkpoint copies only dirty pages and lists clean ones as
 * AMBER_RUN_F_PARENT runs (no data). Pages of shared VMAs, of VMAs with
 * VM_SOFTDIRTY (new, grown, moved since) and soft-dirty PTEs, swap entries
 * and huge PMDs are dirty. Clearing first maps anonymous huge pages with
 * PTEs (amber_split_huge()), so that writes are tracked in 4 KiB pages; a
 * huge PMD that cannot be split is one unit.
 */
#include <linux/fs.h>
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/kdev_t.h>
#include <linux/magic.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/mmu_notifier.h>
#include <linux/pagemap.h>
#include <linux/pgtable.h>
#include <linux/rmap.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/slab.h>
#include <linux/swapops.h>
#include <linux/xarray.h>
#include <linux/uaccess.h>
#include <linux/userfaultfd_k.h>
#include <asm/tlbflush.h>

#include <linux/amber.h>

#include "array.h"
#include "path.h"
#include "mm.h"
#include "track.h"

#define AMBER_CHUNK_SIZE	SZ_1M	/* between cancellation checks */

/* How the pages of a VMA are selected. */
enum amber_walk_mode {
	AMBER_WALK_SKIP,	/* nothing saved */
	AMBER_WALK_ALL,		/* every page with data */
	AMBER_WALK_ANON,	/* only anonymous pages (private file mapping) */
	AMBER_WALK_SHMEM,	/* pages of the backing shmem file */
};

struct amber_run {
	unsigned long addr;
	unsigned long nr;	/* at most U32_MAX */
	unsigned int vma;	/* index into amber_mm_state.vmas */
	bool force;		/* VMA not readable: use access_process_vm() */
	bool parent;		/* unchanged since the parent: no data */
};

/* A page saved copy-on-write: copied after the target resumed. */
struct amber_snap {
	unsigned long addr;
	struct page *page;	/* reference */
};

struct amber_walk {
	struct mm_struct *mm;
	enum amber_walk_mode mode;
	struct vm_area_struct *vmap;	/* being walked */
	unsigned int vma;
	bool force;
	bool incremental;	/* clean pages become parent runs */
	bool all_dirty;		/* this VMA: every page with data is dirty */
	bool clear;		/* this VMA: clear soft-dirty, write-protect */
	struct amber_vma_sig sig;	/* this VMA's identity */
	const struct amber_vma_sig *prev;	/* at the parent, ascending */
	unsigned int nr_prev;
	unsigned int prev_i;	/* cursor: addresses only ascend */
	struct amber_run *runs;
	size_t nr_runs;
	size_t cap_runs;
	/* Dirty pages saved copy-on-write, ascending (with clearing only). */
	struct page **pt_pages;	/* PTRS_PER_PTE: those of one page table */
	struct amber_snap *snaps;
	size_t nr_snaps;
	size_t cap_snaps;
	size_t snaps_done;	/* handed over to the arena */
};

/* The pages of one page table: which hold data, which of those are dirty. */
struct amber_ptes {
	DECLARE_BITMAP(data, PTRS_PER_PTE);
	DECLARE_BITMAP(dirty, PTRS_PER_PTE);
};

static int amber_runs_push(struct amber_walk *w, unsigned long addr,
			   unsigned long nr, bool parent)
{
	if (amber_array_grow((void **)&w->runs, w->nr_runs, &w->cap_runs,
			     sizeof(*w->runs), 256, GFP_KERNEL))
		return -ENOMEM;
	w->runs[w->nr_runs++] = (struct amber_run){
		.addr = addr, .nr = nr, .vma = w->vma, .force = w->force,
		.parent = parent,
	};
	return 0;
}

/* Adds @nr pages at @addr: dirty ones, or parent ones if @clean. */
static int amber_runs_add_pages(struct amber_walk *w, unsigned long addr,
				unsigned long nr, bool clean)
{
	bool parent = w->incremental && clean;
	struct amber_run *last = w->nr_runs ? &w->runs[w->nr_runs - 1] : NULL;
	unsigned long n;
	int err;

	if (last && last->vma == w->vma && last->parent == parent &&
	    last->addr + last->nr * PAGE_SIZE == addr) {
		n = min(nr, U32_MAX - last->nr);
		last->nr += n;
		addr += n * PAGE_SIZE;
		nr -= n;
	}
	while (nr) {
		n = min_t(unsigned long, nr, U32_MAX);
		err = amber_runs_push(w, addr, n, parent);
		if (err)
			return err;
		addr += n * PAGE_SIZE;
		nr -= n;
	}
	return 0;
}

/* Pages with data that are always saved (migration entries, DAX, shmem). */
static int amber_runs_add(struct amber_walk *w, unsigned long addr,
			  unsigned long nr)
{
	return amber_runs_add_pages(w, addr, nr, false);
}

static bool amber_pte_has_data(const struct amber_walk *w, pte_t pte)
{
	unsigned long pfn;

	if (pte_none(pte))
		return false;
	if (!pte_present(pte))
		return !is_pte_marker_entry(pte_to_swp_entry(pte));
	if (pte_special(pte))
		return false;	/* zero page, raw PFN */
	if (w->mode != AMBER_WALK_ANON)
		return true;
	pfn = pte_pfn(pte);
	return pfn_valid(pfn) && PageAnon(pfn_to_page(pfn));
}

static bool amber_sig_same(const struct amber_vma_sig *a,
			   const struct amber_vma_sig *b)
{
	return a->delta == b->delta && a->anon_vma == b->anon_vma &&
	       a->file == b->file;
}

/*
 * Whether [addr, end) was mapped the same way at the parent checkpoint, so
 * that a clear soft-dirty bit means "unchanged since". Called with
 * ascending addresses (the cursor only moves forward).
 */
static bool amber_trusted(struct amber_walk *w, unsigned long addr,
			  unsigned long end)
{
	const struct amber_vma_sig *p;

	while (w->prev_i < w->nr_prev && w->prev[w->prev_i].end <= addr)
		w->prev_i++;
	if (w->prev_i == w->nr_prev)
		return false;
	p = &w->prev[w->prev_i];
	return p->start <= addr && end <= p->end && amber_sig_same(p, &w->sig);
}

/* Pages pinned for DMA stay writable, hence dirty (pte_is_pinned()). */
static bool amber_pte_pinned(struct vm_area_struct *vma, pte_t pte)
{
	unsigned long pfn = pte_pfn(pte);

	if (!pte_write(pte) || !is_cow_mapping(vma->vm_flags) ||
	    likely(!test_bit(MMF_HAS_PINNED, &vma->vm_mm->flags)))
		return false;
	if (pte_special(pte) || !pfn_valid(pfn))
		return false;
	return folio_maybe_dma_pinned(page_folio(pfn_to_page(pfn)));
}

/* Under the PTE lock: clear_soft_dirty() of fs/proc/task_mmu.c. */
static void amber_pte_clear(struct vm_area_struct *vma, unsigned long addr,
			    pte_t *ptep, pte_t pte)
{
	pte_t old;

	if (pte_present(pte)) {
		if (!pte_write(pte) && !pte_soft_dirty(pte))
			return;
		if (amber_pte_pinned(vma, pte))
			return;
		old = ptep_modify_prot_start(vma, addr, ptep);
		pte = pte_clear_soft_dirty(pte_wrprotect(old));
		ptep_modify_prot_commit(vma, addr, ptep, old, pte);
	} else if (!pte_none(pte) && pte_swp_soft_dirty(pte)) {
		/*
		 * Only real swap entries: swap-in maps read-only unless it
		 * is a write fault. A writable migration (or device) entry
		 * comes back writable, so it keeps its bit and stays dirty.
		 */
		if (non_swap_entry(pte_to_swp_entry(pte)))
			return;
		set_pte_at(vma->vm_mm, addr, ptep, pte_swp_clear_soft_dirty(pte));
	}
}

/*
 * Under the PTE lock, for a dirty page to save: instead of copying it while
 * the target is stopped, keep a reference and make the page copy-on-write,
 * as fork() does for the parent's pages. The PTE is write-protected and the
 * page marked possibly shared with amber_try_share_anon_pte(), between
 * clearing and restoring the PTE so that GUP-fast backs off; a write by the
 * target after it resumes then copies the page (do_wp_page()), and the
 * reference keeps what it held at the checkpoint. Returns NULL if the page
 * must be copied now (not anonymous, or pinned for DMA). *@cleared says
 * whether the soft-dirty bit was cleared here too.
 */
static struct page *amber_pte_snapshot(struct vm_area_struct *vma,
				       unsigned long addr, pte_t *ptep,
				       pte_t pte, bool *cleared)
{
	unsigned long pfn = pte_pfn(pte);
	struct page *page;
	pte_t old;

	*cleared = false;
	if (!pte_present(pte) || pte_special(pte) || !pfn_valid(pfn))
		return NULL;
	page = pfn_to_page(pfn);
	if (!PageAnon(page) || is_zone_device_page(page))
		return NULL;
	if (!PageAnonExclusive(page)) {
		/* Shared (fork, KSM): never mapped writable, copied on write. */
		if (pte_write(pte))
			return NULL;
		get_page(page);
		return page;
	}
	get_page(page);
	old = ptep_modify_prot_start(vma, addr, ptep);
	if (amber_try_share_anon_pte(page)) {
		/* Pinned: it stays writable and is copied now. */
		ptep_modify_prot_commit(vma, addr, ptep, old, old);
		put_page(page);
		return NULL;
	}
	ptep_modify_prot_commit(vma, addr, ptep, old,
				pte_clear_soft_dirty(pte_wrprotect(old)));
	*cleared = true;
	return page;
}

/*
 * Classifies (and clears) the PTEs of [addr, end), one page table. Returns
 * false if there is no page table there any more.
 */
static bool amber_scan_ptes(struct amber_walk *w, pmd_t *pmdp,
			    unsigned long addr, unsigned long end,
			    struct amber_ptes *b)
{
	spinlock_t *ptl = NULL;
	pte_t *start, *ptep;
	unsigned int i;

	if (w->clear)
		start = amber_pte_offset_map_lock(w->mm, pmdp, addr, &ptl);
	else
		start = amber_pte_offset_map(pmdp, addr);
	/*
	 * Since 6.5 ("mm/pgtable: allow pte_offset_map[_lock]() to fail") the
	 * page table may be gone (the PMD became none or huge meanwhile, e.g.
	 * khugepaged retracting a file's page table without mmap_lock): the
	 * caller reads the PMD again. Never NULL in 6.1.
	 */
	if (!start)
		return false;
	for (ptep = start, i = 0; addr < end; ptep++, i++, addr += PAGE_SIZE) {
		pte_t pte = ptep_get(ptep);
		bool cleared = false;

		if (w->clear)
			w->pt_pages[i] = NULL;
		if (amber_pte_has_data(w, pte)) {
			__set_bit(i, b->data);
			if (w->all_dirty ||
			    (pte_present(pte) ? pte_soft_dirty(pte) :
						pte_swp_soft_dirty(pte)) ||
			    !amber_trusted(w, addr, addr + PAGE_SIZE)) {
				__set_bit(i, b->dirty);
				if (w->clear)
					w->pt_pages[i] = amber_pte_snapshot(w->vmap, addr, ptep,
									    pte, &cleared);
			}
		}
		if (w->clear && !cleared)
			amber_pte_clear(w->vmap, addr, ptep, pte);
	}
	if (ptl)
		pte_unmap_unlock(start, ptl);
	else
		pte_unmap(start);
	return true;
}

static int amber_snaps_push(struct amber_walk *w, unsigned long addr,
			    struct page *page)
{
	if (amber_array_grow((void **)&w->snaps, w->nr_snaps, &w->cap_snaps,
			     sizeof(*w->snaps), 1024, GFP_KERNEL))
		return -ENOMEM;
	w->snaps[w->nr_snaps++] = (struct amber_snap){ .addr = addr, .page = page };
	return 0;
}

static int amber_walk_pte(struct amber_walk *w, pmd_t *pmdp,
			  unsigned long addr, unsigned long end)
{
	struct amber_ptes b;
	unsigned int i, n = (end - addr) >> PAGE_SHIFT;
	int err;

	bitmap_zero(b.data, PTRS_PER_PTE);
	bitmap_zero(b.dirty, PTRS_PER_PTE);
	/* Runs are added after the PTE lock is dropped: they allocate. */
	if (!amber_scan_ptes(w, pmdp, addr, end, &b))
		return -EAGAIN;
	for_each_set_bit(i, b.data, n) {
		err = amber_runs_add_pages(w, addr + i * PAGE_SIZE, 1,
					   !test_bit(i, b.dirty));
		if (!err && w->clear && w->pt_pages[i])
			err = amber_snaps_push(w, addr + i * PAGE_SIZE, w->pt_pages[i]);
		if (err)
			break;
		if (w->clear)
			w->pt_pages[i] = NULL;
	}
	/* After a failure, the references not handed over are dropped. */
	if (err && w->clear)
		for (i = 0; i < n; i++)
			if (w->pt_pages[i])
				put_page(w->pt_pages[i]);
	return err;
}

/*
 * A huge PMD under its lock: whether it holds data, whether it is dirty,
 * and with clearing, clear_soft_dirty_pmd() of fs/proc/task_mmu.c.
 * pmdp_invalidate() is not exported: pmdp_establish() swaps the entry in
 * one go. No other CPU can be setting its accessed or dirty bit meanwhile:
 * every thread of this mm is parked in amber's task_work (the group stop of
 * checkpoint.c) or past exit_mm(), none runs user code, and GUP is excluded
 * by the mmap write lock (GUP-fast by the invalidation). Returns false if
 * the PMD is no longer huge (split meanwhile): it is a page table then.
 */
/*
 * amber_pte_snapshot() for a huge PMD of a dirty anonymous huge page, under
 * the PMD lock: takes a reference for each of its pages and leaves the PMD
 * write-protected and clean. A write by the resumed target then splits the
 * PMD (do_huge_pmd_wp_page()) and copies the written page. Returns false if
 * the huge page must be copied now.
 */
static bool amber_pmd_snapshot(struct vm_area_struct *vma, unsigned long haddr,
			       pmd_t *pmdp, pmd_t pmd)
{
	struct page *head = pmd_page(pmd);
	pmd_t old;

	if (!PageAnon(head) || !PageAnonExclusive(head))
		return false;
	/* Clear the entry first so that GUP-fast backs off (see rmap.h). */
	old = pmdp_establish(vma, haddr, pmdp, pmd_mkinvalid(pmd));
	if (amber_try_share_anon_pmd(head)) {
		set_pmd_at(vma->vm_mm, haddr, pmdp, old);
		return false;
	}
	folio_ref_add(page_folio(head), HPAGE_PMD_NR);
	set_pmd_at(vma->vm_mm, haddr, pmdp, pmd_clear_soft_dirty(pmd_wrprotect(old)));
	return true;
}

static bool amber_scan_huge(struct amber_walk *w, pmd_t *pmdp,
			    unsigned long addr, bool *data, bool *dirty,
			    struct page **snap)
{
	spinlock_t *ptl = pmd_lock(w->mm, pmdp);
	pmd_t pmd = *pmdp;

	if (!pmd_trans_huge(pmd) && !pmd_devmap(pmd)) {
		spin_unlock(ptl);
		return false;
	}
	/*
	 * Only anonymous huge pages hold data. The modes here are ALL
	 * (anonymous VMAs) and ANON (private file mappings), where the one
	 * huge page that is not anonymous is the huge zero page
	 * (is_huge_zero_pmd() needs the unexported huge_zero_pfn).
	 */
	*data = PageAnon(pmd_page(pmd));
	*dirty = w->all_dirty || pmd_soft_dirty(pmd) ||
		 !amber_trusted(w, addr & PMD_MASK, (addr & PMD_MASK) + PMD_SIZE);
	*snap = NULL;
	if (w->clear && *data && *dirty &&
	    amber_pmd_snapshot(w->vmap, addr & PMD_MASK, pmdp, pmd))
		*snap = pmd_page(pmd);
	else if (w->clear && (pmd_write(pmd) || pmd_soft_dirty(pmd)))
		pmdp_establish(w->vmap, addr & PMD_MASK, pmdp,
			       pmd_clear_soft_dirty(pmd_wrprotect(pmd)));
	spin_unlock(ptl);
	return true;
}

/*
 * Hands the references of a huge page's pages in [addr, end) to w->snaps and
 * drops the others (all of them after a failure).
 */
static int amber_snaps_push_huge(struct amber_walk *w, struct page *head,
				 unsigned long addr, unsigned long end)
{
	unsigned long a = addr & PMD_MASK;
	unsigned int i;
	int err = 0;

	for (i = 0; i < HPAGE_PMD_NR; i++, a += PAGE_SIZE) {
		if (!err && a >= addr && a < end) {
			err = amber_snaps_push(w, a, head + i);
			if (!err)
				continue;
		}
		put_page(head + i);
	}
	return err;
}

/*
 * With clearing: maps an anonymous huge page with PTEs before it is
 * classified, so that dirty tracking works in 4 KiB pages from now on. A
 * huge PMD write-protected for tracking would otherwise be made writable
 * and soft-dirty as a whole by the first write after the resume
 * (do_huge_pmd_wp_page() reuses the huge page once amber's reference is
 * gone), and the next checkpoint would save all 2 MiB for one 4 KiB page
 * written. The split keeps the folio (no copy, no allocation: anonymous
 * huge PMDs have their page table deposited) and each PTE inherits the
 * PMD's soft-dirty, write and exclusive state, so the PTEs classify as the
 * PMD would have. khugepaged may collapse the range again later; the new
 * PMD is soft-dirty (collapse_huge_page() makes it dirty), is saved whole
 * once and split again here. Returns the PMD as it is now.
 */
static pmd_t amber_split_huge(struct amber_walk *w, pmd_t *pmdp,
			      unsigned long addr, pmd_t pmd)
{
	/*
	 * Unlocked: struct pages are never freed, and a stale answer only
	 * decides whether the split is tried. The split itself re-checks
	 * under the PMD lock.
	 */
	if (!w->clear || !pmd_present(pmd) || !pmd_trans_huge(pmd) ||
	    !PageAnon(pmd_page(pmd)))
		return pmd;
	/* On failure (a fatal signal) the PMD is handled as one unit. */
	amber_split_huge_pmd(w->mm, addr);
	return READ_ONCE(*pmdp);
}

static int amber_walk_pmd(struct amber_walk *w, pud_t *pudp,
			  unsigned long addr, unsigned long end)
{
	pmd_t *pmdp = pmd_offset(pudp, addr);
	unsigned long next;
	int err = 0;

	for (; addr < end && !err; pmdp++, addr = next) {
		pmd_t pmd = amber_split_huge(w, pmdp, addr, READ_ONCE(*pmdp));

		next = pmd_addr_end(addr, end);
		if (pmd_none(pmd))
			continue;
		if (!pmd_present(pmd)) {
			/* A huge page being migrated: it holds data. */
			err = amber_runs_add(w, addr, (next - addr) >> PAGE_SHIFT);
			continue;
		}
		if (pmd_trans_huge(pmd) || pmd_devmap(pmd)) {
			struct page *snap;
			bool data, dirty;

			if (amber_scan_huge(w, pmdp, addr, &data, &dirty, &snap)) {
				if (data)
					err = amber_runs_add_pages(w, addr,
								   (next - addr) >> PAGE_SHIFT,
								   !dirty);
				if (snap && err)
					amber_snaps_push_huge(w, snap, next, next);
				else if (snap)
					err = amber_snaps_push_huge(w, snap, addr, next);
				continue;
			}
			/* Split meanwhile: now a page table. */
			pmd = READ_ONCE(*pmdp);
		}
		if (pmd_bad(pmd))
			continue;
		err = amber_walk_pte(w, pmdp, addr, next);
		if (err == -EAGAIN) {
			/* The page table went away (amber_scan_ptes()): this PMD again. */
			err = 0;
			next = addr;
			pmdp--;
		}
		cond_resched();
	}
	return err;
}

static int amber_walk_pud(struct amber_walk *w, p4d_t *p4dp,
			  unsigned long addr, unsigned long end)
{
	pud_t *pudp = pud_offset(p4dp, addr);
	unsigned long next;
	int err = 0;

	for (; addr < end && !err; pudp++, addr = next) {
		pud_t pud = READ_ONCE(*pudp);

		next = pud_addr_end(addr, end);
		if (pud_none(pud))
			continue;
		if (pud_leaf(pud)) {
			/* Only DAX maps huge PUDs outside hugetlb: file data. */
			if (w->mode == AMBER_WALK_ALL)
				err = amber_runs_add(w, addr,
						     (next - addr) >> PAGE_SHIFT);
			continue;
		}
		if (pud_bad(pud))
			continue;
		err = amber_walk_pmd(w, pudp, addr, next);
	}
	return err;
}

static int amber_walk_range(struct amber_walk *w, unsigned long addr,
			    unsigned long end)
{
	pgd_t *pgdp = pgd_offset(w->mm, addr);
	unsigned long next, p4d_next;
	int err = 0;

	for (; addr < end && !err; pgdp++, addr = next) {
		unsigned long a = addr;
		p4d_t *p4dp;

		next = pgd_addr_end(addr, end);
		if (pgd_none(*pgdp) || pgd_bad(*pgdp))
			continue;
		p4dp = p4d_offset(pgdp, addr);
		for (; a < next && !err; p4dp++, a = p4d_next) {
			p4d_next = p4d_addr_end(a, next);
			if (p4d_none(*p4dp) || p4d_bad(*p4dp))
				continue;
			err = amber_walk_pud(w, p4dp, a, p4d_next);
		}
	}
	return err;
}

/*
 * Shared anonymous memory lives in the page cache of an internal shmem file.
 * A page holds data if that file has it, in memory or swapped out, whether
 * or not this process maps it right now (a process sharing the memory may
 * have written it, reclaim may have unmapped it).
 *
 * Entries are only tested, never referenced: the size of a large folio is
 * read without a reference, so it is only used to bound a run, clamped to a
 * PMD and to the VMA (a stale value can at worst add pages that read back
 * as zeros).
 */
static int amber_walk_shmem(struct amber_walk *w, struct vm_area_struct *vma)
{
	pgoff_t first = vma->vm_pgoff, last = first + vma_pages(vma) - 1;
	XA_STATE(xas, &vma->vm_file->f_mapping->i_pages, first);
	pgoff_t next = first;	/* first index not yet in a run */
	void *entry;
	int err = 0;

	rcu_read_lock();
	xas_for_each(&xas, entry, last) {
		pgoff_t start = xas.xa_index, end = start + 1;

		if (xas_retry(&xas, entry))
			continue;
		if (!xa_is_value(entry)) {
			unsigned long nr = folio_nr_pages(entry);

			nr = clamp_val(nr, 1, PTRS_PER_PMD);
			end = start - start % nr + nr;
		}
		start = max(start, next);
		end = min(end, last + 1);
		if (start >= end)
			continue;
		next = end;

		xas_pause(&xas);
		rcu_read_unlock();
		err = amber_runs_add(w, vma->vm_start + ((start - first) << PAGE_SHIFT),
				     end - start);
		cond_resched();
		rcu_read_lock();
		if (err)
			break;
	}
	rcu_read_unlock();
	return err;
}

static bool amber_vma_is_named(struct vm_area_struct *vma, const char *name)
{
	const char *n;

	if (vma->vm_file || !vma->vm_ops || !vma->vm_ops->name)
		return false;
	n = vma->vm_ops->name(vma);
	return n && !strcmp(n, name);
}

/*
 * Shared anonymous memory is backed by an internal shmem file named
 * "dev/zero" (shmem_zero_setup()); a '/' cannot occur in a user-made name.
 */
static bool amber_vma_is_anon_shmem(struct vm_area_struct *vma)
{
	struct file *file = vma->vm_file;

	return file && (vma->vm_flags & VM_SHARED) &&
	       file_inode(file)->i_sb->s_magic == TMPFS_MAGIC &&
	       !strcmp(file->f_path.dentry->d_name.name, "dev/zero");
}

static u32 amber_vma_flags(struct vm_area_struct *vma, struct mm_struct *mm)
{
	unsigned long f = vma->vm_flags;
	u32 flags = 0;

	if (f & (VM_SHARED | VM_MAYSHARE))
		flags |= AMBER_VMA_F_SHARED;
	if (f & VM_GROWSDOWN)
		flags |= AMBER_VMA_F_GROWSDOWN;
	if (f & VM_MAYWRITE)
		flags |= AMBER_VMA_F_MAYWRITE;
	if (f & VM_DONTCOPY)
		flags |= AMBER_VMA_F_DONTFORK;
	if (f & VM_DONTDUMP)
		flags |= AMBER_VMA_F_DONTDUMP;
	if (f & VM_LOCKED)
		flags |= AMBER_VMA_F_LOCKED;
	if (f & VM_HUGEPAGE)
		flags |= AMBER_VMA_F_HUGEPAGE;
	if (f & VM_NOHUGEPAGE)
		flags |= AMBER_VMA_F_NOHUGEPAGE;
	if (f & VM_SEQ_READ)
		flags |= AMBER_VMA_F_SEQ_READ;
	if (f & VM_RAND_READ)
		flags |= AMBER_VMA_F_RAND_READ;
	if (f & VM_WIPEONFORK)
		flags |= AMBER_VMA_F_WIPEONFORK;
	if (f & VM_MERGEABLE)
		flags |= AMBER_VMA_F_MERGEABLE;
	if (f & VM_LOCKONFAULT)
		flags |= AMBER_VMA_F_LOCKONFAULT;
	if (f & VM_NORESERVE)
		flags |= AMBER_VMA_F_NORESERVE;
	if (f & VM_ACCOUNT)
		flags |= AMBER_VMA_F_ACCOUNT;
	if (vma->vm_start <= mm->start_stack && mm->start_stack < vma->vm_end)
		flags |= AMBER_VMA_F_STACK;
	if (mm->brk > mm->start_brk && vma->vm_start < mm->brk &&
	    vma->vm_end > mm->start_brk)
		flags |= AMBER_VMA_F_HEAP;
	return flags;
}

static u32 amber_vma_prot(struct vm_area_struct *vma)
{
	return (vma->vm_flags & VM_READ ? PROT_READ : 0) |
	       (vma->vm_flags & VM_WRITE ? PROT_WRITE : 0) |
	       (vma->vm_flags & VM_EXEC ? PROT_EXEC : 0);
}

/* Consecutive VMAs mostly map the same file: stat it once. */
struct amber_stat_cache {
	struct file *file;
	struct kstat st;
};

static int amber_vma_file(struct amber_vma *v, struct file *file,
			  struct amber_stat_cache *sc, struct amber_err *e)
{
	v->path = amber_path_dup(&file->f_path);
	if (IS_ERR(v->path)) {
		int err = PTR_ERR(v->path);

		v->path = NULL;
		return amber_fail(e, err,
				  amber_msg("vma %llx-%llx: cannot resolve the mapped file's path",
					    v->start, v->end));
	}
	if (d_unlinked(file->f_path.dentry))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("vma %llx-%llx: %s is not supported yet",
					    v->start, v->end, v->path));
	if (sc->file != file) {
		amber_stat_file(file, &sc->st);
		sc->file = file;
	}
	v->dev = new_encode_dev(sc->st.dev);
	v->ino = sc->st.ino;
	v->file_size = sc->st.size;
	return 0;
}

/* Fills @v from @vma and says which of its pages to save. */
static int amber_vma_describe(struct amber_vma *v, struct vm_area_struct *vma,
			      struct mm_struct *mm, enum amber_walk_mode *mode,
			      struct amber_stat_cache *sc, struct amber_err *e)
{
	v->start = vma->vm_start;
	v->end = vma->vm_end;
	v->pgoff = vma->vm_pgoff;
	v->prot = amber_vma_prot(vma);
	v->flags = amber_vma_flags(vma, mm);
	*mode = AMBER_WALK_ALL;

	if (vma->vm_start == (unsigned long)mm->context.vdso) {
		v->flags |= AMBER_VMA_F_VDSO | AMBER_VMA_F_ANON;
		*mode = AMBER_WALK_SKIP;
		return 0;
	}
	if (amber_vma_is_named(vma, "[vvar]")) {
		v->flags |= AMBER_VMA_F_VVAR | AMBER_VMA_F_ANON;
		*mode = AMBER_WALK_SKIP;
		return 0;
	}
	if (is_vm_hugetlb_page(vma))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("vma %llx-%llx: hugetlb mappings are not supported yet",
					    v->start, v->end));
	if (vma->vm_flags & (VM_IO | VM_PFNMAP))
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("vma %llx-%llx: device mappings are not supported yet",
					    v->start, v->end));
	/*
	 * A userfaultfd registration lives in the userfaultfd, which another
	 * process may hold: restore could not bring it back.
	 */
	if (vma->vm_flags & __VM_UFFD_FLAGS)
		return amber_fail(e, -EOPNOTSUPP,
				  amber_msg("vma %llx-%llx: userfaultfd registrations are not supported yet",
					    v->start, v->end));
	if (!vma->vm_file) {
		v->flags |= AMBER_VMA_F_ANON;
		return 0;
	}
	if (amber_vma_is_anon_shmem(vma)) {
		struct inode *inode = file_inode(vma->vm_file);

		/*
		 * The shmem object's identity: VMAs of processes that share
		 * it (fork) report the same DEV/INO, so restore can map one
		 * object in all of them.
		 */
		v->flags |= AMBER_VMA_F_ANON | AMBER_VMA_F_SHMEM;
		v->dev = new_encode_dev(inode->i_sb->s_dev);
		v->ino = inode->i_ino;
		v->file_size = i_size_read(inode);
		*mode = AMBER_WALK_SHMEM;
		return 0;
	}
	if (v->flags & AMBER_VMA_F_SHARED)
		*mode = AMBER_WALK_SKIP;
	else
		*mode = AMBER_WALK_ANON;
	return amber_vma_file(v, vma->vm_file, sc, e);
}

const char *amber_mm_data_check(unsigned long rlim, unsigned long brk,
				unsigned long start_brk, unsigned long end_data,
				unsigned long start_data)
{
	if (check_data_rlimit(rlim, brk, start_brk, end_data, start_data))
		return "brk and data exceed RLIMIT_DATA";
	return NULL;
}

static void amber_mm_fields(struct amber_mm_state *st, struct mm_struct *mm)
{
	unsigned int i;

	st->start_code = mm->start_code;
	st->end_code = mm->end_code;
	st->start_data = mm->start_data;
	st->end_data = mm->end_data;
	st->start_brk = mm->start_brk;
	st->brk = mm->brk;
	st->start_stack = mm->start_stack;
	spin_lock(&mm->arg_lock);
	st->arg_start = mm->arg_start;
	st->arg_end = mm->arg_end;
	st->env_start = mm->env_start;
	st->env_end = mm->env_end;
	spin_unlock(&mm->arg_lock);
	st->vdso = (unsigned long)mm->context.vdso;

	BUILD_BUG_ON(ARRAY_SIZE(st->auxv) != ARRAY_SIZE(mm->saved_auxv));
	for (i = 0; i + 1 < AT_VECTOR_SIZE; i += 2) {
		st->auxv[i] = mm->saved_auxv[i];
		st->auxv[i + 1] = mm->saved_auxv[i + 1];
		if (mm->saved_auxv[i] == AT_NULL)
			break;
	}
	st->auxv_len = min_t(unsigned int, i + 2, AT_VECTOR_SIZE);
}

/*
 * Which pages of @vma are dirty, and whether its bits are cleared. Shared
 * memory is saved whole each time: its pages can be written through other
 * mappings, which no bit of this mm sees. So is the private memory of an mm
 * that has ever used KSM (MADV_MERGEABLE): merging a written page installs
 * the KSM page with a PTE that has no soft-dirty bit (replace_page()), and
 * unmerging keeps it so.
 */
static void amber_walk_vma(struct amber_walk *w, struct vm_area_struct *vma,
			   struct amber_track *t)
{
	bool shared = vma->vm_flags & VM_SHARED;

	w->vmap = vma;
	w->force = !(vma->vm_flags & VM_READ);
	w->all_dirty = !w->incremental || shared ||
		       (vma->vm_flags & VM_SOFTDIRTY) ||
		       test_bit(MMF_VM_MERGEABLE, &vma->vm_mm->flags);
	w->clear = t->clear && !shared;
	w->sig = (struct amber_vma_sig){
		.start = vma->vm_start,
		.end = vma->vm_end,
		.delta = vma->vm_start - (vma->vm_pgoff << PAGE_SHIFT),
		.anon_vma = vma->anon_vma,
		.file = vma->vm_file,
	};
	if (w->clear && t->sigs)
		t->sigs[t->nr_sigs++] = w->sig;
}

/*
 * Under mmap_read_lock, or mmap_write_lock when tracking: VMAs and the runs
 * of pages to save; with tracking, the soft-dirty bits are cleared.
 */
static int amber_mm_collect(struct amber_mm_state *st, struct amber_walk *w,
			    struct amber_track *t, struct amber_err *e)
{
	VMA_ITERATOR(vmi, w->mm, 0);
	struct amber_stat_cache sc = { };
	struct mm_struct *mm = w->mm;
	struct vm_area_struct *vma;
	enum amber_walk_mode mode;
	const char *msg;
	int err;

	mmap_assert_locked(mm);

	/* The default of VMAs mapped later: the image has no place for it. */
	if (mm->def_flags & VM_LOCKED)
		return amber_fail(e, -EOPNOTSUPP, "mlockall(MCL_FUTURE) is not supported yet");

	st->vmas = kvcalloc(max(mm->map_count, 1), sizeof(*st->vmas),
			    GFP_KERNEL);
	if (!st->vmas)
		return amber_fail(e, -ENOMEM, "out of memory for the VMA list");
	if (t->clear) {
		t->sigs = kvmalloc_array(max(mm->map_count, 1), sizeof(*t->sigs),
					 GFP_KERNEL);
		if (!t->sigs)
			return amber_fail(e, -ENOMEM, "out of memory for the VMA list");
	}

	amber_mm_fields(st, mm);
	msg = amber_mm_data_check(rlimit(RLIMIT_DATA), st->brk, st->start_brk, st->end_data,
				  st->start_data);
	if (msg)
		return amber_fail(e, -EOPNOTSUPP, msg);
	for_each_vma(vmi, vma) {
		if (st->nr_vmas >= mm->map_count)
			return amber_fail(e, -EAGAIN, "the VMA list changed during the checkpoint");
		err = amber_vma_describe(&st->vmas[st->nr_vmas++], vma, mm, &mode,
					 &sc, e);
		if (err)
			return err;
		if (mode == AMBER_WALK_SKIP)
			continue;
		w->mode = mode;
		w->vma = st->nr_vmas - 1;
		/*
		 * Clearing write-protects PTEs and relies on no fault
		 * running meanwhile: since 6.4 the mmap write lock alone
		 * does not keep out faults under the per-VMA lock.
		 */
		if (w->clear)
			amber_vma_start_write(vma);
		amber_walk_vma(w, vma, t);
		if (mode == AMBER_WALK_SHMEM)
			err = amber_walk_shmem(w, vma);
		else
			err = amber_walk_range(w, vma->vm_start, vma->vm_end);
		if (err)
			return amber_fail(e, err, "out of memory for the page list");
		/* New writes to this VMA fault and set soft-dirty again. */
		if (w->clear)
			amber_vm_flags_clear(vma, VM_SOFTDIRTY);
		cond_resched();
	}
	return 0;
}

/*
 * After clearing: no CPU may keep a writable TLB entry for a page that is
 * now write-protected, or writes through it would set no soft-dirty bit and
 * the page would be missing from the next incremental checkpoint, silently.
 *
 * Every thread of this mm is parked in amber's task_work (or past exit_mm())
 * while this runs, so none runs user code now; but the CPUs they ran on may
 * still cache the mm's translations: in their PCID slots, or loaded (lazy
 * TLB, or a CPU that goes straight from one thread of the mm to another,
 * where switch_mm_irqs_off() compares no tlb_gen at all). So, as
 * flush_tlb_mm_range() would (it is not exported): bump the mm's tlb_gen
 * (inc_mm_tlb_gen() is hidden from modules by #ifndef MODULE; this is its
 * body, a full barrier ordering the PTE writes before the new generation),
 * then flush every CPU's TLB, global entries included, with on_each_cpu().
 * The flush waits for every CPU (wait = 1), so when it returns no stale
 * writable entry is left anywhere. The cost is one IPI per CPU per tracking
 * checkpoint of each process.
 */
static void amber_flush_local(void *unused)
{
	__flush_tlb_all();
}

static void amber_mm_flush_tlb(struct mm_struct *mm)
{
	atomic64_inc_return(&mm->context.tlb_gen);
	on_each_cpu(amber_flush_local, NULL, 1);
}

/* Says what an arena error means. */
static int amber_arena_fail(struct amber_err *e, int err)
{
	switch (err) {
	case -ENOMEM:
		return amber_fail(e, err, "out of memory for the page buffer");
	case -ECANCELED:
		return amber_fail(e, err, "the checkpoint was cancelled");
	case -EINTR:
		return amber_fail(e, err, "interrupted while writing the pages file");
	default:
		return amber_fail(e, err, "writing the pages file failed");
	}
}

/*
 * Copies @len bytes of current's memory at @addr into the arena. Memory that
 * is not readable (PROT_NONE, write-only) is read with FOLL_FORCE.
 */
static int amber_copy_range(struct amber_arena *a, unsigned long addr,
			    size_t len, bool force, struct amber_err *e)
{
	while (len) {
		size_t n = len;
		void *dst = amber_arena_reserve(a, &n);

		if (IS_ERR(dst))
			return amber_arena_fail(e, PTR_ERR(dst));
		if (force ? access_process_vm(current, addr, dst, n, FOLL_FORCE) != n :
			    copy_from_user(dst, (const void __user *)addr, n) != 0)
			return amber_fail(e, -EFAULT,
					  amber_msg("memory at %lx could not be read", addr));
		amber_arena_commit(a, n);
		addr += n;
		len -= n;
	}
	return 0;
}

/*
 * Copies the data of @run into the arena: pages saved copy-on-write (the
 * next ones of w->snaps, from *@snap on) only get their place reserved.
 */
static int amber_copy_run(struct amber_arena *a, const struct amber_run *run,
			  struct amber_walk *w, size_t *snap,
			  const bool *cancelled, struct amber_err *e)
{
	struct amber_page_run hdr = {
		.addr = run->addr,
		.nr_pages = run->nr,
		.flags = run->parent ? AMBER_RUN_F_PARENT : 0,
	};
	unsigned long addr = run->addr;
	unsigned long end = run->addr + run->nr * PAGE_SIZE;
	int err;

	err = amber_arena_append(a, &hdr, sizeof(hdr));
	if (err)
		return amber_arena_fail(e, err);
	if (run->parent)
		return 0;
	while (addr < end) {
		size_t len = min_t(size_t, end - addr, AMBER_CHUNK_SIZE);

		if (READ_ONCE(*cancelled))
			return amber_fail(e, -ECANCELED, "the checkpoint was cancelled");
		if (fatal_signal_pending(current))
			return amber_fail(e, -EINTR, "the process was killed");

		if (*snap < w->nr_snaps && w->snaps[*snap].addr == addr) {
			/* The arena now owns the reference. */
			err = amber_arena_defer_page(a, w->snaps[(*snap)++].page);
			if (err)
				return amber_arena_fail(e, err);
			addr += PAGE_SIZE;
			continue;
		}
		if (*snap < w->nr_snaps && w->snaps[*snap].addr < addr + len)
			len = w->snaps[*snap].addr - addr;
		err = amber_copy_range(a, addr, len, run->force, e);
		if (err)
			return err;
		addr += len;
		cond_resched();
	}
	return 0;
}

/*
 * RLIMIT_FSIZE. Most of the pages file is written by the requester after the
 * target resumed (amber_mm_write_pages() checks the requester's limit, so
 * that it gets EFBIG rather than SIGXFSZ), but the target writes part of it
 * itself when memory runs short, and exceeding its limit would queue SIGXFSZ
 * to the target. The target's limit is therefore still checked up front.
 */
static int amber_pages_check_fsize(unsigned long limit, u64 size,
				   const char *whose, struct amber_err *e)
{
	if (limit == RLIM_INFINITY || size <= limit)
		return 0;
	return amber_fail(e, -EFBIG,
			  amber_msg("the pages file needs %llu bytes, over %s RLIMIT_FSIZE (%lu)",
				    size, whose, limit));
}

static u64 amber_pages_size(const struct amber_walk *w)
{
	u64 size = sizeof(struct amber_pages_hdr);
	size_t i;

	for (i = 0; i < w->nr_runs; i++)
		size += sizeof(struct amber_page_run) +
			(w->runs[i].parent ? 0 : w->runs[i].nr * PAGE_SIZE);
	return size;
}

/* Copies the pages file's header, run headers and page data into the arena. */
static int amber_pages_copy(struct amber_mm_state *st, struct amber_walk *w,
			    const bool *cancelled, struct amber_err *e)
{
	struct amber_pages_hdr hdr = {
		.magic = AMBER_PAGES_MAGIC,
		.version = AMBER_PAGES_VERSION,
		.page_size = PAGE_SIZE,
	};
	struct amber_arena *a = &st->arena;
	size_t i;
	int err;

	err = amber_pages_check_fsize(rlimit(RLIMIT_FSIZE),
				      a->pos + amber_pages_size(w),
				      "the process's", e);
	if (err)
		return err;

	err = amber_arena_append(a, &hdr, sizeof(hdr));
	if (err)
		return amber_arena_fail(e, err);
	for (i = 0; i < w->nr_runs; i++) {
		const struct amber_run *run = &w->runs[i];

		err = amber_copy_run(a, run, w, &w->snaps_done, cancelled, e);
		if (err)
			return err;
		st->vmas[run->vma].pages += run->nr;
		if (run->parent)
			st->pages_parent_nr += run->nr;
		else
			st->pages_nr += run->nr;
	}
	st->pages_bytes = a->bytes;
	return 0;
}

/* Drops the references the arena did not take over (after a failure). */
static void amber_snaps_put(struct amber_walk *w)
{
	size_t i;

	for (i = w->snaps_done; i < w->nr_snaps; i++)
		put_page(w->snaps[i].page);
	kvfree(w->snaps);
}

int amber_mm_capture(struct amber_mm_state *st, struct amber_track *t,
		     const bool *cancelled, struct amber_err *e)
{
	struct amber_walk w = {
		.mm = current->mm,
		.incremental = t->incremental,
		.prev = t->prev,
		.nr_prev = t->prev ? t->nr_prev : 0,
	};
	int err;

	if (t->clear) {
		w.pt_pages = kmalloc_array(PTRS_PER_PTE, sizeof(*w.pt_pages),
					   GFP_KERNEL);
		if (!w.pt_pages)
			return amber_fail(e, -ENOMEM, "out of memory for the page list");
		/* Excludes faults, GUP and page table changes while clearing. */
		if (mmap_write_lock_killable(w.mm)) {
			kfree(w.pt_pages);
			return amber_fail(e, -EINTR, "the process was killed");
		}
		err = amber_mm_collect(st, &w, t, e);
		/* Also after a failure: some bits may have been cleared. */
		amber_mm_flush_tlb(w.mm);
		mmap_write_unlock(w.mm);
	} else {
		mmap_read_lock(w.mm);
		err = amber_mm_collect(st, &w, t, e);
		mmap_read_unlock(w.mm);
	}

	if (!err)
		err = amber_pages_copy(st, &w, cancelled, e);
	amber_snaps_put(&w);
	kfree(w.pt_pages);
	kvfree(w.runs);
	return err;
}

int amber_mm_write_pages(struct amber_mm_state *st, struct amber_err *e)
{
	struct amber_arena *a = &st->arena;
	int err;

	err = amber_pages_check_fsize(rlimit(RLIMIT_FSIZE),
				      a->pos + a->held, "the caller's", e);
	if (!err) {
		err = amber_arena_flush(a);
		if (err)
			amber_arena_fail(e, err);
		else
			a->file->f_pos = a->pos;
	}
	/* Give the memory back now rather than when the request goes. */
	amber_arena_free(a);
	return err;
}

void amber_mm_init(struct amber_mm_state *st)
{
	amber_arena_init(&st->arena);
}

void amber_mm_prepare(struct amber_mm_state *st, struct task_struct *task,
		      struct file *pages, u64 parent_id, bool track,
		      const bool *cancelled)
{
	struct mm_struct *mm;
	u64 nr, hint;

	amber_arena_start(&st->arena, pages, pages->f_pos, cancelled);
	mm = get_task_mm(task);
	if (!mm)
		return;
	/*
	 * Pages that can hold data; file pages that are not COWed are not
	 * saved. A tracked checkpoint saves anonymous pages copy-on-write:
	 * they take no room in the arena (amber_arena_defer_page()), only
	 * shmem and swapped-out pages are copied while the target is stopped.
	 * (An anonymous page that cannot be shared, pinned for DMA, is copied
	 * too: the target allocates its room.)
	 */
	nr = get_mm_counter(mm, MM_SHMEMPAGES) + get_mm_counter(mm, MM_SWAPENTS);
	if (!track)
		nr += get_mm_counter(mm, MM_ANONPAGES);
	mmput(mm);
	/*
	 * An incremental checkpoint copies what was written since the last
	 * one: about as much as last time, if known, else a quarter. The
	 * target allocates what is missing.
	 */
	if (parent_id) {
		hint = amber_track_hint(task_pid(task), parent_id);
		nr = hint ? min(nr, 2 * hint + 256) : nr / 4;
	}
	/* Plus room for the headers of a few hundred runs. */
	amber_arena_prealloc(&st->arena, nr * PAGE_SIZE + SZ_64K);
}

void amber_mm_free(struct amber_mm_state *st)
{
	unsigned int i;

	for (i = 0; i < st->nr_vmas; i++)
		kfree(st->vmas[i].path);
	kvfree(st->vmas);
	st->vmas = NULL;
	st->nr_vmas = 0;
	amber_arena_free(&st->arena);
}
