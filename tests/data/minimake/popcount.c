// SPDX-License-Identifier: GPL-2.0
#include "minimake.h"

unsigned int popcount_u64(uint64_t x)
{
	unsigned int n = 0;

	for (; x; x &= x - 1)
		n++;
	return n;
}
