// SPDX-License-Identifier: GPL-2.0
#include "minimake.h"

unsigned long count_primes(unsigned long limit)
{
	unsigned long n, d, count = 0;

	for (n = 2; n < limit; n++) {
		for (d = 2; d * d <= n; d++)
			if (n % d == 0)
				break;
		if (d * d > n)
			count++;
	}
	return count;
}
