// SPDX-License-Identifier: GPL-2.0
#include "minimake.h"

void sort_u32(uint32_t *v, size_t n)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		uint32_t x = v[i];

		for (j = i; j > 0 && v[j - 1] > x; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}
