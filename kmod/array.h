/* SPDX-License-Identifier: GPL-2.0 */
/* Growing kvmalloc'ed arrays. */
#ifndef _AMBER_ARRAY_H
#define _AMBER_ARRAY_H

#include <linux/mm.h>
#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/string.h>

/*
 * Makes room for one more element in *@arr, an array of @size-byte elements
 * of which @nr are used and *@cap allocated: doubles it (to @first elements
 * at first), copying the used ones.
 */
static inline int amber_array_grow(void **arr, size_t nr, size_t *cap,
				   size_t size, size_t first, gfp_t gfp)
{
	size_t ncap = *cap ? *cap * 2 : first;
	void *p;

	if (nr < *cap)
		return 0;
	p = kvmalloc_array(ncap, size, gfp);
	if (!p)
		return -ENOMEM;
	if (nr)
		memcpy(p, *arr, nr * size);
	kvfree(*arr);
	*arr = p;
	*cap = ncap;
	return 0;
}

#endif /* _AMBER_ARRAY_H */
