// SPDX-License-Identifier: GPL-2.0
#include "minimake.h"

uint64_t fib_mod(unsigned int n, uint64_t mod)
{
	uint64_t a = 0, b = 1, t;

	while (n--) {
		t = (a + b) % mod;
		a = b;
		b = t;
	}
	return a;
}
