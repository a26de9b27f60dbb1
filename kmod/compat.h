/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel version differences amber builds across (Debian's 6.1 and 6.12),
 * and the only place LINUX_VERSION_CODE is tested. Kbuild force-includes this
 * header first in every module file. One helper or macro per difference, each
 * with a comment naming the kernel change behind it; the facts are checked
 * against both kernels' sources (Documentation/design.md, "Kernels").
 */
#ifndef AMBER_COMPAT_H
#define AMBER_COMPAT_H

/*
 * The message prefix, defined before any header can define the default one;
 * files that define it too (main.c, ...) define it identically.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/version.h>

/* The one test of the kernel version: @major.@minor or newer. */
#define AMBER_KERNEL_AT_LEAST(major, minor) \
	(LINUX_VERSION_CODE >= KERNEL_VERSION(major, minor, 0))
#include <linux/capability.h>
#include <linux/fdtable.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/mount.h>
#include <linux/posix-timers.h>
#include <linux/rcupdate.h>
#include <linux/rmap.h>
#include <linux/sched/signal.h>
#include <linux/swap.h>
#include <linux/swapops.h>
#include <net/inet_sock.h>
#include <net/tcp.h>

/*
 * kernel_cap_t: a u32 pair (cap[0], cap[1]) in 6.1, one u64 (val) since 6.3
 * ("capability: just use a 'u64' instead of a 'u32[2]' array").
 */
static inline u64 amber_cap_to_u64(kernel_cap_t cap)
{
#if AMBER_KERNEL_AT_LEAST(6, 3)
	return cap.val;
#else
	BUILD_BUG_ON(_KERNEL_CAPABILITY_U32S != 2);
	return (u64)cap.cap[1] << 32 | cap.cap[0];
#endif
}

static inline void amber_cap_from_u64(kernel_cap_t *cap, u64 v)
{
#if AMBER_KERNEL_AT_LEAST(6, 3)
	cap->val = v;
#else
	cap->cap[0] = lower_32_bits(v);
	cap->cap[1] = upper_32_bits(v);
#endif
}

/*
 * The next open file of @task at or after *@fd, with a reference, or NULL
 * past the last one. 6.1 has task_lookup_next_fd_rcu() (no reference; the
 * caller's get_file_rcu() fails for a file being closed, which is skipped).
 * 6.7 made files SLAB_TYPESAFE_BY_RCU ("file: convert to
 * SLAB_TYPESAFE_BY_RCU"): the lookup became task_lookup_next_fdget_rcu(),
 * which takes the reference itself, and get_file_rcu() now takes a
 * struct file __rcu **.
 */
static inline struct file *amber_task_next_file(struct task_struct *task,
						unsigned int *fd)
{
	struct file *file;

	rcu_read_lock();
#if AMBER_KERNEL_AT_LEAST(6, 7)
	file = task_lookup_next_fdget_rcu(task, fd);
#else
	for (;; (*fd)++) {
		file = task_lookup_next_fd_rcu(task, fd);
		if (!file || get_file_rcu(file))
			break;
	}
#endif
	rcu_read_unlock();
	return file;
}

/*
 * mm->exe_file with a reference, or NULL (get_mm_exe_file() is not
 * exported in either kernel). get_file_rcu() took the file in 6.1 and
 * takes the __rcu pointer's address since 6.7 (see above).
 */
static inline struct file *amber_get_mm_exe_file(struct mm_struct *mm)
{
	struct file *exe;

	rcu_read_lock();
#if AMBER_KERNEL_AT_LEAST(6, 7)
	exe = get_file_rcu(&mm->exe_file);
#else
	exe = rcu_dereference(mm->exe_file);
	if (exe && !get_file_rcu(exe))
		exe = NULL;
#endif
	rcu_read_unlock();
	return exe;
}

/*
 * signal->posix_timers: a list_head in 6.1, an hlist_head by 6.12
 * ("posix-timers: Convert timer list to hlist", 6.10); k_itimer.list
 * follows it.
 */
#if AMBER_KERNEL_AT_LEAST(6, 10)
#define amber_for_each_posix_timer(timr, sig) \
	hlist_for_each_entry(timr, &(sig)->posix_timers, list)
#else
#define amber_for_each_posix_timer(timr, sig) \
	list_for_each_entry(timr, &(sig)->posix_timers, list)
#endif

/*
 * inode_permission() on a file's inode, through the file's mount's idmapping:
 * a user_namespace (file_mnt_user_ns()) in 6.1, a struct mnt_idmap
 * (file_mnt_idmap()) since 6.3 ("fs: port inode_permission() to mnt_idmap").
 */
static inline int amber_file_permission(struct file *file, int mask)
{
#if AMBER_KERNEL_AT_LEAST(6, 3)
	return inode_permission(file_mnt_idmap(file), file_inode(file), mask);
#else
	return inode_permission(file_mnt_user_ns(file), file_inode(file), mask);
#endif
}

/*
 * vma->vm_flags became read-only in 6.3 ("mm: introduce vma->vm_flags
 * wrapper functions"): writers go through vm_flags_set()/vm_flags_clear(),
 * which also write-lock the VMA against page faults that hold only the
 * per-VMA lock (CONFIG_PER_VMA_LOCK, 6.4, "mm: introduce per-VMA lock"):
 * holding mmap_lock for writing no longer keeps those faults out. 6.1 has
 * neither; the mmap write lock excludes every fault there.
 */
static inline void amber_vm_flags_set(struct vm_area_struct *vma,
				      vm_flags_t flags)
{
#if AMBER_KERNEL_AT_LEAST(6, 3)
	vm_flags_set(vma, flags);
#else
	vma->vm_flags |= flags;
#endif
}

static inline void amber_vm_flags_clear(struct vm_area_struct *vma,
					vm_flags_t flags)
{
#if AMBER_KERNEL_AT_LEAST(6, 3)
	vm_flags_clear(vma, flags);
#else
	vma->vm_flags &= ~flags;
#endif
}

/*
 * Write-locks a VMA against per-VMA-lock page faults (vma_start_write(),
 * 6.4, "mm: introduce per-VMA lock"), under the mmap write lock; released
 * when that is. Nothing to do in 6.1, where faults always take mmap_lock.
 */
static inline void amber_vma_start_write(struct vm_area_struct *vma)
{
#if AMBER_KERNEL_AT_LEAST(6, 4)
	vma_start_write(vma);
#endif
}

/*
 * Marks an exclusive anonymous page mapped by a PTE (or the huge page of a
 * PMD, @head) possibly shared, or fails (-EBUSY) if it may be pinned.
 * page_try_share_anon_rmap() in 6.1; folio_try_share_anon_rmap_pte() and
 * _pmd() since 6.8 ("mm/rmap: introduce folio_try_share_anon_rmap_*()"
 * and "mm/rmap: remove page_try_share_anon_rmap()").
 */
static inline int amber_try_share_anon_pte(struct page *page)
{
#if AMBER_KERNEL_AT_LEAST(6, 8)
	return folio_try_share_anon_rmap_pte(page_folio(page), page);
#else
	return page_try_share_anon_rmap(page);
#endif
}

static inline int amber_try_share_anon_pmd(struct page *head)
{
#if AMBER_KERNEL_AT_LEAST(6, 8)
	return folio_try_share_anon_rmap_pmd(page_folio(head), head);
#else
	return page_try_share_anon_rmap(head);
#endif
}

/*
 * Splits the huge PMD mapping @addr of @mm into a page table (the huge page
 * itself stays one folio), through GUP's FOLL_SPLIT_PMD, as uprobes does:
 * split_huge_pmd() (__split_huge_pmd()) is exported by neither kernel.
 * FOLL_NOFAULT: nothing is faulted in if the PMD changed meanwhile; no
 * reference is taken (no pages array). Returns 1 when the address is
 * mapped, else a negative errno. The caller holds mmap_lock.
 * get_user_pages_remote() lost its vmas argument in 6.5 ("mm/gup: remove
 * vmas parameter from get_user_pages_remote()").
 */
static inline long amber_split_huge_pmd(struct mm_struct *mm, unsigned long addr)
{
	unsigned int flags = FOLL_FORCE | FOLL_NOFAULT | FOLL_SPLIT_PMD;

#if AMBER_KERNEL_AT_LEAST(6, 5)
	return get_user_pages_remote(mm, addr, 1, flags, NULL, NULL);
#else
	return get_user_pages_remote(mm, addr, 1, flags, NULL, NULL, NULL);
#endif
}

/*
 * pte_offset_map() and pte_offset_map_lock(): plain inline mappings in 6.1,
 * never NULL. Since 6.5 ("mm/pgtable: allow pte_offset_map[_lock]() to
 * fail") they return NULL when there is no page table at the PMD any more
 * (none, huge, migrating), hold rcu_read_lock() until pte_unmap(), and are
 * implemented by __pte_offset_map() and __pte_offset_map_lock() of
 * mm/pgtable-generic.c, which 6.12 does not export. These are those two,
 * for x86-64 (no CONFIG_HIGHPTE: the table is in the direct map), minus
 * pmd_clear_bad() on a bad PMD (not exported; the PMD is left as it is and
 * treated as no table). Unmap with pte_unmap() / pte_unmap_unlock() as usual.
 */
#if AMBER_KERNEL_AT_LEAST(6, 5)
static inline pte_t *amber_pte_offset_map_pmd(pmd_t *pmdp, unsigned long addr,
					      pmd_t *pmdvalp)
{
	pmd_t pmdval;

	rcu_read_lock();
	pmdval = pmdp_get_lockless(pmdp);
	*pmdvalp = pmdval;
	if (unlikely(pmd_none(pmdval) || is_pmd_migration_entry(pmdval) ||
		     pmd_trans_huge(pmdval) || pmd_devmap(pmdval) ||
		     pmd_bad(pmdval))) {
		rcu_read_unlock();
		return NULL;
	}
	return pte_offset_kernel(&pmdval, addr);
}

static inline pte_t *amber_pte_offset_map(pmd_t *pmdp, unsigned long addr)
{
	pmd_t pmdval;

	return amber_pte_offset_map_pmd(pmdp, addr, &pmdval);
}

static inline pte_t *amber_pte_offset_map_lock(struct mm_struct *mm,
					       pmd_t *pmdp, unsigned long addr,
					       spinlock_t **ptlp)
{
	spinlock_t *ptl;	/* the table's lock, taken here */
	pmd_t pmdval;
	pte_t *pte;

	for (;;) {
		pte = amber_pte_offset_map_pmd(pmdp, addr, &pmdval);
		if (unlikely(!pte))
			return NULL;
		ptl = pte_lockptr(mm, &pmdval);
		spin_lock(ptl);
		if (likely(pmd_same(pmdval, pmdp_get_lockless(pmdp)))) {
			*ptlp = ptl;
			return pte;
		}
		pte_unmap_unlock(pte, ptl);
	}
}
#else
#define amber_pte_offset_map(pmdp, addr) pte_offset_map(pmdp, addr)
#define amber_pte_offset_map_lock(mm, pmdp, addr, ptlp) \
	pte_offset_map_lock(mm, pmdp, addr, ptlp)
#endif

/*
 * For kmod/inet.c (issue 14). The IPv4 socket options that were bitfields of
 * struct inet_sock in 6.1 (cmsg_flags, freebind, transparent, ...) are bits
 * of the atomic inet->inet_flags since 6.6 (the "inet: move inet->... to
 * inet->inet_flags" series), read with inet_cmsg_flags() / inet_test_bit().
 */
static inline unsigned long amber_inet_cmsg_flags(struct sock *sk)
{
#if AMBER_KERNEL_AT_LEAST(6, 6)
	return inet_cmsg_flags(inet_sk(sk));
#else
	return inet_sk(sk)->cmsg_flags;
#endif
}

static inline bool amber_inet_freebind(struct sock *sk)
{
#if AMBER_KERNEL_AT_LEAST(6, 6)
	return inet_test_bit(FREEBIND, sk);
#else
	return inet_sk(sk)->freebind;
#endif
}

static inline bool amber_inet_transparent(struct sock *sk)
{
#if AMBER_KERNEL_AT_LEAST(6, 6)
	return inet_test_bit(TRANSPARENT, sk);
#else
	return inet_sk(sk)->transparent;
#endif
}

/*
 * What getsockopt(TCP_TIMESTAMP) returns, the value a repaired socket is
 * given back with setsockopt(TCP_TIMESTAMP). 6.1: tcp_time_stamp_raw() +
 * tsoffset, in milliseconds. Since 6.7 ("tcp: add support for usec
 * resolution in TCP TS values") a socket may use microsecond timestamps
 * (tp->tcp_usec_ts): the clock is tcp_clock_ts(usec), tcp_time_stamp_raw()
 * is gone, and the lowest bit of the value says whether the socket uses
 * microseconds (setsockopt reads it back the same way).
 */
static inline u32 amber_tcp_timestamp(const struct tcp_sock *tp)
{
#if AMBER_KERNEL_AT_LEAST(6, 7)
	u32 val = tcp_clock_ts(tp->tcp_usec_ts) + READ_ONCE(tp->tsoffset);

	return tp->tcp_usec_ts ? val | 1 : val & ~1U;
#else
	return tcp_time_stamp_raw() + READ_ONCE(tp->tsoffset);
#endif
}

/*
 * vfs_iter_write() of a kernel iov_iter: 6.1's leaves file_start_write() to
 * its caller (as do_splice() does for iter_file_splice_write()); since 6.8
 * ("fs: move file_start_write() into vfs_iter_write()") it takes it itself.
 */
static inline ssize_t amber_iter_write(struct file *file, struct iov_iter *iter,
				       loff_t *pos)
{
#if AMBER_KERNEL_AT_LEAST(6, 8)
	return vfs_iter_write(file, iter, pos, 0);
#else
	ssize_t n;

	file_start_write(file);
	n = vfs_iter_write(file, iter, pos, 0);
	file_end_write(file);
	return n;
#endif
}

#endif /* AMBER_COMPAT_H */
