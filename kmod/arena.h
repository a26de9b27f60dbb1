/* SPDX-License-Identifier: GPL-2.0 */
/* A memory buffer for the pages file, filled while the target is stopped. */
#ifndef _AMBER_ARENA_H
#define _AMBER_ARENA_H

#include <linux/list.h>
#include <linux/types.h>

struct file;

/*
 * The exact byte stream of the pages file, held in a list of high-order
 * chunks until it is written out. The target fills it while stopped; the
 * requester writes it to @file after the target has resumed. If memory runs
 * short, the filler writes out what is held and reuses the chunks.
 */
/*
 * A page of the pages file that is written from the page itself when the
 * arena is flushed: the target only took a reference on it (see
 * amber_arena_defer_page()). It takes no room in the chunks.
 */
struct amber_fixup {
	void *dst;		/* its place: before the chunk byte here */
	struct page *page;	/* reference */
	unsigned int off, len;	/* part of @page copied to @dst */
};

struct amber_arena {
	struct list_head chunks;	/* struct amber_chunk, in file order */
	struct amber_chunk *cur;	/* being filled; NULL: start at the first */
	struct file *file;		/* reference held by the request */
	loff_t pos;			/* file position of the first held byte */
	u64 bytes;			/* appended since amber_arena_start() */
	u64 held;			/* appended, not yet written */
	u64 mem;			/* memory held by the chunks */
	u64 budget;			/* at most this much memory is held */
	unsigned int order;		/* largest chunk order still tried */
	const bool *cancelled;		/* polled while writing */
	struct amber_fixup *fix;	/* deferred copies, not yet done */
	size_t nr_fix, cap_fix;
	struct bio_vec *bv;		/* AMBER_ARENA_BVECS, for writing them */
};

void amber_arena_init(struct amber_arena *a);
void amber_arena_start(struct amber_arena *a, struct file *file, loff_t pos,
		       const bool *cancelled);
void amber_arena_prealloc(struct amber_arena *a, u64 bytes);
void *amber_arena_reserve(struct amber_arena *a, size_t *len);
void amber_arena_commit(struct amber_arena *a, size_t len);
int amber_arena_append(struct amber_arena *a, const void *buf, size_t len);
/*
 * Appends @page's contents to the stream without copying them and without
 * room in the chunks: amber_arena_flush() writes them from @page itself at
 * their place. Takes over the caller's reference to @page (dropped on
 * failure too).
 */
int amber_arena_defer_page(struct amber_arena *a, struct page *page);
int amber_arena_flush(struct amber_arena *a);
void amber_arena_free(struct amber_arena *a);

#endif /* _AMBER_ARENA_H */
