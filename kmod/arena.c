// SPDX-License-Identifier: GPL-2.0
/*
 * The pages file arena: the target copies its pages into kernel memory while
 * it is stopped, which is only as slow as memcpy, and the requester writes
 * them to the pages file after the target has resumed, so the target's pause
 * does not include any file I/O.
 *
 * Chunks are high-order page blocks (1 MiB first, smaller when memory is
 * fragmented), allocated without retrying hard and without warnings: a
 * checkpoint must not push the machine into reclaim storms or the OOM
 * killer. The arena never holds more than half of the memory that was
 * available when it started. When no chunk can be had, whoever is filling
 * the arena writes out what it holds right there and reuses the chunks:
 * slower, still correct.
 */
#include <linux/bvec.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/uio.h>

#include "arena.h"
#include "array.h"

#define AMBER_ARENA_ORDER	8	/* 1 MiB with 4 KiB pages */
#define AMBER_ARENA_BVECS	256	/* deferred pages per write */

struct amber_chunk {
	struct list_head node;	/* on the arena's list */
	void *data;
	unsigned int order;
	size_t used;		/* bytes of the pages file held */
};

static size_t amber_chunk_size(const struct amber_chunk *c)
{
	return PAGE_SIZE << c->order;
}

void amber_arena_init(struct amber_arena *a)
{
	INIT_LIST_HEAD(&a->chunks);
}

void amber_arena_start(struct amber_arena *a, struct file *file, loff_t pos,
		       const bool *cancelled)
{
	a->file = file;
	a->pos = pos;
	a->cancelled = cancelled;
	a->order = AMBER_ARENA_ORDER;
	a->budget = (u64)max(si_mem_available(), 0L) * PAGE_SIZE / 2;
}

static struct amber_chunk *amber_chunk_alloc(struct amber_arena *a)
{
	const gfp_t gfp = GFP_KERNEL | __GFP_NORETRY | __GFP_NOWARN;
	struct amber_chunk *c;
	struct page *page;
	int order;

	c = kmalloc(sizeof(*c), GFP_KERNEL | __GFP_NOWARN);
	if (!c)
		return NULL;
	for (order = a->order; order >= 0; order--) {
		if (a->mem + (PAGE_SIZE << order) > a->budget)
			continue;
		page = alloc_pages(gfp, order);
		if (page)
			break;
	}
	if (order < 0) {
		kfree(c);
		return NULL;
	}
	/* Do not retry orders that just failed for every chunk to come. */
	a->order = order;
	a->mem += PAGE_SIZE << order;
	c->data = page_address(page);
	c->order = order;
	c->used = 0;
	return c;
}

/*
 * Allocates chunks for about @bytes ahead of time, in the caller's context,
 * so that the target does not spend its pause allocating (and, with
 * init_on_alloc, zeroing) memory. Best effort: the target allocates what is
 * missing.
 */
void amber_arena_prealloc(struct amber_arena *a, u64 bytes)
{
	struct amber_chunk *c;

	while (a->mem < bytes && !fatal_signal_pending(current)) {
		c = amber_chunk_alloc(a);
		if (!c)
			break;
		list_add_tail(&c->node, &a->chunks);
		cond_resched();
	}
}

/* Moves to the next chunk: a free one left by a flush, or a new one. */
static int amber_arena_next(struct amber_arena *a)
{
	struct amber_chunk *c;

	if (a->cur && !list_is_last(&a->cur->node, &a->chunks)) {
		a->cur = list_next_entry(a->cur, node);
		return 0;
	}
	if (!a->cur && !list_empty(&a->chunks)) {
		a->cur = list_first_entry(&a->chunks, struct amber_chunk, node);
		return 0;
	}
	c = amber_chunk_alloc(a);
	if (!c)
		return -ENOMEM;
	list_add_tail(&c->node, &a->chunks);
	a->cur = c;
	return 0;
}

/*
 * Returns room for up to *@len bytes at the end of the stream, and sets
 * *@len to the room given (at least one byte). Nothing is appended until
 * amber_arena_commit(). Writes out what the arena holds if it cannot grow.
 */
void *amber_arena_reserve(struct amber_arena *a, size_t *len)
{
	struct amber_chunk *c = a->cur;
	int err;

	if (!c || c->used == amber_chunk_size(c)) {
		err = amber_arena_next(a);
		if (err == -ENOMEM && a->mem) {
			err = amber_arena_flush(a);
			if (!err)
				err = amber_arena_next(a);
		}
		if (err)
			return ERR_PTR(err);
		c = a->cur;
	}
	*len = min(*len, amber_chunk_size(c) - c->used);
	return c->data + c->used;
}

void amber_arena_commit(struct amber_arena *a, size_t len)
{
	a->cur->used += len;
	a->bytes += len;
	a->held += len;
}

int amber_arena_append(struct amber_arena *a, const void *buf, size_t len)
{
	while (len) {
		size_t n = len;
		void *dst = amber_arena_reserve(a, &n);

		if (IS_ERR(dst))
			return PTR_ERR(dst);
		memcpy(dst, buf, n);
		amber_arena_commit(a, n);
		buf += n;
		len -= n;
	}
	return 0;
}

static int amber_arena_add_fixup(struct amber_arena *a, void *dst,
				 struct page *page, unsigned int off,
				 unsigned int len)
{
	if (amber_array_grow((void **)&a->fix, a->nr_fix, &a->cap_fix,
			     sizeof(*a->fix), 1024, GFP_KERNEL))
		return -ENOMEM;
	a->fix[a->nr_fix++] = (struct amber_fixup){
		.dst = dst, .page = page, .off = off, .len = len,
	};
	return 0;
}

int amber_arena_defer_page(struct amber_arena *a, struct page *page)
{
	int err = 0;

	/* The place is where the next byte would go; it takes no room. */
	if (!a->cur)
		err = amber_arena_next(a);
	if (!err)
		err = amber_arena_add_fixup(a, a->cur->data + a->cur->used, page, 0,
					    PAGE_SIZE);
	if (err) {
		put_page(page);
		return err;
	}
	a->bytes += PAGE_SIZE;
	a->held += PAGE_SIZE;
	return 0;
}

/* Drops the references of copies that will not be done. */
static void amber_arena_drop_fixups(struct amber_arena *a)
{
	size_t i;

	for (i = 0; i < a->nr_fix; i++)
		put_page(a->fix[i].page);
	kvfree(a->fix);
	a->fix = NULL;
	a->nr_fix = 0;
	a->cap_fix = 0;
}

static int amber_arena_write(struct amber_arena *a, const void *buf, size_t len)
{
	ssize_t n;

	if (READ_ONCE(*a->cancelled))
		return -ECANCELED;
	if (fatal_signal_pending(current))
		return -EINTR;
	n = kernel_write(a->file, buf, len, &a->pos);
	if (n < 0)
		return n;
	return n == len ? 0 : -EIO;
}

/*
 * Writes the deferred pages from fix[*j] on that go at @p, straight from
 * the pages themselves, up to AMBER_ARENA_BVECS of them in one write of a
 * bio_vec iterator (the path splice() takes from a pipe of user pages: the
 * file system copies each page once, as for a kernel buffer). Without the
 * bio_vec array (no memory for it), pages that follow each other in memory
 * (the subpages of a huge page) go in one write of a kernel buffer.
 */
static int amber_arena_write_fixups(struct amber_arena *a, size_t *j, const void *p)
{
	const struct amber_fixup *f = &a->fix[*j];
	const void *src = page_address(f->page) + f->off;
	size_t len = f->len, k = *j + 1;
	struct iov_iter iter;
	unsigned int n = 0;
	ssize_t done;
	int err;

	if (!a->bv) {
		while (k < a->nr_fix && a->fix[k].dst == p &&
		       page_address(a->fix[k].page) + a->fix[k].off == src + len)
			len += a->fix[k++].len;
		err = amber_arena_write(a, src, len);
		if (err)
			return err;
		a->held -= len;
		*j = k;
		return 0;
	}
	len = 0;
	for (k = *j; k < a->nr_fix && a->fix[k].dst == p && n < AMBER_ARENA_BVECS; k++) {
		f = &a->fix[k];
		a->bv[n].bv_page = f->page;
		a->bv[n].bv_offset = f->off;
		a->bv[n].bv_len = f->len;
		len += f->len;
		n++;
	}
	if (READ_ONCE(*a->cancelled))
		return -ECANCELED;
	if (fatal_signal_pending(current))
		return -EINTR;
	iov_iter_bvec(&iter, ITER_SOURCE, a->bv, n, len);
	done = amber_iter_write(a->file, &iter, &a->pos);
	if (done < 0)
		return done;
	if (done != len)
		return -EIO;
	a->held -= len;
	*j = k;
	return 0;
}

/*
 * Writes what the arena holds to the file at the arena's position, in the
 * calling task's context (its RLIMIT_FSIZE applies), and empties the chunks
 * for reuse. A deferred page is written from the page itself where its
 * place in the stream is (it takes no room in the chunks), so it goes from
 * the target's memory to the file in one copy. Stops early when the
 * checkpoint is cancelled or the caller is killed.
 */
int amber_arena_flush(struct amber_arena *a)
{
	struct amber_chunk *c;
	size_t i, j = 0;
	int err;

	if (a->nr_fix && !a->bv)
		a->bv = kmalloc_array(AMBER_ARENA_BVECS, sizeof(*a->bv),
				      GFP_KERNEL | __GFP_NOWARN);

	list_for_each_entry(c, &a->chunks, node) {
		void *p = c->data, *end = c->data + c->used;

		for (;;) {
			void *next = end;

			if (j < a->nr_fix && a->fix[j].dst == p) {
				err = amber_arena_write_fixups(a, &j, p);
				if (err)
					return err;
				continue;
			}
			if (p == end)
				break;
			if (j < a->nr_fix && a->fix[j].dst > p && a->fix[j].dst < end)
				next = a->fix[j].dst;
			err = amber_arena_write(a, p, next - p);
			if (err)
				return err;
			a->held -= next - p;
			p = next;
		}
		c->used = 0;
		cond_resched();
	}
	if (WARN_ON_ONCE(j != a->nr_fix))
		return -EIO;
	for (i = 0; i < a->nr_fix; i++)
		put_page(a->fix[i].page);
	a->nr_fix = 0;
	a->cur = NULL;
	return 0;
}

void amber_arena_free(struct amber_arena *a)
{
	struct amber_chunk *c, *tmp;

	amber_arena_drop_fixups(a);
	kfree(a->bv);
	a->bv = NULL;
	list_for_each_entry_safe(c, tmp, &a->chunks, node) {
		list_del(&c->node);
		free_pages((unsigned long)c->data, c->order);
		kfree(c);
	}
	a->cur = NULL;
	a->mem = 0;
}
