// SPDX-License-Identifier: GPL-2.0
#include "minimake.h"

uint64_t gcd_u64(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;

		a = b;
		b = t;
	}
	return a;
}
